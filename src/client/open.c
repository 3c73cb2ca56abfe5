/*
 * open.c - see open.h.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include <recrypt/recrypt.h>
#include "open.h"
#include "seal.h"
#include "spool.h"

/* Passes the opened message on; with `duplicate`, the first line (the
 * Recrypt-Verdict field) gets "; duplicate" before its line ending. */
typedef struct {
    rc_sink_fn sink;
    void *ctx;
    int duplicate;
    int line_done;
    int pending; /* the first line's CR came at the end of a piece, held back */
} verdict_sink;

static int mark_sink(void *arg, const uint8_t *p, size_t n)
{
    verdict_sink *v = arg;
    static const char mark[] = "; duplicate";
    if (!v->duplicate || v->line_done)
        return v->sink(v->ctx, p, n);
    if (v->pending) { /* the line ended in a CR at the end of the last piece */
        v->line_done = 1;
        if (v->sink(v->ctx, (const uint8_t *)mark, sizeof mark - 1) != 0 ||
            v->sink(v->ctx, (const uint8_t *)"\r", 1) != 0)
            return -1;
        return v->sink(v->ctx, p, n);
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n' && p[i] != '\r')
            continue;
        if (p[i] == '\r' && i + 1 == n) { /* CRLF may be split: hold the CR */
            v->pending = 1;
            return v->sink(v->ctx, p, i);
        }
        v->line_done = 1;
        if (v->sink(v->ctx, p, i) != 0 ||
            v->sink(v->ctx, (const uint8_t *)mark, sizeof mark - 1) != 0)
            return -1;
        return v->sink(v->ctx, p + i, n - i);
    }
    return v->sink(v->ctx, p, n);
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

    if ((rc = rc_mail_parse(&m, in, err)))
        goto out;
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
    verdict_sink vs = {sink, ctx, 0, 0, 0};
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
    if ((rc = rc_mail_open_ex(m, &st, dev, &oo, stage, mark_sink, &vs, res, err))) {
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
    if (stage >= 0)
        close(stage);
    rc_mail_free(m);
    rc_secret_free(dev);
    rc_secret_free(res);
    free(later);
    return rc;
}

