/*
 * cert.c - membership certificates: list id, epoch, member address and
 * device signing key, signed by the list signing key.
 */
#include "internal.h"

static void cert_body(rc_wr *w, const rc_cert *c)
{
    rc_wr_u8(w, c->version);
    rc_wr_bytes(w, c->list_id, 32);
    rc_wr_u64(w, c->epoch);
    rc_wr_str8(w, c->address);
    rc_wr_bytes(w, c->device_sign_pk, 32);
}

static int cert_signed_msg(uint8_t *buf, size_t cap, size_t *len, const rc_cert *c)
{
    rc_wr w = {buf, cap, 0, 0};
    rc_wr_label(&w, RC_L_CERT);
    cert_body(&w, c);
    *len = w.len;
    return w.bad ? -1 : 0;
}

int rc_cert_sign(rc_cert *out, const rc_list_secret *ls, const char *member_address,
                 const uint8_t device_sign_pk[RC_SIGN_PK_BYTES], rc_error *err)
{
    uint8_t msg[16 + RC_CERT_MAX];
    size_t len;
    memset(out, 0, sizeof *out);
    out->version = RC_FORMAT_VERSION;
    int rc = rc_list_id(out->list_id, ls->address, err);
    if (rc)
        return rc;
    rc = rc_address_canonical(out->address, member_address, err);
    if (rc)
        return rc;
    out->epoch = ls->epoch;
    memcpy(out->device_sign_pk, device_sign_pk, 32);
    if (cert_signed_msg(msg, sizeof msg, &len, out) != 0)
        return rc_error_set(err, RC_E_INVALID, "certificate does not encode");
    crypto_sign_detached(out->sig, NULL, msg, len, ls->sign_sk);
    return 0;
}

int rc_cert_verify(const rc_cert *c, const uint8_t list_sign_pk[RC_SIGN_PK_BYTES],
                   rc_error *err)
{
    uint8_t msg[16 + RC_CERT_MAX];
    size_t len;
    if (cert_signed_msg(msg, sizeof msg, &len, c) != 0 ||
        crypto_sign_verify_detached(c->sig, msg, len, list_sign_pk) != 0)
        return rc_error_set(err, RC_E_SIGNATURE,
                            "membership certificate for %s is not signed by the list key",
                            c->address);
    return 0;
}

int rc_cert_to_bytes(uint8_t *out, size_t outlen, size_t *len, const rc_cert *c, rc_error *err)
{
    rc_wr w = {out, outlen, 0, 0};
    cert_body(&w, c);
    rc_wr_bytes(&w, c->sig, 64);
    if (w.bad)
        return rc_error_set(err, RC_E_INVALID, "certificate buffer too small");
    *len = w.len;
    return 0;
}

int rc_cert_from_bytes(rc_cert *c, const uint8_t *in, size_t len, rc_error *err)
{
    rc_rd r = {in, len, 0, 0};
    char canon[RC_ADDR_MAX + 1];
    memset(c, 0, sizeof *c);
    c->version = rc_rd_u8(&r);
    if (!r.bad && c->version != RC_FORMAT_VERSION)
        return rc_error_set(err, RC_E_VERSION, "certificate version %u is not supported",
                            c->version);
    rc_rd_copy(&r, c->list_id, 32);
    c->epoch = rc_rd_u64(&r);
    rc_rd_str8(&r, c->address, RC_ADDR_MAX);
    rc_rd_copy(&r, c->device_sign_pk, 32);
    rc_rd_copy(&r, c->sig, 64);
    if (!rc_rd_done(&r))
        return rc_error_set(err, RC_E_FORMAT, "membership certificate is malformed");
    if (rc_address_canonical(canon, c->address, NULL) != 0 || strcmp(canon, c->address) != 0)
        return rc_error_set(err, RC_E_FORMAT, "membership certificate names no canonical address");
    return 0;
}
