/*
 * fanout.c - split delivery, one copy per member: see fanout.h.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include "fanout.h"
#include "gateway.h"
#include "log.h"
#include "receipt.h"
#include "smtp.h"

#define HDR_PROCESSED "Recrypt-Processed"
#define SMTP_TIMEOUT 300 /* seconds per reply; a final "." may take a while on a busy MTA */

/* ---- the header every copy shares ---- */

typedef struct {
    char *p;
    size_t n, cap;
    int failed;
} buf_t;

static int buf_add(buf_t *b, const void *p, size_t n)
{
    if (b->failed)
        return -1;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->failed = 1;
            return -1;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

static int buf_sink(void *ctx, const uint8_t *p, size_t n)
{
    return buf_add(ctx, p, n);
}

static int buf_str(buf_t *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

/* Fields the gateway owns: whatever the post brought is dropped, the
 * gateway's own are added (the milter does the same in inline mode). */
static int dropped_field(const char *f, size_t len)
{
    static const char *const names[] = {RC_HDR_LIST_KEY, HDR_PROCESSED, "List-Id", "List-Post",
                                        "Return-Path", "Delivered-To"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        size_t k = strlen(names[i]);
        if (len > k && f[k] == ':' && !strncasecmp(f, names[i], k))
            return 1;
    }
    return 0;
}

/* The header of every copy: the post's header fields as queued (less the
 * gateway's own), then List-Id, List-Post, Recrypt-List-Key and
 * Recrypt-Processed, then the empty line. Nothing in it depends on the
 * member: a copy says nothing about who else got one. */
static int copy_header(const rc_mail *mail, const rc_store_list *l, const rc_statement *st,
                       const char *marker, buf_t *out, rc_error *err)
{
    buf_t in = {0};
    int rc = rc_mail_write_header(mail, buf_sink, &in, err);
    if (rc == 0 && in.failed)
        rc = rc_error_set(err, RC_E_NOMEM, "out of memory for the header");
    if (rc) {
        free(in.p);
        return rc;
    }
    /* Fields: a line that does not start with white space begins one. The
     * block ends with an empty line, which is not copied. */
    const char *p = in.p, *end = in.p + in.n;
    while (p < end && !(*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n'))) {
        const char *f = p;
        do {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            p = nl ? nl + 1 : end;
        } while (p < end && (*p == ' ' || *p == '\t'));
        if (!dropped_field(f, (size_t)(p - f)))
            buf_add(out, f, (size_t)(p - f));
    }
    free(in.p);

    char id[RC_ADDR_MAX + 8], line[2 * RC_ADDR_MAX + 64], key[RC_KEYSTR_MAX];
    snprintf(id, sizeof id, "<%s>", l->address);
    char *at = strchr(id, '@');
    if (at)
        *at = '.';
    snprintf(line, sizeof line, "List-Id: %s\nList-Post: <mailto:%s>\n", id, l->address);
    buf_str(out, line);
    if ((rc = rc_statement_encode(key, sizeof key, st, err)) != 0)
        return rc;
    /* Folded as the milter folds it: continuation lines of 72 characters. */
    buf_str(out, RC_HDR_LIST_KEY ":");
    for (size_t i = 0, len = strlen(key); i < len; i += 72) {
        buf_str(out, i ? "\n " : " ");
        buf_add(out, key + i, len - i < 72 ? len - i : 72);
    }
    snprintf(line, sizeof line, "\n%s: %s\n\n", HDR_PROCESSED, marker);
    buf_str(out, line);
    return out->failed ? rc_error_set(err, RC_E_NOMEM, "out of memory for the header") : 0;
}

/* ---- records of queued copies ---- */

typedef struct {
    rc_store *store;
    const uint8_t *E;
    const char **who;
    size_t n;
    struct timespec since;
} batch_t;

static long ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

static int batch_commit(batch_t *b, uint64_t now, rc_error *err)
{
    if (b->n && rc_store_copies_record(b->store, b->E, b->who, b->n, now, err) != 0)
        return -1;
    b->n = 0;
    clock_gettime(CLOCK_MONOTONIC, &b->since);
    return 0;
}

/* ---- the run ---- */

static int match_E(void *ctx, const uint8_t E[RC_POINT_BYTES])
{
    return sodium_memcmp(ctx, E, RC_POINT_BYTES) == 0;
}

static int is_fanout_address(const char *a, const char *domain)
{
    const char *at = strrchr(a, '@');
    if (!at || !domain[0])
        return 0;
    size_t dl = strlen(domain), rest = strlen(at + 1);
    if (rest && at[rest] == '>') /* "<...>" */
        rest--;
    return rest == dl && !strncasecmp(at + 1, domain, dl);
}

unsigned fanout_threads(const config *cfg)
{
    if (cfg->fanout_threads)
        return cfg->fanout_threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

int fanout_run(const fanout_job *job, fanout_result *res, char *why, size_t cap)
{
    const config *cfg = job->cfg;
    const char *qid = job->queue_id && *job->queue_id ? job->queue_id : NULL;
    uint8_t prefix[RECEIPT_PREFIX_BYTES], tag[RECEIPT_TAG_BYTES];
    rc_error err;
    rc_mail *mail = NULL;
    rc_store_reader *rd = NULL;
    rc_store_list l;
    rc_store_epoch ep;
    rc_store_audience aud = {0};
    rc_recryptor *rr = NULL;
    uint8_t (*R)[RC_POINT_BYTES] = NULL;
    unsigned char *sent_before = NULL;
    smtp_client *smtp = NULL;
    buf_t hdr = {0};
    batch_t batch = {0};
    int state = RC_POST_NEW, recorded_new = 0, code = EX_TEMPFAIL;
    uint64_t first = job->now;
    char post_id[2 * RECEIPT_PREFIX_BYTES + 1] = "-";
    memset(res, 0, sizeof *res);
    memset(&l, 0, sizeof l);
    snprintf(why, cap, "internal error");

    if (receipt_parse(job->recipient, prefix, tag) != 0 ||
        !is_fanout_address(job->recipient, cfg->fanout_domain)) {
        snprintf(why, cap, "%.80s is not a fan-out address (%d hex digits @%s)", job->recipient,
                 RECEIPT_TOKEN_LEN, cfg->fanout_domain[0] ? cfg->fanout_domain : "FanoutDomain");
        log_msg(LOG_LEVEL_WARNING, qid, "fanout refused: %s", why);
        return EX_NOUSER;
    }
    if (rc_mail_parse(&mail, job->fd, &err) != 0) {
        snprintf(why, cap, "malformed recrypt message: %s", err.msg);
        log_msg(LOG_LEVEL_WARNING, qid, "fanout refused: %s", why);
        return EX_DATAERR;
    }
    const rc_envelope *env = rc_mail_envelope(mail);
    sodium_bin2hex(post_id, sizeof post_id, env->E, RECEIPT_PREFIX_BYTES);
    if (!fanout_tag_ok(job->mark_secret, env->E, prefix, tag)) {
        snprintf(why, cap, "the fan-out address does not belong to this post (or to this store)");
        log_msg(LOG_LEVEL_WARNING, qid, "fanout refused: post=%s %s", post_id, why);
        code = EX_NOPERM;
        goto done;
    }

    /* The replay cache: a post delivered before is done; a pending one
     * (the milter records it when it checks it) goes on with the audience
     * of its first check. */
    if (rc_store_delivered_begin(job->store, env->E, job->now, rc_mail_date(mail),
                                 cfg->freshness_window, &state, &first, &err) != 0) {
        snprintf(why, cap, "replay cache: %s", err.msg);
        goto tempfail;
    }
    if (state == RC_POST_DELIVERED) {
        res->duplicate = 1;
        log_msg(LOG_LEVEL_INFO, qid,
                "list=- epoch=%llu copies=0 stanzas=0 recipients=0 post=%s verdict=duplicate "
                "(delivered before: nothing to do)",
                (unsigned long long)env->epoch, post_id);
        code = 0;
        goto done;
    }
    recorded_new = state == RC_POST_NEW;

    /* The checks, as of the first check's time. */
    gw_verdict v;
    const gw_post post = {
        .list = NULL,
        .fd = job->fd,
        .sender = "",
        .from = "",
        .mark = "",
        .n_marks = 0,
        .mark_secret = job->mark_secret,
        .plaintext_policy = PLAINTEXT_REJECT,
        .posting_policy = POSTING_OPEN, /* the milter judged the envelope; we have none */
        .now = first,
        .freshness_window = cfg->freshness_window,
        .future_skew = cfg->future_skew,
    };
    gateway_check_parsed(job->store, &post, mail, &rd, &l, &ep, &v);
    if (v.action == GW_GO_ON) {
        gw_audience_rule rule = {rc_mail_date(mail), UINT64_MAX};
        if (state == RC_POST_PENDING) {
            if (first < rule.enrolled_before)
                rule.enrolled_before = first;
            rule.unchanged_since = first;
        }
        gateway_plan(rd, job->svc, &l, ep.epoch, &rule, 1, cfg->max_fanout, &aud, &v);
    }
    if (v.action == GW_TEMPFAIL) {
        snprintf(why, cap, "%s", v.line[0]);
        goto tempfail;
    }
    if (v.action != GW_GO_ON) {
        snprintf(why, cap, "%s %s %s", v.code, v.xcode, v.line[0]);
        log_msg(LOG_LEVEL_NOTICE, qid, "list=%s post=%s verdict=rejected reply=\"%s\"",
                l.address[0] ? l.address : "-", post_id, why);
        code = EX_DATAERR;
        goto done;
    }
    res->members = aud.n_members;

    /* Who has a copy already (a former run of this post). */
    sent_before = calloc(aud.n_members ? aud.n_members : 1, 1);
    if (!sent_before) {
        snprintf(why, cap, "out of memory");
        goto tempfail;
    }
    size_t todo_devices = 0;
    for (size_t i = 0; i < aud.n_members; i++) {
        int sent = 0;
        if (rc_store_copy_is_sent(rd, env->E, aud.members[i].address, &sent, &err) != 0) {
            snprintf(why, cap, "cannot read the copies: %s", err.msg);
            goto tempfail;
        }
        sent_before[i] = (unsigned char)sent;
        if (sent)
            res->skipped++;
        else
            todo_devices += aud.members[i].n;
    }

    char helo[256];
    if (gethostname(helo, sizeof helo) != 0 || !helo[0] || strpbrk(helo, " \t\r\n@"))
        snprintf(helo, sizeof helo, "localhost");
    helo[sizeof helo - 1] = '\0';

    /* R = r·E for every device still to be served: one table for E, all cores. */
    if (todo_devices) {
        R = calloc(aud.n_entries ? aud.n_entries : 1, sizeof *R);
        if (!R) {
            snprintf(why, cap, "out of memory for %zu devices", aud.n_entries);
            goto tempfail;
        }
        size_t bad = 0;
        if (rc_recryptor_new(&rr, env->E, 1, &err) != 0 ||
            rc_recryptor_compute_all(rr, aud.entries, aud.n_entries, R, fanout_threads(cfg), &bad,
                                     &err) != 0) {
            snprintf(why, cap, "cannot recrypt: %s", err.msg);
            goto tempfail;
        }
        char marker[64];
        gateway_processed_mark(marker, job->mark_secret, l.list_id, env);
        if (copy_header(mail, &l, &ep.statement, marker, &hdr, &err) != 0) {
            snprintf(why, cap, "%s", err.msg);
            goto tempfail;
        }
        char reason[512];
        if (smtp_open(&smtp, cfg->fanout_relay, helo, SMTP_TIMEOUT, reason, sizeof reason) !=
            SMTP_OK) {
            snprintf(why, cap, "FanoutRelay %s: %s", cfg->fanout_relay, reason);
            goto tempfail;
        }
    }

    batch.store = job->store;
    batch.E = env->E;
    batch.who = calloc(FANOUT_BATCH, sizeof *batch.who);
    if (!batch.who) {
        snprintf(why, cap, "out of memory");
        goto tempfail;
    }
    clock_gettime(CLOCK_MONOTONIC, &batch.since);
    for (size_t i = 0; i < aud.n_members; i++) {
        const rc_store_audience_member *mb = &aud.members[i];
        char reply[512];
        size_t k = 0;
        if (sent_before[i])
            continue;
        int rc = smtp_begin(smtp, l.bounce, mb->address, reply, sizeof reply);
        if (rc == SMTP_TEMPFAIL && !smtp_usable(smtp)) {
            /* The relay dropped the connection (an idle timeout, a 421):
             * one new connection, then this member again. */
            char reason[512];
            smtp_close(smtp);
            smtp = NULL;
            if (smtp_open(&smtp, cfg->fanout_relay, helo, SMTP_TIMEOUT, reason, sizeof reason) !=
                SMTP_OK) {
                snprintf(why, cap, "FanoutRelay %s: %s", cfg->fanout_relay, reason);
                goto tempfail;
            }
            rc = smtp_begin(smtp, l.bounce, mb->address, reply, sizeof reply);
        }
        if (rc == SMTP_OK) {
            if (smtp_write(smtp, hdr.p, hdr.n) != 0 ||
                rc_mail_write_body_stanzas(mail, aud.entries + mb->first,
                                           (const uint8_t(*)[RC_POINT_BYTES])(R + mb->first),
                                           mb->n, smtp_sink, smtp, &k, &err) != 0) {
                /* Abandoned half-written: the relay drops it with the connection. */
                snprintf(why, cap, "writing the copy for a member to %s failed",
                         cfg->fanout_relay);
                goto tempfail;
            }
            rc = smtp_end(smtp, reply, sizeof reply);
        }
        if (rc == SMTP_PERMFAIL) {
            /* Refused for good by our own MTA: retrying the post would not
             * change that. Logged; the post goes on. */
            res->refused++;
            log_msg(LOG_LEVEL_WARNING, qid, "list=%s post=%s copy refused by %s: %s", l.address,
                    post_id, cfg->fanout_relay, reply);
            continue;
        }
        if (rc != SMTP_OK) {
            snprintf(why, cap, "%s deferred a copy: %s", cfg->fanout_relay, reply);
            goto tempfail;
        }
        res->sent++;
        res->stanzas += k;
        batch.who[batch.n++] = mb->address;
        if ((batch.n == FANOUT_BATCH || ms_since(&batch.since) >= FANOUT_BATCH_MS) &&
            batch_commit(&batch, (uint64_t)time(NULL), &err) != 0) {
            snprintf(why, cap, "cannot record the copies: %s", err.msg);
            goto tempfail;
        }
    }
    if (batch_commit(&batch, (uint64_t)time(NULL), &err) != 0) {
        snprintf(why, cap, "cannot record the copies: %s", err.msg);
        goto tempfail;
    }
    /* Every copy is queued: the post is delivered, and a replay is discarded. */
    uint8_t E_out[RC_POINT_BYTES];
    int was;
    if (rc_store_delivered_confirm(job->store, env->E, RC_POINT_BYTES, match_E, (void *)env->E,
                                   E_out, &was, &err) != 0) {
        snprintf(why, cap, "cannot mark the post delivered: %s", err.msg);
        goto tempfail;
    }
    log_msg(LOG_LEVEL_INFO, qid,
            "list=%s epoch=%llu copies=%zu stanzas=%zu recipients=%zu skipped=%zu refused=%zu "
            "post=%s verdict=delivered",
            l.address, (unsigned long long)ep.epoch, res->sent, res->stanzas, res->members,
            res->skipped, res->refused, post_id);
    code = 0;
    goto done;

tempfail:
    /* Copies queued so far are recorded, so that the retry skips them. */
    if (batch.n && batch_commit(&batch, (uint64_t)time(NULL), &err) != 0)
        log_msg(LOG_LEVEL_ERROR, qid,
                "list=%s post=%s cannot record %zu queued copies (the retry sends them again): %s",
                l.address, post_id, batch.n, err.msg);
    log_msg(LOG_LEVEL_ERROR, qid,
            "list=%s post=%s copies=%zu verdict=tempfail reason=\"%s\" (the MTA retries; "
            "queued copies are not sent again)",
            l.address[0] ? l.address : "-", post_id, res->sent, why);
    code = EX_TEMPFAIL;
    recorded_new = 0; /* a retry must find it pending, with this audience */
done:
    if (recorded_new && code != 0 && res->sent == 0 &&
        rc_store_delivered_forget(job->store, env->E, first, &err) != 0)
        log_msg(LOG_LEVEL_WARNING, qid, "post=%s cannot forget a refused post: %s", post_id,
                err.msg);
    smtp_close(smtp);
    free(batch.who);
    free(hdr.p);
    free(sent_before);
    free(R);
    rc_recryptor_free(rr);
    rc_store_audience_free(&aud);
    rc_store_reader_end(rd);
    rc_mail_free(mail);
    return code;
}
