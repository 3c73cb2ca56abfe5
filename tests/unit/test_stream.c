/*
 * test_stream.c - one post end to end through the library: the owner makes
 * a list and device entries, a sender seals (unsigned or signed), the
 * service recrypts (stanzas R = r·E with and without the table), devices
 * open. Round trips at chunk boundaries and 10 MiB; then tampering,
 * truncation, reordering, bad envelopes and proofs, forged stanzas, and bad
 * signatures, each with its exact rc_code.
 *
 * A hand-built sealer (raw_seal) reproduces the library's stream byte for
 * byte (checked below) and lets the tests build what the library's sealer
 * refuses to make: a post signed under a certificate for another epoch, or
 * with a damaged signature.
 */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "internal.h"
#include "test_util.h"

/* The opener's stage is a memory file (memfd_create); this definition
 * stands in for libc's (librecrypt is linked statically) to count the calls
 * and to make them fail, which sends the opener to its heap stage. */
static int memfd_off, memfd_calls;
int memfd_create(const char *name, unsigned int flags);
int memfd_create(const char *name, unsigned int flags)
{
    memfd_calls++;
    if (memfd_off) {
        errno = ENOSYS;
        return -1;
    }
    return (int)syscall(SYS_memfd_create, name, flags);
}

#define DATE 1700000000ull
#define MID "20231114.abcdef@example.org"
#define CT_BYTES (RC_CHUNK_BYTES + RC_CHUNK_OVERHEAD)

/* ---------------------------------------------------------------- a failing sink */

static int sink_fail(void *ctx, const uint8_t *b, size_t n)
{
    (void)ctx;
    (void)b;
    (void)n;
    return 1;
}

/* ---------------------------------------------------------------- the world */

enum { ALICE, BOB1, BOB2, CAROL, N_DEV };
static const char *const member_of[N_DEV] = {"alice@example.org", "bob@example.org",
                                             "bob@example.org", "carol@example.org"};

typedef struct {
    rc_list_secret *ls, *ls6, *ols; /* team@ epoch 5; team@ epoch 6; other@ epoch 5 */
    rc_statement st, st6, ost;
    rc_device_secret *dev[N_DEV], *outsider;
    rc_device_entry *e[N_DEV];
    rc_device_entry *e6_alice, *eo_alice; /* alice in epoch 6 and in the other list */
    rc_cert cert_alice;                   /* from W (rc_wrap_open) */
    rc_cert cert_bob1;                    /* rc_cert_sign directly */
    uint8_t *big;                         /* 10 MiB of random bytes */
} world;

static world W;

#define BIG (10u * 1024 * 1024)

static int setup(void **state)
{
    (void)state;
    rc_error err;
    W.ls = rc_secret_alloc(sizeof *W.ls);
    W.ls6 = rc_secret_alloc(sizeof *W.ls6);
    W.ols = rc_secret_alloc(sizeof *W.ols);
    if (!W.ls || !W.ls6 || !W.ols)
        return -1;
    if (rc_list_generate(W.ls, "Team@Example.org", 5, NULL, &err) ||
        rc_list_generate(W.ls6, "team@example.org", 6, W.ls->sign_sk, &err) ||
        rc_list_generate(W.ols, "other@example.org", 5, NULL, &err) ||
        rc_statement_sign(&W.st, W.ls, 1000, 0, &err) ||
        rc_statement_sign(&W.st6, W.ls6, 1000, 0, &err) ||
        rc_statement_sign(&W.ost, W.ols, 1000, 0, &err))
        return -1;
    for (int i = 0; i < N_DEV; i++) {
        W.dev[i] = rc_secret_alloc(sizeof *W.dev[i]);
        W.e[i] = rc_secret_alloc(sizeof *W.e[i]);
        if (!W.dev[i] || !W.e[i] || rc_device_generate(W.dev[i], &err) ||
            rc_entry_create(W.e[i], W.ls, &W.dev[i]->pub, member_of[i], 100, &err) ||
            rc_entry_check(W.e[i]->r, W.e[i]->K, W.ls->A, &err))
            return -1;
    }
    W.outsider = rc_secret_alloc(sizeof *W.outsider);
    W.e6_alice = rc_secret_alloc(sizeof *W.e6_alice);
    W.eo_alice = rc_secret_alloc(sizeof *W.eo_alice);
    rc_share *sh = rc_secret_alloc(sizeof *sh);
    if (!W.outsider || !W.e6_alice || !W.eo_alice || !sh ||
        rc_device_generate(W.outsider, &err) ||
        rc_entry_create(W.e6_alice, W.ls6, &W.dev[ALICE]->pub, "alice@example.org", 100, &err) ||
        rc_entry_create(W.eo_alice, W.ols, &W.dev[ALICE]->pub, "alice@example.org", 100, &err) ||
        rc_wrap_open(sh, W.dev[ALICE], W.e[ALICE]->W, W.e[ALICE]->W_len, &err) ||
        rc_cert_sign(&W.cert_bob1, W.ls, "bob@example.org", W.dev[BOB1]->pub.sign_pk, &err))
        return -1;
    W.cert_alice = sh->cert;
    rc_secret_free(sh);
    W.big = malloc(BIG);
    if (!W.big)
        return -1;
    randombytes_buf(W.big, BIG);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rc_secret_free(W.ls);
    rc_secret_free(W.ls6);
    rc_secret_free(W.ols);
    for (int i = 0; i < N_DEV; i++) {
        rc_secret_free(W.dev[i]);
        rc_secret_free(W.e[i]);
    }
    rc_secret_free(W.outsider);
    rc_secret_free(W.e6_alice);
    rc_secret_free(W.eo_alice);
    free(W.big);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

/* Seal data to st in pieces of `piece` bytes. */
static void seal(mbuf *out, rc_envelope *env, const rc_statement *st,
                 const rc_device_secret *signer, const rc_cert *cert, const uint8_t *data,
                 size_t n, size_t piece)
{
    rc_sealer *s = NULL;
    rc_error err;
    assert_int_equal(rc_sealer_new(&s, env, st, DATE, MID, signer, cert, &err), RC_OK);
    assert_non_null(s);
    for (size_t off = 0; off < n; off += piece) {
        size_t k = n - off < piece ? n - off : piece;
        assert_int_equal(rc_sealer_update(s, data + off, k, sink_mem, out, &err), RC_OK);
    }
    assert_int_equal(rc_sealer_final(s, sink_mem, out, &err), RC_OK);
    rc_sealer_free(s);
}

/* Stanzas for entries (in the given order) by the service. */
static void recrypt(rc_stanza *out, const rc_envelope *env, rc_device_entry *const *entries,
                    size_t n, int use_table)
{
    rc_recryptor *rc = NULL;
    rc_error err;
    assert_int_equal(rc_recryptor_new(&rc, env->E, use_table, &err), RC_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rc_recryptor_stanza(rc, entries[i]->r, entries[i]->W, entries[i]->W_len,
                                             &out[i], &err),
                         RC_OK);
    rc_recryptor_free(rc);
}

/* Open ct with dev; returns the first failure (or 0); plaintext in out. */
static int open_msg(const rc_device_secret *dev, const rc_statement *st, const rc_envelope *env,
                    const rc_stanza *stz, size_t n_stz, uint64_t date, const char *mid,
                    const uint8_t *ct, size_t ctlen, size_t piece, mbuf *out,
                    rc_open_result *res, rc_error *err)
{
    rc_opener *o = (rc_opener *)(uintptr_t)1;
    rc_error_clear(err);
    int rc = rc_opener_new(&o, env, st, dev, stz, n_stz, date, mid, err);
    if (rc) {
        assert_null(o);
        goto check;
    }
    assert_non_null(o);
    for (size_t off = 0; off < ctlen && rc == 0; off += piece) {
        size_t k = ctlen - off < piece ? ctlen - off : piece;
        rc = rc_opener_update(o, ct + off, k, sink_mem, out, err);
    }
    if (rc == 0)
        rc = rc_opener_final(o, sink_mem, out, res, err);
    rc_opener_free(o);
check:
    if (rc) {
        assert_int_equal(err->code, rc);
        assert_true(strlen(err->msg) > 0);
    }
    return rc;
}

static size_t padded_len(size_t unpadded)
{
    return (unpadded / RC_PAD_BLOCK + 1) * RC_PAD_BLOCK;
}

static size_t n_chunks(size_t padded)
{
    return (padded + RC_CHUNK_BYTES - 1) / RC_CHUNK_BYTES;
}

static size_t ct_len(size_t padded)
{
    return RC_STREAM_HEADER_BYTES + padded + n_chunks(padded) * RC_CHUNK_OVERHEAD;
}

static size_t cert_len(const rc_cert *c)
{
    return 1 + 32 + 8 + 1 + strlen(c->address) + 32 + 64;
}

/* ---------------------------------------------------------------- hand-built sealer */

static const uint8_t T_SCALAR[32] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x08};
static const uint8_t U_SCALAR[32] = {0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x02};
static const uint8_t SS_HEADER[RC_STREAM_HEADER_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                                         13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                                         23, 24};

