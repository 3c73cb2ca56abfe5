/*
 * stream.c - one post's cryptography: envelope, key derivation, proof of
 * knowledge of t, stanzas, and the streaming sealer and opener.
 *
 * Plaintext stream P = inner message ‖ trailer ‖ u16 trailer length, padded
 * (sodium_pad) to a multiple of RC_PAD_BLOCK, cut into RC_CHUNK_BYTES
 * chunks for crypto_secretstream_xchacha20poly1305; the last chunk is
 * tagged FINAL, the first carries label ‖ envelope as associated data.
 * Trailer: 0x00 (unsigned) or 0x01 ‖ Ed25519ph signature ‖ u16 len ‖ cert.
 *
 * The opener releases nothing before the whole stream has authenticated:
 * the plaintext of every chunk but the last two is staged inside the
 * opener (an anonymous memory file, memfd_create, on Linux; else a wiped
 * heap buffer), or in the caller's file (rc_opener_stage_into), and handed
 * to the sink only by rc_opener_final once FINAL, padding, trailer and
 * signature have checked.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* memfd_create */
#endif
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include "internal.h"

#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define TRAILER_MAX (1 + RC_SIG_BYTES + 2 + RC_CERT_MAX)
#define TAIL_MAX (TRAILER_MAX + 2 + RC_PAD_BLOCK)

int rc_envelope_to_bytes(uint8_t out[RC_ENVELOPE_BYTES], const rc_envelope *env)
{
    rc_wr w = {out, RC_ENVELOPE_BYTES, 0, 0};
    rc_wr_u8(&w, env->version);
    rc_wr_u8(&w, env->suite);
    rc_wr_bytes(&w, env->list_id, 32);
    rc_wr_u64(&w, env->epoch);
    rc_wr_bytes(&w, env->E, 32);
    rc_wr_bytes(&w, env->KC, 32);
    rc_wr_bytes(&w, env->U, 32);
    rc_wr_bytes(&w, env->z, 32);
    return w.bad ? -1 : 0;
}

static void envelope_ad(uint8_t ad[16 + RC_ENVELOPE_BYTES], const rc_envelope *env)
{
    rc_label(ad, RC_L_HEADER);
    rc_envelope_to_bytes(ad + 16, env);
}

int rc_derive_content_key(uint8_t K[32], uint8_t KC[32], const uint8_t list_id[RC_ID_BYTES],
                          uint64_t epoch, const uint8_t A[RC_POINT_BYTES],
                          const uint8_t E[RC_POINT_BYTES], const uint8_t S[RC_POINT_BYTES])
{
    uint8_t in[1 + 1 + 32 + 8 + 32 + 32 + 32], out[64];
    rc_wr w = {in, sizeof in, 0, 0};
    rc_wr_u8(&w, RC_FORMAT_VERSION);
    rc_wr_u8(&w, RC_SUITE_1);
    rc_wr_bytes(&w, list_id, 32);
    rc_wr_u64(&w, epoch);
    rc_wr_bytes(&w, A, 32);
    rc_wr_bytes(&w, E, 32);
    rc_wr_bytes(&w, S, 32);
    rc_hash(out, 64, RC_L_CONTENT, in, w.len);
    memcpy(K, out, 32);
    memcpy(KC, out + 32, 32);
    sodium_memzero(in, sizeof in);
    sodium_memzero(out, sizeof out);
    return 0;
}

