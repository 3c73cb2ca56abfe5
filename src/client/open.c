/*
 * open.c - see open.h.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include <recrypt/recrypt.h>
#include "open.h"
#include "seal.h"
#include "spool.h"

/* Passes the opened message on, its header (the verdict line and the inner
 * fields) held back until its empty line:
 *  - with `duplicate`, the first line (the Recrypt-Verdict field) gets
 *    "; duplicate" before its line ending;
 *  - with `outer_from` (the outer From as delivered, unfolded) that differs
 *    from the inner From (the gateway rewrote it: FromRewrite), a field
 *    "Recrypt-Outer-From: VALUE" follows the verdict line;
 *  - inner fields named Recrypt-Outer-From are removed (only the client
 *    writes one). */
#define OPEN_HEADER_MAX (4u << 20) /* above: passed on as it is, past the verdict line */
#define HDR_OUTER_FROM "Recrypt-Outer-From"
typedef struct {
    rc_sink_fn sink;
    void *ctx;
    int duplicate;
    const char *outer_from;
    int done;  /* the header is out: the rest goes straight through */
    char *buf; /* the header so far */
    size_t n, cap;
} verdict_sink;

/* v unfolded, white space runs as one space, trimmed (malloc). */
static char *normalized(const char *v, size_t len)
{
    char *o = malloc(len + 1), *q = o;
    if (!o)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        int ws = v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n';
        if (!ws)
            *q++ = v[i];
        else if (q > o && q[-1] != ' ')
            *q++ = ' ';
    }
    while (q > o && q[-1] == ' ')
        q--;
    *q = '\0';
    return o;
}

static int field_named(const char *f, size_t len, const char *name)
{
    size_t k = strlen(name);
    return len > k && f[k] == ':' && !strncasecmp(f, name, k);
}

/* The end of the field that starts at f: past its last continuation line. */
static const char *field_end(const char *f, const char *end)
{
    const char *q = f;
    do {
        const char *e = memchr(q, '\n', (size_t)(end - q));
        q = e ? e + 1 : end;
    } while (q < end && (*q == ' ' || *q == '\t'));
    return q;
}

/* At the empty line that ends the header (or at the end of what came). */
static int header_done(const char *q, const char *end)
{
    return q >= end || *q == '\n' || (*q == '\r' && q + 1 < end && q[1] == '\n');
}

/* The held header (all of it, or as much as came): out it goes. */
static int header_out(verdict_sink *v, size_t hlen)
{
    static const char mark[] = "; duplicate";
    const char *b = v->buf, *end = v->buf + hlen;
    const char *nl = memchr(b, '\n', hlen);
    if (!nl) /* no line ending at all: nothing to mark */
        return v->sink(v->ctx, (const uint8_t *)b, hlen);
    const char *line_end = nl > b && nl[-1] == '\r' ? nl - 1 : nl;
    const char *eol = line_end < nl ? "\r\n" : "\n";
    if (v->sink(v->ctx, (const uint8_t *)b, (size_t)(line_end - b)) != 0 ||
        (v->duplicate && v->sink(v->ctx, (const uint8_t *)mark, sizeof mark - 1) != 0) ||
        v->sink(v->ctx, (const uint8_t *)eol, strlen(eol)) != 0)
        return -1;
    /* The inner From, to compare with the outer one. */
    const char *p = nl + 1;
    char *inner = NULL;
    for (const char *f = p, *q; !header_done(f, end); f = q) {
        q = field_end(f, end);
        if (!inner && field_named(f, (size_t)(q - f), "From") &&
            !(inner = normalized(f + 5, (size_t)(q - f - 5))))
            return -1;
    }
    int rc = 0;
    if (v->outer_from) {
        char *outer = normalized(v->outer_from, strlen(v->outer_from));
        if (!outer)
            rc = -1;
        else if (!inner || strcmp(inner, outer) != 0)
            rc = v->sink(v->ctx, (const uint8_t *)HDR_OUTER_FROM ": ", sizeof HDR_OUTER_FROM + 1) ||
                 v->sink(v->ctx, (const uint8_t *)outer, strlen(outer)) ||
                 v->sink(v->ctx, (const uint8_t *)eol, strlen(eol));
        free(outer);
    }
    free(inner);
    if (rc)
        return -1;
    /* The inner fields (less any Recrypt-Outer-From), then what follows. */
    while (!header_done(p, end)) {
        const char *f = p;
        p = field_end(f, end);
        if (!field_named(f, (size_t)(p - f), HDR_OUTER_FROM) &&
            v->sink(v->ctx, (const uint8_t *)f, (size_t)(p - f)) != 0)
            return -1;
    }
    return p < end ? v->sink(v->ctx, (const uint8_t *)p, (size_t)(end - p)) : 0;
}