/* The envelope rc_sealer_new_det makes for (t, u). */
static void det_envelope(rc_envelope *env, const rc_statement *st)
{
    rc_sealer *s = NULL;
    assert_int_equal(rc_sealer_new_det(&s, env, st, DATE, MID, NULL, NULL, T_SCALAR, U_SCALAR,
                                       SS_HEADER, NULL),
                     RC_OK);
    rc_sealer_free(s);
}

/* Signed trailer: 0x01 ‖ Ed25519ph(label ‖ version ‖ list id ‖ epoch ‖ E ‖
 * KC ‖ inner) ‖ u16 len ‖ cert. */
static size_t signed_trailer(uint8_t *tr, const rc_envelope *env, const uint8_t *inner,
                             size_t n, const uint8_t sign_sk[64], const rc_cert *cert)
{
    crypto_sign_state ss;
    uint8_t p[16 + 1 + 32 + 8 + 32 + 32], certb[RC_CERT_MAX];
    size_t certlen;
    rc_wr w = {p, sizeof p, 0, 0};
    rc_wr_label(&w, RC_L_POST_SIG);
    rc_wr_u8(&w, RC_FORMAT_VERSION);
    rc_wr_bytes(&w, env->list_id, 32);
    rc_wr_u64(&w, env->epoch);
    rc_wr_bytes(&w, env->E, 32);
    rc_wr_bytes(&w, env->KC, 32);
    assert_false(w.bad);
    crypto_sign_init(&ss);
    crypto_sign_update(&ss, p, w.len);
    crypto_sign_update(&ss, inner, n);
    tr[0] = 1;
    crypto_sign_final_create(&ss, tr + 1, NULL, sign_sk);
    assert_int_equal(rc_cert_to_bytes(certb, sizeof certb, &certlen, cert, NULL), RC_OK);
    rc_be16_put(tr + 65, (uint16_t)certlen);
    memcpy(tr + 67, certb, certlen);
    return 67 + certlen;
}

/* Stream: header ‖ chunks of inner ‖ trailer ‖ u16 trailer length, padded. */
static void raw_seal(mbuf *out, rc_envelope *env, const rc_statement *st, const uint8_t *inner,
                     size_t n, const uint8_t *trailer, size_t tl)
{
    uint8_t S[32], K[32], KC[32], ad[16 + RC_ENVELOPE_BYTES];
    det_envelope(env, st);
    assert_int_equal(crypto_scalarmult_ristretto255(S, T_SCALAR, st->A), 0);
    rc_derive_content_key(K, KC, env->list_id, env->epoch, st->A, env->E, S);
    assert_memory_equal(KC, env->KC, 32);
    rc_label(ad, RC_L_HEADER);
    assert_int_equal(rc_envelope_to_bytes(ad + 16, env), 0);

    size_t un = n + tl + 2, padded = 0;
    uint8_t *P = malloc(un + RC_PAD_BLOCK);
    assert_non_null(P);
    memcpy(P, inner, n);
    memcpy(P + n, trailer, tl);
    rc_be16_put(P + n + tl, (uint16_t)tl);
    assert_int_equal(sodium_pad(&padded, P, un, RC_PAD_BLOCK, un + RC_PAD_BLOCK), 0);
    assert_int_equal(padded, padded_len(un));

    crypto_secretstream_xchacha20poly1305_state ss;
    assert_int_equal(crypto_secretstream_xchacha20poly1305_init_pull(&ss, SS_HEADER, K), 0);
    assert_int_equal(sink_mem(out, SS_HEADER, sizeof SS_HEADER), 0);
    uint8_t *c = malloc(CT_BYTES);
    assert_non_null(c);
    for (size_t off = 0; off < padded; off += RC_CHUNK_BYTES) {
        size_t k = padded - off < RC_CHUNK_BYTES ? padded - off : RC_CHUNK_BYTES;
        int last = off + k == padded;
        unsigned long long clen = 0;
        crypto_secretstream_xchacha20poly1305_push(
            &ss, c, &clen, P + off, k, off == 0 ? ad : NULL, off == 0 ? sizeof ad : 0,
            last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                 : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
        assert_int_equal(sink_mem(out, c, (size_t)clen), 0);
    }
    free(c);
    free(P);
    sodium_memzero(K, 32);
}

/* The library's deterministic sealer. */
static void det_seal(mbuf *out, rc_envelope *env, const rc_statement *st,
                     const rc_device_secret *signer, const rc_cert *cert, const uint8_t *data,
                     size_t n)
{
    rc_sealer *s = NULL;
    rc_error err;
    assert_int_equal(rc_sealer_new_det(&s, env, st, DATE, MID, signer, cert, T_SCALAR, U_SCALAR,
                                       SS_HEADER, &err),
                     RC_OK);
    assert_int_equal(rc_sealer_update(s, data, n, sink_mem, out, &err), RC_OK);
    assert_int_equal(rc_sealer_final(s, sink_mem, out, &err), RC_OK);
    rc_sealer_free(s);
}

static void test_raw_sealer_matches_library(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 100, 65500, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        mbuf a = {0}, b = {0};
        rc_envelope ea, eb;
        uint8_t tr[1 + 64 + 2 + RC_CERT_MAX] = {0};
        det_seal(&a, &ea, &W.st, NULL, NULL, W.big, sizes[i]);
        raw_seal(&b, &eb, &W.st, W.big, sizes[i], tr, 1);
        assert_memory_equal(&ea, &eb, sizeof ea);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.p, b.p, a.len);
        mbuf_free(&a);
        mbuf_free(&b);

        det_seal(&a, &ea, &W.st, W.dev[ALICE], &W.cert_alice, W.big, sizes[i]);
        size_t tl = signed_trailer(tr, &ea, W.big, sizes[i], W.dev[ALICE]->sign_sk,
                                   &W.cert_alice);
        raw_seal(&b, &eb, &W.st, W.big, sizes[i], tr, tl);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.p, b.p, a.len);
        mbuf_free(&a);
        mbuf_free(&b);
    }
}