int rc_proof_challenge(uint8_t c[RC_SCALAR_BYTES], const uint8_t list_id[RC_ID_BYTES],
                       uint64_t epoch, const uint8_t A[RC_POINT_BYTES],
                       const uint8_t E[RC_POINT_BYTES], const uint8_t U[RC_POINT_BYTES],
                       uint64_t date, const char *message_id)
{
    uint8_t mid[32], in[1 + 32 + 8 + 32 * 3 + 8 + 32], h[64];
    crypto_generichash_blake2b_state st;
    uint8_t v = RC_FORMAT_VERSION;
    rc_hash_init(&st, 32, RC_L_MSGID);
    crypto_generichash_blake2b_update(&st, &v, 1);
    crypto_generichash_blake2b_update(&st, (const uint8_t *)message_id, strlen(message_id));
    crypto_generichash_blake2b_final(&st, mid, 32);

    rc_wr w = {in, sizeof in, 0, 0};
    rc_wr_u8(&w, RC_FORMAT_VERSION);
    rc_wr_bytes(&w, list_id, 32);
    rc_wr_u64(&w, epoch);
    rc_wr_bytes(&w, A, 32);
    rc_wr_bytes(&w, E, 32);
    rc_wr_bytes(&w, U, 32);
    rc_wr_u64(&w, date);
    rc_wr_bytes(&w, mid, 32);
    rc_hash(h, 64, RC_L_PROOF, in, w.len);
    crypto_core_ristretto255_scalar_reduce(c, h);
    return 0;
}

int rc_proof_verify(const rc_envelope *env, const uint8_t A[RC_POINT_BYTES], uint64_t date,
                    const char *message_id, rc_error *err)
{
    uint8_t c[32], zG[32], cE[32], rhs[32];
    if (!rc_point_is_valid_nonidentity(env->E))
        return rc_error_set(err, RC_E_CRYPTO,
                            "ephemeral key E is not a canonical non-identity point");
    if (!rc_point_is_valid_nonidentity(env->U) || !rc_scalar_is_canonical_nonzero(env->z))
        return rc_error_set(err, RC_E_CRYPTO, "proof of knowledge is malformed");
    rc_proof_challenge(c, env->list_id, env->epoch, A, env->E, env->U, date, message_id);
    if (crypto_scalarmult_ristretto255_base(zG, env->z) != 0 || sodium_is_zero(c, 32) ||
        crypto_scalarmult_ristretto255(cE, c, env->E) != 0 ||
        crypto_core_ristretto255_add(rhs, env->U, cE) != 0 || sodium_memcmp(zG, rhs, 32) != 0)
        return rc_error_set(err, RC_E_CRYPTO,
                            "proof of knowledge of t does not verify (replayed or altered E, "
                            "Date or Message-ID)");
    return 0;
}

int rc_stanza_to_bytes(uint8_t *out, size_t outlen, size_t *len, const rc_stanza *s,
                       rc_error *err)
{
    rc_wr w = {out, outlen, 0, 0};
    rc_wr_bytes(&w, s->R, 32);
    rc_wr_u16(&w, (uint16_t)s->W_len);
    rc_wr_bytes(&w, s->W, s->W_len);
    if (w.bad || s->W_len > RC_WRAP_MAX)
        return rc_error_set(err, RC_E_INVALID, "stanza does not encode");
    *len = w.len;
    return 0;
}

int rc_stanza_from_bytes(rc_stanza *s, const uint8_t *in, size_t len, rc_error *err)
{
    rc_rd r = {in, len, 0, 0};
    rc_rd_copy(&r, s->R, 32);
    size_t wl = rc_rd_u16(&r);
    if (wl > RC_WRAP_MAX || wl < crypto_box_SEALBYTES)
        return rc_error_set(err, RC_E_FORMAT, "stanza has a bad W length");
    rc_rd_copy(&r, s->W, wl);
    s->W_len = wl;
    if (!rc_rd_done(&r))
        return rc_error_set(err, RC_E_FORMAT, "stanza is truncated or too long");
    if (!rc_point_is_valid_nonidentity(s->R))
        return rc_error_set(err, RC_E_CRYPTO, "stanza carries an invalid R");
    return 0;
}

/* ---- sealer ---- */

struct rc_sealer {
    crypto_secretstream_xchacha20poly1305_state ss;
    crypto_sign_state sig;
    int signing;
    rc_cert cert;
    uint8_t sign_sk[RC_SIGN_SK_BYTES];
    uint8_t header[RC_STREAM_HEADER_BYTES];
    int header_sent;
    uint8_t ad[16 + RC_ENVELOPE_BYTES];
    int first_chunk;
    size_t buflen;
    uint8_t buf[RC_CHUNK_BYTES + TAIL_MAX];
    uint8_t out[RC_CHUNK_BYTES + TAIL_MAX + SS_ABYTES];
};

