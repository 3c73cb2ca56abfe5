/*
 * store_world.h - the fixture of the store tests (test_store.c) and the
 * gateway's decisions (test_gateway.c): a service, owners, the list LIST
 * at epochs 1 and 2, four devices of three members, a real LMDB store in a
 * temporary directory, and requests that go the real way (made, signed,
 * encoded, decoded, applied). Owns the global W; world_setup and
 * world_teardown are the cmocka group setup and teardown.
 *
 * Include it after <cmocka.h>, "store.h" and "test_util.h".
 */
#ifndef RC_TEST_STORE_WORLD_H
#define RC_TEST_STORE_WORLD_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <recrypt/request.h>

#define NOW 1700000000ull
#define DATE 1700000500ull
#define MID "store-test.1@example.org"
#define LIST "team@example.org"

/* ---------------------------------------------------------------- small helpers */

static inline void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static inline char *tmpdir_new(void)
{
    const char *base = getenv("TMPDIR");
    char *t = malloc(4096);
    assert_non_null(t);
    snprintf(t, 4096, "%s/rc-store-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(t));
    return t;
}

/* ---------------------------------------------------------------- the world */

enum { D_ALICE, D_BOB1, D_BOB2, D_CAROL, N_D };
static const char *const DEV_MEMBER[N_D] = {"alice@example.org", "bob@example.org",
                                            "bob@example.org", "carol@example.org"};
enum { M_ALICE, M_BOB, M_CAROL, N_M };
static const char *const MEMBER[N_M] = {"alice@example.org", "bob@example.org",
                                        "carol@example.org"};

#define MAX_SECRETS 512

typedef struct {
    char *dir;
    rc_service_secret *svc;       /* read back from dir/service.key */
    rc_service_secret *other_svc; /* another service */
    rc_owner_secret *owner, *admin, *stranger;
    rc_list_secret *ls1, *ls2; /* epoch 1 and 2 of LIST */
    rc_statement st1, st2;
    rc_device_secret *dev[N_D];
    uint8_t list_id[32];
    uint64_t ctr_owner, ctr_admin;
    /* Secrets that must never reach data.mdb: r, k, a, seeds. */
    uint8_t (*secrets)[32];
    size_t n_secrets;
} world;

static world W;

static inline void secret_add(const uint8_t s[32])
{
    assert_true(W.n_secrets < MAX_SECRETS);
    memcpy(W.secrets[W.n_secrets++], s, 32);
}

static inline int world_setup(void **state)
{
    (void)state;
    rc_error err;
    if (rc_init(&err) != 0)
        return -1;
    memset(&W, 0, sizeof W);
    W.svc = rc_secret_alloc(sizeof *W.svc);
    W.other_svc = rc_secret_alloc(sizeof *W.other_svc);
    W.owner = rc_secret_alloc(sizeof *W.owner);
    W.admin = rc_secret_alloc(sizeof *W.admin);
    W.stranger = rc_secret_alloc(sizeof *W.stranger);
    W.ls1 = rc_secret_alloc(sizeof *W.ls1);
    W.ls2 = rc_secret_alloc(sizeof *W.ls2);
    W.secrets = rc_secret_alloc(MAX_SECRETS * 32);
    if (!W.svc || !W.other_svc || !W.owner || !W.admin || !W.stranger || !W.ls1 || !W.ls2 ||
        !W.secrets)
        return -1;
    if (rc_service_generate(W.other_svc, &err) || rc_owner_generate(W.owner, &err) ||
        rc_owner_generate(W.admin, &err) || rc_owner_generate(W.stranger, &err) ||
        rc_list_generate(W.ls1, LIST, 1, NULL, &err) ||
        rc_list_generate(W.ls2, LIST, 2, W.ls1->sign_sk, &err) ||
        rc_statement_sign(&W.st1, W.ls1, NOW - 100, 0, &err) ||
        rc_statement_sign(&W.st2, W.ls2, NOW - 100, 0, &err) || rc_list_id(W.list_id, LIST, &err))
        return -1;
    for (int i = 0; i < N_D; i++) {
        W.dev[i] = rc_secret_alloc(sizeof *W.dev[i]);
        if (!W.dev[i] || rc_device_generate(W.dev[i], &err))
            return -1;
    }
    return 0;
}

static inline int world_teardown(void **state)
{
    (void)state;
    rc_secret_free(W.svc);
    rc_secret_free(W.other_svc);
    rc_secret_free(W.owner);
    rc_secret_free(W.admin);
    rc_secret_free(W.stranger);
    rc_secret_free(W.ls1);
    rc_secret_free(W.ls2);
    rc_secret_free(W.secrets);
    for (int i = 0; i < N_D; i++)
        rc_secret_free(W.dev[i]);
    return 0;
}

/* A new store in a fresh directory; W.svc is read back from its key file. */
static inline rc_store *store_new(void)
{
    rc_error err;
    rc_service_public pub;
    char path[4096], ks[RC_KEYSTR_MAX];
    rc_store *st = NULL;
    W.dir = tmpdir_new();
    snprintf(path, sizeof path, "%s/db", W.dir);
    free(W.dir);
    W.dir = strdup(path);
    assert_int_equal(rc_store_create(W.dir, 0, &pub, &err), RC_OK);
    snprintf(path, sizeof path, "%s/%s", W.dir, RC_STORE_SERVICE_KEY_FILE);
    assert_int_equal(rc_keyfile_read(path, ks, sizeof ks, &err), RC_OK);
    assert_int_equal(rc_service_secret_decode(W.svc, ks, &err), RC_OK);
    sodium_memzero(ks, sizeof ks);
    assert_memory_equal(pub.pk, W.svc->pub.pk, 32);
    assert_int_equal(rc_store_open(&st, W.dir, 0, 0, &err), RC_OK);
    W.ctr_owner = W.ctr_admin = 0;
    return st;
}

static inline void store_destroy(rc_store *st)
{
    rc_store_close(st);
    char *parent = strdup(W.dir);
    rm_rf(W.dir);
    *strrchr(parent, '/') = '\0';
    rmdir(parent);
    free(parent);
    free(W.dir);
    W.dir = NULL;
}

/* ---------------------------------------------------------------- requests */

static inline void req_init(rc_request *r, uint8_t type, const char *list)
{
    memset(r, 0, sizeof *r);
    r->version = RC_REQUEST_VERSION;
    r->type = type;
    memcpy(r->service_pk, W.svc->pub.pk, 32);
    snprintf(r->list, sizeof r->list, "%s", list);
    r->created_at = NOW;
    r->not_after = NOW + RC_REQUEST_DEFAULT_LIFETIME;
}

/* A device entry for dev (made for the service svc), recorded as a secret
 * when this service can unseal it. */
static inline void req_dev_for(rc_request *r, const rc_list_secret *ls, int dev, const char *member,
                        uint64_t enrolled, const rc_service_public *svc)
{
    rc_error err;
    rc_req_device *d = calloc(1, sizeof *d);
    assert_non_null(d);
    assert_int_equal(rc_req_device_make(d, ls, &W.dev[dev]->pub, member, enrolled, svc, &err),
                     RC_OK);
    uint8_t rk[2][32];
    if (crypto_box_seal_open(rk[0], d->sealed_r, RC_SEALED_R_BYTES, W.svc->pub.pk, W.svc->sk) ==
        0) {
        crypto_core_ristretto255_scalar_sub(rk[1], ls->a, rk[0]); /* k = a - r */
        secret_add(rk[0]);
        secret_add(rk[1]);
        sodium_memzero(rk, sizeof rk);
    }
    assert_int_equal(rc_request_add_device(r, d, &err), RC_OK);
    free(d);
}

static inline void req_dev(rc_request *r, const rc_list_secret *ls, int dev, uint64_t enrolled)
{
    req_dev_for(r, ls, dev, DEV_MEMBER[dev], enrolled, &W.svc->pub);
}

/* Sign, encode, decode (as the server does) and apply. */
static inline int submit_as(rc_store *st, rc_request *r, const rc_owner_secret *signer,
                     uint64_t counter, rc_error *err)
{
    uint8_t *enc;
    size_t len;
    rc_request dec;
    rc_error e2;
    r->counter = counter;
    assert_int_equal(rc_request_sign(r, signer, &e2), RC_OK);
    assert_int_equal(rc_request_encode(r, &enc, &len, &e2), RC_OK);
    assert_int_equal(rc_request_decode(&dec, enc, len, &e2), RC_OK);
    free(enc);
    assert_memory_equal(dec.id, r->id, 32);
    rc_error_clear(err);
    int rc = rc_store_apply(st, W.svc, &dec, NOW, err);
    if (rc) {
        assert_int_equal(err->code, rc);
        assert_true(strlen(err->msg) > 0);
    } else {
        assert_int_equal(err->code, RC_OK);
    }
    rc_request_free(&dec);
    return rc;
}

/* As the main owner, with the next counter; must succeed. */
static inline void apply_ok(rc_store *st, rc_request *r)
{
    rc_error err;
    int rc = submit_as(st, r, W.owner, ++W.ctr_owner, &err);
    if (rc)
        fail_msg("%s refused: %s", rc_request_type_name(r->type), err.msg);
    rc_request_free(r);
}

static inline void create_list(rc_store *st)
{
    rc_request r;
    req_init(&r, RC_REQ_CREATE_GROUP, LIST);
    r.statement = W.st1;
    r.owner = W.owner->pub;
    apply_ok(st, &r);
}

static inline void add_member(rc_store *st, int m, const int *devs, size_t n, uint64_t enrolled)
{
    rc_request r;
    req_init(&r, RC_REQ_ADD_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[m]);
    r.privilege = RC_PRIV_RECRYPT;
    for (size_t i = 0; i < n; i++)
        req_dev(&r, W.ls1, devs[i], enrolled);
    apply_ok(st, &r);
}

static inline void update_member(rc_store *st, int m, uint8_t status, uint8_t flags, const int *devs,
                          size_t n, const rc_list_secret *ls, uint64_t enrolled)
{
    rc_request r;
    req_init(&r, RC_REQ_UPDATE_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[m]);
    r.status = status;
    r.flags = flags;
    for (size_t i = 0; i < n; i++)
        req_dev(&r, ls, devs[i], enrolled);
    apply_ok(st, &r);
}

#endif