/* ---------------------------------------------------------------- round trips */

static void roundtrip(size_t n, int signed_post, size_t seal_piece, size_t open_piece,
                      int all_devices)
{
    mbuf ct = {0};
    rc_envelope env;
    rc_stanza *stz = calloc(N_DEV, sizeof *stz);
    rc_device_entry *order[N_DEV] = {W.e[CAROL], W.e[BOB2], W.e[ALICE], W.e[BOB1]};
    const rc_device_secret *signer = signed_post ? W.dev[BOB1] : NULL;
    const rc_cert *cert = signed_post ? &W.cert_bob1 : NULL;
    rc_error err;
    assert_non_null(stz);

    seal(&ct, &env, &W.st, signer, cert, W.big, n, seal_piece);
    size_t tl = signed_post ? 67 + cert_len(&W.cert_bob1) : 1;
    size_t padded = padded_len(n + tl + 2);
    assert_int_equal(ct.len, ct_len(padded));
    /* The envelope: list id, epoch, version, suite. */
    uint8_t id[32];
    assert_int_equal(rc_list_id(id, "team@example.org", NULL), RC_OK);
    assert_memory_equal(env.list_id, id, 32);
    assert_int_equal(env.epoch, 5);
    assert_int_equal(env.version, RC_FORMAT_VERSION);
    assert_int_equal(env.suite, RC_SUITE_1);
    assert_int_equal(rc_proof_verify(&env, W.st.A, DATE, MID, &err), RC_OK);
    /* The inner bytes do not appear in the clear. */
    if (n >= 64)
        assert_null(memmem(ct.p, ct.len, W.big, 64));

    recrypt(stz, &env, order, N_DEV, n % 2);
    for (int d = 0; d < N_DEV; d++) {
        if (!all_devices && d != ALICE)
            continue;
        mbuf pt = {0};
        rc_open_result *res = rc_secret_alloc(sizeof *res);
        assert_int_equal(open_msg(W.dev[d], &W.st, &env, stz, N_DEV, DATE, MID, ct.p, ct.len,
                                  open_piece, &pt, res, &err),
                         RC_OK);
        assert_int_equal(pt.len, n);
        if (n)
            assert_memory_equal(pt.p, W.big, n);
        assert_int_equal(res->is_signed, signed_post);
        if (signed_post) {
            assert_memory_equal(&res->cert, &W.cert_bob1, sizeof W.cert_bob1);
            assert_string_equal(res->cert.address, "bob@example.org");
        } else {
            rc_cert zero;
            memset(&zero, 0, sizeof zero);
            assert_memory_equal(&res->cert, &zero, sizeof zero);
        }
        assert_string_equal(res->share.cert.address, member_of[d]);
        assert_memory_equal(res->share.X, W.dev[d]->pub.wrap_pk, 32);
        rc_secret_free(res);
        mbuf_free(&pt);
    }
    free(stz);
    mbuf_free(&ct);
}

static void test_roundtrip_small(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 509, 510, 1000, 65000, 65500};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int s = 0; s <= 1; s++)
            roundtrip(sizes[i], s, 777, 1031, 1);
}

static void test_roundtrip_chunk_boundaries(void **state)
{
    (void)state;
    static const size_t sizes[] = {65535, 65536, 65537, 2 * 65536, 2 * 65536 + 1, 3 * 65536 - 100};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int s = 0; s <= 1; s++) {
            roundtrip(sizes[i], s, 65536, CT_BYTES, 0);
            roundtrip(sizes[i], s, 10007, 4093, i == 0);
        }
}

/* Byte-at-a-time in both directions. */
static void test_roundtrip_tiny_pieces(void **state)
{
    (void)state;
    roundtrip(3000, 1, 1, 1, 0);
    roundtrip(0, 0, 1, 1, 0);
}

static void test_roundtrip_10mib(void **state)
{
    (void)state;
    roundtrip(BIG, 0, 1 << 20, 300000, 0);
    roundtrip(BIG, 1, 1 << 20, 300000, 0);
}

/* Signed with the certificate from W (rc_entry_create + rc_wrap_open). */
static void test_signed_with_cert_from_W(void **state)
{
    (void)state;
    mbuf ct = {0}, pt = {0};
    rc_envelope env;
    rc_stanza stz[N_DEV];
    rc_open_result res;
    rc_error err;
    seal(&ct, &env, &W.st, W.dev[ALICE], &W.cert_alice, W.big, 5000, 5000);
    recrypt(stz, &env, W.e, N_DEV, 1);
    assert_int_equal(open_msg(W.dev[CAROL], &W.st, &env, stz, N_DEV, DATE, MID, ct.p, ct.len,
                              999, &pt, &res, &err),
                     RC_OK);
    assert_int_equal(pt.len, 5000);
    assert_memory_equal(pt.p, W.big, 5000);
    assert_int_equal(res.is_signed, 1);
    assert_memory_equal(&res.cert, &W.cert_alice, sizeof res.cert);
    assert_memory_equal(res.cert.device_sign_pk, W.dev[ALICE]->pub.sign_pk, 32);
    sodium_memzero(&res, sizeof res);
    mbuf_free(&pt);
    mbuf_free(&ct);
}

/* ---------------------------------------------------------------- who can open */

static void test_not_enrolled(void **state)
{
    (void)state;
    mbuf ct = {0}, pt = {0};
    rc_envelope env;
    rc_stanza stz[N_DEV];
    rc_open_result res;
    rc_error err;
    seal(&ct, &env, &W.st, NULL, NULL, W.big, 1000, 1000);
    for (int t = 0; t <= 1; t++) {
        recrypt(stz, &env, W.e, N_DEV, t);
        assert_int_equal(open_msg(W.outsider, &W.st, &env, stz, N_DEV, DATE, MID, ct.p, ct.len,
                                  ct.len, &pt, &res, &err),
                         RC_E_NOT_FOR_US);
        assert_int_equal(pt.len, 0);
    }
    /* Carol's device with only Alice's and Bob's stanzas. */
    assert_int_equal(open_msg(W.dev[CAROL], &W.st, &env, stz, 3, DATE, MID, ct.p, ct.len,
                              ct.len, &pt, &res, &err),
                     RC_E_NOT_FOR_US);
    /* No stanzas at all. */
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &env, stz, 0, DATE, MID, ct.p, ct.len,
                              ct.len, &pt, &res, &err),
                     RC_E_NOT_FOR_US);
    assert_int_equal(pt.len, 0);
    mbuf_free(&ct);
}

