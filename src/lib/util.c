/*
 * util.c - the small shared helpers declared in internal.h (the byte writer
 * and reader are in src/common/bytes.c).
 */
#include <errno.h>
#include <unistd.h>
#include "internal.h"

void rc_label(uint8_t out[RC_LABEL_BYTES], const char *label)
{
    size_t n = strlen(label);
    memset(out, 0, RC_LABEL_BYTES);
    memcpy(out, label, n > RC_LABEL_BYTES ? RC_LABEL_BYTES : n);
}

int rc_hash_init(crypto_generichash_blake2b_state *st, size_t outlen, const char *label)
{
    uint8_t personal[RC_LABEL_BYTES];
    uint8_t salt[crypto_generichash_blake2b_SALTBYTES] = {0};
    rc_label(personal, label);
    return crypto_generichash_blake2b_init_salt_personal(st, NULL, 0, outlen, salt, personal);
}

int rc_hash(uint8_t *out, size_t outlen, const char *label, const uint8_t *in, size_t len)
{
    crypto_generichash_blake2b_state st;
    if (rc_hash_init(&st, outlen, label) != 0)
        return -1;
    crypto_generichash_blake2b_update(&st, in, len);
    return crypto_generichash_blake2b_final(&st, out, outlen);
}

int rc_scalar_is_canonical_nonzero(const uint8_t s[RC_SCALAR_BYTES])
{
    uint8_t wide[64] = {0}, red[32];
    memcpy(wide, s, 32);
    crypto_core_ristretto255_scalar_reduce(red, wide);
    int ok = sodium_memcmp(red, s, 32) == 0 && !sodium_is_zero(s, 32);
    sodium_memzero(wide, sizeof wide);
    sodium_memzero(red, sizeof red);
    return ok;
}

int rc_point_is_valid_nonidentity(const uint8_t p[RC_POINT_BYTES])
{
    /* is_valid_point accepts the identity (all zero), and libsodium 1.0.18
     * ignores bit 255: refuse both here, so every encoding is canonical. */
    return (p[31] & 0x80) == 0 && crypto_core_ristretto255_is_valid_point(p) == 1 &&
           !sodium_is_zero(p, 32);
}

void rc_scalar_random_nonzero(uint8_t s[RC_SCALAR_BYTES])
{
    do {
        crypto_core_ristretto255_scalar_random(s);
    } while (sodium_is_zero(s, 32));
}

int rc_b64url_encode(char *out, size_t outlen, const uint8_t *in, size_t len)
{
    const int v = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
    if (outlen < sodium_base64_ENCODED_LEN(len, v))
        return -1;
    sodium_bin2base64(out, outlen, in, len, v);
    return 0;
}

int rc_b64url_decode(uint8_t *out, size_t outlen, size_t *len, const char *in, size_t inlen)
{
    const int v = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
    const char *end = NULL;
    size_t n = 0;
    if (sodium_base642bin(out, outlen, in, inlen, NULL, &n, &end, v) != 0)
        return -1;
    if (end != in + inlen)
        return -1;
    /* Refuse non-canonical encodings (non-zero trailing bits). */
    char check[4096];
    if (sodium_base64_ENCODED_LEN(n, v) > sizeof check)
        return -1;
    sodium_bin2base64(check, sizeof check, out, n, v);
    if (strlen(check) != inlen || memcmp(check, in, inlen) != 0)
        return -1;
    *len = n;
    return 0;
}

void rc_wr_label(rc_wr *w, const char *label)
{
    uint8_t l[RC_LABEL_BYTES];
    rc_label(l, label);
    rc_wr_bytes(w, l, sizeof l);
}

int rc_fd_sink(void *ctx, const uint8_t *p, size_t len)
{
    int fd = *(const int *)ctx;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
