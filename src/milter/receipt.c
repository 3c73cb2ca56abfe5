/*
 * receipt.c - delivery receipt tokens (see receipt.h; the format is
 * docs/FORMAT.md §9.7). Pure: libsodium only, no I/O.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>
#include "receipt.h"

#define RC_L_RECEIPT "recrypt/receipt" /* 16-byte BLAKE2b personals */
#define RC_L_FANOUT "recrypt/fanout"

static void tag_with(uint8_t out[RECEIPT_TAG_BYTES], const char *label,
                     const uint8_t mark_secret[32], const uint8_t E[RC_POINT_BYTES])
{
    uint8_t personal[16] = {0}, salt[16] = {0}, mac[16];
    crypto_generichash_blake2b_state st;
    memcpy(personal, label, strlen(label));
    crypto_generichash_blake2b_init_salt_personal(&st, mark_secret, 32, sizeof mac, salt,
                                                  personal);
    crypto_generichash_blake2b_update(&st, E, RC_POINT_BYTES);
    crypto_generichash_blake2b_final(&st, mac, sizeof mac);
    memcpy(out, mac, RECEIPT_TAG_BYTES);
}

static void tag_of(uint8_t out[RECEIPT_TAG_BYTES], const uint8_t mark_secret[32],
                   const uint8_t E[RC_POINT_BYTES])
{
    tag_with(out, RC_L_RECEIPT, mark_secret, E);
}

static void token_with(char out[RECEIPT_TOKEN_LEN + 1], const char *label,
                       const uint8_t mark_secret[32], const uint8_t E[RC_POINT_BYTES])
{
    uint8_t tag[RECEIPT_TAG_BYTES];
    tag_with(tag, label, mark_secret, E);
    sodium_bin2hex(out, 2 * RECEIPT_PREFIX_BYTES + 1, E, RECEIPT_PREFIX_BYTES);
    sodium_bin2hex(out + 2 * RECEIPT_PREFIX_BYTES, 2 * RECEIPT_TAG_BYTES + 1, tag,
                   RECEIPT_TAG_BYTES);
}

void fanout_token(char out[RECEIPT_TOKEN_LEN + 1], const uint8_t mark_secret[32],
                  const uint8_t E[RC_POINT_BYTES])
{
    token_with(out, RC_L_FANOUT, mark_secret, E);
}

int fanout_tag_ok(const uint8_t mark_secret[32], const uint8_t E[RC_POINT_BYTES],
                  const uint8_t prefix[RECEIPT_PREFIX_BYTES], const uint8_t tag[RECEIPT_TAG_BYTES])
{
    uint8_t want[RECEIPT_TAG_BYTES];
    tag_with(want, RC_L_FANOUT, mark_secret, E);
    /* Both compared, whatever the first says (&, not &&). */
    return (int)(sodium_memcmp(prefix, E, RECEIPT_PREFIX_BYTES) == 0) &
           (int)(sodium_memcmp(want, tag, RECEIPT_TAG_BYTES) == 0);
}

void receipt_token(char out[RECEIPT_TOKEN_LEN + 1], const uint8_t mark_secret[32],
                   const uint8_t E[RC_POINT_BYTES])
{
    token_with(out, RC_L_RECEIPT, mark_secret, E);
}

int receipt_parse(const char *address, uint8_t prefix[RECEIPT_PREFIX_BYTES],
                  uint8_t tag[RECEIPT_TAG_BYTES])
{
    char hex[RECEIPT_TOKEN_LEN + 1];
    const char *p = address;
    if (*p == '<')
        p++;
    size_t n = strcspn(p, "@>");
    if (n != RECEIPT_TOKEN_LEN)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)p[i]))
            return -1;
        hex[i] = (char)tolower((unsigned char)p[i]);
    }
    hex[n] = '\0';
    size_t got = 0;
    if (sodium_hex2bin(prefix, RECEIPT_PREFIX_BYTES, hex, 2 * RECEIPT_PREFIX_BYTES, NULL, &got,
                       NULL) != 0 ||
        got != RECEIPT_PREFIX_BYTES ||
        sodium_hex2bin(tag, RECEIPT_TAG_BYTES, hex + 2 * RECEIPT_PREFIX_BYTES,
                       2 * RECEIPT_TAG_BYTES, NULL, &got, NULL) != 0 ||
        got != RECEIPT_TAG_BYTES)
        return -1;
    return 0;
}

int receipt_tag_ok(const uint8_t mark_secret[32], const uint8_t E[RC_POINT_BYTES],
                   const uint8_t tag[RECEIPT_TAG_BYTES])
{
    uint8_t want[RECEIPT_TAG_BYTES];
    tag_of(want, mark_secret, E);
    return sodium_memcmp(want, tag, RECEIPT_TAG_BYTES) == 0;
}

int receipt_in_domain(const char *address, const char *domain)
{
    size_t dl = strlen(domain), al = strlen(address);
    if (!dl)
        return 0;
    /* The domain as a whole name anywhere the MTA could route by it: after
     * '@', '%' (the percent hack), '.' (a subdomain), or at the start or
     * after '<' before '!' (a bang path); followed by the end, '>', '!',
     * '%', '@', or one trailing dot. */
    for (size_t i = 0; i + dl <= al; i++) {
        if (strncasecmp(address + i, domain, dl) != 0)
            continue;
        char before = i ? address[i - 1] : '\0', after = address[i + dl];
        int b = before == '\0' || before == '<' || before == '@' || before == '%' || before == '.';
        int a = after == '\0' || after == '>' || after == '!' || after == '%' || after == '@' ||
                (after == '.' && (address[i + dl + 1] == '\0' || address[i + dl + 1] == '>'));
        if (b && a)
            return 1;
    }
    return 0;
}
