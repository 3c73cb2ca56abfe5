/*
 * receipt_run.c - `recrypt-milter -r`, the command the MTA's receipt
 * transport runs for each delivery receipt (see receipt.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include <sodium.h>
#include "log.h"
#include "receipt.h"
#include "store.h"

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
        log_msg(LOG_LEVEL_WARNING, qid,
                "post=- verdict=receipt-refused error=\"%.80s is not a receipt address\"",
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
        log_msg(LOG_LEVEL_ERROR, qid, "post=%s verdict=receipt-deferred error=\"%s\"", e_hex,
                err.msg);
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
