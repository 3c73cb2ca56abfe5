/*
 * test_list.c - what a list owner signs and hands out: list key statements
 * (signature, encodings, the client's trust decision), membership
 * certificates, device entries (r, K, W) and the device opening W,
 * including hand-built W with bad contents.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "internal.h"
#include "test_util.h"

typedef struct {
    rc_list_secret *ls;    /* list@example.org, epoch 3 */
    rc_list_secret *other; /* another list signing key, same address and epoch */
    rc_device_secret *dev, *dev2;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->ls = rc_secret_alloc(sizeof *f->ls);
    f->other = rc_secret_alloc(sizeof *f->other);
    f->dev = rc_secret_alloc(sizeof *f->dev);
    f->dev2 = rc_secret_alloc(sizeof *f->dev2);
    if (!f->ls || !f->other || !f->dev || !f->dev2 ||
        rc_list_generate(f->ls, "List@Example.org", 3, NULL, NULL) != 0 ||
        rc_list_generate(f->other, "list@example.org", 3, NULL, NULL) != 0 ||
        rc_device_generate(f->dev, NULL) != 0 || rc_device_generate(f->dev2, NULL) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    rc_secret_free(f->ls);
    rc_secret_free(f->other);
    rc_secret_free(f->dev);
    rc_secret_free(f->dev2);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------- statements */

static void test_statement_roundtrip(void **state)
{
    fixture *f = *state;
    rc_statement st, st2;
    rc_error err;
    uint8_t b[RC_STATEMENT_MAX];
    size_t len = 0;
    char s[RC_KEYSTR_MAX];

    assert_int_equal(rc_statement_sign(&st, f->ls, 1000, 2000, &err), RC_OK);
    assert_int_equal(st.version, RC_FORMAT_VERSION);
    assert_string_equal(st.address, "list@example.org");
    assert_int_equal(st.epoch, 3);
    assert_memory_equal(st.A, f->ls->A, 32);
    assert_int_equal(st.not_before, 1000);
    assert_int_equal(st.not_after, 2000);
    assert_memory_equal(st.signer_pk, f->ls->sign_pk, 32);
    assert_int_equal(rc_statement_verify(&st, &err), RC_OK);

    assert_int_equal(rc_statement_to_bytes(b, sizeof b, &len, &st, &err), RC_OK);
    /* version, str8 address, epoch, A, not_before, not_after, signer, sig */
    assert_int_equal(len, 1 + 1 + strlen("list@example.org") + 8 + 32 + 8 + 8 + 32 + 64);
    assert_int_equal(rc_statement_from_bytes(&st2, b, len, &err), RC_OK);
    assert_memory_equal(&st2, &st, sizeof st);

    assert_int_equal(rc_statement_encode(s, sizeof s, &st, &err), RC_OK);
    assert_memory_equal(s, "recrypt1.listkey.", 17);
    memset(&st2, 0, sizeof st2);
    assert_int_equal(rc_statement_decode(&st2, s, &err), RC_OK);
    assert_memory_equal(&st2, &st, sizeof st);

    /* Too small a buffer. */
    ASSERT_REFUSED(rc_statement_to_bytes(b, 50, &len, &st, &err), RC_E_INVALID, &err);
    /* Expiry before validity. */
    ASSERT_REFUSED(rc_statement_sign(&st2, f->ls, 2000, 2000, &err), RC_E_INVALID, &err);
    ASSERT_REFUSED(rc_statement_sign(&st2, f->ls, 2000, 1999, &err), RC_E_INVALID, &err);
    /* No expiry. */
    assert_int_equal(rc_statement_sign(&st2, f->ls, 2000, 0, &err), RC_OK);
    assert_int_equal(rc_statement_verify(&st2, &err), RC_OK);
}

static void test_statement_tampering(void **state)
{
    fixture *f = *state;
    rc_statement st, t;
    rc_error err;
    char s[RC_KEYSTR_MAX];
    assert_int_equal(rc_statement_sign(&st, f->ls, 1000, 0, &err), RC_OK);

    /* One flipped signature bit, at several places. */
    for (int bit = 0; bit < 512; bit += 37) {
        t = st;
        t.sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        ASSERT_REFUSED(rc_statement_verify(&t, &err), RC_E_SIGNATURE, &err);
        /* Through the string form too (the checksum is recomputed). */
        assert_int_equal(rc_statement_encode(s, sizeof s, &t, &err), RC_OK);
        ASSERT_REFUSED(rc_statement_decode(&t, s, &err), RC_E_SIGNATURE, &err);
    }
    /* Signed by another key but claiming the original signer. */
    assert_int_equal(rc_statement_sign(&t, f->other, 1000, 0, &err), RC_OK);
    assert_int_equal(rc_statement_verify(&t, &err), RC_OK);
    memcpy(t.A, f->ls->A, 32); /* the real A; signature now over other fields */
    ASSERT_REFUSED(rc_statement_verify(&t, &err), RC_E_SIGNATURE, &err);
    assert_int_equal(rc_statement_sign(&t, f->other, 1000, 0, &err), RC_OK);
    memcpy(t.signer_pk, f->ls->sign_pk, 32);
    ASSERT_REFUSED(rc_statement_verify(&t, &err), RC_E_SIGNATURE, &err);
    assert_int_equal(rc_statement_encode(s, sizeof s, &t, &err), RC_OK);
    ASSERT_REFUSED(rc_statement_decode(&t, s, &err), RC_E_SIGNATURE, &err);

    /* Every signed field is covered. */
    t = st;
    t.epoch++;
    ASSERT_REFUSED(rc_statement_verify(&t, &err), RC_E_SIGNATURE, &err);
    t = st;
    memcpy(t.A, f->other->A, 32);
    ASSERT_REFUSED(rc_statement_verify(&t, &err), RC_E_SIGNATURE, &err);
    t = st;
    t.not_before--;
    ASSERT_REFUSED(rc_statement_verify(&t, &err), RC_E_SIGNATURE, &err);
    t = st;
    t.not_after = 5000;
    ASSERT_REFUSED(rc_statement_verify(&t, &err), RC_E_SIGNATURE, &err);
    t = st;
    strcpy(t.address, "lisu@example.org");
    ASSERT_REFUSED(rc_statement_verify(&t, &err), RC_E_SIGNATURE, &err);
    t = st;
    t.version = 2;
    ASSERT_REFUSED(rc_statement_verify(&t, &err), RC_E_SIGNATURE, &err);
}

static void test_statement_bad_bytes(void **state)
{
    fixture *f = *state;
    rc_statement st, t;
    rc_error err;
    uint8_t b[RC_STATEMENT_MAX + 1];
    size_t len;
    assert_int_equal(rc_statement_sign(&st, f->ls, 1000, 0, &err), RC_OK);
    assert_int_equal(rc_statement_to_bytes(b, sizeof b, &len, &st, &err), RC_OK);

    b[0] = 3; /* versions 1 and 2 are read */
    ASSERT_REFUSED(rc_statement_from_bytes(&t, b, len, &err), RC_E_VERSION, &err);
    b[0] = 1;
    for (size_t cut = 1; cut <= len; cut += 13)
        ASSERT_REFUSED(rc_statement_from_bytes(&t, b, len - cut, &err), RC_E_FORMAT, &err);
    b[len] = 0;
    ASSERT_REFUSED(rc_statement_from_bytes(&t, b, len + 1, &err), RC_E_FORMAT, &err);
    /* A non-canonical (upper-case) address. */
    b[2] = 'L';
    ASSERT_REFUSED(rc_statement_from_bytes(&t, b, len, &err), RC_E_FORMAT, &err);
    b[2] = 'l';
    /* A = identity. */
    size_t a_off = 1 + 1 + strlen(st.address) + 8;
    memset(b + a_off, 0, 32);
    ASSERT_REFUSED(rc_statement_from_bytes(&t, b, len, &err), RC_E_CRYPTO, &err);
    memcpy(b + a_off, st.A, 32);
    assert_int_equal(rc_statement_from_bytes(&t, b, len, &err), RC_OK);
}

static void test_statement_accept(void **state)
{
    fixture *f = *state;
    rc_statement st, other;
    rc_pin pin;
    rc_error err;
    assert_int_equal(rc_statement_sign(&st, f->ls, 1000, 2000, &err), RC_OK);
    assert_int_equal(rc_statement_sign(&other, f->other, 1000, 2000, &err), RC_OK);

    /* First use: trusted. */
    assert_int_equal(rc_statement_accept(&st, NULL, NULL, 0, 1500, &err), RC_OK);
    /* Pinned, same signer, same epoch. */
    memcpy(pin.signer_pk, f->ls->sign_pk, 32);
    pin.highest_epoch = 3;
    assert_int_equal(rc_statement_accept(&st, &pin, NULL, 0, 1500, &err), RC_OK);
    /* Pinned other signer. */
    ASSERT_REFUSED(rc_statement_accept(&other, &pin, NULL, 0, 1500, &err), RC_E_POLICY, &err);
    ASSERT_REFUSED(rc_statement_accept(&other, &pin, NULL, 1, 1500, &err), RC_E_POLICY, &err);
    /* --signer given. */
    assert_int_equal(rc_statement_accept(&st, NULL, f->ls->sign_pk, 0, 1500, &err), RC_OK);
    ASSERT_REFUSED(rc_statement_accept(&other, NULL, f->ls->sign_pk, 0, 1500, &err),
                   RC_E_POLICY, &err);
    ASSERT_REFUSED(rc_statement_accept(&st, NULL, f->other->sign_pk, 0, 1500, &err),
                   RC_E_POLICY, &err);
    ASSERT_REFUSED(rc_statement_accept(&st, &pin, f->other->sign_pk, 0, 1500, &err),
                   RC_E_POLICY, &err);
    /* Older epoch than the highest seen: refused unless known. */
    pin.highest_epoch = 4;
    ASSERT_REFUSED(rc_statement_accept(&st, &pin, NULL, 0, 1500, &err), RC_E_POLICY, &err);
    assert_int_equal(rc_statement_accept(&st, &pin, NULL, 1, 1500, &err), RC_OK);
    pin.highest_epoch = 2; /* a newer epoch is fine */
    assert_int_equal(rc_statement_accept(&st, &pin, NULL, 0, 1500, &err), RC_OK);
    /* Validity window [1000, 2000]. */
    ASSERT_REFUSED(rc_statement_accept(&st, NULL, NULL, 0, 999, &err), RC_E_POLICY, &err);
    ASSERT_REFUSED(rc_statement_accept(&st, NULL, NULL, 1, 0, &err), RC_E_POLICY, &err);
    assert_int_equal(rc_statement_accept(&st, NULL, NULL, 0, 1000, &err), RC_OK);
    assert_int_equal(rc_statement_accept(&st, NULL, NULL, 0, 2000, &err), RC_OK);
    ASSERT_REFUSED(rc_statement_accept(&st, NULL, NULL, 0, 2001, &err), RC_E_POLICY, &err);
    ASSERT_REFUSED(rc_statement_accept(&st, &pin, NULL, 1, 3000000000u, &err), RC_E_POLICY,
                   &err);
    /* No expiry. */
    assert_int_equal(rc_statement_sign(&st, f->ls, 1000, 0, &err), RC_OK);
    assert_int_equal(rc_statement_accept(&st, NULL, NULL, 0, UINT64_MAX, &err), RC_OK);
}

/* ---------------------------------------------------------------- certificates */

static void test_cert(void **state)
{
    fixture *f = *state;
    rc_cert c, t;
    rc_error err;
    uint8_t id[32], b[RC_CERT_MAX + 1];
    size_t len;
    assert_int_equal(rc_cert_sign(&c, f->ls, "Alice@Example.org", f->dev->pub.sign_pk, &err),
                     RC_OK);
    assert_int_equal(rc_list_id(id, "list@example.org", NULL), RC_OK);
    assert_int_equal(c.version, RC_FORMAT_VERSION);
    assert_memory_equal(c.list_id, id, 32);
    assert_int_equal(c.epoch, 3);
    assert_string_equal(c.address, "alice@example.org");
    assert_memory_equal(c.device_sign_pk, f->dev->pub.sign_pk, 32);
    assert_int_equal(rc_cert_verify(&c, f->ls->sign_pk, &err), RC_OK);
    ASSERT_REFUSED(rc_cert_verify(&c, f->other->sign_pk, &err), RC_E_SIGNATURE, &err);

    /* Tampering with any field. */
    t = c;
    t.sig[10] ^= 0x04;
    ASSERT_REFUSED(rc_cert_verify(&t, f->ls->sign_pk, &err), RC_E_SIGNATURE, &err);
    t = c;
    t.epoch = 4;
    ASSERT_REFUSED(rc_cert_verify(&t, f->ls->sign_pk, &err), RC_E_SIGNATURE, &err);
    t = c;
    t.list_id[31] ^= 1;
    ASSERT_REFUSED(rc_cert_verify(&t, f->ls->sign_pk, &err), RC_E_SIGNATURE, &err);
    t = c;
    strcpy(t.address, "mallory@example.org");
    ASSERT_REFUSED(rc_cert_verify(&t, f->ls->sign_pk, &err), RC_E_SIGNATURE, &err);
    t = c;
    memcpy(t.device_sign_pk, f->dev2->pub.sign_pk, 32);
    ASSERT_REFUSED(rc_cert_verify(&t, f->ls->sign_pk, &err), RC_E_SIGNATURE, &err);
    t = c;
    t.version = 2;
    ASSERT_REFUSED(rc_cert_verify(&t, f->ls->sign_pk, &err), RC_E_SIGNATURE, &err);

    /* Bytes. */
    assert_int_equal(rc_cert_to_bytes(b, sizeof b, &len, &c, &err), RC_OK);
    assert_int_equal(len, 1 + 32 + 8 + 1 + strlen("alice@example.org") + 32 + 64);
    memset(&t, 0xaa, sizeof t);
    assert_int_equal(rc_cert_from_bytes(&t, b, len, &err), RC_OK);
    assert_memory_equal(&t, &c, sizeof c);
    ASSERT_REFUSED(rc_cert_from_bytes(&t, b, len - 1, &err), RC_E_FORMAT, &err);
    b[len] = 0;
    ASSERT_REFUSED(rc_cert_from_bytes(&t, b, len + 1, &err), RC_E_FORMAT, &err);
    b[0] = 9;
    ASSERT_REFUSED(rc_cert_from_bytes(&t, b, len, &err), RC_E_VERSION, &err);
    b[0] = 1;
    b[1 + 32 + 8 + 1] = 'A'; /* upper-case address */
    ASSERT_REFUSED(rc_cert_from_bytes(&t, b, len, &err), RC_E_FORMAT, &err);
    ASSERT_REFUSED(rc_cert_to_bytes(b, 60, &len, &c, &err), RC_E_INVALID, &err);

    ASSERT_REFUSED(rc_cert_sign(&t, f->ls, "no address", f->dev->pub.sign_pk, &err),
                   RC_E_INVALID, &err);
}

/* ---------------------------------------------------------------- entries */

static void test_entry_create_check(void **state)
{
    fixture *f = *state;
    rc_device_entry *e = rc_secret_alloc(sizeof *e), *e2 = rc_secret_alloc(sizeof *e2);
    rc_share *sh = rc_secret_alloc(sizeof *sh);
    rc_error err;
    uint8_t sum[32], kG[32], rl[32], zero[32] = {0};

    assert_int_equal(rc_entry_create(e, f->ls, &f->dev->pub, "Alice@Example.org", 12345, &err),
                     RC_OK);
    assert_int_equal(e->enrolled_at, 12345);
    assert_true(rc_scalar_is_canonical_nonzero(e->r));
    assert_true(e->W_len > crypto_box_SEALBYTES && e->W_len <= RC_WRAP_MAX);
    assert_int_equal(rc_entry_check(e->r, e->K, f->ls->A, &err), RC_OK);

    /* The device recovers k with k + r = a and k·G = K. */
    assert_int_equal(rc_wrap_open(sh, f->dev, e->W, e->W_len, &err), RC_OK);
    crypto_core_ristretto255_scalar_add(sum, sh->k, e->r);
    assert_memory_equal(sum, f->ls->a, 32);
    assert_int_equal(crypto_scalarmult_ristretto255_base(kG, sh->k), 0);
    assert_memory_equal(kG, e->K, 32);

    /* A wrong K, a wrong A, a wrong r. */
    assert_int_equal(rc_entry_create(e2, f->ls, &f->dev2->pub, "bob@example.org", 1, &err),
                     RC_OK);
    assert_int_equal(rc_entry_check(e2->r, e2->K, f->ls->A, &err), RC_OK);
    ASSERT_REFUSED(rc_entry_check(e->r, e2->K, f->ls->A, &err), RC_E_CRYPTO, &err);
    ASSERT_REFUSED(rc_entry_check(e2->r, e->K, f->ls->A, &err), RC_E_CRYPTO, &err);
    ASSERT_REFUSED(rc_entry_check(e->r, e->K, f->other->A, &err), RC_E_CRYPTO, &err);
    ASSERT_REFUSED(rc_entry_check(e->r, zero, f->ls->A, &err), RC_E_CRYPTO, &err);
    ASSERT_REFUSED(rc_entry_check(zero, e->K, f->ls->A, &err), RC_E_CRYPTO, &err);
    add256(rl, e->r, L_BYTES); /* r + L ≡ r, but not canonical */
    ASSERT_REFUSED(rc_entry_check(rl, e->K, f->ls->A, &err), RC_E_CRYPTO, &err);
    /* K = A - r·G computed by hand passes: the check is exactly r·G + K == A. */
    uint8_t rG[32], K[32];
    assert_int_equal(crypto_scalarmult_ristretto255_base(rG, e2->r), 0);
    assert_int_equal(crypto_core_ristretto255_sub(K, f->ls->A, rG), 0);
    assert_memory_equal(K, e2->K, 32);

    /* Fresh k and r every time. */
    assert_int_equal(rc_entry_create(e2, f->ls, &f->dev->pub, "alice@example.org", 1, &err),
                     RC_OK);
    assert_memory_not_equal(e2->r, e->r, 32);
    assert_memory_not_equal(e2->K, e->K, 32);

    /* Deterministic variant: refuses k non-canonical, zero, or k = a (r = 0). */
    uint8_t k[32];
    ASSERT_REFUSED(rc_entry_create_det(e2, f->ls, &f->dev->pub, "a@example.org", 1, L_BYTES,
                                       &err),
                   RC_E_CRYPTO, &err);
    ASSERT_REFUSED(rc_entry_create_det(e2, f->ls, &f->dev->pub, "a@example.org", 1, zero,
                                       &err),
                   RC_E_CRYPTO, &err);
    ASSERT_REFUSED(rc_entry_create_det(e2, f->ls, &f->dev->pub, "a@example.org", 1, f->ls->a,
                                       &err),
                   RC_E_CRYPTO, &err);
    memset(k, 0, 32);
    k[0] = 7;
    assert_int_equal(
        rc_entry_create_det(e2, f->ls, &f->dev->pub, "a@example.org", 1, k, &err), RC_OK);
    assert_int_equal(rc_wrap_open(sh, f->dev, e2->W, e2->W_len, &err), RC_OK);
    assert_memory_equal(sh->k, k, 32);
    ASSERT_REFUSED(rc_entry_create(e2, f->ls, &f->dev->pub, "bad address", 1, &err),
                   RC_E_INVALID, &err);

    rc_secret_free(e);
    rc_secret_free(e2);
    rc_secret_free(sh);
}

static void test_wrap_open(void **state)
{
    fixture *f = *state;
    rc_device_entry *e = rc_secret_alloc(sizeof *e);
    rc_share *sh = rc_secret_alloc(sizeof *sh);
    rc_error err;
    rc_cert c;
    uint8_t id[32];
    assert_int_equal(rc_entry_create(e, f->ls, &f->dev->pub, "Alice@Example.org", 5, &err),
                     RC_OK);
    assert_int_equal(rc_wrap_open(sh, f->dev, e->W, e->W_len, &err), RC_OK);
    assert_int_equal(rc_list_id(id, "list@example.org", NULL), RC_OK);
    assert_memory_equal(sh->list_id, id, 32);
    assert_int_equal(sh->epoch, 3);
    assert_memory_equal(sh->A, f->ls->A, 32);
    assert_memory_equal(sh->X, f->dev->pub.wrap_pk, 32);
    assert_true(rc_scalar_is_canonical_nonzero(sh->k));
    /* The certificate inside is the one rc_cert_sign makes (Ed25519 is
     * deterministic) and verifies under the list signing key. */
    assert_int_equal(rc_cert_sign(&c, f->ls, "alice@example.org", f->dev->pub.sign_pk, &err),
                     RC_OK);
    assert_memory_equal(&sh->cert, &c, sizeof c);
    assert_int_equal(rc_cert_verify(&sh->cert, f->ls->sign_pk, &err), RC_OK);

    /* Another device. */
    memset(sh, 0, sizeof *sh);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev2, e->W, e->W_len, &err), RC_E_NOT_FOR_US, &err);
    assert_true(sodium_is_zero(sh->k, 32));
    /* Damaged W. */
    uint8_t W[RC_WRAP_MAX];
    memcpy(W, e->W, e->W_len);
    W[e->W_len / 2] ^= 0x40;
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, W, e->W_len, &err), RC_E_NOT_FOR_US, &err);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, e->W, e->W_len - 1, &err), RC_E_NOT_FOR_US, &err);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, e->W, crypto_box_SEALBYTES - 1, &err), RC_E_FORMAT,
                   &err);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, e->W, RC_WRAP_MAX + 1, &err), RC_E_FORMAT, &err);
    rc_secret_free(e);
    rc_secret_free(sh);
}