static void sign_prefix(crypto_sign_state *st, const rc_envelope *env)
{
    uint8_t p[16 + 1 + 32 + 8 + 32 + 32];
    rc_wr w = {p, sizeof p, 0, 0};
    rc_wr_label(&w, RC_L_POST_SIG);
    rc_wr_u8(&w, RC_FORMAT_VERSION);
    rc_wr_bytes(&w, env->list_id, 32);
    rc_wr_u64(&w, env->epoch);
    rc_wr_bytes(&w, env->E, 32);
    rc_wr_bytes(&w, env->KC, 32);
    crypto_sign_update(st, p, w.len);
}

int rc_sealer_new_det(rc_sealer **out, rc_envelope *env, const rc_statement *st,
                      uint64_t date, const char *message_id, const rc_device_secret *signer,
                      const rc_cert *cert, const uint8_t t[RC_SCALAR_BYTES],
                      const uint8_t u[RC_SCALAR_BYTES],
                      const uint8_t stream_header[RC_STREAM_HEADER_BYTES], rc_error *err)
{
    uint8_t S[32], K[32], c[32], ct[32];
    int rc;
    *out = NULL;
    if ((signer == NULL) != (cert == NULL))
        return rc_error_set(err, RC_E_INVALID, "signer and certificate go together");
    if (!rc_scalar_is_canonical_nonzero(t) || !rc_scalar_is_canonical_nonzero(u))
        return rc_error_set(err, RC_E_CRYPTO, "ephemeral scalars must be canonical and non-zero");
    memset(env, 0, sizeof *env);
    env->version = RC_FORMAT_VERSION;
    env->suite = RC_SUITE_1;
    env->epoch = st->epoch;
    if ((rc = rc_list_id(env->list_id, st->address, err)))
        return rc;
    if (cert && (memcmp(cert->list_id, env->list_id, 32) != 0 || cert->epoch != st->epoch ||
                 memcmp(cert->device_sign_pk, signer->pub.sign_pk, 32) != 0))
        return rc_error_set(err, RC_E_INVALID,
                            "the membership certificate is not for this list, epoch and device");
    if (crypto_scalarmult_ristretto255_base(env->E, t) != 0 ||
        crypto_scalarmult_ristretto255(S, t, st->A) != 0 ||
        crypto_scalarmult_ristretto255_base(env->U, u) != 0)
        return rc_error_set(err, RC_E_CRYPTO, "key agreement gave the identity");
    rc_derive_content_key(K, env->KC, env->list_id, env->epoch, st->A, env->E, S);
    rc_proof_challenge(c, env->list_id, env->epoch, st->A, env->E, env->U, date, message_id);
    crypto_core_ristretto255_scalar_mul(ct, c, t);
    crypto_core_ristretto255_scalar_add(env->z, u, ct);

    rc_sealer *s = rc_secret_alloc(sizeof *s);
    if (!s) {
        sodium_memzero(K, 32);
        sodium_memzero(S, 32);
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    }
    memcpy(s->header, stream_header, RC_STREAM_HEADER_BYTES);
    /* init_pull sets up exactly the state init_push would for this header;
     * it lets the header come from the caller (test vectors). */
    crypto_secretstream_xchacha20poly1305_init_pull(&s->ss, s->header, K);
    envelope_ad(s->ad, env);
    s->first_chunk = 1;
    if (signer) {
        s->signing = 1;
        s->cert = *cert;
        memcpy(s->sign_sk, signer->sign_sk, RC_SIGN_SK_BYTES);
        crypto_sign_init(&s->sig);
        sign_prefix(&s->sig, env);
    }
    sodium_memzero(K, 32);
    sodium_memzero(S, 32);
    sodium_memzero(ct, 32);
    *out = s;
    return 0;
}

