/*
 * receipt.c - delivery receipts (see receipt.h): the token the milter adds
 * as a recipient, and `recrypt-milter -r`, which the MTA runs for it.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>
#include <sodium.h>
#include "log.h"
#include "receipt.h"
#include "store.h"

#define RC_L_RECEIPT "recrypt/receipt" /* 16-byte BLAKE2b personal */

static void tag_of(uint8_t out[RECEIPT_TAG_BYTES], const uint8_t mark_secret[32],
                   const uint8_t E[RC_POINT_BYTES])
{
    uint8_t personal[16] = {0}, salt[16] = {0}, mac[16];
    crypto_generichash_blake2b_state st;
    memcpy(personal, RC_L_RECEIPT, strlen(RC_L_RECEIPT));
    crypto_generichash_blake2b_init_salt_personal(&st, mark_secret, 32, sizeof mac, salt,
                                                  personal);
    crypto_generichash_blake2b_update(&st, E, RC_POINT_BYTES);
    crypto_generichash_blake2b_final(&st, mac, sizeof mac);
    memcpy(out, mac, RECEIPT_TAG_BYTES);
}

void receipt_token(char out[RECEIPT_TOKEN_LEN + 1], const uint8_t mark_secret[32],
                   const uint8_t E[RC_POINT_BYTES])
{
    uint8_t tag[RECEIPT_TAG_BYTES];
    tag_of(tag, mark_secret, E);
    sodium_bin2hex(out, 2 * RECEIPT_PREFIX_BYTES + 1, E, RECEIPT_PREFIX_BYTES);
    sodium_bin2hex(out + 2 * RECEIPT_PREFIX_BYTES, 2 * RECEIPT_TAG_BYTES + 1, tag,
                   RECEIPT_TAG_BYTES);
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
    if (!domain[0])
        return 0;
    const char *at = strrchr(address, '@');
    if (!at)
        return 0;
    size_t n = strcspn(at + 1, ">");
    return n == strlen(domain) && strncasecmp(at + 1, domain, n) == 0;
}

/* ---- recrypt-milter -r ---- */

typedef struct {
    const uint8_t *mark;
    const uint8_t *tag;
} match_ctx;

static int match_tag(void *ctx, const uint8_t E[RC_POINT_BYTES])
{
    const match_ctx *m = ctx;
    return receipt_tag_ok(m->mark, E, m->tag);
}

/* The MTA writes the message to us; it is not needed. Read it to the end
 * (some MTAs take an early close for a failure); never from a terminal. */
static void drain_stdin(void)
{
    char buf[65536];
    if (isatty(0))
        return;
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
}

int receipt_run(const config *cfg, const char *recipient, const char *queue_id)
{
    uint8_t prefix[RECEIPT_PREFIX_BYTES], tag[RECEIPT_TAG_BYTES], mark[32], E[RC_POINT_BYTES];
    char e_hex[2 * RECEIPT_PREFIX_BYTES + 1];
    const char *qid = queue_id && *queue_id ? queue_id : NULL;
    rc_error err;
    rc_store *st = NULL;
    rc_store_reader *rd;
    int state = RC_POST_NEW, rc;

    drain_stdin();
    if (receipt_parse(recipient, prefix, tag) != 0) {
        log_msg(LOG_LEVEL_WARNING, qid, "receipt refused: %.80s is not a receipt address",
                recipient);
        fprintf(stderr, "recrypt-milter: %.80s is not a receipt address (%d hex digits @ the "
                        "ReceiptDomain)\n",
                recipient, RECEIPT_TOKEN_LEN);
        return EX_DATAERR;
    }
    sodium_bin2hex(e_hex, sizeof e_hex, prefix, sizeof prefix);
    /* The store as it is: migrating is the daemon's job, not a receipt's. */
    rc = rc_store_open(&st, cfg->database, cfg->map_size, RC_STORE_NO_MIGRATE, &err);
    if (rc == 0 && (rc = rc_store_reader_begin(st, &rd, &err)) == 0) {
        rc = rc_store_mark_secret(rd, mark, &err);
        rc_store_reader_end(rd);
    }
    if (rc == 0) {
        match_ctx m = {mark, tag};
        rc = rc_store_delivered_confirm(st, prefix, sizeof prefix, match_tag, &m, E, &state,
                                        &err);
    }
    sodium_memzero(mark, sizeof mark);
    rc_store_close(st);
    if (rc) {
        log_msg(LOG_LEVEL_ERROR, qid, "post=%s verdict=receipt-deferred (%s)", e_hex, err.msg);
        fprintf(stderr, "recrypt-milter: receipt for post %s deferred: %s\n", e_hex, err.msg);
        return EX_TEMPFAIL;
    }
    if (state == RC_POST_PENDING)
        log_msg(LOG_LEVEL_INFO, qid, "post=%s verdict=delivered (receipt)", e_hex);
    else if (state == RC_POST_DELIVERED)
        log_msg(LOG_LEVEL_INFO, qid, "post=%s verdict=delivered (receipt again)", e_hex);
    else
        log_msg(LOG_LEVEL_WARNING, qid,
                "post=%s verdict=receipt-unknown (no pending post with this token: expired from "
                "the replay cache, or a forged receipt)",
                e_hex);
    return 0;
}
