/*
 * seal.h - sealing a message for a list, as `recrypt seal` and `recrypt
 * sendmail` do: which list key (a key line, a file, or the list's address
 * looked up in the keystore), trust (the pin), whether to sign (this
 * device's certificate for that epoch), and remembering the key.
 */
#ifndef RECRYPT_CLIENT_SEAL_H
#define RECRYPT_CLIENT_SEAL_H

#include <recrypt/recrypt.h>
#include "keystore.h"

/* Is s a key string ("recrypt1.listkey.…", any version or kind) rather
 * than an address or a file name? */
int client_is_key_line(const char *s);

/* LISTKEY: the key line itself, a file holding it, or a list address:
 * then the newest statement this keystore accepted for that list (the
 * one of the highest epoch; opening list mail keeps it up to date). */
int client_load_statement(const keystore *ks, rc_statement *st, const char *arg, rc_error *err);

/* Seal the message in in_fd (a seekable private file, position 0) for
 * the list named by `to` (as client_load_statement takes it) and write the
 * sealed message to sink. Signed when this device holds the certificate
 * for that epoch, unless no_sign (a note on stderr says when it cannot
 * sign). A signed post must be From the certificate's member, else
 * RC_E_POLICY ("... this device signs as ..."), nothing written. On
 * success the key is remembered; *st is the statement used and
 * *first_use says whether it was pinned just now. */
int client_seal(const keystore *ks, const char *to, const char *signer_fp, int no_sign, int in_fd,
                rc_sink_fn sink, void *ctx, rc_statement *st, int *first_use, rc_error *err);

#endif