int rc_sealer_new(rc_sealer **out, rc_envelope *env_out, const rc_statement *st, uint64_t date,
                  const char *message_id, const rc_device_secret *signer, const rc_cert *cert,
                  rc_error *err)
{
    uint8_t t[32], u[32], h[RC_STREAM_HEADER_BYTES];
    rc_scalar_random_nonzero(t);
    rc_scalar_random_nonzero(u);
    randombytes_buf(h, sizeof h);
    int rc = rc_sealer_new_det(out, env_out, st, date, message_id, signer, cert, t, u, h, err);
    sodium_memzero(t, 32);
    sodium_memzero(u, 32);
    return rc;
}

static int push_chunk(rc_sealer *s, const uint8_t *pt, size_t len, uint8_t tag, rc_sink_fn sink,
                      void *ctx, rc_error *err)
{
    unsigned long long clen = 0;
    if (!s->header_sent) {
        if (sink(ctx, s->header, sizeof s->header) != 0)
            return rc_error_set(err, RC_E_IO, "cannot write the sealed stream");
        s->header_sent = 1;
    }
    crypto_secretstream_xchacha20poly1305_push(&s->ss, s->out, &clen, pt, len,
                                               s->first_chunk ? s->ad : NULL,
                                               s->first_chunk ? sizeof s->ad : 0, tag);
    s->first_chunk = 0;
    if (sink(ctx, s->out, (size_t)clen) != 0)
        return rc_error_set(err, RC_E_IO, "cannot write the sealed stream");
    return 0;
}

int rc_sealer_update(rc_sealer *s, const uint8_t *in, size_t len, rc_sink_fn sink, void *ctx,
                     rc_error *err)
{
    if (s->signing)
        crypto_sign_update(&s->sig, in, len);
    while (len > 0) {
        /* A full buffer goes out only once more data proves it is not the
         * last: the FINAL chunk then always holds the trailer. */
        if (s->buflen == RC_CHUNK_BYTES) {
            int rc = push_chunk(s, s->buf, RC_CHUNK_BYTES,
                                crypto_secretstream_xchacha20poly1305_TAG_MESSAGE, sink, ctx, err);
            if (rc)
                return rc;
            s->buflen = 0;
        }
        size_t n = RC_CHUNK_BYTES - s->buflen;
        if (n > len)
            n = len;
        memcpy(s->buf + s->buflen, in, n);
        s->buflen += n;
        in += n;
        len -= n;
    }
    return 0;
}

int rc_sealer_final(rc_sealer *s, rc_sink_fn sink, void *ctx, rc_error *err)
{
    uint8_t trailer[TRAILER_MAX];
    rc_wr w = {trailer, sizeof trailer, 0, 0};
    if (s->signing) {
        uint8_t sig[64], certb[RC_CERT_MAX];
        size_t certlen;
        if (rc_cert_to_bytes(certb, sizeof certb, &certlen, &s->cert, err) != 0)
            return RC_E_INVALID;
        crypto_sign_final_create(&s->sig, sig, NULL, s->sign_sk);
        rc_wr_u8(&w, 1);
        rc_wr_bytes(&w, sig, 64);
        rc_wr_u16(&w, (uint16_t)certlen);
        rc_wr_bytes(&w, certb, certlen);
    } else {
        rc_wr_u8(&w, 0);
    }
    if (w.bad)
        return rc_error_set(err, RC_E_INTERNAL, "trailer does not encode");
    memcpy(s->buf + s->buflen, trailer, w.len);
    s->buflen += w.len;
    rc_be16_put(s->buf + s->buflen, (uint16_t)w.len);
    s->buflen += 2;
    size_t padded;
    if (sodium_pad(&padded, s->buf, s->buflen, RC_PAD_BLOCK, sizeof s->buf) != 0)
        return rc_error_set(err, RC_E_INTERNAL, "padding failed");
    size_t off = 0;
    if (padded > RC_CHUNK_BYTES) {
        int rc = push_chunk(s, s->buf, RC_CHUNK_BYTES,
                            crypto_secretstream_xchacha20poly1305_TAG_MESSAGE, sink, ctx, err);
        if (rc)
            return rc;
        off = RC_CHUNK_BYTES;
    }
    return push_chunk(s, s->buf + off, padded - off,
                      crypto_secretstream_xchacha20poly1305_TAG_FINAL, sink, ctx, err);
}

