/*
 * fanout.c - split delivery, one copy per member: see fanout.h.
 */
#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include "fanout.h"
#include "fromrewrite.h"
#include "gateway.h"
#include "log.h"
#include "receipt.h"
#include "smtp.h"

#define HDR_PROCESSED "Recrypt-Processed"
#define HDR_ORIGINAL_FROM "X-Original-From"
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
static int field_is(const char *f, size_t len, const char *name)
{
    size_t k = strlen(name);
    return len > k && f[k] == ':' && !strncasecmp(f, name, k);
}

/* fromrewrite.h's value, "\n"-folded, with the copy's line ending. */
static void add_folded(buf_t *b, const char *name, const char *v, const char *eol)
{
    buf_str(b, name);
    buf_str(b, ": ");
    for (const char *p = v; *p;) {
        size_t run = strcspn(p, "\r\n");
        buf_add(b, p, run);
        p += run;
        if (*p == '\r' || *p == '\n') {
            buf_str(b, eol);
            p += *p == '\r' && p[1] == '\n' ? 2 : 1;
        }
    }
    buf_str(b, eol);
}

static int dropped_field(const char *f, size_t len)
{
    static const char *const names[] = {RC_HDR_LIST_KEY,    HDR_PROCESSED, RC_HDR_COPY,
                                        "List-Id",          "List-Post",   "Return-Path",
                                        "Delivered-To",     RC_HDR_SERVICE_SIG,
                                        RC_HDR_LIST_KEY_CURRENT};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        size_t k = strlen(names[i]);
        if (len > k && f[k] == ':' && !strncasecmp(f, names[i], k))
            return 1;
    }
    return 0;
}

/* The header of every copy: the post's header fields as queued (less the
 * gateway's own), then List-Id, List-Post, Recrypt-List-Key,
 * Recrypt-Processed and Recrypt-Copy (random, one per run: a rerun's copy
 * of a post a member already has carries another, which lets the member's
 * client mark it as a second copy), then the empty line. Nothing in it
 * depends on the member: a copy says nothing about who else got one.
 * send_copy puts the copy's own Recrypt-Service-Signature (for that member)
 * before the empty line. With from_rewrite (FromRewrite yes) the From
 * becomes the list's (fromrewrite.h), X-Original-From follows it (any the
 * post brought are dropped) and Reply-To is added after the post's fields
 * unless it has one. */
