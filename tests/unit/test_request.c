/*
 * test_request.c - administration requests: signing, the binary form, the
 * armor, and refusal of tampered, truncated and unknown requests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>
#include "internal.h"

typedef struct {
    char *p;
    size_t len;
} text_t;

static int text_sink(void *ctx, const uint8_t *b, size_t n)
{
    text_t *t = ctx;
    t->p = realloc(t->p, t->len + n + 1);
    memcpy(t->p + t->len, b, n);
    t->len += n;
    t->p[t->len] = '\0';
    return 0;
}

typedef struct {
    rc_owner_secret owner;
    rc_service_secret svc;
    rc_list_secret ls;
    rc_device_secret dev[2];
} fixture_t;

static fixture_t F;

static int setup(void **state)
{
    (void)state;
    assert_int_equal(rc_init(NULL), 0);
    rc_owner_generate(&F.owner, NULL);
    rc_service_generate(&F.svc, NULL);
    assert_int_equal(rc_list_generate(&F.ls, "Team@Example.org", 1, NULL, NULL), 0);
    rc_device_generate(&F.dev[0], NULL);
    rc_device_generate(&F.dev[1], NULL);
    return 0;
}

/* An AddMember request for alice with two devices, signed. */
static void make_add_member(rc_request *req)
{
    rc_req_device d;
    memset(req, 0, sizeof *req);
    req->version = RC_REQUEST_VERSION;
    req->type = RC_REQ_ADD_MEMBER;
    memcpy(req->service_pk, F.svc.pub.pk, 32);
    strcpy(req->list, F.ls.address);
    req->counter = 7;
    req->created_at = 1700000000;
    req->not_after = 1700000000 + RC_REQUEST_DEFAULT_LIFETIME;
    strcpy(req->member, "alice@example.org");
    req->privilege = RC_PRIV_RECRYPT;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rc_req_device_make(&d, &F.ls, &F.dev[i].pub, "Alice@Example.org",
                                            1699999000, &F.svc.pub, NULL),
                         0);
        assert_int_equal(rc_request_add_device(req, &d, NULL), 0);
    }
    assert_int_equal(rc_request_sign(req, &F.owner, NULL), 0);
}

static void test_round_trip_armor(void **state)
{
    (void)state;
    rc_request req, *got = NULL;
    size_t n = 0;
    text_t t = {0};
    rc_error err;
    make_add_member(&req);
    assert_int_equal(rc_request_armor(&req, text_sink, &t, NULL), 0);
    assert_non_null(strstr(t.p, "-----BEGIN RECRYPT REQUEST-----\nRequest: AddMember "
                                "team@example.org member alice@example.org (2 device entries)"));
    /* Two requests in one file, with text around them. */
    size_t one = t.len;
    text_sink(&t, (const uint8_t *)"some text between\n", 18);
    char *copy = strndup(t.p, one);
    text_sink(&t, (const uint8_t *)copy, one);
    free(copy);
    assert_int_equal(rc_request_read_armored(t.p, t.len, &got, &n, &err), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].type, RC_REQ_ADD_MEMBER);
        assert_string_equal(got[i].list, "team@example.org");
        assert_string_equal(got[i].member, "alice@example.org");
        assert_int_equal(got[i].counter, 7);
        assert_int_equal(got[i].n_devices, 2);
        assert_memory_equal(got[i].id, req.id, 32);
        assert_memory_equal(got[i].signer_pk, F.owner.pub.sign_pk, 32);
        assert_string_equal(got[i].devices[1].member, "alice@example.org");
        assert_memory_equal(&got[i].devices[1].device, &F.dev[1].pub, sizeof F.dev[1].pub);
        /* The sealed r opens with the service key and splits the list key. */
        uint8_t r[32];
        assert_int_equal(crypto_box_seal_open(r, got[i].devices[0].sealed_r, RC_SEALED_R_BYTES,
                                              F.svc.pub.pk, F.svc.sk),
                         0);
        assert_int_equal(rc_entry_check(r, got[i].devices[0].K, F.ls.A, NULL), 0);
        rc_request_free(&got[i]);
    }
    free(got);
    free(t.p);
    rc_request_free(&req);
}

