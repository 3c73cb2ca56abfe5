/*
 * entry.c - splitting the list key for one device (owner side), checking an
 * entry (service side), and opening W (device side).
 *
 * W plaintext: label ‖ version ‖ list id ‖ epoch ‖ A ‖ X ‖ k ‖ u16 len ‖ cert
 * sealed with crypto_box_seal to the device's X25519 key X.
 */
#include "internal.h"

int rc_entry_create_det(rc_device_entry *out, const rc_list_secret *ls,
                        const rc_device_public *dev, const char *member_address,
                        uint64_t enrolled_at, const uint8_t k[RC_SCALAR_BYTES], rc_error *err)
{
    uint8_t plain[RC_WRAP_PLAIN_MAX], certb[RC_CERT_MAX], list_id[32];
    size_t certlen;
    rc_cert cert;
    int rc;

    if (!rc_scalar_is_canonical_nonzero(k))
        return rc_error_set(err, RC_E_CRYPTO, "member share is not a canonical scalar");
    memset(out, 0, sizeof *out);
    crypto_core_ristretto255_scalar_sub(out->r, ls->a, k);
    if (sodium_is_zero(out->r, 32))
        return rc_error_set(err, RC_E_CRYPTO, "service share is zero; draw another k");
    if (crypto_scalarmult_ristretto255_base(out->K, k) != 0)
        return rc_error_set(err, RC_E_CRYPTO, "member share gives the identity");
    out->enrolled_at = enrolled_at;

    if ((rc = rc_list_id(list_id, ls->address, err)) ||
        (rc = rc_cert_sign(&cert, ls, member_address, dev->sign_pk, err)) ||
        (rc = rc_cert_to_bytes(certb, sizeof certb, &certlen, &cert, err)))
        return rc;

    rc_wr w = {plain, sizeof plain, 0, 0};
    rc_wr_label(&w, RC_L_WRAP);
    rc_wr_u8(&w, RC_FORMAT_VERSION);
    rc_wr_bytes(&w, list_id, 32);
    rc_wr_u64(&w, ls->epoch);
    rc_wr_bytes(&w, ls->A, 32);
    rc_wr_bytes(&w, dev->wrap_pk, 32);
    rc_wr_bytes(&w, k, 32);
    rc_wr_u16(&w, (uint16_t)certlen);
    rc_wr_bytes(&w, certb, certlen);
    if (w.bad) {
        sodium_memzero(plain, sizeof plain);
        return rc_error_set(err, RC_E_INTERNAL, "W does not encode");
    }
    rc = crypto_box_seal(out->W, plain, w.len, dev->wrap_pk);
    out->W_len = w.len + crypto_box_SEALBYTES;
    sodium_memzero(plain, sizeof plain);
    if (rc != 0)
        return rc_error_set(err, RC_E_CRYPTO, "cannot seal the member share to the device key");
    return 0;
}

int rc_entry_create(rc_device_entry *out, const rc_list_secret *ls, const rc_device_public *dev,
                    const char *member_address, uint64_t enrolled_at, rc_error *err)
{
    uint8_t k[32];
    int rc;
    do {
        rc_scalar_random_nonzero(k);
        rc = rc_entry_create_det(out, ls, dev, member_address, enrolled_at, k, err);
    } while (rc == RC_E_CRYPTO && sodium_is_zero(out->r, 32));
    sodium_memzero(k, sizeof k);
    return rc;
}

int rc_entry_check(const uint8_t r[RC_SCALAR_BYTES], const uint8_t K[RC_POINT_BYTES],
                   const uint8_t A[RC_POINT_BYTES], rc_error *err)
{
    uint8_t rG[32], sum[32];
    if (!rc_scalar_is_canonical_nonzero(r))
        return rc_error_set(err, RC_E_CRYPTO, "service share r is not a canonical non-zero scalar");
    if (!rc_point_is_valid_nonidentity(K))
        return rc_error_set(err, RC_E_CRYPTO, "K is not a valid non-identity point");
    if (crypto_scalarmult_ristretto255_base(rG, r) != 0 ||
        crypto_core_ristretto255_add(sum, rG, K) != 0 || sodium_memcmp(sum, A, 32) != 0)
        return rc_error_set(err, RC_E_CRYPTO,
                            "device entry does not split the list key (r·G + K != A)");
    return 0;
}

int rc_wrap_open(rc_share *out, const rc_device_secret *dev, const uint8_t *W, size_t W_len,
                 rc_error *err)
{
    uint8_t plain[RC_WRAP_PLAIN_MAX];
    uint8_t label[16], want_label[16];
    int rc = 0;
    if (W_len < crypto_box_SEALBYTES || W_len > RC_WRAP_MAX)
        return rc_error_set(err, RC_E_FORMAT, "W has a bad length");
    size_t plen = W_len - crypto_box_SEALBYTES;
    if (crypto_box_seal_open(plain, W, W_len, dev->pub.wrap_pk, dev->wrap_sk) != 0)
        return rc_error_set(err, RC_E_NOT_FOR_US, "W is not sealed to this device");

    rc_rd r = {plain, plen, 0, 0};
    rc_rd_copy(&r, label, 16);
    uint8_t version = rc_rd_u8(&r);
    rc_rd_copy(&r, out->list_id, 32);
    out->epoch = rc_rd_u64(&r);
    rc_rd_copy(&r, out->A, 32);
    rc_rd_copy(&r, out->X, 32);
    rc_rd_copy(&r, out->k, 32);
    uint16_t certlen = rc_rd_u16(&r);
    const uint8_t *certb = rc_rd_bytes(&r, certlen);
    rc_label(want_label, RC_L_WRAP);
    if (!rc_rd_done(&r) || memcmp(label, want_label, 16) != 0)
        rc = rc_error_set(err, RC_E_FORMAT, "W is malformed");
    else if (version != RC_FORMAT_VERSION)
        rc = rc_error_set(err, RC_E_VERSION, "W version %u is not supported", version);
    else if (sodium_memcmp(out->X, dev->pub.wrap_pk, 32) != 0)
        rc = rc_error_set(err, RC_E_CRYPTO, "W names another device key");
    else if (!rc_scalar_is_canonical_nonzero(out->k))
        rc = rc_error_set(err, RC_E_CRYPTO, "member share k inside W is not a canonical "
                                            "non-zero scalar");
    else if (!rc_point_is_valid_nonidentity(out->A))
        rc = rc_error_set(err, RC_E_CRYPTO, "W carries an invalid list key");
    else if ((rc = rc_cert_from_bytes(&out->cert, certb, certlen, err)) == 0) {
        if (memcmp(out->cert.list_id, out->list_id, 32) != 0 || out->cert.epoch != out->epoch ||
            memcmp(out->cert.device_sign_pk, dev->pub.sign_pk, 32) != 0)
            rc = rc_error_set(err, RC_E_CRYPTO, "certificate inside W does not match W");
    }
    sodium_memzero(plain, sizeof plain);
    if (rc)
        sodium_memzero(out->k, 32);
    return rc;
}