/* A stanza whose W is for another list, or another epoch of this list. */
static void test_stanza_other_list_or_epoch(void **state)
{
    (void)state;
    mbuf ct = {0}, pt = {0};
    rc_envelope env;
    rc_stanza stz[2];
    rc_open_result res;
    rc_error err;
    seal(&ct, &env, &W.st, NULL, NULL, W.big, 1000, 1000);

    rc_device_entry *other[] = {W.eo_alice};
    recrypt(stz, &env, other, 1, 0);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &env, stz, 1, DATE, MID, ct.p, ct.len,
                              ct.len, &pt, &res, &err),
                     RC_E_AUTH);
    assert_int_equal(pt.len, 0);

    rc_device_entry *e6[] = {W.e6_alice};
    recrypt(stz, &env, e6, 1, 1);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &env, stz, 1, DATE, MID, ct.p, ct.len,
                              ct.len, &pt, &res, &err),
                     RC_E_AUTH);
    assert_int_equal(pt.len, 0);

    /* Such a stanza is skipped when the right one follows. */
    rc_device_entry *both[] = {W.eo_alice, W.e[ALICE]};
    recrypt(stz, &env, both, 2, 0);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &env, stz, 2, DATE, MID, ct.p, ct.len,
                              ct.len, &pt, &res, &err),
                     RC_OK);
    assert_int_equal(pt.len, 1000);
    assert_memory_equal(pt.p, W.big, 1000);
    sodium_memzero(&res, sizeof res);
    mbuf_free(&pt);

    /* Opened under the statement of another list or another epoch. */
    recrypt(stz, &env, W.e, 1, 0);
    assert_int_equal(open_msg(W.dev[ALICE], &W.ost, &env, stz, 1, DATE, MID, ct.p, ct.len,
                              ct.len, &pt, &res, &err),
                     RC_E_POLICY);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st6, &env, stz, 1, DATE, MID, ct.p, ct.len,
                              ct.len, &pt, &res, &err),
                     RC_E_POLICY);
    assert_int_equal(pt.len, 0);
    mbuf_free(&ct);
}

/* ---------------------------------------------------------------- tampering */

/* One single-chunk post (unsigned, 1000 bytes) and its stanzas. */
typedef struct {
    mbuf ct;
    rc_envelope env;
    rc_stanza stz[N_DEV];
} post;

static void make_post(post *p, size_t n, int signed_post)
{
    memset(p, 0, sizeof *p);
    seal(&p->ct, &p->env, &W.st, signed_post ? W.dev[BOB1] : NULL,
         signed_post ? &W.cert_bob1 : NULL, W.big, n, 4096);
    recrypt(p->stz, &p->env, W.e, N_DEV, 1);
}

/* Open a modified ciphertext as Alice: the exact code, and nothing out. */
static void expect_fail_ct(const post *p, const uint8_t *ct, size_t len, int want,
                           int single_chunk)
{
    mbuf pt = {0};
    rc_open_result res;
    rc_error err;
    static const size_t pieces[] = {1 << 20, 4093};
    for (size_t i = 0; i < 2; i++) {
        int got = open_msg(W.dev[ALICE], &W.st, &p->env, p->stz, N_DEV, DATE, MID, ct, len,
                           pieces[i], &pt, &res, &err);
        if (got != want)
            fail_msg("got %d (%s), expected %d", got, err.msg, want);
        /* Since 0.3.0 nothing reaches the sink of a stream that fails,
         * however many chunks authenticated before the failure. */
        (void)single_chunk;
        if (pt.len)
            fail_msg("%zu plaintext bytes reached the sink before the failure", pt.len);
        mbuf_free(&pt);
    }
}

/* Open p's ciphertext as Alice under another envelope, in one piece;
 * whatever comes out is appended to pt. */
static int open_with_env(const post *p, const rc_envelope *env, mbuf *pt)
{
    rc_open_result res;
    rc_error err;
    return open_msg(W.dev[ALICE], &W.st, env, p->stz, N_DEV, DATE, MID, p->ct.p, p->ct.len,
                    p->ct.len, pt, &res, &err);
}

static void test_flipped_bit(void **state)
{
    (void)state;
    post p;
    make_post(&p, 1000, 0);
    uint8_t *c = malloc(p.ct.len);
    assert_non_null(c);
    size_t pos[] = {0, 23, 24, 25, 500, p.ct.len - 17, p.ct.len - 1};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(c, p.ct.p, p.ct.len);
            c[pos[i]] ^= (uint8_t)(1u << bit);
            expect_fail_ct(&p, c, p.ct.len, RC_E_AUTH, 1);
        }
    /* Unmodified it opens (the failures above are the flips). */
    memcpy(c, p.ct.p, p.ct.len);
    mbuf pt = {0};
    rc_open_result res;
    rc_error err;
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE, MID, c, p.ct.len,
                              p.ct.len, &pt, &res, &err),
                     RC_OK);
    assert_int_equal(pt.len, 1000);
    mbuf_free(&pt);
    free(c);
    mbuf_free(&p.ct);
}

/* The clear envelope is associated data of the first chunk: changing KC
 * breaks the key commitment, changing a field the proof covers breaks
 * the proof. */
static void test_envelope_changes(void **state)
{
    (void)state;
    post p;
    mbuf pt = {0};
    make_post(&p, 1000, 0);
    rc_envelope env = p.env;
    env.KC[0] ^= 1;
    assert_int_equal(open_with_env(&p, &env, &pt), RC_E_AUTH);
    env = p.env;
    env.U[3] ^= 1;
    assert_int_equal(open_with_env(&p, &env, &pt), RC_E_CRYPTO);
    env = p.env;
    env.z[3] ^= 1;
    assert_int_equal(open_with_env(&p, &env, &pt), RC_E_CRYPTO);
    env = p.env;
    env.version = 2;
    assert_int_equal(open_with_env(&p, &env, &pt), RC_E_VERSION);
    env = p.env;
    env.suite = 2;
    assert_int_equal(open_with_env(&p, &env, &pt), RC_E_VERSION);
    env = p.env;
    env.epoch = 6;
    assert_int_equal(open_with_env(&p, &env, &pt), RC_E_POLICY);
    env = p.env;
    env.list_id[0] ^= 1;
    assert_int_equal(open_with_env(&p, &env, &pt), RC_E_POLICY);
    assert_int_equal(pt.len, 0);
    mbuf_free(&p.ct);
}

static void test_truncation(void **state)
{
    (void)state;
    post p;
    make_post(&p, 1000, 0);
    size_t n = p.ct.len;
    assert_int_equal(n, RC_STREAM_HEADER_BYTES + 1024 + RC_CHUNK_OVERHEAD);
    static const size_t keep[] = {0, 1, 10, 23, 24, 25, 24 + 16, 24 + 17, 24 + 500};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        expect_fail_ct(&p, p.ct.p, keep[i], RC_E_AUTH, 1);
    expect_fail_ct(&p, p.ct.p, n - 1, RC_E_AUTH, 1);
    expect_fail_ct(&p, p.ct.p, n - 16, RC_E_AUTH, 1);
    mbuf_free(&p.ct);

    /* Three chunks (2 × 65536 of inner): drop the final chunk, or part of it,
     * or the last byte; cut inside the middle chunk. */
    make_post(&p, 2 * 65536, 0);
    n = p.ct.len;
    size_t two = RC_STREAM_HEADER_BYTES + 2 * CT_BYTES;
    assert_int_equal(n, two + 512 + RC_CHUNK_OVERHEAD);
    expect_fail_ct(&p, p.ct.p, two, RC_E_AUTH, 0);
    expect_fail_ct(&p, p.ct.p, two + 100, RC_E_AUTH, 0);
    expect_fail_ct(&p, p.ct.p, n - 1, RC_E_AUTH, 0);
    expect_fail_ct(&p, p.ct.p, RC_STREAM_HEADER_BYTES + CT_BYTES + 1000, RC_E_AUTH, 0);
    expect_fail_ct(&p, p.ct.p, RC_STREAM_HEADER_BYTES + CT_BYTES, RC_E_AUTH, 0);
    mbuf_free(&p.ct);
}