void rc_sealer_free(rc_sealer *s)
{
    rc_secret_free(s);
}

/* ---- opener ---- */

#define CBUF_MAX (RC_CHUNK_BYTES + SS_ABYTES)

struct rc_opener {
    crypto_secretstream_xchacha20poly1305_state ss;
    crypto_sign_state sig;
    rc_envelope env;
    uint8_t list_signer[RC_SIGN_PK_BYTES];
    uint8_t ad[16 + RC_ENVELOPE_BYTES];
    uint8_t K[32];
    uint8_t hdr[RC_STREAM_HEADER_BYTES];
    size_t hdrlen;
    int first_chunk, done;
    unsigned long long chunk_no;
    rc_share share;
    rc_cert sender;
    size_t clen;
    uint8_t cbuf[CBUF_MAX];
    size_t heldlen;
    uint8_t area[2 * RC_CHUNK_BYTES]; /* held chunk ‖ final chunk */
    /* Staged plaintext (authenticated chunks, not yet released). */
    int stage_fd;     /* -1 until the first chunk is staged */
    int stage_owned;  /* stage_fd is the opener's (memfd), not the caller's */
    int stage_keep;   /* rc_opener_stage_into: the caller reads its file */
    uint64_t staged;  /* bytes in the stage */
    uint8_t *heap;    /* fallback stage when there is no memory file */
    size_t heaplen, heapcap;
};

int rc_opener_new(rc_opener **out, const rc_envelope *env, const rc_statement *st,
                  const rc_device_secret *dev, const rc_stanza *stanzas, size_t n_stanzas,
                  uint64_t date, const char *message_id, rc_error *err)
{
    uint8_t list_id[32];
    int rc;
    *out = NULL;
    if (env->version != RC_FORMAT_VERSION)
        return rc_error_set(err, RC_E_VERSION, "message format version %u is not supported",
                            env->version);
    if (env->suite != RC_SUITE_1)
        return rc_error_set(err, RC_E_VERSION, "algorithm suite %u is not supported", env->suite);
    if ((rc = rc_list_id(list_id, st->address, err)))
        return rc;
    if (memcmp(list_id, env->list_id, 32) != 0)
        return rc_error_set(err, RC_E_POLICY, "message was sealed for another list than %s",
                            st->address);
    if (env->epoch != st->epoch)
        return rc_error_set(err, RC_E_POLICY,
                            "message was sealed for epoch %llu of %s, the list key statement is "
                            "for epoch %llu",
                            (unsigned long long)env->epoch, st->address,
                            (unsigned long long)st->epoch);
    if ((rc = rc_proof_verify(env, st->A, date, message_id, err)))
        return rc;

    rc_opener *o = rc_secret_alloc(sizeof *o);
    if (!o)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    size_t opened = 0;
    int found = 0;
    const char *why = NULL;
    for (size_t i = 0; i < n_stanzas && !found; i++) {
        uint8_t kE[32], S[32], KC[32];
        rc_error werr;
        if (stanzas[i].W_len < crypto_box_SEALBYTES || stanzas[i].W_len > RC_WRAP_MAX)
            continue;
        /* A W that opens with this device's key but fails its own checks
         * counts as opened (FORMAT §8): RC_E_AUTH, not RC_E_NOT_FOR_US. */
        if (rc_wrap_open(&o->share, dev, stanzas[i].W, stanzas[i].W_len, &werr) != 0) {
            if (werr.code != RC_E_NOT_FOR_US) {
                opened++;
                why = "its contents are malformed";
            }
            continue;
        }
        opened++;
        if (memcmp(o->share.list_id, env->list_id, 32) != 0 || o->share.epoch != env->epoch ||
            sodium_memcmp(o->share.A, st->A, 32) != 0) {
            sodium_memzero(o->share.k, 32);
            why = "it names another list, epoch or list key";
            continue;
        }
        /* FORMAT §8: the membership certificate inside W must verify with
         * the statement's signer; a stanza with a bad one is refused. */
        if (rc_cert_verify(&o->share.cert, st->signer_pk, NULL) != 0) {
            sodium_memzero(o->share.k, 32);
            why = "the membership certificate inside it does not verify with the list "
                  "signing key";
            continue;
        }
        why = "its key commitment does not match";
        if (crypto_scalarmult_ristretto255(kE, o->share.k, env->E) == 0 &&
            rc_point_is_valid_nonidentity(stanzas[i].R) &&
            crypto_core_ristretto255_add(S, stanzas[i].R, kE) == 0 && !sodium_is_zero(S, 32)) {
            rc_derive_content_key(o->K, KC, env->list_id, env->epoch, st->A, env->E, S);
            found = sodium_memcmp(KC, env->KC, 32) == 0;
        }
        sodium_memzero(S, 32);
        sodium_memzero(kE, 32);
        if (!found)
            sodium_memzero(o->K, 32);
    }
    if (!found) {
        rc_secret_free(o);
        if (opened)
            return rc_error_set(err, RC_E_AUTH,
                                "the stanza for this device fails its checks (%s): forged or "
                                "corrupted stanza",
                                why ? why : "list, epoch or key commitment");
        return rc_error_set(err, RC_E_NOT_FOR_US,
                            "none of the %zu stanzas is for this device: is it enrolled in %s "
                            "(epoch %llu)?",
                            n_stanzas, st->address, (unsigned long long)st->epoch);
    }
    o->env = *env;
    memcpy(o->list_signer, st->signer_pk, 32);
    envelope_ad(o->ad, env);
    o->first_chunk = 1;
    o->stage_fd = -1;
    crypto_sign_init(&o->sig);
    sign_prefix(&o->sig, env);
    *out = o;
    return 0;
}

