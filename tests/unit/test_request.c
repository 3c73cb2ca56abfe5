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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_armor),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