static void test_reorder_and_append(void **state)
{
    (void)state;
    post p;
    make_post(&p, 2 * 65536, 0);
    size_t n = p.ct.len;
    uint8_t *c = malloc(n + 100);
    assert_non_null(c);
    /* Chunks 1 and 2 swapped. */
    memcpy(c, p.ct.p, RC_STREAM_HEADER_BYTES);
    memcpy(c + RC_STREAM_HEADER_BYTES, p.ct.p + RC_STREAM_HEADER_BYTES + CT_BYTES, CT_BYTES);
    memcpy(c + RC_STREAM_HEADER_BYTES + CT_BYTES, p.ct.p + RC_STREAM_HEADER_BYTES, CT_BYTES);
    memcpy(c + RC_STREAM_HEADER_BYTES + 2 * CT_BYTES, p.ct.p + RC_STREAM_HEADER_BYTES + 2 * CT_BYTES,
           n - RC_STREAM_HEADER_BYTES - 2 * CT_BYTES);
    expect_fail_ct(&p, c, n, RC_E_AUTH, 0);
    /* Chunk 1 twice (chunk 2 replaced by chunk 1). */
    memcpy(c, p.ct.p, n);
    memcpy(c + RC_STREAM_HEADER_BYTES + CT_BYTES, p.ct.p + RC_STREAM_HEADER_BYTES, CT_BYTES);
    expect_fail_ct(&p, c, n, RC_E_AUTH, 0);
    /* Data after the final chunk. */
    memcpy(c, p.ct.p, n);
    memset(c + n, 0, 100);
    expect_fail_ct(&p, c, n + 1, RC_E_AUTH, 0);
    expect_fail_ct(&p, c, n + 100, RC_E_AUTH, 0);
    free(c);
    mbuf_free(&p.ct);

    /* Single chunk: appended bytes. */
    make_post(&p, 1000, 0);
    n = p.ct.len;
    c = malloc(n + 100);
    assert_non_null(c);
    memcpy(c, p.ct.p, n);
    randombytes_buf(c + n, 100);
    expect_fail_ct(&p, c, n + 1, RC_E_AUTH, 1);
    expect_fail_ct(&p, c, n + 17, RC_E_AUTH, 1);
    expect_fail_ct(&p, c, n + 100, RC_E_AUTH, 1);
    /* A copy of the whole stream after itself. */
    free(c);
    c = malloc(2 * n);
    assert_non_null(c);
    memcpy(c, p.ct.p, n);
    memcpy(c + n, p.ct.p + RC_STREAM_HEADER_BYTES, n - RC_STREAM_HEADER_BYTES);
    expect_fail_ct(&p, c, 2 * n - RC_STREAM_HEADER_BYTES, RC_E_AUTH, 1);
    free(c);
    mbuf_free(&p.ct);

    /* A single final chunk of full size (65500 bytes of inner, + 3 of
     * trailer, pad to exactly 65536): data after it is caught when the chunk is pulled as a
     * non-final one; the library reports that as RC_E_FORMAT ("data follows
     * the final chunk"). */
    make_post(&p, 65500, 0);
    n = p.ct.len;
    assert_int_equal(n, RC_STREAM_HEADER_BYTES + CT_BYTES);
    c = malloc(n + 10);
    assert_non_null(c);
    memcpy(c, p.ct.p, n);
    memset(c + n, 'x', 10);
    expect_fail_ct(&p, c, n + 1, RC_E_FORMAT, 1);
    expect_fail_ct(&p, c, n + 10, RC_E_FORMAT, 1);
    free(c);
    mbuf_free(&p.ct);
}

static void test_bad_E(void **state)
{
    (void)state;
    post p;
    mbuf pt = {0};
    make_post(&p, 1000, 0);
    rc_envelope env = p.env;
    memset(env.E, 0, 32); /* identity */
    assert_int_equal(open_with_env(&p, &env, &pt), RC_E_CRYPTO);
    /* Non-canonical field encodings: p, p + 1, and RFC 9496's ff..7f. */
    env = p.env;
    memset(env.E, 0xff, 32);
    env.E[31] = 0x7f;
    env.E[0] = 0xed;
    assert_int_equal(open_with_env(&p, &env, &pt), RC_E_CRYPTO);
    env.E[0] = 0xee;
    assert_int_equal(open_with_env(&p, &env, &pt), RC_E_CRYPTO);
    env.E[0] = 0xff;
    assert_int_equal(open_with_env(&p, &env, &pt), RC_E_CRYPTO);
    /* E with bit 255 set. */
    env = p.env;
    env.E[31] |= 0x80;
    assert_int_equal(open_with_env(&p, &env, &pt), RC_E_CRYPTO);
    /* Another valid E. */
    env = p.env;
    crypto_core_ristretto255_random(env.E);
    assert_int_equal(open_with_env(&p, &env, &pt), RC_E_CRYPTO);
    assert_int_equal(pt.len, 0);
    mbuf_free(&p.ct);
}

/* The proof binds Date and Message-ID. */
static void test_proof_date_msgid(void **state)
{
    (void)state;
    post p;
    mbuf pt = {0};
    rc_open_result res;
    rc_error err;
    make_post(&p, 1000, 0);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE + 1, MID, p.ct.p,
                              p.ct.len, p.ct.len, &pt, &res, &err),
                     RC_E_CRYPTO);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE - 86400, MID,
                              p.ct.p, p.ct.len, p.ct.len, &pt, &res, &err),
                     RC_E_CRYPTO);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE, MID "x", p.ct.p,
                              p.ct.len, p.ct.len, &pt, &res, &err),
                     RC_E_CRYPTO);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE, "", p.ct.p,
                              p.ct.len, p.ct.len, &pt, &res, &err),
                     RC_E_CRYPTO);
    assert_int_equal(rc_proof_verify(&p.env, W.st.A, DATE, MID, &err), RC_OK);
    assert_int_equal(rc_proof_verify(&p.env, W.st.A, DATE, "20231114.abcdeF@example.org", &err),
                     RC_E_CRYPTO);
    assert_int_equal(rc_proof_verify(&p.env, W.st6.A, DATE, MID, &err), RC_E_CRYPTO);
    assert_int_equal(pt.len, 0);
    mbuf_free(&p.ct);
}

/* A forged stanza: R changed (key commitment mismatch), R the identity. */
static void test_forged_stanza(void **state)
{
    (void)state;
    post p;
    mbuf pt = {0};
    rc_open_result res;
    rc_error err;
    uint8_t one[32] = {1}, G[32];
    make_post(&p, 1000, 0);
    assert_int_equal(crypto_scalarmult_ristretto255_base(G, one), 0);
    rc_stanza *s = &p.stz[ALICE];
    uint8_t R[32];
    memcpy(R, s->R, 32);
    assert_int_equal(crypto_core_ristretto255_add(s->R, R, G), 0);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                              p.ct.len, p.ct.len, &pt, &res, &err),
                     RC_E_AUTH);
    crypto_core_ristretto255_random(s->R);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                              p.ct.len, p.ct.len, &pt, &res, &err),
                     RC_E_AUTH);
    memset(s->R, 0, 32);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                              p.ct.len, p.ct.len, &pt, &res, &err),
                     RC_E_AUTH);
    /* Another device's R with this device's W. */
    memcpy(s->R, p.stz[CAROL].R, 32);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                              p.ct.len, p.ct.len, &pt, &res, &err),
                     RC_E_AUTH);
    assert_int_equal(pt.len, 0);
    /* Others are unaffected. */
    assert_int_equal(open_msg(W.dev[BOB2], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                              p.ct.len, p.ct.len, &pt, &res, &err),
                     RC_OK);
    assert_int_equal(pt.len, 1000);
    sodium_memzero(&res, sizeof res);
    mbuf_free(&pt);
    /* Back to the right R: opens. */
    memcpy(s->R, R, 32);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                              p.ct.len, p.ct.len, &pt, &res, &err),
                     RC_OK);
    sodium_memzero(&res, sizeof res);
    mbuf_free(&pt);
    mbuf_free(&p.ct);
}