/* Build a W plaintext exactly as entry.c does:
 * label ‖ version ‖ list id ‖ epoch ‖ A ‖ X ‖ k ‖ u16 len ‖ cert,
 * with overrides, and seal it to `to`. */
typedef struct {
    const char *label;
    uint8_t version;
    uint8_t list_id[32];
    uint64_t epoch;
    uint8_t A[32], X[32], k[32];
    rc_cert cert;
    size_t extra; /* trailing zero bytes */
} wspec;

static size_t build_plain(uint8_t *plain, size_t cap, const wspec *w)
{
    uint8_t certb[RC_CERT_MAX];
    size_t certlen;
    assert_int_equal(rc_cert_to_bytes(certb, sizeof certb, &certlen, &w->cert, NULL), RC_OK);
    rc_wr wr = {plain, cap, 0, 0};
    rc_wr_label(&wr, w->label);
    rc_wr_u8(&wr, w->version);
    rc_wr_bytes(&wr, w->list_id, 32);
    rc_wr_u64(&wr, w->epoch);
    rc_wr_bytes(&wr, w->A, 32);
    rc_wr_bytes(&wr, w->X, 32);
    rc_wr_bytes(&wr, w->k, 32);
    rc_wr_u16(&wr, (uint16_t)certlen);
    rc_wr_bytes(&wr, certb, certlen);
    for (size_t i = 0; i < w->extra; i++)
        rc_wr_u8(&wr, 0);
    assert_false(wr.bad);
    return wr.len;
}

