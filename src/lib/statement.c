/*
 * statement.c - the signed list key statement: encoding, signature, and the
 * client's trust decision (pinned signer, highest epoch, validity).
 */
#include <stdio.h>
#include "internal.h"

/* Everything but the signature, as signed (with the label in front). */
static int statement_body(rc_wr *w, const rc_statement *st)
{
    rc_wr_u8(w, st->version);
    rc_wr_str8(w, st->address);
    rc_wr_u64(w, st->epoch);
    rc_wr_bytes(w, st->A, 32);
    rc_wr_u64(w, st->not_before);
    rc_wr_u64(w, st->not_after);
    rc_wr_bytes(w, st->signer_pk, 32);
    if (st->version == RC_STATEMENT_V2) {
        if (st->n_revoked > RC_STATEMENT_MAX_REVOKED)
            return -1;
        rc_wr_bytes(w, st->service_pk, 32);
        rc_wr_u16(w, st->n_revoked);
        for (size_t i = 0; i < st->n_revoked; i++)
            rc_wr_bytes(w, st->revoked[i], 32);
    } else if (st->version != RC_STATEMENT_V1) {
        return -1;
    }
    return w->bad ? -1 : 0;
}

static int statement_signed_msg(uint8_t *buf, size_t cap, size_t *len, const rc_statement *st)
{
    rc_wr w = {buf, cap, 0, 0};
    rc_wr_label(&w, RC_L_STATEMENT);
    if (statement_body(&w, st) != 0)
        return -1;
    *len = w.len;
    return 0;
}

/* Both statement versions: the common fields, then (version 2) the service
 * key and the revoked device keys; signed with the list signing key. */
static int statement_sign(rc_statement *out, uint8_t version, const rc_list_secret *ls,
                          uint64_t not_before, uint64_t not_after,
                          const uint8_t service_pk[RC_SIGN_PK_BYTES],
                          const uint8_t (*revoked)[RC_SIGN_PK_BYTES], size_t n_revoked,
                          rc_error *err)
{
    uint8_t msg[16 + RC_STATEMENT_MAX];
    size_t len;
    memset(out, 0, sizeof *out);
    if (n_revoked > RC_STATEMENT_MAX_REVOKED)
        return rc_error_set(err, RC_E_INVALID,
                            "a list key statement revokes at most %d device keys, not %zu",
                            RC_STATEMENT_MAX_REVOKED, n_revoked);
    if (not_after && not_after <= not_before)
        return rc_error_set(err, RC_E_INVALID, "statement expires before it becomes valid");
    out->version = version;
    memcpy(out->address, ls->address, sizeof out->address);
    out->epoch = ls->epoch;
    memcpy(out->A, ls->A, 32);
    out->not_before = not_before;
    out->not_after = not_after;
    memcpy(out->signer_pk, ls->sign_pk, 32);
    if (version == RC_STATEMENT_V2) {
        memcpy(out->service_pk, service_pk, 32);
        out->n_revoked = (uint16_t)n_revoked;
        for (size_t i = 0; i < n_revoked; i++)
            memcpy(out->revoked[i], revoked[i], 32);
    }
    if (statement_signed_msg(msg, sizeof msg, &len, out) != 0)
        return rc_error_set(err, RC_E_INVALID, "statement does not encode");
    crypto_sign_detached(out->sig, NULL, msg, len, ls->sign_sk);
    return 0;
}

int rc_statement_sign(rc_statement *out, const rc_list_secret *ls, uint64_t not_before,
                      uint64_t not_after, rc_error *err)
{
    return statement_sign(out, RC_STATEMENT_V1, ls, not_before, not_after, NULL, NULL, 0, err);
}

int rc_statement_sign_v2(rc_statement *out, const rc_list_secret *ls, uint64_t not_before,
                         uint64_t not_after, const uint8_t service_pk[RC_SIGN_PK_BYTES],
                         const uint8_t (*revoked)[RC_SIGN_PK_BYTES], size_t n_revoked,
                         rc_error *err)
{
    return statement_sign(out, RC_STATEMENT_V2, ls, not_before, not_after, service_pk, revoked,
                          n_revoked, err);
}

int rc_statement_revokes(const rc_statement *st, const uint8_t pk[RC_SIGN_PK_BYTES])
{
    if (st->version != RC_STATEMENT_V2)
        return 0;
    for (size_t i = 0; i < st->n_revoked && i < RC_STATEMENT_MAX_REVOKED; i++)
        if (sodium_memcmp(st->revoked[i], pk, 32) == 0)
            return 1;
    return 0;
}

int rc_statement_verify(const rc_statement *st, rc_error *err)
{
    uint8_t msg[16 + RC_STATEMENT_MAX];
    size_t len;
    if (statement_signed_msg(msg, sizeof msg, &len, st) != 0)
        return rc_error_set(err, RC_E_FORMAT, "statement does not encode");
    if (crypto_sign_verify_detached(st->sig, msg, len, st->signer_pk) != 0)
        return rc_error_set(err, RC_E_SIGNATURE,
                            "the list key statement for %s does not carry a valid signature",
                            st->address);
    return 0;
}

int rc_statement_to_bytes(uint8_t *out, size_t outlen, size_t *len, const rc_statement *st,
                          rc_error *err)
{
    rc_wr w = {out, outlen, 0, 0};
    statement_body(&w, st);
    rc_wr_bytes(&w, st->sig, 64);
    if (w.bad)
        return rc_error_set(err, RC_E_INVALID, "statement buffer too small");
    *len = w.len;
    return 0;
}