/* ---------------------------------------------------------------- signatures */

typedef enum { SIG_OK, SIG_CERT_EPOCH6, SIG_TAMPERED, SIG_CERT_OTHER_KEY, SIG_WRONG_DEVICE_KEY,
               SIG_CERT_TAMPERED } sig_case;

/* A hand-built signed post by Alice (1000 bytes) in one chunk. */
static void bad_sig_post(post *p, sig_case c)
{
    uint8_t tr[1 + 64 + 2 + RC_CERT_MAX];
    rc_cert cert = W.cert_alice;
    const uint8_t *sk = W.dev[ALICE]->sign_sk;
    memset(p, 0, sizeof *p);
    det_envelope(&p->env, &W.st);
    if (c == SIG_CERT_EPOCH6) /* same list signing key, epoch 6 */
        assert_int_equal(rc_cert_sign(&cert, W.ls6, "alice@example.org",
                                      W.dev[ALICE]->pub.sign_pk, NULL),
                         RC_OK);
    if (c == SIG_CERT_OTHER_KEY) /* a certificate by another list's key */
        assert_int_equal(rc_cert_sign(&cert, W.ols, "alice@example.org",
                                      W.dev[ALICE]->pub.sign_pk, NULL),
                         RC_OK);
    if (c == SIG_WRONG_DEVICE_KEY) /* signed by Bob's device under Alice's cert */
        sk = W.dev[BOB1]->sign_sk;
    size_t tl = signed_trailer(tr, &p->env, W.big, 1000, sk, &cert);
    if (c == SIG_TAMPERED)
        tr[1 + 20] ^= 0x10;
    if (c == SIG_CERT_TAMPERED)
        tr[tl - 1] ^= 0x01;
    if (c == SIG_CERT_OTHER_KEY) /* keep the list id of this list */
        assert_int_equal(rc_list_id(cert.list_id, "team@example.org", NULL), RC_OK);
    raw_seal(&p->ct, &p->env, &W.st, W.big, 1000, tr, tl);
    recrypt(p->stz, &p->env, W.e, N_DEV, 0);
}

static void test_bad_signature_codes(void **state)
{
    (void)state;
    static const struct {
        sig_case c;
        int want;
    } cases[] = {{SIG_OK, RC_OK},
                 {SIG_CERT_EPOCH6, RC_E_SIGNATURE},
                 {SIG_TAMPERED, RC_E_SIGNATURE},
                 {SIG_CERT_OTHER_KEY, RC_E_SIGNATURE},
                 {SIG_WRONG_DEVICE_KEY, RC_E_SIGNATURE},
                 {SIG_CERT_TAMPERED, RC_E_SIGNATURE}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        post p;
        mbuf pt = {0};
        rc_open_result res;
        rc_error err;
        bad_sig_post(&p, cases[i].c);
        int got = open_msg(W.dev[CAROL], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                           p.ct.len, 555, &pt, &res, &err);
        if (got != cases[i].want)
            fail_msg("case %zu: got %d (%s), expected %d", i, got, err.msg, cases[i].want);
        if (cases[i].want == RC_OK) {
            assert_int_equal(res.is_signed, 1);
            assert_memory_equal(&res.cert, &W.cert_alice, sizeof res.cert);
            assert_int_equal(pt.len, 1000);
            assert_memory_equal(pt.p, W.big, 1000);
        }
        sodium_memzero(&res, sizeof res);
        mbuf_free(&pt);
        mbuf_free(&p.ct);
    }
}

/*
 * LIBRARY BUG (this test fails until it is fixed): for a single-chunk post
 * whose signature or certificate is bad, the opener has already handed the
 * whole plaintext to the sink when final() returns RC_E_SIGNATURE.
 * src/lib/stream.c, pull_chunk(), is_last branch: release(o, o->area,
 * inner_end, ...) runs before rc_cert_from_bytes / rc_cert_verify / the
 * epoch check / crypto_sign_final_verify. Fix: in that branch first
 * crypto_sign_update(&o->sig, o->area, inner_end) and check the trailer,
 * certificate and signature, and only then pass o->area[0..inner_end) to
 * the sink (without hashing it a second time).
 */
static void test_bad_signature_releases_nothing(void **state)
{
    (void)state;
    static const sig_case cases[] = {SIG_CERT_EPOCH6, SIG_TAMPERED, SIG_CERT_OTHER_KEY,
                                     SIG_WRONG_DEVICE_KEY, SIG_CERT_TAMPERED};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        post p;
        mbuf pt = {0};
        rc_open_result res;
        rc_error err;
        bad_sig_post(&p, cases[i]);
        assert_int_equal(open_msg(W.dev[CAROL], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                                  p.ct.len, p.ct.len, &pt, &res, &err),
                         RC_E_SIGNATURE);
        size_t leaked = pt.len;
        mbuf_free(&pt);
        mbuf_free(&p.ct);
        if (leaked)
            fail_msg("case %zu: %zu plaintext bytes reached the sink before RC_E_SIGNATURE", i,
                     leaked);
    }
}

/* ---------------------------------------------------------------- issue 13: the opener's contract */

/* FORMAT §7.5: "no plaintext byte reaches the caller before the FINAL
 * chunk has authenticated and the trailer, certificate and signature have
 * verified". A post of five chunks whose last chunk is tampered (or
 * missing) releases 0 bytes, where 0.2.0 released 192 KiB. */
static int sink_must_not_be_called(void *ctx, const uint8_t *b, size_t n)
{
    (void)ctx;
    (void)b;
    fail_msg("update() handed %zu bytes to the sink", n);
    return 1;
}

static void test_tampered_last_chunk_releases_nothing(void **state)
{
    (void)state;
    post p;
    size_t n = 4 * RC_CHUNK_BYTES + 1000;
    make_post(&p, n, 1);
    assert_int_equal(p.ct.len, RC_STREAM_HEADER_BYTES + 5 * CT_BYTES - (RC_CHUNK_BYTES - 1536));
    uint8_t *c = malloc(p.ct.len);
    assert_non_null(c);
    size_t last = RC_STREAM_HEADER_BYTES + 4 * CT_BYTES;
    size_t pos[] = {last, last + 700, p.ct.len - 1};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
        memcpy(c, p.ct.p, p.ct.len);
        c[pos[i]] ^= 0x40;
        expect_fail_ct(&p, c, p.ct.len, RC_E_AUTH, 0);
    }
    /* The last chunk dropped, or its last byte. */
    expect_fail_ct(&p, p.ct.p, last, RC_E_AUTH, 0);
    expect_fail_ct(&p, p.ct.p, p.ct.len - 1, RC_E_AUTH, 0);
    /* Untouched: update() never calls the sink, final() hands over all. */
    rc_opener *o = NULL;
    rc_error err;
    mbuf pt = {0};
    rc_open_result res;
    assert_int_equal(rc_opener_new(&o, &p.env, &W.st, W.dev[CAROL], p.stz, N_DEV, DATE, MID,
                                   &err),
                     RC_OK);
    assert_int_equal(rc_opener_update(o, p.ct.p, p.ct.len, sink_must_not_be_called, NULL, &err),
                     RC_OK);
    assert_int_equal(rc_opener_final(o, sink_mem, &pt, &res, &err), RC_OK);
    rc_opener_free(o);
    assert_int_equal(pt.len, n);
    assert_memory_equal(pt.p, W.big, n);
    assert_int_equal(res.is_signed, 1);
    sodium_memzero(&res, sizeof res);
    mbuf_free(&pt);
    free(c);
    mbuf_free(&p.ct);
}