/* REQUESTS.md §3.2: after a version 2 statement, CreateGroup and
 * UpdateGroup carry the 80-byte sealed service seed; after a version 1
 * statement nothing. Every cut of the encoding is refused. */
static void test_group_service_seed(void **state)
{
    (void)state;
    rc_error err;
    uint8_t seed[32], pk[32], back[32];
    randombytes_buf(seed, 32);
    rc_svc_public(pk, seed);
    for (int type = RC_REQ_CREATE_GROUP; type <= RC_REQ_UPDATE_GROUP; type++)
        for (int v2 = 0; v2 < 2; v2++) {
            rc_request req, got;
            memset(&req, 0, sizeof req);
            req.version = RC_REQUEST_VERSION;
            req.type = (uint8_t)type;
            memcpy(req.service_pk, F.svc.pub.pk, 32);
            strcpy(req.list, F.ls.address);
            req.counter = 3;
            req.created_at = 1700000000;
            req.not_after = req.created_at + 7 * 86400;
            req.owner = F.owner.pub;
            if (v2) {
                assert_int_equal(rc_statement_sign_v2(&req.statement, &F.ls, 1000, 0, pk,
                                                      (const uint8_t(*)[32])F.dev[0].pub.sign_pk,
                                                      1, &err),
                                 0);
                assert_int_equal(rc_svc_seed_seal(req.sealed_svc_seed, seed, F.svc.pub.pk, &err),
                                 0);
            } else {
                assert_int_equal(rc_statement_sign(&req.statement, &F.ls, 1000, 0, &err), 0);
            }
            assert_int_equal(rc_request_sign(&req, &F.owner, &err), 0);
            uint8_t *enc, *enc1;
            size_t len, len1;
            assert_int_equal(rc_request_encode(&req, &enc, &len, &err), 0);
            assert_int_equal(rc_request_decode(&got, enc, len, &err), 0);
            assert_int_equal(got.statement.version, v2 ? 2 : 1);
            if (v2) {
                assert_int_equal(got.statement.n_revoked, 1);
                assert_int_equal(rc_svc_seed_open(back, got.sealed_svc_seed, &F.svc, &err), 0);
                assert_memory_equal(back, seed, 32);
            } else {
                assert_true(sodium_is_zero(got.sealed_svc_seed, sizeof got.sealed_svc_seed));
            }
            rc_request_free(&got);
            /* the seed is signed with the rest: one bit changed, the signature fails */
            if (v2) {
                req.sealed_svc_seed[0] ^= 1;
                assert_int_equal(rc_request_encode(&req, &enc1, &len1, &err), 0);
                assert_int_equal(len1, len);
                assert_int_not_equal(rc_request_decode(&got, enc1, len1, &err), 0);
                free(enc1);
            }
            for (size_t cut = 1; cut < len; cut += 17)
                assert_int_not_equal(rc_request_decode(&got, enc, len - cut, &err), 0);
            free(enc);
            rc_request_free(&req);
        }
}