static size_t build_W(uint8_t *W, const wspec *w, const uint8_t to[32])
{
    uint8_t plain[RC_WRAP_PLAIN_MAX + 8];
    size_t n = build_plain(plain, sizeof plain, w);
    assert_int_equal(crypto_box_seal(W, plain, n, to), 0);
    return n + crypto_box_SEALBYTES;
}

static void good_spec(wspec *w, const fixture *f, const uint8_t k[32])
{
    memset(w, 0, sizeof *w);
    w->label = RC_L_WRAP;
    w->version = RC_FORMAT_VERSION;
    assert_int_equal(rc_list_id(w->list_id, f->ls->address, NULL), RC_OK);
    w->epoch = f->ls->epoch;
    memcpy(w->A, f->ls->A, 32);
    memcpy(w->X, f->dev->pub.wrap_pk, 32);
    memcpy(w->k, k, 32);
    assert_int_equal(rc_cert_sign(&w->cert, f->ls, "alice@example.org", f->dev->pub.sign_pk,
                                  NULL),
                     RC_OK);
}

static void test_wrap_hand_built(void **state)
{
    fixture *f = *state;
    rc_device_entry *e = rc_secret_alloc(sizeof *e);
    rc_share *sh = rc_secret_alloc(sizeof *sh);
    rc_error err;
    wspec w;
    uint8_t W[RC_WRAP_MAX + 8], k[32], plain_lib[RC_WRAP_PLAIN_MAX], plain_me[RC_WRAP_PLAIN_MAX];
    size_t n;

    /* The builder reproduces entry.c byte for byte. */
    rc_scalar_random_nonzero(k);
    assert_int_equal(rc_entry_create_det(e, f->ls, &f->dev->pub, "alice@example.org", 1, k,
                                         &err),
                     RC_OK);
    assert_int_equal(crypto_box_seal_open(plain_lib, e->W, e->W_len, f->dev->pub.wrap_pk,
                                          f->dev->wrap_sk),
                     0);
    good_spec(&w, f, k);
    n = build_plain(plain_me, sizeof plain_me, &w);
    assert_int_equal(n, e->W_len - crypto_box_SEALBYTES);
    assert_memory_equal(plain_me, plain_lib, n);
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    assert_int_equal(rc_wrap_open(sh, f->dev, W, n, &err), RC_OK);
    assert_memory_equal(sh->k, k, 32);

    /* k + L: the same residue, not canonical. */
    add256(w.k, k, L_BYTES);
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, W, n, &err), RC_E_CRYPTO, &err);
    assert_true(sodium_is_zero(sh->k, 32));
    /* k = 0, k = L. */
    memset(w.k, 0, 32);
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, W, n, &err), RC_E_CRYPTO, &err);
    memcpy(w.k, L_BYTES, 32);
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, W, n, &err), RC_E_CRYPTO, &err);
    /* k with bit 255 set. */
    memcpy(w.k, k, 32);
    w.k[31] |= 0x80;
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, W, n, &err), RC_E_CRYPTO, &err);

    /* A W (sealed to this device) naming another device's X. */
    good_spec(&w, f, k);
    memcpy(w.X, f->dev2->pub.wrap_pk, 32);
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, W, n, &err), RC_E_CRYPTO, &err);

    /* Identity A. */
    good_spec(&w, f, k);
    memset(w.A, 0, 32);
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, W, n, &err), RC_E_CRYPTO, &err);

    /* Another label, another version, a trailing byte. */
    good_spec(&w, f, k);
    w.label = RC_L_CERT;
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, W, n, &err), RC_E_FORMAT, &err);
    good_spec(&w, f, k);
    w.version = 2;
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, W, n, &err), RC_E_VERSION, &err);
    good_spec(&w, f, k);
    w.extra = 1;
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, W, n, &err), RC_E_FORMAT, &err);

    /* The certificate must match W: list id, epoch, device signing key. */
    rc_list_secret *ls4 = rc_secret_alloc(sizeof *ls4);
    assert_int_equal(rc_list_generate(ls4, "list@example.org", 4, f->ls->sign_sk, &err), RC_OK);
    good_spec(&w, f, k);
    assert_int_equal(rc_cert_sign(&w.cert, ls4, "alice@example.org", f->dev->pub.sign_pk, NULL),
                     RC_OK);
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, W, n, &err), RC_E_CRYPTO, &err);
    good_spec(&w, f, k);
    assert_int_equal(rc_cert_sign(&w.cert, f->ls, "alice@example.org", f->dev2->pub.sign_pk,
                                  NULL),
                     RC_OK);
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, W, n, &err), RC_E_CRYPTO, &err);
    good_spec(&w, f, k);
    w.list_id[0] ^= 1; /* W and cert disagree on the list */
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    ASSERT_REFUSED(rc_wrap_open(sh, f->dev, W, n, &err), RC_E_CRYPTO, &err);
    /* A W whose list id is another list's (cert consistent with it) opens:
     * rc_wrap_open reports what W says; the opener compares it with the
     * list (see test_stream.c). */
    rc_list_secret *ols = rc_secret_alloc(sizeof *ols);
    assert_int_equal(rc_list_generate(ols, "other@example.org", 3, NULL, &err), RC_OK);
    good_spec(&w, f, k);
    assert_int_equal(rc_list_id(w.list_id, "other@example.org", NULL), RC_OK);
    memcpy(w.A, ols->A, 32);
    assert_int_equal(rc_cert_sign(&w.cert, ols, "alice@example.org", f->dev->pub.sign_pk, NULL),
                     RC_OK);
    n = build_W(W, &w, f->dev->pub.wrap_pk);
    assert_int_equal(rc_wrap_open(sh, f->dev, W, n, &err), RC_OK);
    assert_memory_equal(sh->list_id, w.list_id, 32);
    assert_memory_equal(sh->A, ols->A, 32);

    rc_secret_free(ols);
    rc_secret_free(ls4);
    rc_secret_free(e);
    rc_secret_free(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statement_roundtrip),
        cmocka_unit_test(test_statement_tampering),
        cmocka_unit_test(test_statement_bad_bytes),
        cmocka_unit_test(test_statement_accept),
        cmocka_unit_test(test_cert),
        cmocka_unit_test(test_entry_create_check),
        cmocka_unit_test(test_wrap_open),
        cmocka_unit_test(test_wrap_hand_built),
    };
    if (rc_init(NULL) != 0)
        return 1;
    return cmocka_run_group_tests(tests, setup, teardown);
}