static int copy_header(const rc_mail *mail, const rc_store_list *l, const rc_statement *st,
                       const char *marker, const char *key_current, int from_rewrite, buf_t *out,
                       rc_error *err)
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
    /* The fields added below end as the message's lines do (its empty
     * line tells): one line ending in the whole copy. */
    const char *blank = p;
    while (blank < end && *blank != '\n' && !(*blank == '\r' && blank + 1 < end &&
                                              blank[1] == '\n')) {
        const char *nl = memchr(blank, '\n', (size_t)(end - blank));
        blank = nl ? nl + 1 : end;
    }
    const char *eol = blank < end && *blank == '\r' ? "\r\n" : "\n";
    int n_from = 0, n_reply_to = 0;
    fromrw_result fr = {0};
    while (p < end && !(*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n'))) {
        const char *f = p;
        do {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            p = nl ? nl + 1 : end;
        } while (p < end && (*p == ' ' || *p == '\t'));
        size_t len = (size_t)(p - f);
        if (dropped_field(f, len))
            continue;
        if (from_rewrite && field_is(f, len, "Reply-To"))
            n_reply_to++;
        if (from_rewrite && field_is(f, len, HDR_ORIGINAL_FROM))
            continue;
        if (from_rewrite && field_is(f, len, "From")) {
            if (n_from++) /* a sealed post has one; never two in a copy */
                continue;
            /* The value, unfolded, for parsing; the raw one for X-Original-From. */
            char *v = malloc(len), *o = v;
            if (!v) {
                free(in.p);
                return rc_error_set(err, RC_E_NOMEM, "out of memory for the header");
            }
            for (const char *q = f + 5; q < p; q++)
                if (*q != '\r' && *q != '\n')
                    *o++ = *q;
            *o = '\0';
            int rc2 = fromrw_build(v, l->address, NULL, &fr);
            free(v);
            if (rc2 != 0) {
                free(in.p);
                return rc_error_set(err, RC_E_NOMEM, "cannot rewrite the From field");
            }
            add_folded(out, "From", fr.from, eol);
            buf_str(out, HDR_ORIGINAL_FROM ":");
            buf_add(out, f + 5, len - 5);
            continue;
        }
        buf_add(out, f, len);
    }
    if (from_rewrite && !n_reply_to && fr.reply_to)
        add_folded(out, "Reply-To", fr.reply_to, eol);
    fromrw_free(&fr);
    free(in.p);

    char id[RC_ADDR_MAX + 8], line[2 * RC_ADDR_MAX + 64], key[RC_KEYSTR_MAX];
    snprintf(id, sizeof id, "<%s>", l->address);
    char *at = strchr(id, '@');
    if (at)
        *at = '.';
    snprintf(line, sizeof line, "List-Id: %s%sList-Post: <mailto:%s>%s", id, eol, l->address,
             eol);
    buf_str(out, line);
    if ((rc = rc_statement_encode(key, sizeof key, st, err)) != 0)
        return rc;
    /* Folded as the milter folds it: continuation lines of 72 characters. */
    buf_str(out, RC_HDR_LIST_KEY ":");
    for (size_t i = 0, len = strlen(key); i < len; i += 72) {
        if (i)
            buf_str(out, eol);
        buf_str(out, " ");
        buf_add(out, key + i, len - i < 72 ? len - i : 72);
    }
    if (key_current[0]) { /* a post of an older epoch: the current key too */
        buf_str(out, "\n" RC_HDR_LIST_KEY_CURRENT ": ");
        buf_str(out, key_current);
    }
    uint8_t run[16];
    char copy[RC_COPY_ID_LEN + 2];
    randombytes_buf(run, sizeof run);
    sodium_bin2base64(copy, sizeof copy, run, sizeof run, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(line, sizeof line, "%s%s: %s%s%s: %s%s%s", eol, HDR_PROCESSED, marker, eol,
             RC_HDR_COPY, copy, eol, eol);
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

static long ms_between(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1000 + (b->tv_nsec - a->tv_nsec) / 1000000;
}

static int batch_commit(batch_t *b, uint64_t now, rc_error *err)
{
    if (b->n && rc_store_copies_record(b->store, b->E, b->who, b->n, now, err) != 0)
        return -1;
    b->n = 0;
    clock_gettime(CLOCK_MONOTONIC, &b->since);
    return 0;
}

/* ---- the copies: FanoutConnections workers, one SMTP connection each ---- */

typedef struct {
    /* Read-only while the workers run. */
    const fanout_job *job;
    const rc_store_audience *aud;
    const uint8_t (*R)[RC_POINT_BYTES];
    const unsigned char *sent_before;
    const buf_t *hdr;
    const char *bounce, *helo, *list, *post_id, *qid;
    const uint8_t *svc_seed; /* the epoch's service signing seed, NULL: version 1 (no key) */
    /* Shared, under lock. */
    pthread_mutex_t lock;
    size_t next;  /* the next member to take */
    int stop;     /* a worker failed: the others stop after their current copy */
    char why[600];
    batch_t batch;
    size_t sent, stanzas, refused;
} sender_t;

static void sender_fail(sender_t *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sender_fail(sender_t *S, const char *fmt, ...)
{
    pthread_mutex_lock(&S->lock);
    if (!S->stop) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(S->why, sizeof S->why, fmt, ap);
        va_end(ap);
        S->stop = 1;
    }
    pthread_mutex_unlock(&S->lock);
}

/* One copy to member i on *smtp (reconnecting once if the relay dropped
 * an idle connection): SMTP_OK, SMTP_PERMFAIL or SMTP_TEMPFAIL. */
static int send_copy(sender_t *S, smtp_client **smtp, rc_mail *mail, size_t i, size_t *k,
                     char *reply, size_t cap)
{
    const rc_store_audience_member *mb = &S->aud->members[i];
    const char *relay = S->job->cfg->fanout_relay;
    rc_error err;
    int rc = smtp_begin(*smtp, S->bounce, mb->address, reply, cap);
    if (rc == SMTP_TEMPFAIL && !smtp_usable(*smtp)) {
        smtp_close(*smtp);
        *smtp = NULL;
        if (smtp_open(smtp, relay, S->helo, SMTP_TIMEOUT, reply, cap) != SMTP_OK)
            return SMTP_TEMPFAIL;
        rc = smtp_begin(*smtp, S->bounce, mb->address, reply, cap);
    }
    if (rc != SMTP_OK)
        return rc;
    /* The stanzas' order first: the copy's service signature (for this
     * member) goes in its header, before the empty line. */
    size_t *order = malloc((mb->n ? mb->n : 1) * sizeof *order), kk = 0;
    uint8_t h[32], sig[RC_SIG_BYTES];
    char field[GW_SVC_SIG_MAX + 64] = "\n";
    if (!order || rc_mail_stanza_order(mail, S->aud->entries + mb->first, S->R + mb->first,
                                       mb->n, order, &kk, h, &err) != 0) {
        snprintf(reply, cap, "cannot write a copy: %.400s", order ? err.msg : "out of memory");
        free(order);
        return SMTP_TEMPFAIL;
    }
    if (S->svc_seed) {
        char v[GW_SVC_SIG_MAX];
        if (rc_svc_sign(sig, S->svc_seed, rc_mail_envelope(mail), rc_mail_date(mail), h,
                        mb->address, &err) != 0) {
            snprintf(reply, cap, "cannot sign a copy: %.400s", err.msg);
            free(order);
            return SMTP_TEMPFAIL;
        }
        gateway_sig_field(v, sig);
        snprintf(field, sizeof field, RC_HDR_SERVICE_SIG ": %s\n\n", v);
    }
    if (smtp_write(*smtp, S->hdr->p, S->hdr->n - 1) != 0 ||
        smtp_write(*smtp, field, strlen(field)) != 0 ||
        rc_mail_write_body_order(mail, S->aud->entries + mb->first, S->R + mb->first, order, kk,
                                 smtp_sink, *smtp, k, &err) != 0) {
        free(order);
        /* Abandoned half-written: the relay drops it with the connection. */
        snprintf(reply, cap, "writing a copy to %s failed", relay);
        return SMTP_TEMPFAIL;
    }
    free(order);
    return smtp_end(*smtp, reply, cap);
}

static void *send_worker(void *arg)
{
    sender_t *S = arg;
    const config *cfg = S->job->cfg;
    rc_mail *mail = NULL;
    smtp_client *smtp = NULL;
    rc_error err;
    char reply[512], path[64];
    /* Each worker reads the post through its own open file (the parsed
     * post's stream keeps a file offset). */
    snprintf(path, sizeof path, "/proc/self/fd/%d", S->job->fd);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || rc_mail_parse(&mail, fd, &err) != 0) {
        sender_fail(S, "cannot read the staged post again");
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    close(fd);
    if (smtp_open(&smtp, cfg->fanout_relay, S->helo, SMTP_TIMEOUT, reply, sizeof reply) !=
        SMTP_OK) {
        sender_fail(S, "FanoutRelay %s: %s", cfg->fanout_relay, reply);
        rc_mail_free(mail);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&S->lock);
        size_t i = S->next;
        int stop = S->stop || i >= S->aud->n_members;
        if (!stop)
            S->next++;
        pthread_mutex_unlock(&S->lock);
        if (stop)
            break;
        if (S->sent_before[i])
            continue;
        size_t k = 0;
        int rc = send_copy(S, &smtp, mail, i, &k, reply, sizeof reply);
        if (rc == SMTP_PERMFAIL) {
            /* Refused for good by our own MTA: retrying the post would not
             * change that. Logged; the post goes on. */
            pthread_mutex_lock(&S->lock);
            S->refused++;
            pthread_mutex_unlock(&S->lock);
            log_msg(LOG_LEVEL_WARNING, S->qid, "list=%s post=%s copy=refused relay=%s reply=\"%s\"",
                    S->list, S->post_id, cfg->fanout_relay, reply);
            continue;
        }
        if (rc != SMTP_OK) {
            sender_fail(S, "%s deferred a copy: %s", cfg->fanout_relay, reply);
            break;
        }
        pthread_mutex_lock(&S->lock);
        S->sent++;
        S->stanzas += k;
        S->batch.who[S->batch.n++] = S->aud->members[i].address;
        if ((S->batch.n == FANOUT_BATCH || ms_since(&S->batch.since) >= FANOUT_BATCH_MS) &&
            batch_commit(&S->batch, (uint64_t)time(NULL), &err) != 0 && !S->stop) {
            snprintf(S->why, sizeof S->why, "cannot record the copies: %s", err.msg);
            S->stop = 1;
        }
        pthread_mutex_unlock(&S->lock);
    }
    smtp_close(smtp);
    rc_mail_free(mail);
    return NULL;
}

/* Run the workers; 0, or -1 with S->why (copies queued so far recorded). */
static int send_copies(sender_t *S, unsigned workers)
{
    pthread_t th[FANOUT_CONNECTIONS_MAX];
    int started[FANOUT_CONNECTIONS_MAX] = {0};
    rc_error err;
    if (workers < 1)
        workers = 1;
    if (workers > FANOUT_CONNECTIONS_MAX)
        workers = FANOUT_CONNECTIONS_MAX;
    for (unsigned w = 1; w < workers; w++)
        started[w] = pthread_create(&th[w], NULL, send_worker, S) == 0;
    send_worker(S);
    for (unsigned w = 1; w < workers; w++)
        if (started[w])
            pthread_join(th[w], NULL);
    if (batch_commit(&S->batch, (uint64_t)time(NULL), &err) != 0) {
        if (!S->stop)
            snprintf(S->why, sizeof S->why, "cannot record the copies: %s", err.msg);
        log_msg(LOG_LEVEL_ERROR, S->qid,
                "list=%s post=%s cannot record %zu queued copies (the retry sends them again): %s",
                S->list, S->post_id, S->batch.n, err.msg);
        return -1;
    }
    return S->stop ? -1 : 0;
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
    buf_t hdr = {0};
    uint8_t *svc_seed = NULL;
    char *key_current = calloc(1, GW_CURRENT_MAX);
    int recorded_new = 0, code = EX_TEMPFAIL;
    uint64_t first = job->now;
    char post_id[2 * RECEIPT_PREFIX_BYTES + 1] = "-";
    struct timespec t_start, t_plan, t_recrypt;
    clock_gettime(CLOCK_MONOTONIC, &t_start);
    t_plan = t_recrypt = t_start;
    memset(res, 0, sizeof *res);
    memset(&l, 0, sizeof l);
    snprintf(why, cap, "internal error");

    if (receipt_parse(job->recipient, prefix, tag) != 0 ||
        !is_fanout_address(job->recipient, cfg->fanout_domain)) {
        snprintf(why, cap, "%.80s is not a fan-out address (%d hex digits @%s)", job->recipient,
                 RECEIPT_TOKEN_LEN, cfg->fanout_domain[0] ? cfg->fanout_domain : "FanoutDomain");
        log_msg(LOG_LEVEL_WARNING, qid,
                "list=- epoch=- copies=0 stanzas=0 recipients=0 skipped=0 refused=0 post=- "
                "verdict=rejected reply=\"%s\"",
                why);
        free(key_current);
        return EX_NOUSER;
    }
    if (rc_mail_parse(&mail, job->fd, &err) != 0) {
        snprintf(why, cap, "malformed recrypt message: %s", err.msg);
        log_msg(LOG_LEVEL_WARNING, qid,
                "list=- epoch=- copies=0 stanzas=0 recipients=0 skipped=0 refused=0 post=- "
                "verdict=rejected reply=\"%s\"",
                why);
        free(key_current);
        return EX_DATAERR;
    }
    const rc_envelope *env = rc_mail_envelope(mail);
    sodium_bin2hex(post_id, sizeof post_id, env->E, RECEIPT_PREFIX_BYTES);
    if (!fanout_tag_ok(job->mark_secret, env->E, prefix, tag)) {
        snprintf(why, cap, "the fan-out address does not belong to this post (or to this store)");
        log_msg(LOG_LEVEL_WARNING, qid,
                "list=- epoch=%llu copies=0 stanzas=0 recipients=0 skipped=0 refused=0 post=%s "
                "verdict=rejected reply=\"%s\"",
                (unsigned long long)env->epoch, post_id, why);
        code = EX_NOPERM;
        goto done;
    }

    /* The replay cache: a post delivered before is done; a pending one
     * (the milter records it when it checks it) goes on with the audience
     * of its first check. */
    gw_verdict v;
    gw_replay rp;
    if (gateway_replay(job->store, mail, job->now, cfg->freshness_window, &rp, &v) != 0) {
        snprintf(why, cap, "%s", v.line[0]);
        goto tempfail;
    }
    first = rp.first;
    if (rp.state == RC_POST_DELIVERED) {
        res->duplicate = 1;
        log_msg(LOG_LEVEL_INFO, qid,
                "list=- epoch=%llu copies=0 stanzas=0 recipients=0 skipped=0 refused=0 post=%s "
                "verdict=duplicate (delivered before: nothing to do)",
                (unsigned long long)env->epoch, post_id);
        code = 0;
        goto done;
    }
    recorded_new = rp.state == RC_POST_NEW;

    /* The checks, as of the first check's time. */
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
    if (v.action == GW_GO_ON)
        gateway_plan(rd, job->svc, &l, ep.epoch, &rp.rule, 1, cfg->max_fanout, &aud, &v);
    if (v.action == GW_TEMPFAIL) {
        snprintf(why, cap, "%s", v.line[0]);
        goto tempfail;
    }
    if (v.action != GW_GO_ON) {
        snprintf(why, cap, "%s %s %s", v.code, v.xcode, v.line[0]);
        log_msg(LOG_LEVEL_NOTICE, qid,
                "list=%s epoch=%llu copies=0 stanzas=0 recipients=0 skipped=0 refused=0 post=%s "
                "verdict=rejected reply=\"%s\"",
                l.address[0] ? l.address : "-", (unsigned long long)env->epoch, post_id, why);
        code = EX_DATAERR;
        goto done;
    }
    res->members = aud.n_members;
    clock_gettime(CLOCK_MONOTONIC, &t_plan);

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
        if (!key_current) {
            snprintf(why, cap, "out of memory");
            goto tempfail;
        }
        if (gateway_current_field(rd, &l, &ep, key_current, &err) != 0 ||
            (ep.statement.version == RC_STATEMENT_V2 &&
             (!(svc_seed = rc_secret_alloc(RC_SVC_SEED_BYTES)) ||
              rc_store_service_seed(rd, job->svc, l.list_id, ep.epoch, svc_seed, &err) != 0)) ||
            copy_header(mail, &l, &ep.statement, marker, key_current, cfg->from_rewrite, &hdr,
                        &err) != 0) {
            snprintf(why, cap, "%s", err.msg);
            goto tempfail;
        }
    }

    clock_gettime(CLOCK_MONOTONIC, &t_recrypt);
    sender_t S = {
        .job = job,
        .aud = &aud,
        .R = (const uint8_t(*)[RC_POINT_BYTES])R,
        .sent_before = sent_before,
        .hdr = &hdr,
        .bounce = l.bounce,
        .helo = helo,
        .list = l.address,
        .post_id = post_id,
        .qid = qid,
        .svc_seed = svc_seed,
    };
    pthread_mutex_init(&S.lock, NULL);
    S.batch.store = job->store;
    S.batch.E = env->E;
    S.batch.who = calloc(FANOUT_BATCH, sizeof *S.batch.who);
    clock_gettime(CLOCK_MONOTONIC, &S.batch.since);
    int sent_ok = 0;
    if (!S.batch.who)
        snprintf(why, cap, "out of memory");
    else if (!todo_devices)
        sent_ok = 1;
    else if (send_copies(&S, cfg->fanout_connections) == 0)
        sent_ok = 1;
    else
        snprintf(why, cap, "%s", S.why);
    res->sent = S.sent;
    res->stanzas = S.stanzas;
    res->refused = S.refused;
    free(S.batch.who);
    pthread_mutex_destroy(&S.lock);
    if (!sent_ok)
        goto tempfail;
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
    /* Where the time went: parse, checks and the audience (with the service
     * shares unsealed); R for every device; building and submitting the
     * copies. */
    log_msg(LOG_LEVEL_INFO, qid, "list=%s post=%s timing: plan=%.3fs recrypt=%.3fs copies=%.3fs",
            l.address, post_id, (double)ms_between(&t_start, &t_plan) / 1e3,
            (double)ms_between(&t_plan, &t_recrypt) / 1e3,
            (double)ms_since(&t_recrypt) / 1e3);
    code = 0;
    goto done;

tempfail:
    /* Copies queued so far are recorded (send_copies), so that the retry
     * skips them. */
    log_msg(LOG_LEVEL_ERROR, qid,
            "list=%s epoch=%llu copies=%zu stanzas=%zu recipients=%zu skipped=%zu refused=%zu "
            "post=%s verdict=tempfail (the MTA retries; queued copies are not sent again) "
            "error=\"%s\"",
            l.address[0] ? l.address : "-", (unsigned long long)env->epoch, res->sent,
            res->stanzas, res->members, res->skipped, res->refused, post_id, why);
    code = EX_TEMPFAIL;
    recorded_new = 0; /* a retry must find it pending, with this audience */
done:
    if (recorded_new && code != 0 && res->sent == 0 &&
        rc_store_delivered_forget(job->store, env->E, first, &err) != 0)
        log_msg(LOG_LEVEL_WARNING, qid, "post=%s cannot forget a refused post: %s", post_id,
                err.msg);
    free(hdr.p);
    rc_secret_free(svc_seed);
    free(key_current);
    free(sent_before);
    free(R);
    rc_recryptor_free(rr);
    rc_store_audience_free(&aud);
    rc_store_reader_end(rd);
    rc_mail_free(mail);
    return code;
}
