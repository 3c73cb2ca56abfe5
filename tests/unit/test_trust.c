/*
 * test_trust.c - issue 13, "Revocation binds signatures" and "Copies that
 * did not come through the list": the list key statement of version 2
 * (service key, revoked device keys), the service signature over a copy,
 * and what rc_mail_open_ex makes of copies with and without one
 * (FORMAT.md §4, §8.1, §9.5 steps 5 and 6, §9.6).
 *
 * The world: list team@example.org; epoch 1 with alice and mallory;
 * epoch 2 (mallory revoked, no grace) whose statement revokes mallory's
 * device key from T2 on. The "gateway" below does what recrypt-milter and
 * recrypt-fanout do: recrypt, then sign the copy's stanzas with the
 * epoch's service key and put the signature in front of the header.
 *
 * The attacks build their copies as an attacker can: a stanza for alice's
 * device needs only public values (W is sealed to alice's public key; its
 * certificate is alice's, which every signed post of hers carries; k is
 * the attacker's choice; R = t·A − k·E with the attacker's own t). Here
 * rc_entry_create makes exactly such a stanza (the same bytes, the same R),
 * so the test uses it instead of doing the arithmetic by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>

#include "internal.h"
#include "test_util.h"

#define LIST "team@example.org"
#define T1 1700000000ull /* epoch 1 valid from */
#define T2 1700100000ull /* epoch 2 valid from: mallory revoked */

typedef struct {
    rc_list_secret *ls1, *ls2;
    uint8_t seed1[32], seed2[32], svc1[32], svc2[32];
    rc_statement st1, st2, st1_legacy;
    rc_device_secret *alice, *mallory, *outsider;
    rc_device_entry *e_alice, *e_mallory; /* epoch 1 */
    rc_cert cert_mallory;                 /* mallory's epoch-1 certificate */
} world;

static world W;

static int tmp_with(const void *p, size_t n)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    int fd = dup(fileno(f));
    fclose(f);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static int tmp_empty(void)
{
    FILE *f = tmpfile();
    int fd = dup(fileno(f));
    fclose(f);
    return fd;
}

static int setup(void **state)
{
    (void)state;
    rc_error err;
    if (rc_init(NULL) != 0)
        return -1;
    W.ls1 = rc_secret_alloc(sizeof *W.ls1);
    W.ls2 = rc_secret_alloc(sizeof *W.ls2);
    W.alice = rc_secret_alloc(sizeof *W.alice);
    W.mallory = rc_secret_alloc(sizeof *W.mallory);
    W.outsider = rc_secret_alloc(sizeof *W.outsider);
    W.e_alice = rc_secret_alloc(sizeof *W.e_alice);
    W.e_mallory = rc_secret_alloc(sizeof *W.e_mallory);
    randombytes_buf(W.seed1, 32);
    randombytes_buf(W.seed2, 32);
    rc_svc_public(W.svc1, W.seed1);
    rc_svc_public(W.svc2, W.seed2);
    if (rc_list_generate(W.ls1, LIST, 1, NULL, &err) ||
        rc_list_generate(W.ls2, LIST, 2, W.ls1->sign_sk, &err) ||
        rc_device_generate(W.alice, &err) || rc_device_generate(W.mallory, &err) ||
        rc_device_generate(W.outsider, &err) ||
        rc_statement_sign_v2(&W.st1, W.ls1, T1, 0, W.svc1, NULL, 0, &err) ||
        rc_statement_sign_v2(&W.st2, W.ls2, T2, 0, W.svc2,
                             (const uint8_t(*)[32])W.mallory->pub.sign_pk, 1, &err) ||
        rc_statement_sign(&W.st1_legacy, W.ls1, T1, 0, &err) ||
        rc_entry_create(W.e_alice, W.ls1, &W.alice->pub, "alice@example.org", T1, &err) ||
        rc_entry_create(W.e_mallory, W.ls1, &W.mallory->pub, "mallory@example.org", T1, &err) ||
        rc_cert_sign(&W.cert_mallory, W.ls1, "mallory@example.org", W.mallory->pub.sign_pk, &err))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rc_secret_free(W.ls1);
    rc_secret_free(W.ls2);
    rc_secret_free(W.alice);
    rc_secret_free(W.mallory);
    rc_secret_free(W.outsider);
    rc_secret_free(W.e_alice);
    rc_secret_free(W.e_mallory);
    return 0;
}