/* The stage: no memory file for a post of one or two chunks (nothing is
 * staged); one for a longer one; without memory files, the heap, with the
 * same contract. */
static void test_stage_kinds(void **state)
{
    (void)state;
    static const size_t sizes[] = {1000, 65536, 4 * RC_CHUNK_BYTES + 1000};
    for (int off = 0; off <= 1; off++) {
        memfd_off = off;
        for (size_t i = 0; i < 3; i++) {
            post p;
            mbuf pt = {0};
            rc_open_result res;
            rc_error err;
            make_post(&p, sizes[i], 0);
            memfd_calls = 0;
            assert_int_equal(open_msg(W.dev[BOB2], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                                      p.ct.len, 10000, &pt, &res, &err),
                             RC_OK);
            assert_int_equal(pt.len, sizes[i]);
            assert_memory_equal(pt.p, W.big, sizes[i]);
            assert_int_equal(memfd_calls, i == 2 ? 1 : 0);
            sodium_memzero(&res, sizeof res);
            mbuf_free(&pt);
            /* Tampered last chunk: nothing out, either stage. */
            p.ct.p[p.ct.len - 5] ^= 1;
            expect_fail_ct(&p, p.ct.p, p.ct.len, RC_E_AUTH, 0);
            mbuf_free(&p.ct);
        }
    }
    memfd_off = 0;
}

/* Stream of explicit chunks: P' (already padded) cut at `cuts` (each chunk
 * end), the last one tagged FINAL. */
static void raw_chunks(mbuf *out, rc_envelope *env, const uint8_t *P, const size_t *ends,
                       size_t n_chunks_)
{
    uint8_t S[32], K[32], KC[32], ad[16 + RC_ENVELOPE_BYTES];
    det_envelope(env, &W.st);
    assert_int_equal(crypto_scalarmult_ristretto255(S, T_SCALAR, W.st.A), 0);
    rc_derive_content_key(K, KC, env->list_id, env->epoch, W.st.A, env->E, S);
    rc_label(ad, RC_L_HEADER);
    assert_int_equal(rc_envelope_to_bytes(ad + 16, env), 0);
    crypto_secretstream_xchacha20poly1305_state ss;
    assert_int_equal(crypto_secretstream_xchacha20poly1305_init_pull(&ss, SS_HEADER, K), 0);
    assert_int_equal(sink_mem(out, SS_HEADER, sizeof SS_HEADER), 0);
    uint8_t *c = malloc(CT_BYTES);
    assert_non_null(c);
    size_t off = 0;
    for (size_t i = 0; i < n_chunks_; i++) {
        unsigned long long clen = 0;
        crypto_secretstream_xchacha20poly1305_push(
            &ss, c, &clen, P + off, ends[i] - off, i == 0 ? ad : NULL, i == 0 ? sizeof ad : 0,
            i + 1 == n_chunks_ ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                               : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
        assert_int_equal(sink_mem(out, c, (size_t)clen), 0);
        off = ends[i];
    }
    free(c);
    sodium_memzero(K, 32);
}

/* FORMAT §7.5: "every chunk but the last holds exactly 65536 plaintext
 * bytes and has tag MESSAGE (0); the last holds 1..65536 bytes and has tag
 * FINAL (3)". An empty FINAL chunk after a full MESSAGE chunk that holds
 * the whole padded stream is refused (0.2.0 opened it). */
static void test_empty_final_chunk(void **state)
{
    (void)state;
    size_t n = 65100, un = n + 3, padded = 0;
    uint8_t *P = malloc(RC_CHUNK_BYTES + RC_PAD_BLOCK);
    assert_non_null(P);
    memcpy(P, W.big, n);
    P[n] = 0; /* unsigned trailer */
    rc_be16_put(P + n + 1, 1);
    assert_int_equal(sodium_pad(&padded, P, un, RC_PAD_BLOCK, RC_CHUNK_BYTES + RC_PAD_BLOCK), 0);
    assert_int_equal(padded, RC_CHUNK_BYTES);
    post p;
    memset(&p, 0, sizeof p);
    /* The same bytes as one FINAL chunk of 65536 bytes: it opens. */
    size_t one[] = {RC_CHUNK_BYTES};
    raw_chunks(&p.ct, &p.env, P, one, 1);
    recrypt(p.stz, &p.env, W.e, N_DEV, 0);
    mbuf pt = {0};
    rc_open_result res;
    rc_error err;
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                              p.ct.len, 4096, &pt, &res, &err),
                     RC_OK);
    assert_int_equal(pt.len, n);
    mbuf_free(&pt);
    mbuf_free(&p.ct);
    /* A full MESSAGE chunk, then an empty FINAL one. */
    size_t two[] = {RC_CHUNK_BYTES, RC_CHUNK_BYTES};
    raw_chunks(&p.ct, &p.env, P, two, 2);
    recrypt(p.stz, &p.env, W.e, N_DEV, 0);
    assert_int_equal(p.ct.len, RC_STREAM_HEADER_BYTES + CT_BYTES + RC_CHUNK_OVERHEAD);
    expect_fail_ct(&p, p.ct.p, p.ct.len, RC_E_FORMAT, 0);
    assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                              p.ct.len, p.ct.len, &pt, &res, &err),
                     RC_E_FORMAT);
    assert_non_null(strstr(err.msg, "final chunk is empty"));
    mbuf_free(&p.ct);
    free(P);
}

/* Re-seal Alice's W after `edit` changed its plaintext. */
static void reseal_W(rc_stanza *s, void (*edit)(uint8_t *plain, size_t len))
{
    uint8_t plain[RC_WRAP_MAX];
    size_t plen = s->W_len - crypto_box_SEALBYTES;
    assert_int_equal(crypto_box_seal_open(plain, s->W, s->W_len, W.dev[ALICE]->pub.wrap_pk,
                                          W.dev[ALICE]->wrap_sk),
                     0);
    edit(plain, plen);
    assert_int_equal(crypto_box_seal(s->W, plain, plen, W.dev[ALICE]->pub.wrap_pk), 0);
    sodium_memzero(plain, sizeof plain);
}

static void edit_cert_signature(uint8_t *plain, size_t len)
{
    plain[len - 1] ^= 0x01; /* the certificate is last; its signature ends it */
}

static void edit_label(uint8_t *plain, size_t len)
{
    (void)len;
    plain[0] ^= 0x01; /* "recrypt/wrap" becomes something else */
}

static void edit_nothing(uint8_t *plain, size_t len)
{
    (void)plain;
    (void)len;
}

/* FORMAT §8: "the first stanza whose W opens with its key and passes every
 * check of rc_wrap_open (§6), names the statement's list id, epoch and A,
 * carries a membership certificate that verifies with the statement's
 * signer_pk, ... A W "opened" when crypto_box_seal_open succeeded with the
 * device's key, whatever fails after that. If some W opened but none
 * passed: RC_E_AUTH ...; if none opened: RC_E_NOT_FOR_US". 0.2.0 opened a
 * stanza whose certificate signature was bad, and answered RC_E_NOT_FOR_US
 * (exit 67) for a W that opened but was malformed. */
