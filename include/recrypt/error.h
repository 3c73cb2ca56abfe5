/*
 * recrypt/error.h - status codes and error reports of librecrypt.
 *
 * Every fallible function returns 0 on success or a negative rc_code, and
 * fills the caller's rc_error (which may be NULL) with the code and a
 * human-readable message. The library never prints, never exits and holds
 * no global state. rc_error is a plain caller-owned struct; nothing to free.
 */
#ifndef RECRYPT_ERROR_H
#define RECRYPT_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    RC_OK = 0,
    RC_E_INVALID = -1,    /* bad argument or malformed input */
    RC_E_FORMAT = -2,     /* encoding, framing or MIME structure not as specified */
    RC_E_VERSION = -3,    /* unknown format version or suite */
    RC_E_CRYPTO = -4,     /* a cryptographic check failed (bad point, scalar, proof) */
    RC_E_AUTH = -5,       /* authentication failed: tampered, truncated or reordered */
    RC_E_SIGNATURE = -6,  /* a signature or certificate does not verify */
    RC_E_NOT_FOR_US = -7, /* no stanza in the message opens with this device's key */
    RC_E_POLICY = -8,     /* refused by a rule: stale epoch, expired, pinned key mismatch */
    RC_E_PERMISSION = -9, /* file permissions unsafe */
    RC_E_IO = -10,        /* read or write failed */
    RC_E_NOMEM = -11,     /* out of memory */
    RC_E_INTERNAL = -12,  /* a library bug or an unexpected library failure */
    RC_E_NOT_FOUND = -13, /* no such list, member, epoch or key */
    RC_E_EXISTS = -14,    /* already there: list, member, applied request */
    RC_E_DAMAGED = -15    /* stored state is damaged (a truncated store): restore a backup */
} rc_code;

#define RC_ERROR_MSG_MAX 512

typedef struct {
    int code;
    char msg[RC_ERROR_MSG_MAX];
} rc_error;

/* Short, fixed description of a code ("authentication failed"). */
const char *rc_strerror(int code);

/* Set *err (if not NULL) and return code. printf-style message. */
int rc_error_set(rc_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clear *err to RC_OK with an empty message. */
void rc_error_clear(rc_error *err);

#ifdef __cplusplus
}
#endif
#endif
