/*
 * passlock.c - see passlock.h. Moved here from src/ctl/owner.c (the locked
 * list secret), unchanged in format, so that the device key uses the same
 * scheme.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sodium.h>
#include "keydir.h"
#include "passlock.h"

#define HEAD (8 + crypto_pwhash_SALTBYTES + crypto_secretbox_NONCEBYTES)
#define LOCKED_MAX (HEAD + RC_KEYSTR_MAX + crypto_secretbox_MACBYTES)

static int tty_read(int fd, const char *prompt, char *out, size_t outlen)
{
    struct termios t, quiet;
    int have_t = tcgetattr(fd, &t) == 0;
    if (have_t) {
        quiet = t;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    (void)!write(fd, prompt, strlen(prompt));
    ssize_t n = read(fd, out, outlen - 1);
    (void)!write(fd, "\n", 1);
    if (have_t)
        tcsetattr(fd, TCSAFLUSH, &t);
    if (n <= 0)
        return -1;
    out[n] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

int passlock_ask(char *out, const passlock_ask_opts *o, rc_error *err)
{
    const char *file = getenv("RECRYPT_PASSPHRASE_FILE");
    out[0] = '\0';
    if (file && *file) {
        if (keystore_read_file(file, out, PASSLOCK_MAX) != 0)
            return rc_error_set(err, RC_E_IO, "cannot read the passphrase file %s", file);
        out[strcspn(out, "\r\n")] = '\0';
    } else {
        int fd = o->no_terminal ? -1 : open("/dev/tty", O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return rc_error_set(err, RC_E_POLICY,
                                "%s and there is no terminal%s: set RECRYPT_PASSPHRASE_FILE to "
                                "a file holding the passphrase",
                                o->locked, o->no_terminal ? " to ask on" : "");
        int rc = tty_read(fd, o->prompt, out, PASSLOCK_MAX);
        if (rc == 0 && o->confirm && out[0]) {
            char *again = sodium_malloc(PASSLOCK_MAX);
            if (!again)
                rc = -2;
            else if ((rc = tty_read(fd, "Again: ", again, PASSLOCK_MAX)) == 0 &&
                     strcmp(again, out) != 0)
                rc = -3;
            sodium_free(again);
        }
        close(fd);
        if (rc == -2)
            return rc_error_set(err, RC_E_NOMEM, "out of memory");
        if (rc == -3) {
            sodium_memzero(out, PASSLOCK_MAX);
            return rc_error_set(err, RC_E_INVALID, "the two passphrases differ");
        }
        if (rc)
            return rc_error_set(err, RC_E_IO, "no passphrase given");
    }
    if (!out[0])
        return rc_error_set(err, RC_E_INVALID, "the passphrase is empty");
    return 0;
}

int passlock_is_locked(const char *s, const char *type)
{
    char prefix[96];
    snprintf(prefix, sizeof prefix, "recrypt1.%s-locked.", type);
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

int passlock_lock(char *out, size_t outlen, const char *type, const char *plain,
                  const char *pass, rc_error *err)
{
    char ltype[64];
    uint8_t *key = sodium_malloc(32), *buf = sodium_malloc(LOCKED_MAX);
    size_t plen = strlen(plain);
    unsigned long long ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
    size_t mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
    int rc = (!key || !buf) ? rc_error_set(err, RC_E_NOMEM, "out of memory") : 0;
    snprintf(ltype, sizeof ltype, "%s-locked", type);
    if (rc == 0 && plen > RC_KEYSTR_MAX)
        rc = rc_error_set(err, RC_E_INVALID, "secret too long");
    if (rc == 0 && !pass[0])
        rc = rc_error_set(err, RC_E_INVALID, "the passphrase is empty");
    if (rc == 0) {
        uint8_t *salt = buf + 8, *nonce = salt + crypto_pwhash_SALTBYTES,
                *box = nonce + crypto_secretbox_NONCEBYTES;
        size_t mib = mem >> 20;
        buf[0] = (uint8_t)(ops >> 24), buf[1] = (uint8_t)(ops >> 16), buf[2] = (uint8_t)(ops >> 8),
        buf[3] = (uint8_t)ops;
        buf[4] = (uint8_t)(mib >> 24), buf[5] = (uint8_t)(mib >> 16), buf[6] = (uint8_t)(mib >> 8),
        buf[7] = (uint8_t)mib;
        randombytes_buf(salt, crypto_pwhash_SALTBYTES);
        randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
        if (crypto_pwhash(key, 32, pass, strlen(pass), salt, ops, mem,
                          crypto_pwhash_ALG_ARGON2ID13) != 0)
            rc = rc_error_set(err, RC_E_NOMEM, "not enough memory for the passphrase hash");
        else {
            crypto_secretbox_easy(box, (const uint8_t *)plain, plen, nonce, key);
            rc = rc_keystr_encode(out, outlen, ltype, buf, HEAD + plen + crypto_secretbox_MACBYTES,
                                  err);
        }
    }
    sodium_free(key);
    sodium_free(buf);
    return rc;
}

int passlock_unlock(char *out, size_t outlen, const char *type, const char *locked,
                    const char *pass, const char *what, rc_error *err)
{
    char ltype[64];
    uint8_t *key = sodium_malloc(32), *buf = sodium_malloc(LOCKED_MAX);
    size_t len = 0;
    snprintf(ltype, sizeof ltype, "%s-locked", type);
    int rc = (!key || !buf) ? rc_error_set(err, RC_E_NOMEM, "out of memory")
                            : rc_keystr_decode(locked, ltype, buf, LOCKED_MAX, &len, err);
    if (rc == 0 && (len < HEAD + crypto_secretbox_MACBYTES ||
                    len - HEAD - crypto_secretbox_MACBYTES >= outlen))
        rc = rc_error_set(err, RC_E_FORMAT, "the locked %s is malformed", what);
    unsigned long long ops = 0;
    size_t mem = 0;
    if (rc == 0) {
        ops = (unsigned long long)buf[0] << 24 | buf[1] << 16 | buf[2] << 8 | buf[3];
        mem = ((size_t)buf[4] << 24 | (size_t)buf[5] << 16 | (size_t)buf[6] << 8 | buf[7]) << 20;
        /* Refuse parameters libsodium refuses, or that would take a
         * tampered file's word for gigabytes of memory. */
        if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > crypto_pwhash_OPSLIMIT_SENSITIVE ||
            mem < crypto_pwhash_MEMLIMIT_MIN || mem > crypto_pwhash_MEMLIMIT_SENSITIVE)
            rc = rc_error_set(err, RC_E_FORMAT, "the locked %s has unsupported Argon2id limits",
                              what);
    }
    if (rc == 0 && crypto_pwhash(key, 32, pass, strlen(pass), buf + 8, ops, mem,
                                 crypto_pwhash_ALG_ARGON2ID13) != 0)
        rc = rc_error_set(err, RC_E_NOMEM, "not enough memory for the passphrase hash");
    size_t plen = len - HEAD - crypto_secretbox_MACBYTES;
    if (rc == 0 && crypto_secretbox_open_easy((uint8_t *)out, buf + HEAD, len - HEAD,
                                              buf + 8 + crypto_pwhash_SALTBYTES, key) != 0)
        rc = rc_error_set(err, RC_E_AUTH, "wrong passphrase for %s", what);
    if (rc == 0)
        out[plen] = '\0';
    sodium_free(key);
    sodium_free(buf);
    return rc;
}