static void test_refusals(void **state)
{
    (void)state;
    rc_request req, out;
    uint8_t *enc;
    size_t len;
    rc_error err;
    make_add_member(&req);
    assert_int_equal(rc_request_encode(&req, &enc, &len, NULL), 0);
    assert_int_equal(rc_request_decode(&out, enc, len, &err), 0);
    rc_request_free(&out);

    /* Every single flipped byte is refused, never accepted. */
    for (size_t i = 0; i < len; i += 7) {
        enc[i] ^= 0x01;
        int rc = rc_request_decode(&out, enc, len, &err);
        assert_int_not_equal(rc, 0);
        assert_null(out.devices);
        enc[i] ^= 0x01;
    }
    /* The signature byte: a clear signature error. */
    enc[len - 1] ^= 0x80;
    assert_int_equal(rc_request_decode(&out, enc, len, &err), RC_E_SIGNATURE);
    assert_non_null(strstr(err.msg, "signature does not verify"));
    enc[len - 1] ^= 0x80;
    /* Truncation anywhere. */
    for (size_t cut = 0; cut < len; cut += 13)
        assert_int_not_equal(rc_request_decode(&out, enc, cut, &err), 0);
    /* Unknown version and type. REQUESTS.md §4: "a version byte other than
     * 2 (RC_E_VERSION); version 1 ... is refused with a message naming both
     * versions" (no transition: a version-1 request never expires). */
    enc[0] = 1;
    assert_int_equal(rc_request_decode(&out, enc, len, &err), RC_E_VERSION);
    assert_non_null(strstr(err.msg, "request version 1 is no longer accepted (this build reads "
                                    "version 2"));
    enc[0] = 3;
    assert_int_equal(rc_request_decode(&out, enc, len, &err), RC_E_VERSION);
    assert_non_null(strstr(err.msg, "request version 3 is not supported (this build reads 2)"));
    enc[0] = RC_REQUEST_VERSION;
    enc[1] = 99;
    assert_int_equal(rc_request_decode(&out, enc, len, &err), RC_E_VERSION);
    free(enc);

    /* Armor: truncated file, corrupted base64, no request at all. */
    text_t t = {0};
    rc_request *got;
    size_t n;
    assert_int_equal(rc_request_armor(&req, text_sink, &t, NULL), 0);
    assert_int_equal(rc_request_read_armored(t.p, t.len / 2, &got, &n, &err), RC_E_FORMAT);
    assert_non_null(strstr(err.msg, "truncated"));
    char *line = strstr(t.p, "\n\n") + 2;
    line[5] = '*';
    assert_int_equal(rc_request_read_armored(t.p, t.len, &got, &n, &err), RC_E_FORMAT);
    assert_non_null(strstr(err.msg, "corrupted"));
    assert_int_equal(rc_request_read_armored("hello\n", 6, &got, &n, &err), RC_E_FORMAT);
    assert_non_null(strstr(err.msg, "no request found"));
    free(t.p);
    rc_request_free(&req);
}

static void hex(char *out, const uint8_t *b, size_t n)
{
    sodium_bin2hex(out, 2 * n + 1, b, n);
}

/* REQUESTS.md §3.6: the AddOwner example, every byte fixed (Ed25519 is
 * deterministic). The document's hex, signature, id and armor are these. */
#define EX_BODY                                                                                    \
    "0205ab4f197998fcc56cc6ed68c1d931af9bb522ec00743e181f7330915df4aa"                             \
    "317613667269656e6473406578616d706c652e6f7267fa01347a991e04ae0f1a"                             \
    "6d81db29a5ea4eeb5965f577ac9efb44e7b1f2fbb02800000000000000020000"                             \
    "00006553f10000000000655d2b80c6d0c796bb4c3c923615f8dc85e6fc35149e"                             \
    "b6b1317de523d3a5085584f5c1090791f592e9fdf04d44d7e0e23500b6ccf035"                             \
    "be69667647589967e6b612a1315002"
#define EX_SIG                                                                                     \
    "46c997cefa4aa7c44f42199960afc7019b4097f8443bbe0db40e85ff8afea5cd"                             \
    "79934d7f915fea73b7e3bc8c9019ca2d83a9dd8eacc895e4a09d5b02fd36d70f"