/* A post From `from` dated `date`, sealed to st, signed by dev/cert when given. */
static int seal_post(const rc_statement *st, uint64_t date, const char *from,
                     const rc_device_secret *dev, const rc_cert *cert)
{
    char msg[512], when[64];
    rc_error err;
    time_t tt = (time_t)date;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(when, sizeof when, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    snprintf(msg, sizeof msg,
             "From: %s\nTo: " LIST "\nSubject: s\nDate: %s\nMessage-ID: <t.%llu.%u@example.org>\n\n"
             "the body\n",
             from, when, (unsigned long long)date, randombytes_random());
    int in = tmp_with(msg, strlen(msg));
    mbuf out = {0};
    assert_int_equal(rc_mail_seal(in, st, dev, cert, date, sink_mem, &out, &err), RC_OK);
    close(in);
    int fd = tmp_with(out.p, out.len);
    mbuf_free(&out);
    return fd;
}

/* What the gateway (or an attacker, with seed NULL or its own) writes: the
 * post recrypted for `entries`; with a seed, a Recrypt-Service-Signature
 * for `recipient` ("" inline); extra: more header lines in front. */
static int copy_of(int post, const rc_device_entry *entries, size_t n, const uint8_t *seed,
                   const char *recipient, const char *extra, mbuf *raw_out)
{
    rc_mail *m = NULL;
    rc_error err;
    mbuf hdr = {0}, body = {0}, all = {0};
    uint8_t h[32], sig[64];
    size_t nw;
    assert_int_equal(rc_mail_parse(&m, post, &err), RC_OK);
    assert_int_equal(
        rc_mail_write_recrypted_body_h(m, entries, n, 0, sink_mem, &body, &nw, h, &err), RC_OK);
    assert_int_equal(rc_mail_write_header(m, sink_mem, &hdr, &err), RC_OK);
    if (seed) {
        char b64[RC_SVC_SIG_TEXT], line[200];
        assert_int_equal(
            rc_svc_sign(sig, seed, rc_mail_envelope(m), rc_mail_date(m), h, recipient, &err),
            RC_OK);
        assert_int_equal(rc_svc_sig_encode(b64, sig), 0);
        /* folded as the gateway folds it */
        snprintf(line, sizeof line, RC_HDR_SERVICE_SIG ": %.50s\n %s\n", b64, b64 + 50);
        sink_mem(&all, (const uint8_t *)line, strlen(line));
    }
    if (extra)
        sink_mem(&all, (const uint8_t *)extra, strlen(extra));
    sink_mem(&all, hdr.p, hdr.len);
    sink_mem(&all, body.p, body.len);
    int fd = tmp_with(all.p, all.len);
    if (raw_out)
        *raw_out = all;
    else
        mbuf_free(&all);
    mbuf_free(&hdr);
    mbuf_free(&body);
    rc_mail_free(m);
    return fd;
}

/* Open fd for dev under st; returns the code, the output in *out. */
static int open_copy(int fd, const rc_statement *st, const rc_device_secret *dev,
                     const rc_statement *later, size_t n_later, unsigned flags, mbuf *out,
                     rc_open_result *res, rc_error *err)
{
    rc_mail *m = NULL;
    int rc = rc_mail_parse(&m, fd, err);
    if (rc)
        return rc;
    rc_open_options o = {flags, later, n_later};
    int stage = tmp_empty();
    rc = rc_mail_open_ex(m, st, dev, &o, stage, sink_mem, out, res, err);
    close(stage);
    rc_mail_free(m);
    return rc;
}

static int starts_with(const mbuf *b, const char *s)
{
    return b->len >= strlen(s) && memcmp(b->p, s, strlen(s)) == 0;
}

static int verdict_has(const mbuf *b, const char *s)
{
    const uint8_t *nl = memchr(b->p, '\n', b->len);
    size_t n = nl ? (size_t)(nl - b->p) : b->len;
    char line[1024];
    snprintf(line, sizeof line, "%.*s", (int)n, (const char *)b->p);
    return strstr(line, s) != NULL;
}

/* ------------------------------------------------------------ the statement */

/* FORMAT.md §4: "version=2 ‖ … ‖ signer_pk ‖ service_pk ‖ u16 nrev ‖ nrev × 32
 * ‖ sig"; readers read versions 1 and 2. */
static void test_statement_v2(void **state)
{
    (void)state;
    rc_statement t;
    rc_error err;
    uint8_t b[RC_STATEMENT_MAX + 1];
    size_t len;
    char s[RC_KEYSTR_MAX];
    assert_int_equal(rc_statement_to_bytes(b, sizeof b, &len, &W.st2, &err), RC_OK);
    assert_int_equal(len, 1 + 1 + strlen(LIST) + 8 + 32 + 8 + 8 + 32 + 32 + 2 + 32 + 64);
    assert_int_equal(b[0], 2);
    assert_int_equal(rc_statement_from_bytes(&t, b, len, &err), RC_OK);
    assert_int_equal(rc_statement_verify(&t, &err), RC_OK);
    assert_int_equal(t.n_revoked, 1);
    assert_memory_equal(t.service_pk, W.svc2, 32);
    assert_true(rc_statement_revokes(&t, W.mallory->pub.sign_pk));
    assert_false(rc_statement_revokes(&t, W.alice->pub.sign_pk));
    assert_false(rc_statement_revokes(&W.st1_legacy, W.mallory->pub.sign_pk));
    assert_int_equal(rc_statement_encode(s, sizeof s, &W.st2, &err), RC_OK);
    assert_int_equal(rc_statement_decode(&t, s, &err), RC_OK);
    assert_int_equal(t.version, 2);

    /* every cut is refused; a byte more too */
    for (size_t cut = 1; cut <= len; cut += 7)
        ASSERT_REFUSED(rc_statement_from_bytes(&t, b, len - cut, &err), RC_E_FORMAT, &err);
    b[len] = 0;
    ASSERT_REFUSED(rc_statement_from_bytes(&t, b, len + 1, &err), RC_E_FORMAT, &err);
    /* version 3: RC_E_VERSION naming both versions read */
    b[0] = 3;
    ASSERT_REFUSED(rc_statement_from_bytes(&t, b, len, &err), RC_E_VERSION, &err);
    assert_non_null(strstr(err.msg, "1 and 2"));
    b[0] = 2;
    /* the service key or a revoked key changed: the signature fails */
    t = W.st2;
    t.service_pk[0] ^= 1;
    ASSERT_REFUSED(rc_statement_verify(&t, &err), RC_E_SIGNATURE, &err);
    t = W.st2;
    t.revoked[0][5] ^= 1;
    ASSERT_REFUSED(rc_statement_verify(&t, &err), RC_E_SIGNATURE, &err);
    t = W.st2;
    t.n_revoked = 0;
    ASSERT_REFUSED(rc_statement_verify(&t, &err), RC_E_SIGNATURE, &err);
    /* a version-1 reading of a v2 statement does not verify (the version is signed) */
    t = W.st2;
    t.version = 1;
    ASSERT_REFUSED(rc_statement_verify(&t, &err), RC_E_SIGNATURE, &err);
}

/* "Bound nrev (≤ 64)": 65 revocations are refused by writer and reader;
 * a key revoked twice and an invalid service key are refused on reading. */
static void test_statement_v2_bounds(void **state)
{
    (void)state;
    rc_statement t;
    rc_error err;
    static uint8_t keys[RC_STATEMENT_MAX_REVOKED + 1][32];
    uint8_t b[RC_STATEMENT_MAX + 64];
    size_t len;
    char s[RC_KEYSTR_MAX];
    for (size_t i = 0; i <= RC_STATEMENT_MAX_REVOKED; i++) {
        uint8_t sk[64];
        crypto_sign_keypair(keys[i], sk);
    }
    ASSERT_REFUSED(rc_statement_sign_v2(&t, W.ls2, T2, 0, W.svc2, (const uint8_t(*)[32])keys,
                                        RC_STATEMENT_MAX_REVOKED + 1, &err),
                   RC_E_INVALID, &err);
    /* 64 with the longest address still fits a key string */
    rc_list_secret *ls = rc_secret_alloc(sizeof *ls);
    char addr[RC_ADDR_MAX + 1];
    memset(addr, 'a', 200);
    strcpy(addr + 200, "@example.org");
    assert_int_equal(rc_list_generate(ls, addr, 9, NULL, &err), RC_OK);
    assert_int_equal(rc_statement_sign_v2(&t, ls, T2, 0, W.svc2, (const uint8_t(*)[32])keys,
                                          RC_STATEMENT_MAX_REVOKED, &err),
                     RC_OK);
    assert_int_equal(rc_statement_encode(s, sizeof s, &t, &err), RC_OK);
    rc_statement t2;
    assert_int_equal(rc_statement_decode(&t2, s, &err), RC_OK);
    assert_int_equal(t2.n_revoked, RC_STATEMENT_MAX_REVOKED);
    /* nrev = 65 in the bytes */
    assert_int_equal(rc_statement_to_bytes(b, sizeof b, &len, &t, &err), RC_OK);
    size_t off = 1 + 1 + strlen(addr) + 8 + 32 + 8 + 8 + 32 + 32;
    assert_int_equal(b[off], 0);
    assert_int_equal(b[off + 1], RC_STATEMENT_MAX_REVOKED);
    b[off + 1] = RC_STATEMENT_MAX_REVOKED + 1;
    ASSERT_REFUSED(rc_statement_from_bytes(&t2, b, len + 32, &err), RC_E_FORMAT, &err);
    b[off + 1] = RC_STATEMENT_MAX_REVOKED;
    /* the same key twice */
    memcpy(b + off + 2 + 32, b + off + 2, 32);
    ASSERT_REFUSED(rc_statement_from_bytes(&t2, b, len, &err), RC_E_FORMAT, &err);
    rc_secret_free(ls);
    /* a service key that is no Ed25519 point */
    assert_int_equal(rc_statement_to_bytes(b, sizeof b, &len, &W.st2, &err), RC_OK);
    off = 1 + 1 + strlen(LIST) + 8 + 32 + 8 + 8 + 32;
    memset(b + off, 0xff, 32);
    ASSERT_REFUSED(rc_statement_from_bytes(&t2, b, len, &err), RC_E_CRYPTO, &err);
}

/* ------------------------------------------------------- the service signature */

/* FORMAT.md §8.1: the signature covers list id, epoch, E, KC, date, H(stanzas)
 * and the recipient; changing any of them fails. */
static void test_svc_sig(void **state)
{
    (void)state;
    rc_error err;
    rc_envelope env;
    memset(&env, 0, sizeof env);
    randombytes_buf(env.list_id, 32);
    env.epoch = 4;
    randombytes_buf(env.E, 32);
    randombytes_buf(env.KC, 32);
    uint8_t h[32], sig[64];
    randombytes_buf(h, 32);
    assert_int_equal(rc_svc_sign(sig, W.seed1, &env, T1, h, "bob@example.org", &err), RC_OK);
    assert_int_equal(rc_svc_verify(sig, W.svc1, &env, T1, h, "bob@example.org", &err), RC_OK);
    ASSERT_REFUSED(rc_svc_verify(sig, W.svc1, &env, T1, h, "", &err), RC_E_SIGNATURE, &err);
    ASSERT_REFUSED(rc_svc_verify(sig, W.svc2, &env, T1, h, "bob@example.org", &err), RC_E_SIGNATURE,
                   &err);
    ASSERT_REFUSED(rc_svc_verify(sig, W.svc1, &env, T1 + 1, h, "bob@example.org", &err),
                   RC_E_SIGNATURE, &err);
    h[31] ^= 1;
    ASSERT_REFUSED(rc_svc_verify(sig, W.svc1, &env, T1, h, "bob@example.org", &err), RC_E_SIGNATURE,
                   &err);
    h[31] ^= 1;
    env.epoch = 5;
    ASSERT_REFUSED(rc_svc_verify(sig, W.svc1, &env, T1, h, "bob@example.org", &err), RC_E_SIGNATURE,
                   &err);
    /* the seed travels sealed to the service */
    rc_service_secret *svc = rc_secret_alloc(sizeof *svc), *other = rc_secret_alloc(sizeof *other);
    uint8_t sealed[RC_SEALED_SVC_SEED_BYTES], back[32];
    assert_int_equal(rc_service_generate(svc, &err), RC_OK);
    assert_int_equal(rc_service_generate(other, &err), RC_OK);
    assert_int_equal(rc_svc_seed_seal(sealed, W.seed1, svc->pub.pk, &err), RC_OK);
    ASSERT_REFUSED(rc_svc_seed_open(back, sealed, other, &err), RC_E_CRYPTO, &err);
    assert_int_equal(rc_svc_seed_open(back, sealed, svc, &err), RC_OK);
    assert_memory_equal(back, W.seed1, 32);
    rc_secret_free(svc);
    rc_secret_free(other);
}

/* ------------------------------------------------------------- copies */

/* E4: a genuine inline copy and a genuine split copy open as list mail with
 * the 0.2.0 verdict grammar; the stanza hash the writer returns is the one
 * a reader computes. */
static void test_genuine_copies(void **state)
{
    (void)state;
    rc_error err;
    rc_open_result res;
    mbuf out = {0};
    const rc_device_entry ents[2] = {*W.e_alice, *W.e_mallory};
    int post = seal_post(&W.st1, T1 + 100, "mallory@example.org", W.mallory, &W.cert_mallory);
    int inl = copy_of(post, ents, 2, W.seed1, "", NULL, NULL);
    assert_int_equal(open_copy(inl, &W.st1, W.alice, NULL, 0, 0, &out, &res, &err), RC_OK);
    assert_int_equal(res.path, RC_PATH_LIST);
    assert_true(starts_with(&out, "Recrypt-Verdict: signed; member=mallory@example.org; device="));
    assert_true(verdict_has(&out, "; list=team@example.org; epoch=1\n") ||
                verdict_has(&out, "epoch=1"));
    assert_false(verdict_has(&out, "path="));
    mbuf_free(&out);
    /* split: the copy for alice opens for alice */
    int split = copy_of(post, W.e_alice, 1, W.seed1, "alice@example.org", NULL, NULL);
    assert_int_equal(open_copy(split, &W.st1, W.alice, NULL, 0, 0, &out, &res, &err), RC_OK);
    assert_int_equal(res.path, RC_PATH_LIST);
    mbuf_free(&out);
    /* a split copy written for mallory, with alice's stanza in it (mallory
     * forwards it): alice's device is not its recipient, so it is direct */
    int fwd = copy_of(post, ents, 2, W.seed1, "mallory@example.org", NULL, NULL);
    ASSERT_REFUSED(open_copy(fwd, &W.st1, W.alice, NULL, 0, 0, &out, &res, &err), RC_E_POLICY,
                   &err);
    assert_non_null(strstr(err.msg, "did not come through the list"));
    mbuf_free(&out);
    close(post);
    close(inl);
    close(split);
    close(fwd);
}

/* E4: "a copy whose stanzas were changed after signing fails": one stanza
 * dropped, and the signature of another post's copy. */
static void test_changed_stanzas(void **state)
{
    (void)state;
    rc_error err;
    rc_open_result res;
    mbuf out = {0}, raw = {0};
    const rc_device_entry ents[2] = {*W.e_alice, *W.e_mallory};
    int post = seal_post(&W.st1, T1 + 100, "alice@example.org", NULL, NULL);
    int inl = copy_of(post, ents, 2, W.seed1, "", NULL, &raw);
    /* drop the stanza that alice's device does not use: find the second
     * "Stanza:" field and cut it with its continuation lines */
    char *txt = malloc(raw.len + 1);
    memcpy(txt, raw.p, raw.len);
    txt[raw.len] = 0;
    char *s1 = strstr(txt, "\nStanza: ");
    assert_non_null(s1);
    char *s2 = strstr(s1 + 1, "\nStanza: ");
    assert_non_null(s2);
    char *end = s2 + 1;
    do
        end = strchr(end, '\n') + 1;
    while (*end == ' ');
    /* which one is alice's? try removing each */
    int opened_one = 0;
    for (int which = 0; which < 2; which++) {
        char *cut_from = which ? s2 + 1 : s1 + 1;
        char *cut_to = cut_from;
        do
            cut_to = strchr(cut_to, '\n') + 1;
        while (*cut_to == ' ');
        size_t n1 = (size_t)(cut_from - txt), n2 = strlen(cut_to);
        char *t = malloc(n1 + n2 + 1);
        memcpy(t, txt, n1);
        memcpy(t + n1, cut_to, n2 + 1);
        int fd = tmp_with(t, n1 + n2);
        rc_error_clear(&err);
        int rc = open_copy(fd, &W.st1, W.alice, NULL, 0, 0, &out, &res, &err);
        if (rc != RC_E_NOT_FOR_US) {
            assert_int_equal(rc, RC_E_POLICY);
            assert_non_null(strstr(err.msg, "did not come through the list"));
            opened_one = 1;
            /* with RC_OPEN_ALLOW_DIRECT it is shown, as direct */
            mbuf_free(&out);
            assert_int_equal(
                open_copy(fd, &W.st1, W.alice, NULL, 0, RC_OPEN_ALLOW_DIRECT, &out, &res, &err),
                RC_OK);
            assert_int_equal(res.path, RC_PATH_DIRECT);
            assert_true(
                starts_with(&out, "Recrypt-Verdict: direct; list=team@example.org; epoch=1"));
        }
        mbuf_free(&out);
        close(fd);
        free(t);
    }
    assert_true(opened_one);
    (void)end;
    free(txt);
    mbuf_free(&raw);
    /* a malformed signature field is no signature; two fields are refused */
    int bad = copy_of(post, ents, 2, NULL, NULL, RC_HDR_SERVICE_SIG ": !!notbase64\n", NULL);
    ASSERT_REFUSED(open_copy(bad, &W.st1, W.alice, NULL, 0, 0, &out, &res, &err), RC_E_POLICY,
                   &err);
    mbuf_free(&out);
    int two = copy_of(post, ents, 2, W.seed1, "", RC_HDR_SERVICE_SIG ": AAAA\n", NULL);
    ASSERT_REFUSED(open_copy(two, &W.st1, W.alice, NULL, 0, 0, &out, &res, &err), RC_E_FORMAT,
                   &err);
    mbuf_free(&out);
    /* a signature by another epoch's service key */
    int other = copy_of(post, ents, 2, W.seed2, "", NULL, NULL);
    ASSERT_REFUSED(open_copy(other, &W.st1, W.alice, NULL, 0, 0, &out, &res, &err), RC_E_POLICY,
                   &err);
    mbuf_free(&out);
    close(bad);
    close(two);
    close(other);
    close(inl);
    close(post);
}

/* E1, the attack of issue 13 item 2: mallory, revoked at epoch 2 (no grace),
 * mails alice directly a post of epoch 1 dated after the revocation, signed
 * with her epoch-1 certificate, with a stanza she made for alice's device.
 * 0.2.0 showed "signed; member=mallory@example.org". Now: refused as signed
 * by a revoked device when alice knows epoch 2; refused as not from the list
 * when she does not; and with RC_OPEN_ALLOW_DIRECT, "direct", never "signed". */
static void test_revoked_member_direct(void **state)
{
    (void)state;
    rc_error err;
    rc_open_result res;
    mbuf out = {0};
    int post = seal_post(&W.st1, T2 + 500, "mallory@example.org", W.mallory, &W.cert_mallory);
    rc_device_entry *forged = rc_secret_alloc(sizeof *forged);
    assert_int_equal(rc_entry_create(forged, W.ls1, &W.alice->pub, "alice@example.org", T1, &err),
                     RC_OK);
    int direct = copy_of(post, forged, 1, NULL, NULL, NULL, NULL);
    /* alice knows the epoch-2 statement */
    ASSERT_REFUSED(open_copy(direct, &W.st1, W.alice, &W.st2, 1, 0, &out, &res, &err),
                   RC_E_SIGNATURE, &err);
    assert_non_null(strstr(err.msg, "revoked at epoch 2"));
    assert_int_equal(out.len, 0);
    ASSERT_REFUSED(
        open_copy(direct, &W.st1, W.alice, &W.st2, 1, RC_OPEN_ALLOW_DIRECT, &out, &res, &err),
        RC_E_SIGNATURE, &err);
    /* she does not: not from the list */
    ASSERT_REFUSED(open_copy(direct, &W.st1, W.alice, NULL, 0, 0, &out, &res, &err), RC_E_POLICY,
                   &err);
    assert_int_equal(out.len, 0);
    assert_int_equal(
        open_copy(direct, &W.st1, W.alice, NULL, 0, RC_OPEN_ALLOW_DIRECT, &out, &res, &err), RC_OK);
    assert_true(starts_with(&out, "Recrypt-Verdict: direct; list=team@example.org; epoch=1\n"));
    assert_false(verdict_has(&out, "signed"));
    assert_false(verdict_has(&out, "member="));
    mbuf_free(&out);
    /* a post of hers dated before the revocation, through the list: still hers */
    int early = seal_post(&W.st1, T2 - 500, "mallory@example.org", W.mallory, &W.cert_mallory);
    const rc_device_entry ents[1] = {*W.e_alice};
    int early_copy = copy_of(early, ents, 1, W.seed1, "", NULL, NULL);
    assert_int_equal(open_copy(early_copy, &W.st1, W.alice, &W.st2, 1, 0, &out, &res, &err), RC_OK);
    assert_true(starts_with(&out, "Recrypt-Verdict: signed; member=mallory@example.org;"));
    mbuf_free(&out);
    rc_secret_free(forged);
    close(post);
    close(direct);
    close(early);
    close(early_copy);
}

/* E2: an outsider's direct "unsigned" message with a stanza for alice's
 * device is shown as not from the list. */
static void test_outsider_direct(void **state)
{
    (void)state;
    rc_error err;
    rc_open_result res;
    mbuf out = {0};
    int post = seal_post(&W.st1, T1 + 900, "someone@elsewhere.example", NULL, NULL);
    rc_device_entry *forged = rc_secret_alloc(sizeof *forged);
    assert_int_equal(rc_entry_create(forged, W.ls1, &W.alice->pub, "alice@example.org", T1, &err),
                     RC_OK);
    int direct = copy_of(post, forged, 1, NULL, NULL, NULL, NULL);
    ASSERT_REFUSED(open_copy(direct, &W.st1, W.alice, NULL, 0, 0, &out, &res, &err), RC_E_POLICY,
                   &err);
    assert_non_null(strstr(err.msg, "did not come through the list team@example.org"));
    assert_int_equal(out.len, 0);
    assert_int_equal(
        open_copy(direct, &W.st1, W.alice, NULL, 0, RC_OPEN_ALLOW_DIRECT, &out, &res, &err), RC_OK);
    assert_true(starts_with(&out, "Recrypt-Verdict: direct; list=team@example.org; epoch=1\n"));
    mbuf_free(&out);
    /* under a version 1 statement nothing can be verified: the verdict says so */
    int legacy_post = seal_post(&W.st1_legacy, T1 + 900, "someone@elsewhere.example", NULL, NULL);
    int legacy = copy_of(legacy_post, forged, 1, NULL, NULL, NULL, NULL);
    assert_int_equal(open_copy(legacy, &W.st1_legacy, W.alice, NULL, 0, 0, &out, &res, &err),
                     RC_OK);
    assert_int_equal(res.path, RC_PATH_UNVERIFIED);
    assert_true(starts_with(
        &out, "Recrypt-Verdict: unsigned; list=team@example.org; epoch=1; path=unverified\n"));
    mbuf_free(&out);
    rc_secret_free(forged);
    close(post);
    close(direct);
    close(legacy_post);
    close(legacy);
}

/* E3: a post through the list during grace by the revoked member (the
 * service still recrypts and signs epoch 1) is refused as signed by a
 * revoked device once the reader knows the epoch-2 statement, which the
 * gateway adds as Recrypt-List-Key-Current. */
static void test_revoked_member_grace(void **state)
{
    (void)state;
    rc_error err;
    rc_open_result res;
    mbuf out = {0};
    char cur[RC_KEYSTR_MAX + 64], key[RC_KEYSTR_MAX];
    assert_int_equal(rc_statement_encode(key, sizeof key, &W.st2, &err), RC_OK);
    snprintf(cur, sizeof cur, RC_HDR_LIST_KEY_CURRENT ": %s\n", key);
    int post = seal_post(&W.st1, T2 + 60, "mallory@example.org", W.mallory, &W.cert_mallory);
    const rc_device_entry ents[2] = {*W.e_alice, *W.e_mallory};
    int inl = copy_of(post, ents, 2, W.seed1, "", cur, NULL);
    rc_mail *m = NULL;
    assert_int_equal(rc_mail_parse(&m, inl, &err), RC_OK);
    rc_statement got;
    assert_non_null(rc_mail_list_key_current(m));
    assert_int_equal(rc_statement_decode(&got, rc_mail_list_key_current(m), &err), RC_OK);
    assert_int_equal(got.epoch, 2);
    rc_mail_free(m);
    ASSERT_REFUSED(open_copy(inl, &W.st1, W.alice, &got, 1, 0, &out, &res, &err), RC_E_SIGNATURE,
                   &err);
    assert_non_null(strstr(err.msg, "mallory@example.org"));
    assert_non_null(strstr(err.msg, "revoked"));
    assert_int_equal(out.len, 0);
    /* alice's own post in grace is unaffected */
    int ap = seal_post(&W.st1, T2 + 60, "alice@example.org", NULL, NULL);
    int ac = copy_of(ap, ents, 2, W.seed1, "", cur, NULL);
    assert_int_equal(open_copy(ac, &W.st1, W.alice, &got, 1, 0, &out, &res, &err), RC_OK);
    assert_true(starts_with(&out, "Recrypt-Verdict: unsigned; list=team@example.org; epoch=1\n"));
    mbuf_free(&out);
    /* two Recrypt-List-Key-Current fields: refused */
    int two = copy_of(post, ents, 2, W.seed1, "",
                      "Recrypt-List-Key-Current: x\nRecrypt-List-Key-Current: y\n", NULL);
    assert_int_equal(rc_mail_parse(&m, two, &err), RC_E_FORMAT);
    close(two);
    close(post);
    close(inl);
    close(ap);
    close(ac);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statement_v2),    cmocka_unit_test(test_statement_v2_bounds),
        cmocka_unit_test(test_svc_sig),         cmocka_unit_test(test_genuine_copies),
        cmocka_unit_test(test_changed_stanzas), cmocka_unit_test(test_revoked_member_direct),
        cmocka_unit_test(test_outsider_direct), cmocka_unit_test(test_revoked_member_grace),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
