/*
 * recrypt/udf.h - Uniform Data Fingerprints (Mesh UDF) for key identifiers
 * shown to people: 0x60 ‖ SHA-512(content-type ‖ ":" ‖ SHA-512(data)),
 * Base32 without padding, truncated to `bits`, groups of four joined by '-'.
 */
#ifndef RECRYPT_UDF_H
#define RECRYPT_UDF_H

#include <stddef.h>
#include <stdint.h>
#include <recrypt/error.h>

#define RC_UDF_DEFAULT_BITS 140
/* Enough for 512 bits: 103 base32 characters and 25 dashes, plus NUL. */
#define RC_UDF_MAX 130

/* Write the UDF of `data` with `content_type` into out (size >= RC_UDF_MAX).
 * bits must be a multiple of 20 between 20 and 440. */
int rc_udf(char *out, size_t outlen, const char *content_type, const uint8_t *data,
           size_t len, unsigned bits, rc_error *err);

#endif