#define EX_ID "0259edadb27d6618fdadb071ad9eec5db9597b6230ec9864b47aa741565bc165"
static void test_example_vector(void **state)
{
    (void)state;
    rc_owner_secret signer, neo;
    rc_request req, dec;
    uint8_t seed[32], svc_sk[32], *enc;
    size_t len;
    rc_error err;
    memset(&req, 0, sizeof req);
    memset(seed, 0x82, 32);
    crypto_sign_seed_keypair(signer.pub.sign_pk, signer.sign_sk, seed);
    memset(seed, 0x92, 32);
    crypto_sign_seed_keypair(neo.pub.sign_pk, neo.sign_sk, seed);
    memset(neo.box_sk, 0x91, 32);
    crypto_scalarmult_base(neo.pub.box_pk, neo.box_sk);
    memset(svc_sk, 0x71, 32);
    req.version = RC_REQUEST_VERSION;
    req.type = RC_REQ_ADD_OWNER;
    crypto_scalarmult_base(req.service_pk, svc_sk);
    strcpy(req.list, "friends@example.org");
    req.counter = 2;
    req.created_at = 1700000000;
    req.not_after = 1700000000 + RC_REQUEST_DEFAULT_LIFETIME;
    req.owner = neo.pub;
    req.privilege = RC_PRIV_ADMIN;
    assert_int_equal(rc_request_sign(&req, &signer, &err), 0);
    assert_int_equal(rc_request_encode(&req, &enc, &len, &err), 0);
    char h[2 * 400 + 1];
    hex(h, enc, len - RC_SIG_BYTES);
    if (getenv("RC_PRINT_VECTORS")) {
        printf("body %zu: %s\n", len - RC_SIG_BYTES, h);
        hex(h, enc + len - RC_SIG_BYTES, RC_SIG_BYTES);
        printf("sig: %s\n", h);
        hex(h, req.id, 32);
        printf("id: %s\n", h);
        text_t t = {0};
        rc_request_armor(&req, text_sink, &t, NULL);
        printf("%s", t.p);
        free(t.p);
        hex(h, enc, len - RC_SIG_BYTES);
    }
    assert_int_equal(len - RC_SIG_BYTES, 175);
    assert_string_equal(h, EX_BODY);
    hex(h, enc + len - RC_SIG_BYTES, RC_SIG_BYTES);
    assert_string_equal(h, EX_SIG);
    hex(h, req.id, 32);
    assert_string_equal(h, EX_ID);
    assert_int_equal(rc_request_decode(&dec, enc, len, &err), 0);
    assert_int_equal(dec.not_after, 1700604800);
    assert_memory_equal(dec.id, req.id, 32);
    free(enc);
}

/* UpdateOwner and RemoveOwner travel and decode; the armor says what they
 * do and, for every request, when it was made and until when it is valid. */
static void test_owner_requests(void **state)
{
    (void)state;
    rc_request req, *got = NULL;
    size_t n = 0;
    text_t t = {0};
    rc_error err;
    char fp[RC_UDF_MAX], want[300];
    rc_key_fingerprint(fp, sizeof fp, RC_KT_OWNER, F.owner.pub.sign_pk, 32, NULL);
    for (uint8_t type = RC_REQ_UPDATE_OWNER; type <= RC_REQ_REMOVE_OWNER; type++) {
        memset(&req, 0, sizeof req);
        req.version = RC_REQUEST_VERSION;
        req.type = type;
        memcpy(req.service_pk, F.svc.pub.pk, 32);
        strcpy(req.list, "team@example.org");
        req.counter = 9;
        req.created_at = 1764731700; /* 2025-12-03T03:15:00Z */
        req.not_after = 1764731700 + 86400;
        req.owner = F.owner.pub;
        req.privilege = type == RC_REQ_UPDATE_OWNER ? RC_PRIV_SUPER : 0;
        assert_int_equal(rc_request_sign(&req, &F.owner, NULL), 0);
        t.len = 0;
        assert_int_equal(rc_request_armor(&req, text_sink, &t, NULL), 0);
        snprintf(want, sizeof want, "Request: %s team@example.org owner %s%s\n",
                 rc_request_type_name(type), fp,
                 type == RC_REQ_UPDATE_OWNER ? " privilege super" : "");
        assert_non_null(strstr(t.p, want));
        assert_non_null(strstr(t.p, "\nValid: 2025-12-03T03:15:00Z to 2025-12-04T03:15:00Z\n\n"));
        assert_int_equal(rc_request_read_armored(t.p, t.len, &got, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_int_equal(got[0].type, type);
        assert_memory_equal(got[0].owner.sign_pk, F.owner.pub.sign_pk, 32);
        assert_int_equal(got[0].privilege, req.privilege);
        assert_int_equal(got[0].created_at, 1764731700);
        assert_int_equal(got[0].not_after, 1764731700 + 86400);
        rc_request_free(&got[0]);
        free(got);
    }
    free(t.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_armor),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_example_vector),
        cmocka_unit_test(test_owner_requests),
        cmocka_unit_test(test_group_service_seed),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