int rc_opener_stage_into(rc_opener *o, int fd, rc_error *err)
{
    if (o->stage_fd >= 0 || o->staged || o->chunk_no)
        return rc_error_set(err, RC_E_INVALID, "the stage is chosen before any data");
    o->stage_fd = fd;
    o->stage_owned = 0;
    o->stage_keep = 1;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Append authenticated plaintext to the stage (never to the sink). */
static int stage_put(rc_opener *o, const uint8_t *p, size_t n, rc_error *err)
{
    if (n == 0)
        return 0;
#if defined(__linux__)
    if (o->stage_fd < 0 && !o->heap) {
        o->stage_fd = memfd_create("recrypt-open", MFD_CLOEXEC);
        o->stage_owned = o->stage_fd >= 0;
    }
#endif
    if (o->stage_fd >= 0) {
        if (write_all(o->stage_fd, p, n) != 0)
            return rc_error_set(err, RC_E_IO, "cannot stage the decrypted message: %s",
                                strerror(errno));
    } else {
        if (o->heaplen + n > o->heapcap) {
            size_t cap = o->heapcap ? o->heapcap : 4 * RC_CHUNK_BYTES;
            while (cap < o->heaplen + n)
                cap *= 2;
            uint8_t *nh = malloc(cap);
            if (!nh)
                return rc_error_set(err, RC_E_NOMEM, "out of memory staging the message");
            if (o->heap) {
                memcpy(nh, o->heap, o->heaplen);
                sodium_memzero(o->heap, o->heapcap);
                free(o->heap);
            }
            o->heap = nh;
            o->heapcap = cap;
        }
        memcpy(o->heap + o->heaplen, p, n);
        o->heaplen += n;
    }
    o->staged += n;
    return 0;
}

/* After everything checked: hand the staged plaintext to the sink, then
 * the rest (the inner message's end, in o->area[0..tail)). */
static int stage_release(rc_opener *o, size_t tail, rc_sink_fn sink, void *ctx, rc_error *err)
{
    if (o->stage_keep) /* the caller's file holds it all */
        return tail && write_all(o->stage_fd, o->area, tail) != 0
                   ? rc_error_set(err, RC_E_IO, "cannot stage the decrypted message")
                   : 0;
    if (o->heap && o->heaplen && sink(ctx, o->heap, o->heaplen) != 0)
        return rc_error_set(err, RC_E_IO, "cannot write the decrypted message");
    if (o->stage_fd >= 0 && o->staged) {
        /* The tail sits in area; the ciphertext buffer is free by now. */
        uint8_t *buf = o->cbuf;
        if (lseek(o->stage_fd, 0, SEEK_SET) != 0)
            return rc_error_set(err, RC_E_IO, "cannot read the staged message");
        for (uint64_t left = o->staged; left > 0;) {
            size_t want = left < RC_CHUNK_BYTES ? (size_t)left : RC_CHUNK_BYTES;
            ssize_t got = read(o->stage_fd, buf, want);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                return rc_error_set(err, RC_E_IO, "cannot read the staged message");
            if (sink(ctx, buf, (size_t)got) != 0)
                return rc_error_set(err, RC_E_IO, "cannot write the decrypted message");
            left -= (uint64_t)got;
        }
        sodium_memzero(buf, CBUF_MAX);
    }
    if (tail && sink(ctx, o->area, tail) != 0)
        return rc_error_set(err, RC_E_IO, "cannot write the decrypted message");
    return 0;
}

static int release(rc_opener *o, const uint8_t *p, size_t n, rc_error *err)
{
    if (n == 0)
        return 0;
    crypto_sign_update(&o->sig, p, n);
    return stage_put(o, p, n, err);
}

static int pull_chunk(rc_opener *o, int is_last, rc_sink_fn sink, void *ctx, rc_error *err)
{
    unsigned long long plen = 0;
    unsigned char tag = 0;
    uint8_t *pt = o->area + o->heldlen;
    o->chunk_no++;
    if (crypto_secretstream_xchacha20poly1305_pull(&o->ss, pt, &plen, &tag, o->cbuf, o->clen,
                                                   o->first_chunk ? o->ad : NULL,
                                                   o->first_chunk ? sizeof o->ad : 0) != 0)
        return rc_error_set(err, RC_E_AUTH,
                            "chunk %llu does not authenticate: the message was tampered with, "
                            "reordered or truncated",
                            o->chunk_no);
    o->first_chunk = 0;
    o->clen = 0;
    if (!is_last) {
        if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL)
            return rc_error_set(err, RC_E_FORMAT, "data follows the final chunk");
        if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE || plen != RC_CHUNK_BYTES)
            return rc_error_set(err, RC_E_FORMAT, "chunk %llu is malformed", o->chunk_no);
        /* Release the held chunk; keep this one, it may hold the trailer. */
        int rc = release(o, o->area, o->heldlen, err);
        if (rc)
            return rc;
        memmove(o->area, pt, RC_CHUNK_BYTES);
        o->heldlen = RC_CHUNK_BYTES;
        return 0;
    }
    if (tag != crypto_secretstream_xchacha20poly1305_TAG_FINAL)
        return rc_error_set(err, RC_E_AUTH,
                            "the message is truncated: its stream ends without the final chunk");
    /* FORMAT §7.5: "the last holds 1..65536 bytes". */
    if (plen == 0)
        return rc_error_set(err, RC_E_FORMAT, "the final chunk is empty (it must hold 1..65536 "
                                              "bytes)");
    size_t n = 0, total = o->heldlen + (size_t)plen;
    if (sodium_unpad(&n, o->area, total, RC_PAD_BLOCK) != 0 || n < 2)
        return rc_error_set(err, RC_E_FORMAT, "the decrypted stream has bad padding");
    size_t tl = rc_be16_get(o->area + n - 2);
    if (tl < 1 || tl + 2 > n)
        return rc_error_set(err, RC_E_FORMAT, "the decrypted stream has a bad trailer");
    size_t inner_end = n - 2 - tl;
    const uint8_t *tr = o->area + inner_end;
    /* The last plaintext goes into the signature hash now, but reaches the
     * sink only once the trailer, certificate and signature have checked. */
    crypto_sign_update(&o->sig, o->area, inner_end);
    int rc = 0;
    if (tr[0] == 0 && tl == 1) {
        o->done = 1;
    } else if (tr[0] != 1 || tl < 1 + 64 + 2 || tl != 1 + 64 + 2 + (size_t)rc_be16_get(tr + 65)) {
        rc = rc_error_set(err, RC_E_FORMAT, "the decrypted stream has a bad trailer");
    } else {
        rc_cert c;
        size_t certlen = rc_be16_get(tr + 65);
        if ((rc = rc_cert_from_bytes(&c, tr + 67, certlen, err)) == 0 &&
            (rc = rc_cert_verify(&c, o->list_signer, err)) == 0) {
            if (memcmp(c.list_id, o->env.list_id, 32) != 0 || c.epoch != o->env.epoch)
                rc = rc_error_set(err, RC_E_SIGNATURE,
                                  "the sender's certificate is for another list or epoch");
            else if (crypto_sign_final_verify(&o->sig, tr + 1, c.device_sign_pk) != 0)
                rc = rc_error_set(err, RC_E_SIGNATURE,
                                  "the sender's signature over the message does not verify");
        }
        if (rc == 0) {
            o->done = 2;
            o->sender = c;
        }
    }
    if (rc == 0)
        rc = stage_release(o, inner_end, sink, ctx, err);
    return rc;
}

