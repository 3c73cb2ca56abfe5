/*
 * privileges.h - becoming the service user (UserID), shared by
 * recrypt-milter (after it opened the service key and its socket) and the
 * commands the MTA runs (the receipt and fan-out transports, when a prog
 * mailer runs them as root).
 */
#ifndef RECRYPT_MILTER_PRIVILEGES_H
#define RECRYPT_MILTER_PRIVILEGES_H

#include <recrypt/error.h>

/* Become USER or USER:GROUP (supplementary groups: that group only). A
 * no-op when already that user. Also makes the process non-dumpable. */
int drop_privileges(const char *spec, rc_error *err);

#endif