/* The end of the header in buf[0..n): the offset after its empty line, or 0. */
static size_t header_end(const char *b, size_t n, size_t from)
{
    for (size_t i = from; i < n; i++) {
        if (b[i] != '\n')
            continue;
        if (i + 1 < n && b[i + 1] == '\n')
            return i + 2;
        if (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* The held header is decrypted text: wiped before it is freed. */
static void hold_free(verdict_sink *v)
{
    if (v->buf)
        sodium_memzero(v->buf, v->cap);
    free(v->buf);
    v->buf = NULL;
    v->n = v->cap = 0;
}

static int mark_sink(void *arg, const uint8_t *p, size_t n)
{
    verdict_sink *v = arg;
    if (v->done)
        return v->sink(v->ctx, p, n);
    if (v->n + n > v->cap) {
        size_t cap = v->cap ? v->cap : 8192;
        while (cap < v->n + n)
            cap *= 2;
        char *b = malloc(cap); /* not realloc: the old buffer is wiped */
        if (!b)
            return -1;
        if (v->n)
            memcpy(b, v->buf, v->n);
        size_t n_held = v->n;
        hold_free(v);
        v->buf = b;
        v->cap = cap;
        v->n = n_held;
    }
    size_t from = v->n > 2 ? v->n - 2 : 0;
    memcpy(v->buf + v->n, p, n);
    v->n += n;
    size_t e = header_end(v->buf, v->n, from);
    if (!e && v->n < OPEN_HEADER_MAX)
        return 0;
    v->done = 1;
    int rc = header_out(v, e ? e : v->n);
    if (rc == 0 && e && e < v->n)
        rc = v->sink(v->ctx, (const uint8_t *)v->buf + e, v->n - e);
    hold_free(v);
    return rc;
}

/* At the end: a message that ended in its header. */
static int mark_flush(verdict_sink *v)
{
    int rc = 0;
    if (!v->done && v->n)
        rc = header_out(v, v->n);
    v->done = 1;
    hold_free(v);
    return rc;
}

typedef struct {
    char *p;
    size_t n, cap;
} grow_buf;

static int collect_sink(void *arg, const uint8_t *p, size_t n)
{
    grow_buf *b = arg;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

/* The outer From value, unfolded (malloc), or NULL. */
static char *outer_from_of(const rc_mail *m)
{
    rc_error e;
    grow_buf b = {0};
    if (rc_mail_write_header(m, collect_sink, &b, &e) != 0 || !b.p) {
        free(b.p);
        return NULL;
    }
    char *res = NULL;
    const char *p = b.p, *end = b.p + b.n;
    while (!res && p < end && *p != '\n' && !(*p == '\r' && p + 1 < end && p[1] == '\n')) {
        const char *f = p;
        do {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            p = nl ? nl + 1 : end;
        } while (p < end && (*p == ' ' || *p == '\t'));
        if (field_named(f, (size_t)(p - f), "From"))
            res = normalized(f + 5, (size_t)(p - f - 5));
    }
    free(b.p);
    return res;
}

/* The statements of st's list with a higher epoch that this device knows
 * (FORMAT.md §9.5 step 5): every one it accepted before (its keystore) and
 * the message's Recrypt-List-Key-Current when the pinned signer signed it.
 * Their revocations bind older certificates. *n at most cap. */
static size_t later_statements(const keystore *ks, const rc_statement *st, const rc_mail *m,
                               rc_statement *out, size_t cap, int *learnt)
{
    size_t n = 0;
    char dir[PATH_MAX], p[PATH_MAX], text[RC_KEYSTR_MAX + 2];
    *learnt = 0;
    const char *cur = rc_mail_list_key_current(m);
    if (cur && n < cap && rc_statement_decode(&out[n], cur, NULL) == 0 &&
        !strcmp(out[n].address, st->address) &&
        sodium_memcmp(out[n].signer_pk, st->signer_pk, 32) == 0 && out[n].epoch > st->epoch) {
        *learnt = 1;
        n++;
    }
    if (keystore_path(dir, ks, "lists/%s", st->address) != 0)
        return n;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && n < cap && (e = readdir(d)) != NULL) {
        unsigned long long ep;
        char tail[16];
        if (sscanf(e->d_name, "epoch-%llu.%15s", &ep, tail) != 2 || strcmp(tail, "listkey") ||
            ep <= st->epoch || (*learnt && ep == out[0].epoch))
            continue;
        if (keystore_path(p, ks, "lists/%s/%s", st->address, e->d_name) != 0 ||
            keystore_read_file(p, text, sizeof text) != 0 ||
            rc_statement_decode(&out[n], text, NULL) != 0 || strcmp(out[n].address, st->address) ||
            sodium_memcmp(out[n].signer_pk, st->signer_pk, 32) != 0 || out[n].epoch != ep)
            continue;
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

int client_open(const keystore *ks, int in, const char *list_key, const char *signer_fp,
                rc_sink_fn sink, void *ctx, client_open_info *info, rc_error *err)
{
    return client_open_ex(ks, in, list_key, signer_fp, 0, sink, ctx, info, err);
}

int client_open_ex(const keystore *ks, int in, const char *list_key, const char *signer_fp,
                   unsigned flags, rc_sink_fn sink, void *ctx, client_open_info *info,
                   rc_error *err)
{
    rc_statement *later = NULL;
    size_t n_later = 0;
    int learnt = 0;
    client_open_info scratch;
    if (!info)
        info = &scratch;
    memset(info, 0, sizeof *info);
    rc_statement st;
    rc_mail *m = NULL;
    rc_open_result *res = NULL;
    rc_device_secret *dev = NULL;
    int stage = -1, first = 0, rc;
    char *outer_from = NULL;
    verdict_sink vs = {0};

    if ((rc = rc_mail_parse(&m, in, err)))
        goto out;
    outer_from = outer_from_of(m); /* shown when it is not the inner From (FromRewrite) */
    if (list_key)
        rc = client_load_statement(ks, &st, list_key, err);
    else if (rc_mail_list_key(m))
        rc = rc_statement_decode(&st, rc_mail_list_key(m), err);
    else /* the keystore's accepted statement of the envelope's list and epoch */
        rc = keystore_statement_for(ks, rc_mail_envelope(m)->list_id, rc_mail_envelope(m)->epoch,
                                    &st, err);
    if (rc)
        goto out;
    /* What a refusal of trust is about (the add-on offers to pin it). */
    snprintf(info->list, sizeof info->list, "%s", st.address);
    rc_key_fingerprint(info->signer_fp, sizeof info->signer_fp, "list-signer", st.signer_pk, 32,
                       NULL);
    if ((rc = keystore_trust(ks, &st, signer_fp, rc_mail_date(m), 1, &first, err))) {
        info->unpinned = keystore_pin_state(ks, st.address, NULL, NULL) == KS_PIN_NONE;
        goto out;
    }
    dev = rc_secret_alloc(sizeof *dev);
    res = rc_secret_alloc(sizeof *res);
    if (!dev || !res) {
        rc = rc_error_set(err, RC_E_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = keystore_device_load(ks, dev, err)))
        goto out;
    if ((stage = spool_tmpfile(err)) < 0) {
        rc = err->code;
        goto out;
    }
    /* A second copy of a post opened here before: split delivery's rerun
     * after a crash gives a copy another Recrypt-Copy. */
    vs = (verdict_sink){sink, ctx, 0, outer_from, 0, NULL, 0, 0};
    char first_copy[RC_COPY_ID_LEN + 1] = "", seen_list[RC_ADDR_MAX + 1];
    const char *copy = rc_mail_copy_id(m);
    if (copy && keystore_post_lookup(ks, rc_mail_message_id(m), seen_list, sizeof seen_list,
                                     first_copy) == 1 &&
        first_copy[0] && strcmp(first_copy, copy) != 0 && !strcmp(seen_list, st.address))
        vs.duplicate = 1;
    later = calloc(CLIENT_LATER_MAX, sizeof *later);
    if (!later) {
        rc = rc_error_set(err, RC_E_NOMEM, "out of memory");
        goto out;
    }
    n_later = later_statements(ks, &st, m, later, CLIENT_LATER_MAX, &learnt);
    /* The current statement the gateway sent along (a post in grace): kept
     * before opening, so that its revocations bind this and later opens
     * even when this one is refused; only for a list pinned already, and
     * as rc_statement_accept takes it (pinned signer, valid now). */
    rc_pin pin;
    int first_cur = 0;
    if (learnt && keystore_pin_load(ks, st.address, &pin, NULL) == 1 &&
        keystore_trust(ks, &later[0], NULL, (uint64_t)time(NULL), 1, &first_cur, NULL) == 0 &&
        !first_cur && (rc = keystore_remember(ks, &later[0], err)))
        goto out;
    rc_open_options oo = {(flags & CLIENT_OPEN_ALLOW_DIRECT) ? RC_OPEN_ALLOW_DIRECT : 0u, later,
                          n_later};
    if ((rc = rc_mail_open_ex(m, &st, dev, &oo, stage, mark_sink, &vs, res, err)) == 0 &&
        mark_flush(&vs) != 0)
        rc = rc_error_set(err, RC_E_IO, "cannot write the opened message");
    if (rc) {
        if (rc == RC_E_POLICY && strstr(err->msg, "did not come through the list")) {
            char msg[RC_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", err->msg);
            rc_error_set(err, rc, "%s; 'recrypt open --allow-direct' shows it anyway, marked "
                                  "\"direct\"", msg);
        }
        goto out;
    }
    info->path = res->path;
    info->duplicate = vs.duplicate;
    info->first_use = first;
    info->is_signed = res->is_signed;
    info->epoch = st.epoch;
    snprintf(info->list, sizeof info->list, "%s", st.address);
    rc_key_fingerprint(info->signer_fp, sizeof info->signer_fp, "list-signer", st.signer_pk, 32,
                       NULL);
    if (res->is_signed) {
        snprintf(info->member, sizeof info->member, "%s", res->cert.address);
        rc_key_fingerprint(info->device_fp, sizeof info->device_fp, RC_FP_DEVICE_SIGNER,
                           res->cert.device_sign_pk, 32, NULL);
    }
    /* Remember the list key, and keep this device's certificate for signing. */
    if ((rc = keystore_prepare(ks, err)) || (rc = keystore_remember(ks, &st, err)))
        goto out;
    rc_cert have;
    if (!keystore_cert_load(ks, st.address, st.epoch, &have) &&
        rc_cert_verify(&res->share.cert, st.signer_pk, NULL) == 0 &&
        (rc = keystore_cert_save(ks, &res->share.cert, st.address, err)))
        goto out;
    rc = keystore_post_remember(ks, rc_mail_message_id(m), st.address, copy, err);
out:
    hold_free(&vs); /* held back when the open failed: never shown */
    free(outer_from);
    if (stage >= 0)
        close(stage);
    rc_mail_free(m);
    rc_secret_free(dev);
    rc_secret_free(res);
    free(later);
    return rc;
}