int rc_opener_update(rc_opener *o, const uint8_t *in, size_t len, rc_sink_fn sink, void *ctx,
                     rc_error *err)
{
    if (o->done)
        return rc_error_set(err, RC_E_FORMAT, "data after the end of the stream");
    while (len > 0 && o->hdrlen < RC_STREAM_HEADER_BYTES) {
        o->hdr[o->hdrlen++] = *in++;
        len--;
        if (o->hdrlen == RC_STREAM_HEADER_BYTES) {
            if (crypto_secretstream_xchacha20poly1305_init_pull(&o->ss, o->hdr, o->K) != 0)
                return rc_error_set(err, RC_E_FORMAT, "bad stream header");
            sodium_memzero(o->K, 32);
        }
    }
    while (len > 0) {
        if (o->clen == CBUF_MAX) {
            int rc = pull_chunk(o, 0, sink, ctx, err);
            if (rc)
                return rc;
        }
        size_t n = CBUF_MAX - o->clen;
        if (n > len)
            n = len;
        memcpy(o->cbuf + o->clen, in, n);
        o->clen += n;
        in += n;
        len -= n;
    }
    return 0;
}

int rc_opener_final(rc_opener *o, rc_sink_fn sink, void *ctx, rc_open_result *res,
                    rc_error *err)
{
    if (o->done)
        return rc_error_set(err, RC_E_FORMAT, "final called twice");
    if (o->hdrlen < RC_STREAM_HEADER_BYTES || o->clen < SS_ABYTES)
        return rc_error_set(err, RC_E_AUTH,
                            "the message is truncated: its stream ends without the final chunk");
    int rc = pull_chunk(o, 1, sink, ctx, err);
    if (rc)
        return rc;
    if (res) {
        memset(res, 0, sizeof *res);
        res->is_signed = o->done == 2;
        if (res->is_signed)
            res->cert = o->sender;
        res->share = o->share;
    }
    return 0;
}

void rc_opener_free(rc_opener *o)
{
    if (!o)
        return;
    if (o->stage_owned && o->stage_fd >= 0) {
        (void)!ftruncate(o->stage_fd, 0); /* the memory file's pages go back now */
        close(o->stage_fd);
    }
    if (o->heap) {
        sodium_memzero(o->heap, o->heapcap);
        free(o->heap);
    }
    rc_secret_free(o);
}
