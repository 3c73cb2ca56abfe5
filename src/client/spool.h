/*
 * spool.h - private temporary files for the client: standard input is
 * spooled to one before parsing (GMime keeps piped input in memory), and
 * decrypted output is staged in one until it has authenticated. Files are
 * created 0600 in $TMPDIR (or /tmp) and unlinked at once, so nothing is left
 * behind even if the process is killed.
 */
#ifndef RECRYPT_CLIENT_SPOOL_H
#define RECRYPT_CLIENT_SPOOL_H

#include <recrypt/recrypt.h>

/* A new empty private file; returns the descriptor or -1 (err set). */
int spool_tmpfile(rc_error *err);
/* Copy all of fd `in` into a new private file; returns its descriptor. */
int spool_stdin(int in, rc_error *err);

#endif
