/*
 * svcsig.c - the service signature over one delivered copy (FORMAT.md
 * §8.1) and the service seed's transport (sealed to the service key).
 */
#include "internal.h"

int rc_svc_stanza_hash(uint8_t out[32], const rc_stanza *stanzas, size_t n, rc_error *err)
{
    crypto_generichash_blake2b_state st;
    uint8_t b[RC_STANZA_MAX];
    size_t len;
    rc_hash_init(&st, 32, RC_L_STANZAS);
    crypto_generichash_blake2b_update(&st, (const uint8_t[]){1}, 1);
    for (size_t i = 0; i < n; i++) {
        if (rc_stanza_to_bytes(b, sizeof b, &len, &stanzas[i], err) != 0)
            return err ? err->code : RC_E_INVALID;
        rc_svc_stanza_hash_add(&st, b, len);
    }
    crypto_generichash_blake2b_final(&st, out, 32);
    return 0;
}

void rc_svc_stanza_hash_add(crypto_generichash_blake2b_state *st, const uint8_t *stanza, size_t len)
{
    uint8_t l[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    crypto_generichash_blake2b_update(st, l, 2);
    crypto_generichash_blake2b_update(st, stanza, len);
}

void rc_svc_public(uint8_t pk[RC_SIGN_PK_BYTES], const uint8_t seed[RC_SVC_SEED_BYTES])
{
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pk, sk, seed);
    sodium_memzero(sk, sizeof sk);
}

/* label ‖ u8 1 ‖ list_id ‖ u64 epoch ‖ E ‖ KC ‖ u64 date ‖ H ‖ str8(recipient) */
static int svc_message(uint8_t *buf, size_t cap, size_t *len, const rc_envelope *env, uint64_t date,
                       const uint8_t h[32], const char *recipient)
{
    rc_wr w = {buf, cap, 0, 0};
    rc_wr_label(&w, RC_L_SVC_SIG);
    rc_wr_u8(&w, 1);
    rc_wr_bytes(&w, env->list_id, RC_ID_BYTES);
    rc_wr_u64(&w, env->epoch);
    rc_wr_bytes(&w, env->E, 32);
    rc_wr_bytes(&w, env->KC, 32);
    rc_wr_u64(&w, date);
    rc_wr_bytes(&w, h, 32);
    rc_wr_str8(&w, recipient ? recipient : "");
    *len = w.len;
    return w.bad ? -1 : 0;
}

#define SVC_MSG_MAX (16 + 1 + 32 + 8 + 32 + 32 + 8 + 32 + 1 + RC_ADDR_MAX)

int rc_svc_sign(uint8_t sig[RC_SIG_BYTES], const uint8_t seed[RC_SVC_SEED_BYTES],
                const rc_envelope *env, uint64_t date, const uint8_t stanza_hash[32],
                const char *recipient, rc_error *err)
{
    uint8_t msg[SVC_MSG_MAX], pk[32], sk[crypto_sign_SECRETKEYBYTES];
    size_t len;
    if (svc_message(msg, sizeof msg, &len, env, date, stanza_hash, recipient) != 0)
        return rc_error_set(err, RC_E_INVALID, "service signature input does not encode");
    crypto_sign_seed_keypair(pk, sk, seed);
    crypto_sign_detached(sig, NULL, msg, len, sk);
    sodium_memzero(sk, sizeof sk);
    return 0;
}

int rc_svc_verify(const uint8_t sig[RC_SIG_BYTES], const uint8_t pk[RC_SIGN_PK_BYTES],
                  const rc_envelope *env, uint64_t date, const uint8_t stanza_hash[32],
                  const char *recipient, rc_error *err)
{
    uint8_t msg[SVC_MSG_MAX];
    size_t len;
    if (svc_message(msg, sizeof msg, &len, env, date, stanza_hash, recipient) != 0)
        return rc_error_set(err, RC_E_FORMAT, "service signature input does not encode");
    if (crypto_sign_verify_detached(sig, msg, len, pk) != 0)
        return rc_error_set(err, RC_E_SIGNATURE, "the service signature does not verify");
    return 0;
}

int rc_svc_sig_encode(char out[RC_SVC_SIG_TEXT], const uint8_t sig[RC_SIG_BYTES])
{
    return rc_b64url_encode(out, RC_SVC_SIG_TEXT, sig, RC_SIG_BYTES);
}

int rc_svc_seed_seal(uint8_t out[RC_SEALED_SVC_SEED_BYTES], const uint8_t seed[RC_SVC_SEED_BYTES],
                     const uint8_t service_box_pk[RC_BOX_PK_BYTES], rc_error *err)
{
    if (crypto_box_seal(out, seed, RC_SVC_SEED_BYTES, service_box_pk) != 0)
        return rc_error_set(err, RC_E_CRYPTO, "cannot seal the service key to the service");
    return 0;
}

int rc_svc_seed_open(uint8_t seed[RC_SVC_SEED_BYTES],
                     const uint8_t sealed[RC_SEALED_SVC_SEED_BYTES], const rc_service_secret *svc,
                     rc_error *err)
{
    if (crypto_box_seal_open(seed, sealed, RC_SEALED_SVC_SEED_BYTES, svc->pub.pk, svc->sk) != 0)
        return rc_error_set(err, RC_E_CRYPTO,
                            "the service signing key is not sealed to this service's key");
    return 0;
}
