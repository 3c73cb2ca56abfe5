/*
 * open.c - see open.h.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
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

int client_open(const keystore *ks, int in, const char *list_key, const char *signer_fp,
                rc_sink_fn sink, void *ctx, client_open_info *info, rc_error *err)
{
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
    if ((rc = rc_mail_open(m, &st, dev, stage, mark_sink, &vs, res, err)))
        goto out;
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
    return rc;
}