static void test_W_that_opens_but_fails(void **state)
{
    (void)state;
    static void (*const edits[])(uint8_t *, size_t) = {edit_cert_signature, edit_label};
    static const char *const why[] = {"certificate inside it does not verify",
                                      "contents are malformed"};
    for (size_t i = 0; i < 2; i++) {
        post p;
        mbuf pt = {0};
        rc_open_result res;
        rc_error err;
        make_post(&p, 1000, 0);
        reseal_W(&p.stz[ALICE], edit_nothing); /* re-sealed unchanged: still opens */
        assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                                  p.ct.len, p.ct.len, &pt, &res, &err),
                         RC_OK);
        mbuf_free(&pt);
        reseal_W(&p.stz[ALICE], edits[i]);
        assert_int_equal(open_msg(W.dev[ALICE], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                                  p.ct.len, p.ct.len, &pt, &res, &err),
                         RC_E_AUTH);
        if (!strstr(err.msg, why[i]))
            fail_msg("case %zu: message '%s' lacks '%s'", i, err.msg, why[i]);
        assert_int_equal(pt.len, 0);
        /* Another device's stanzas are unaffected. */
        assert_int_equal(open_msg(W.dev[CAROL], &W.st, &p.env, p.stz, N_DEV, DATE, MID, p.ct.p,
                                  p.ct.len, p.ct.len, &pt, &res, &err),
                         RC_OK);
        sodium_memzero(&res, sizeof res);
        mbuf_free(&pt);
        mbuf_free(&p.ct);
    }
}

/* ---------------------------------------------------------------- API misuse and sinks */

static void test_sealer_arguments(void **state)
{
    (void)state;
    rc_sealer *s = (rc_sealer *)(uintptr_t)1;
    rc_envelope env;
    rc_error err;
    rc_cert c;
    assert_int_equal(rc_sealer_new(&s, &env, &W.st, DATE, MID, W.dev[ALICE], NULL, &err),
                     RC_E_INVALID);
    assert_null(s);
    assert_int_equal(rc_sealer_new(&s, &env, &W.st, DATE, MID, NULL, &W.cert_alice, &err),
                     RC_E_INVALID);
    /* Certificate of another device, epoch, or list. */
    assert_int_equal(rc_sealer_new(&s, &env, &W.st, DATE, MID, W.dev[BOB1], &W.cert_alice, &err),
                     RC_E_INVALID);
    assert_int_equal(rc_cert_sign(&c, W.ls6, "alice@example.org", W.dev[ALICE]->pub.sign_pk,
                                  NULL),
                     RC_OK);
    assert_int_equal(rc_sealer_new(&s, &env, &W.st, DATE, MID, W.dev[ALICE], &c, &err),
                     RC_E_INVALID);
    assert_int_equal(rc_sealer_new(&s, &env, &W.ost, DATE, MID, W.dev[ALICE], &W.cert_alice,
                                   &err),
                     RC_E_INVALID);
    assert_null(s);
    /* Deterministic sealer: t = 0 refused. */
    uint8_t zero[32] = {0};
    assert_int_equal(rc_sealer_new_det(&s, &env, &W.st, DATE, MID, NULL, NULL, zero, U_SCALAR,
                                       SS_HEADER, &err),
                     RC_E_CRYPTO);
}

static void test_sink_failures(void **state)
{
    (void)state;
    rc_sealer *s = NULL;
    rc_envelope env;
    rc_error err;
    assert_int_equal(rc_sealer_new(&s, &env, &W.st, DATE, MID, NULL, NULL, &err), RC_OK);
    assert_int_equal(rc_sealer_update(s, W.big, 100, sink_fail, NULL, &err), RC_OK);
    assert_int_equal(rc_sealer_final(s, sink_fail, NULL, &err), RC_E_IO);
    rc_sealer_free(s);

    post p;
    make_post(&p, 1000, 0);
    rc_opener *o = NULL;
    assert_int_equal(rc_opener_new(&o, &p.env, &W.st, W.dev[ALICE], p.stz, N_DEV, DATE, MID,
                                   &err),
                     RC_OK);
    assert_int_equal(rc_opener_update(o, p.ct.p, p.ct.len, sink_fail, NULL, &err), RC_OK);
    assert_int_equal(rc_opener_final(o, sink_fail, NULL, NULL, &err), RC_E_IO);
    rc_opener_free(o);
    /* final twice; data after final. */
    mbuf pt = {0};
    assert_int_equal(rc_opener_new(&o, &p.env, &W.st, W.dev[ALICE], p.stz, N_DEV, DATE, MID,
                                   &err),
                     RC_OK);
    assert_int_equal(rc_opener_update(o, p.ct.p, p.ct.len, sink_mem, &pt, &err), RC_OK);
    assert_int_equal(rc_opener_final(o, sink_mem, &pt, NULL, &err), RC_OK);
    assert_int_equal(pt.len, 1000);
    assert_int_equal(rc_opener_final(o, sink_mem, &pt, NULL, &err), RC_E_FORMAT);
    assert_int_equal(rc_opener_update(o, p.ct.p, 1, sink_mem, &pt, &err), RC_E_FORMAT);
    assert_int_equal(pt.len, 1000);
    rc_opener_free(o);
    mbuf_free(&pt);
    mbuf_free(&p.ct);
}

/* Two seals of the same message differ (fresh t, u and stream header). */
static void test_fresh_randomness(void **state)
{
    (void)state;
    mbuf a = {0}, b = {0};
    rc_envelope ea, eb;
    seal(&a, &ea, &W.st, NULL, NULL, W.big, 100, 100);
    seal(&b, &eb, &W.st, NULL, NULL, W.big, 100, 100);
    assert_memory_not_equal(ea.E, eb.E, 32);
    assert_memory_not_equal(ea.U, eb.U, 32);
    assert_memory_not_equal(ea.KC, eb.KC, 32);
    assert_memory_not_equal(a.p, b.p, RC_STREAM_HEADER_BYTES);
    mbuf_free(&a);
    mbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_sealer_matches_library),
        cmocka_unit_test(test_roundtrip_small),
        cmocka_unit_test(test_roundtrip_chunk_boundaries),
        cmocka_unit_test(test_roundtrip_tiny_pieces),
        cmocka_unit_test(test_roundtrip_10mib),
        cmocka_unit_test(test_signed_with_cert_from_W),
        cmocka_unit_test(test_not_enrolled),
        cmocka_unit_test(test_stanza_other_list_or_epoch),
        cmocka_unit_test(test_flipped_bit),
        cmocka_unit_test(test_envelope_changes),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_reorder_and_append),
        cmocka_unit_test(test_bad_E),
        cmocka_unit_test(test_proof_date_msgid),
        cmocka_unit_test(test_forged_stanza),
        cmocka_unit_test(test_bad_signature_codes),
        cmocka_unit_test(test_bad_signature_releases_nothing),
        cmocka_unit_test(test_sealer_arguments),
        cmocka_unit_test(test_sink_failures),
        cmocka_unit_test(test_tampered_last_chunk_releases_nothing),
        cmocka_unit_test(test_stage_kinds),
        cmocka_unit_test(test_empty_final_chunk),
        cmocka_unit_test(test_W_that_opens_but_fails),
        cmocka_unit_test(test_fresh_randomness),
    };
    if (rc_init(NULL) != 0)
        return 1;
    return cmocka_run_group_tests(tests, setup, teardown);
}
