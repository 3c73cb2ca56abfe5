/*
 * passlock.h - secrets locked with a passphrase, shared by the list owner's
 * keystore (list secrets of a --protect list, src/ctl/owner.c) and the
 * subscriber's (a protected device key, src/client/keystore.c). Not
 * installed.
 *
 * A locked secret is a key string (FORMAT.md §2 framing) of its own type,
 * "<type>-locked", whose payload is
 *   u32 opslimit ‖ u32 memlimit in MiB ‖ salt(16) ‖ nonce(24) ‖
 *   crypto_secretbox(the plain key string, nonce, key)
 * with key = crypto_pwhash(32, passphrase, salt, opslimit, memlimit,
 * Argon2id13); REQUESTS.md §10.1 and FORMAT.md §13.1 give the details.
 *
 * The passphrase is the first line of the file $RECRYPT_PASSPHRASE_FILE
 * names (when set and not empty), else it is asked on the terminal without
 * echo. An empty passphrase is refused.
 */
#ifndef RECRYPT_COMMON_PASSLOCK_H
#define RECRYPT_COMMON_PASSLOCK_H

#include <stddef.h>
#include <recrypt/recrypt.h>

#define PASSLOCK_MAX 512 /* bytes of passphrase, NUL included */

typedef struct {
    const char *prompt;  /* on the terminal, e.g. "Device key passphrase: " */
    const char *locked;  /* for the refusal without a terminal, e.g. "the device key is
                          * locked" */
    int confirm;         /* on a terminal, ask twice (a new passphrase) */
    int no_terminal;     /* never ask on the terminal (the native host) */
} passlock_ask_opts;

/* The passphrase into out (a secret buffer of PASSLOCK_MAX bytes). */
int passlock_ask(char *out, const passlock_ask_opts *o, rc_error *err);

/* 1 when s is a locked key string of `type` ("recrypt1.<type>-locked."). */
int passlock_is_locked(const char *s, const char *type);

/* Lock the plain key string `plain` as "<type>-locked" under pass into out
 * (at least 2 * RC_KEYSTR_MAX bytes). */
int passlock_lock(char *out, size_t outlen, const char *type, const char *plain,
                  const char *pass, rc_error *err);

/* Unlock `locked` (of "<type>-locked") with pass into out (a secret buffer
 * of RC_KEYSTR_MAX bytes). A wrong passphrase: RC_E_AUTH, "wrong passphrase
 * for <what>". */
int passlock_unlock(char *out, size_t outlen, const char *type, const char *locked,
                    const char *pass, const char *what, rc_error *err);

#endif
