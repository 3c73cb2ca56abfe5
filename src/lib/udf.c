/*
 * udf.c - Uniform Data Fingerprints (draft-hallambaker-mesh-udf), the form
 * in which recrypt shows key identifiers to people.
 */
#include <stdio.h>
#include "internal.h"

#define UDF_TYPE_SHA512 0x60

static void base32(char *out, const uint8_t *in, size_t nchars)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    for (size_t i = 0; i < nchars; i++) {
        size_t bit = i * 5, byte = bit / 8, shift = bit % 8;
        unsigned v = (unsigned)in[byte] << 8 | in[byte + 1];
        out[i] = alphabet[(v >> (11 - shift)) & 31];
    }
}

int rc_udf(char *out, size_t outlen, const char *content_type, const uint8_t *data,
           size_t len, unsigned bits, rc_error *err)
{
    if (bits < 20 || bits > 440 || bits % 20 != 0)
        return rc_error_set(err, RC_E_INVALID, "UDF length %u is not a multiple of 20 in 20..440",
                            bits);
    size_t nchars = bits / 5, groups = nchars / 4;
    if (outlen < nchars + groups)
        return rc_error_set(err, RC_E_INVALID, "UDF output buffer too small");

    uint8_t inner[crypto_hash_sha512_BYTES];
    uint8_t buf[1 + crypto_hash_sha512_BYTES + 2] = {UDF_TYPE_SHA512};
    crypto_hash_sha512_state st;
    crypto_hash_sha512(inner, data, len);
    crypto_hash_sha512_init(&st);
    crypto_hash_sha512_update(&st, (const uint8_t *)content_type, strlen(content_type));
    crypto_hash_sha512_update(&st, (const uint8_t *)":", 1);
    crypto_hash_sha512_update(&st, inner, sizeof inner);
    crypto_hash_sha512_final(&st, buf + 1);

    char chars[RC_UDF_MAX];
    base32(chars, buf, nchars);
    size_t o = 0;
    for (size_t i = 0; i < nchars; i++) {
        if (i && i % 4 == 0)
            out[o++] = '-';
        out[o++] = chars[i];
    }
    out[o] = '\0';
    return 0;
}