int rc_statement_from_bytes(rc_statement *st, const uint8_t *in, size_t len, rc_error *err)
{
    rc_rd r = {in, len, 0, 0};
    char canon[RC_ADDR_MAX + 1];
    memset(st, 0, sizeof *st);
    st->version = rc_rd_u8(&r);
    if (!r.bad && st->version != RC_STATEMENT_V1 && st->version != RC_STATEMENT_V2)
        return rc_error_set(err, RC_E_VERSION,
                            "list key statement version %u is not supported (this build reads "
                            "1 and 2)",
                            st->version);
    rc_rd_str8(&r, st->address, RC_ADDR_MAX);
    st->epoch = rc_rd_u64(&r);
    rc_rd_copy(&r, st->A, 32);
    st->not_before = rc_rd_u64(&r);
    st->not_after = rc_rd_u64(&r);
    rc_rd_copy(&r, st->signer_pk, 32);
    if (st->version == RC_STATEMENT_V2) {
        rc_rd_copy(&r, st->service_pk, 32);
        size_t n = rc_rd_u16(&r);
        if (!r.bad && n > RC_STATEMENT_MAX_REVOKED)
            return rc_error_set(err, RC_E_FORMAT,
                                "list key statement revokes %zu device keys (at most %d)", n,
                                RC_STATEMENT_MAX_REVOKED);
        st->n_revoked = (uint16_t)n;
        for (size_t i = 0; i < n && !r.bad; i++)
            rc_rd_copy(&r, st->revoked[i], 32);
    }
    rc_rd_copy(&r, st->sig, 64);
    if (!rc_rd_done(&r))
        return rc_error_set(err, RC_E_FORMAT, "list key statement is truncated or too long");
    if (rc_address_canonical(canon, st->address, NULL) != 0 || strcmp(canon, st->address) != 0)
        return rc_error_set(err, RC_E_FORMAT, "list key statement names no canonical address");
    if (!rc_point_is_valid_nonidentity(st->A))
        return rc_error_set(err, RC_E_CRYPTO, "list key statement carries an invalid key");
    if (st->not_after && st->not_after <= st->not_before)
        return rc_error_set(err, RC_E_FORMAT, "list key statement expires before it is valid");
    if (st->version == RC_STATEMENT_V2) {
        /* An Ed25519 key that is not a valid point verifies nothing: refuse it here. */
        uint8_t x[crypto_scalarmult_curve25519_BYTES];
        if (crypto_sign_ed25519_pk_to_curve25519(x, st->service_pk) != 0)
            return rc_error_set(err, RC_E_CRYPTO,
                                "list key statement carries an invalid service key");
        for (size_t i = 0; i < st->n_revoked; i++)
            for (size_t j = 0; j < i; j++)
                if (sodium_memcmp(st->revoked[i], st->revoked[j], 32) == 0)
                    return rc_error_set(err, RC_E_FORMAT,
                                        "list key statement revokes a device key twice");
    }
    return 0;
}

int rc_statement_encode(char *out, size_t outlen, const rc_statement *st, rc_error *err)
{
    uint8_t b[RC_STATEMENT_MAX];
    size_t len;
    int rc = rc_statement_to_bytes(b, sizeof b, &len, st, err);
    return rc ? rc : rc_keystr_encode(out, outlen, RC_KT_LISTKEY, b, len, err);
}

int rc_statement_decode(rc_statement *st, const char *str, rc_error *err)
{
    uint8_t b[RC_STATEMENT_MAX];
    size_t len;
    int rc = rc_keystr_decode(str, RC_KT_LISTKEY, b, sizeof b, &len, err);
    if (rc == 0)
        rc = rc_statement_from_bytes(st, b, len, err);
    if (rc == 0)
        rc = rc_statement_verify(st, err);
    return rc;
}

int rc_statement_accept(const rc_statement *st, const rc_pin *pin,
                        const uint8_t *expected_signer, int known_epoch, uint64_t at,
                        rc_error *err)
{
    char have[RC_UDF_MAX], want[RC_UDF_MAX];
    rc_key_fingerprint(have, sizeof have, "list-signer", st->signer_pk, 32, NULL);
    if (expected_signer && sodium_memcmp(expected_signer, st->signer_pk, 32) != 0) {
        rc_key_fingerprint(want, sizeof want, "list-signer", expected_signer, 32, NULL);
        return rc_error_set(err, RC_E_POLICY,
                            "list key statement for %s is signed by %s, not by the expected %s",
                            st->address, have, want);
    }
    if (pin && sodium_memcmp(pin->signer_pk, st->signer_pk, 32) != 0) {
        rc_key_fingerprint(want, sizeof want, "list-signer", pin->signer_pk, 32, NULL);
        return rc_error_set(err, RC_E_POLICY,
                            "list key statement for %s is signed by %s, but %s is pinned for "
                            "this list: refusing a key the list owner did not sign",
                            st->address, have, want);
    }
    if (pin && st->epoch < pin->highest_epoch && !known_epoch)
        return rc_error_set(err, RC_E_POLICY,
                            "list key statement for %s is for epoch %llu, older than epoch %llu "
                            "already seen: refusing a superseded key",
                            st->address, (unsigned long long)st->epoch,
                            (unsigned long long)pin->highest_epoch);
    if (at < st->not_before)
        return rc_error_set(err, RC_E_POLICY,
                            "list key statement for %s (epoch %llu) is not valid yet",
                            st->address, (unsigned long long)st->epoch);
    if (st->not_after && at > st->not_after)
        return rc_error_set(err, RC_E_POLICY,
                            "list key statement for %s (epoch %llu) has expired", st->address,
                            (unsigned long long)st->epoch);
    return 0;
}
