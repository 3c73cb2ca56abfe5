/*
 * spool.h - private staging files for the client: standard input is
 * spooled to one before parsing (GMime keeps piped input in memory), an
 * outgoing message is staged in one while it is sealed, and decrypted
 * output is staged in one until it has authenticated. Never a named file:
 * an anonymous memory file (memfd_create, MFD_CLOEXEC) when the kernel has
 * them, else an unnamed file (O_TMPFILE, 0600) in a private 0700 directory,
 * $XDG_RUNTIME_DIR/recrypt or else <keystore>/tmp. Nothing is ever written
 * to $TMPDIR, and nothing is left behind even if the process is killed.
 */
#ifndef RECRYPT_CLIENT_SPOOL_H
#define RECRYPT_CLIENT_SPOOL_H

#include <recrypt/recrypt.h>

/* A new empty private staging file (see above); returns the descriptor
 * or -1 (err set). */
int spool_tmpfile(rc_error *err);
/* Copy all of fd `in` into a new private file; returns its descriptor. */
int spool_stdin(int in, rc_error *err);

#endif
