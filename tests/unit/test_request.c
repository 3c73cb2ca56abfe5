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
    req->version = 1;
    req->type = RC_REQ_ADD_MEMBER;
    memcpy(req->service_pk, F.svc.pub.pk, 32);
    strcpy(req->list, F.ls.address);
    req->counter = 7;
    req->created_at = 1700000000;
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
            req.version = 1;
            req.type = (uint8_t)type;
            memcpy(req.service_pk, F.svc.pub.pk, 32);
            strcpy(req.list, F.ls.address);
            req.counter = 3;
            req.created_at = 1700000000;
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
    /* Unknown version and type. */
    enc[0] = 2;
    assert_int_equal(rc_request_decode(&out, enc, len, &err), RC_E_VERSION);
    enc[0] = 1;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_armor),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_group_service_seed),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
