/*
 * test_store.c - the server's LMDB membership store on real files in a
 * temporary directory: a list's whole life cycle (create, members with
 * several devices, suspend, reinstate, revoke, rotate) with the exact store
 * contents and a real post after every step (only the right devices open
 * it); each refusal with its code, its message and a byte-identical store
 * afterwards; a writer process racing a reader that checks an invariant a
 * half-applied request would break; no secret anywhere in data.mdb; file
 * modes; a store of a newer schema refused; stores of schema 1 and 3
 * migrated in one transaction, or left as they are when read only; the
 * replay cache bounded to one window's traffic; a post's audience grouped
 * by member (linear in the list's size); and the records of split
 * delivery ("copies"), which live as long as their post's cache row.
 *
 * Requests go through the real path: rc_req_device_make, rc_request_sign,
 * rc_request_encode and rc_request_decode, then rc_store_apply.
 */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h" /* raw rows: big-endian fields */
#include "store.h"
#include "test_util.h"
#include "store_world.h"
#include <recrypt/request.h>


/* ---------------------------------------------------------------- raw LMDB access */

static const char *const DBS[] = {"meta",   "lists",   "epochs",    "members",      "devices",
                                  "owners", "applied", "delivered", "delivered-at", "copies",
                                  "svckeys"};
#define N_DBS (sizeof DBS / sizeof DBS[0])

static MDB_env *raw_open(const char *dir, unsigned flags)
{
    MDB_env *env;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_set_mapsize(env, RC_STORE_DEFAULT_MAP_SIZE), 0);
    assert_int_equal(mdb_env_open(env, dir, flags | MDB_NOTLS, 0640), 0);
    return env;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t db_since(const char *db)
{
    if (!strcmp(db, "delivered-at"))
        return 2;
    if (!strcmp(db, "svckeys"))
        return 5;
    return strcmp(db, "copies") ? 1 : 4;
}

/* Every row of every database, in order: name, then (len, key, len, value). */
static void raw_dump(const char *dir, mbuf *out, size_t *rows)
{
    MDB_env *env = raw_open(dir, MDB_RDONLY);
    MDB_txn *txn;
    *rows = 0;
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    for (size_t i = 0; i < N_DBS; i++) {
        MDB_dbi dbi;
        MDB_cursor *c;
        MDB_val k, v;
        uint8_t len[4];
        int o = mdb_dbi_open(txn, DBS[i], 0, &dbi);
        assert_int_equal(sink_mem(out, (const uint8_t *)DBS[i], strlen(DBS[i]) + 1), 0);
        if (o == MDB_NOTFOUND && db_since(DBS[i]) > 1)
            continue; /* a store of schema 1 has no delivered-at, of 1..3 no copies */
        assert_int_equal(o, 0);
        assert_int_equal(mdb_cursor_open(txn, dbi, &c), 0);
        int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        while (rc == 0) {
            put_u32(len, (uint32_t)k.mv_size);
            sink_mem(out, len, 4);
            sink_mem(out, k.mv_data, k.mv_size);
            put_u32(len, (uint32_t)v.mv_size);
            sink_mem(out, len, 4);
            sink_mem(out, v.mv_data, v.mv_size);
            (*rows)++;
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        assert_int_equal(rc, MDB_NOTFOUND);
        mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

static size_t raw_count(const char *dir, const char *db)
{
    MDB_env *env = raw_open(dir, MDB_RDONLY);
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_stat s;
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
    assert_int_equal(mdb_stat(txn, dbi, &s), 0);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return s.ms_entries;
}

/* ---------------------------------------------------------------- store contents */

typedef struct {
    rc_store_member m[16];
    size_t n;
} members_seen;

static int collect_member(void *ctx, const rc_store_member *m)
{
    members_seen *s = ctx;
    if (s->n == 16)
        return 1;
    s->m[s->n++] = *m;
    return 0;
}

typedef struct {
    unsigned mask; /* which of W.dev are there */
    size_t n;
    uint64_t enrolled[N_D];
    int stray; /* rows not matching any known device/member pair */
} devices_seen;

static int collect_device(void *ctx, const rc_store_device *d)
{
    devices_seen *s = ctx;
    s->n++;
    for (int i = 0; i < N_D; i++) {
        if (!memcmp(d->device.sign_pk, W.dev[i]->pub.sign_pk, 32) &&
            !memcmp(d->device.wrap_pk, W.dev[i]->pub.wrap_pk, 32) &&
            !strcmp(d->member, DEV_MEMBER[i])) {
            s->mask |= 1u << i;
            s->enrolled[i] = d->enrolled_at;
            return 0;
        }
    }
    s->stray++;
    return 0;
}

typedef struct {
    rc_store_epoch e[8];
    size_t n;
} epochs_seen;

static int collect_epoch(void *ctx, const rc_store_epoch *e)
{
    epochs_seen *s = ctx;
    if (s->n == 8)
        return 1;
    s->e[s->n++] = *e;
    return 0;
}

typedef struct {
    rc_store_owner o[8];
    size_t n;
} owners_seen;

static int collect_owner(void *ctx, const rc_store_owner *o)
{
    owners_seen *s = ctx;
    if (s->n == 8)
        return 1;
    s->o[s->n++] = *o;
    return 0;
}

typedef struct {
    uint64_t current_epoch;
    uint64_t grace[3];        /* grace_until of epoch 1, 2 (index by epoch) */
    size_t n_epochs;
    uint8_t status[N_M];      /* 0: not a member */
    unsigned devs[3];         /* device rows per epoch (index by epoch) */
    unsigned opens;           /* devices that open a post to the current epoch */
    uint64_t enrolled[N_D];   /* enrolled_at of the current epoch's rows, 0: any */
} expect;

/* A post sealed now to the current statement: the service recrypts it from
 * the store's entries; exactly the devices in `opens` read it. */
static void check_post(rc_store_reader *rd, const rc_statement *stmt, unsigned opens)
{
    rc_error err;
    rc_device_entry *e = NULL;
    size_t n = 99;
    assert_int_equal(rc_store_recrypt_entries(rd, W.svc, W.list_id, stmt->epoch, UINT64_MAX, UINT64_MAX, &e, &n, &err),
                     RC_OK);
    assert_non_null(e);
    assert_int_equal(n, (size_t)__builtin_popcount(opens));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rc_entry_check(e[i].r, e[i].K, stmt->A, &err), RC_OK);
        secret_add(e[i].r);
    }

    static const char body[] = "Subject: test\r\n\r\nthe minutes of the meeting\r\n";
    mbuf ct = {0};
    rc_envelope env;
    rc_sealer *s = NULL;
    assert_int_equal(rc_sealer_new(&s, &env, stmt, DATE, MID, NULL, NULL, &err), RC_OK);
    assert_int_equal(rc_sealer_update(s, (const uint8_t *)body, sizeof body - 1, sink_mem, &ct,
                                      &err),
                     RC_OK);
    assert_int_equal(rc_sealer_final(s, sink_mem, &ct, &err), RC_OK);
    rc_sealer_free(s);

    rc_stanza *stz = calloc(n ? n : 1, sizeof *stz);
    rc_recryptor *rc = NULL;
    assert_non_null(stz);
    assert_int_equal(rc_recryptor_new(&rc, env.E, 0, &err), RC_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rc_recryptor_stanza(rc, e[i].r, e[i].W, e[i].W_len, &stz[i], &err),
                         RC_OK);
    rc_recryptor_free(rc);
    rc_secret_free(e);

    for (int d = 0; d < N_D; d++) {
        rc_opener *o = NULL;
        int r = rc_opener_new(&o, &env, stmt, W.dev[d], stz, n, DATE, MID, &err);
        if (!(opens & (1u << d))) {
            if (r != RC_E_NOT_FOR_US)
                fail_msg("device %d: expected NOT_FOR_US, got %d (%s)", d, r, err.msg);
            assert_null(o);
            continue;
        }
        if (r != RC_OK)
            fail_msg("device %d does not open the post: %s", d, err.msg);
        mbuf pt = {0};
        rc_open_result *res = rc_secret_alloc(sizeof *res);
        assert_non_null(res);
        assert_int_equal(rc_opener_update(o, ct.p, ct.len, sink_mem, &pt, &err), RC_OK);
        assert_int_equal(rc_opener_final(o, sink_mem, &pt, res, &err), RC_OK);
        rc_opener_free(o);
        assert_int_equal(pt.len, sizeof body - 1);
        assert_memory_equal(pt.p, body, pt.len);
        assert_memory_equal(res->share.list_id, W.list_id, 32);
        assert_int_equal(res->share.epoch, stmt->epoch);
        secret_add(res->share.k);
        rc_secret_free(res);
        mbuf_free(&pt);
    }
    free(stz);
    mbuf_free(&ct);
}

static void check_store(rc_store *st, const expect *x)
{
    rc_error err;
    rc_store_reader *rd = NULL;
    rc_store_list l;
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_schema(rd), RC_STORE_SCHEMA_VERSION);

    /* The list, addressed in any case. */
    assert_int_equal(rc_store_get_list(rd, "Team@Example.ORG", &l, &err), RC_OK);
    assert_string_equal(l.address, LIST);
    assert_memory_equal(l.list_id, W.list_id, 32);
    assert_int_equal(l.current_epoch, x->current_epoch);
    assert_string_equal(l.bounce, "team-bounces@example.org");
    assert_memory_equal(l.signer_pk, W.ls1->sign_pk, 32);
    assert_int_equal(l.created_at, NOW);

    /* Epochs and their grace. */
    epochs_seen es = {0};
    assert_int_equal(rc_store_each_epoch(rd, W.list_id, collect_epoch, &es, &err), RC_OK);
    assert_int_equal(es.n, x->n_epochs);
    for (size_t i = 0; i < es.n; i++) {
        uint64_t ep = i + 1;
        const rc_statement *want = ep == 1 ? &W.st1 : &W.st2;
        assert_int_equal(es.e[i].epoch, ep);
        assert_int_equal(es.e[i].grace_until, x->grace[ep]);
        assert_memory_equal(es.e[i].statement.A, want->A, 32);
        assert_memory_equal(es.e[i].statement.sig, want->sig, 64);
        assert_int_equal(rc_statement_verify(&es.e[i].statement, &err), RC_OK);
        rc_store_epoch one;
        assert_int_equal(rc_store_get_epoch(rd, W.list_id, ep, &one, &err), RC_OK);
        assert_int_equal(one.grace_until, x->grace[ep]);
    }
    rc_store_epoch none;
    assert_int_equal(rc_store_get_epoch(rd, W.list_id, x->n_epochs + 1, &none, &err),
                     RC_E_NOT_FOUND);

    /* Members with their status. */
    members_seen ms = {0};
    size_t want_members = 0;
    assert_int_equal(rc_store_each_member(rd, W.list_id, collect_member, &ms, &err), RC_OK);
    for (int m = 0; m < N_M; m++) {
        rc_store_member one;
        int rc = rc_store_get_member(rd, W.list_id, MEMBER[m], &one, &err);
        if (!x->status[m]) {
            assert_int_equal(rc, RC_E_NOT_FOUND);
            continue;
        }
        want_members++;
        assert_int_equal(rc, RC_OK);
        assert_string_equal(one.address, MEMBER[m]);
        assert_int_equal(one.status, x->status[m]);
        assert_int_equal(one.privilege, RC_PRIV_RECRYPT);
        assert_int_equal(one.updated_at, NOW);
    }
    assert_int_equal(ms.n, want_members);

    /* Device rows per epoch. */
    for (uint64_t ep = 1; ep <= 2; ep++) {
        devices_seen ds = {0};
        assert_int_equal(rc_store_each_device(rd, W.list_id, ep, collect_device, &ds, &err),
                         RC_OK);
        assert_int_equal(ds.stray, 0);
        if (ds.mask != x->devs[ep])
            fail_msg("epoch %llu: device rows 0x%x, expected 0x%x", (unsigned long long)ep,
                     ds.mask, x->devs[ep]);
        assert_int_equal(ds.n, (size_t)__builtin_popcount(x->devs[ep]));
        if (ep == x->current_epoch)
            for (int d = 0; d < N_D; d++)
                if (x->enrolled[d])
                    assert_int_equal(ds.enrolled[d], x->enrolled[d]);
    }

    /* Owners. */
    owners_seen os = {0};
    assert_int_equal(rc_store_each_owner(rd, W.list_id, collect_owner, &os, &err), RC_OK);
    assert_int_equal(os.n, 1);
    assert_memory_equal(os.o[0].owner.sign_pk, W.owner->pub.sign_pk, 32);
    assert_memory_equal(os.o[0].owner.box_pk, W.owner->pub.box_pk, 32);
    assert_int_equal(os.o[0].privilege, RC_PRIV_SUPER);
    assert_int_equal(os.o[0].last_counter, W.ctr_owner);

    check_post(rd, x->current_epoch == 1 ? &W.st1 : &W.st2, x->opens);
    rc_store_reader_end(rd);
}

/* ---------------------------------------------------------------- life cycle */

#define BIT(d) (1u << (d))

static void test_life_cycle(void **state)
{
    (void)state;
    rc_store *st = store_new();
    expect x;
    memset(&x, 0, sizeof x);

    create_list(st);
    x.current_epoch = 1;
    x.n_epochs = 1;
    check_store(st, &x);

    int alice[] = {D_ALICE}, bob[] = {D_BOB1, D_BOB2}, carol[] = {D_CAROL};
    add_member(st, M_ALICE, alice, 1, NOW - 10);
    x.status[M_ALICE] = RC_STATUS_ACTIVE;
    x.devs[1] = x.opens = BIT(D_ALICE);
    check_store(st, &x);

    add_member(st, M_BOB, bob, 2, NOW - 10);
    x.status[M_BOB] = RC_STATUS_ACTIVE;
    x.devs[1] = x.opens = BIT(D_ALICE) | BIT(D_BOB1) | BIT(D_BOB2);
    check_store(st, &x);

    add_member(st, M_CAROL, carol, 1, NOW - 10);
    x.status[M_CAROL] = RC_STATUS_ACTIVE;
    x.devs[1] = x.opens = BIT(D_ALICE) | BIT(D_BOB1) | BIT(D_BOB2) | BIT(D_CAROL);
    x.enrolled[D_BOB1] = x.enrolled[D_BOB2] = NOW - 10;
    check_store(st, &x);

    /* Suspend bob: his rows stay, he gets no stanza. */
    update_member(st, M_BOB, RC_STATUS_SUSPENDED, 0, NULL, 0, W.ls1, 0);
    x.status[M_BOB] = RC_STATUS_SUSPENDED;
    x.opens = BIT(D_ALICE) | BIT(D_CAROL);
    check_store(st, &x);

    /* Reinstate bob with fresh entries replacing the old ones. */
    update_member(st, M_BOB, RC_STATUS_ACTIVE, RC_UPDATE_REPLACE_DEVICES, bob, 2, W.ls1, NOW);
    x.status[M_BOB] = RC_STATUS_ACTIVE;
    x.opens = x.devs[1];
    x.enrolled[D_BOB1] = x.enrolled[D_BOB2] = NOW;
    check_store(st, &x);

    /* Revoke carol: her rows go, in every epoch. */
    update_member(st, M_CAROL, RC_STATUS_REVOKED, 0, NULL, 0, W.ls1, 0);
    x.status[M_CAROL] = RC_STATUS_REVOKED;
    x.devs[1] = x.opens = BIT(D_ALICE) | BIT(D_BOB1) | BIT(D_BOB2);
    check_store(st, &x);

    /* Rotate with no grace: entries for every continuing device. */
    rc_request r;
    req_init(&r, RC_REQ_UPDATE_GROUP, LIST);
    r.statement = W.st2;
    r.grace_until = 0;
    req_dev(&r, W.ls2, D_ALICE, NOW + 1);
    req_dev(&r, W.ls2, D_BOB1, NOW + 1);
    req_dev(&r, W.ls2, D_BOB2, NOW + 1);
    apply_ok(st, &r);
    x.current_epoch = 2;
    x.n_epochs = 2;
    x.grace[1] = 1; /* refused at once: a time in the past */
    x.grace[2] = 0;
    x.devs[2] = x.opens = BIT(D_ALICE) | BIT(D_BOB1) | BIT(D_BOB2);
    x.enrolled[D_ALICE] = x.enrolled[D_BOB1] = x.enrolled[D_BOB2] = NOW + 1;
    check_store(st, &x);

    /* Carol's old share does not open a post to epoch 2 either way. */
    rc_store_close(st);
    assert_int_equal(raw_count(W.dir, "applied"), 8);
    assert_int_equal(raw_count(W.dir, "lists"), 1);
    assert_int_equal(raw_count(W.dir, "devices"), 6);

    /* No secret in the data file. */
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", W.dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct stat sb;
    assert_int_equal(fstat(fileno(f), &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0640);
    uint8_t *data = malloc((size_t)sb.st_size);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)sb.st_size, f), (size_t)sb.st_size);
    fclose(f);
    secret_add(W.ls1->a);
    secret_add(W.ls2->a);
    secret_add(W.ls1->sign_sk); /* the seed */
    secret_add(W.owner->sign_sk);
    secret_add(W.owner->box_sk);
    secret_add(W.svc->sk);
    for (int d = 0; d < N_D; d++) {
        secret_add(W.dev[d]->wrap_sk);
        secret_add(W.dev[d]->sign_sk);
    }
    assert_true(W.n_secrets > 40);
    for (size_t i = 0; i < W.n_secrets; i++) {
        if (memmem(data, (size_t)sb.st_size, W.secrets[i], 32))
            fail_msg("secret %zu found in data.mdb", i);
        /* A 16-byte piece of it neither. */
        assert_null(memmem(data, (size_t)sb.st_size, W.secrets[i] + 8, 16));
    }
    /* ...while public values are there (the scan does look at real data). */
    assert_non_null(memmem(data, (size_t)sb.st_size, W.st2.A, 32));
    assert_non_null(memmem(data, (size_t)sb.st_size, W.dev[D_ALICE]->pub.wrap_pk, 32));
    free(data);
    W.n_secrets = 0;

    snprintf(path, sizeof path, "%s/%s", W.dir, RC_STORE_SERVICE_KEY_FILE);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    snprintf(path, sizeof path, "%s/lock.mdb", W.dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0660);
    assert_int_equal(stat(W.dir, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0750);

    /* A read-only open sees the same and refuses to write. */
    rc_error err;
    assert_int_equal(rc_store_open(&st, W.dir, 0, 1, &err), RC_OK);
    memset(&x.status, 0, sizeof x.status);
    x.status[M_ALICE] = x.status[M_BOB] = RC_STATUS_ACTIVE;
    x.status[M_CAROL] = RC_STATUS_REVOKED;
    check_store(st, &x);
    req_init(&r, RC_REQ_ADD_OWNER, LIST);
    r.owner = W.admin->pub;
    r.privilege = RC_PRIV_ADMIN;
    r.counter = W.ctr_owner + 1;
    assert_int_equal(rc_request_sign(&r, W.owner, &err), RC_OK);
    assert_int_equal(rc_store_apply(st, W.svc, &r, NOW, &err), RC_E_INVALID);
    assert_non_null(strstr(err.msg, "read-only"));
    store_destroy(st);
}

/* ---------------------------------------------------------------- refusals */

static void reopen(rc_store **st)
{
    rc_error err;
    assert_int_equal(rc_store_open(st, W.dir, 0, 0, &err), RC_OK);
}

static void dump_now(rc_store **st, mbuf *out, size_t *rows)
{
    rc_store_close(*st);
    raw_dump(W.dir, out, rows);
    reopen(st);
}

/* The request is refused with `code` and a message containing `needle`, and
 * every row of every database is as before. Frees the request. */
static void refused(rc_store **st, rc_request *r, const rc_owner_secret *signer,
                    uint64_t counter, int code, const char *needle)
{
    mbuf before = {0}, after = {0};
    size_t rb, ra;
    rc_error err;
    dump_now(st, &before, &rb);
    int rc = submit_as(*st, r, signer, counter, &err);
    if (rc != code)
        fail_msg("%s: expected %d (%s), got %d: %s", needle, code, rc_strerror(code), rc,
                 err.msg);
    if (!strstr(err.msg, needle))
        fail_msg("message \"%s\" does not say \"%s\"", err.msg, needle);
    dump_now(st, &after, &ra);
    assert_true(rb > 5);
    assert_int_equal(ra, rb);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.p, before.p, before.len);
    mbuf_free(&before);
    mbuf_free(&after);
    rc_request_free(r);
}

static void test_refusals(void **state)
{
    (void)state;
    rc_store *st = store_new();
    rc_request r;
    rc_error err;
    create_list(st);
    req_init(&r, RC_REQ_ADD_OWNER, LIST);
    r.owner = W.admin->pub;
    r.privilege = RC_PRIV_ADMIN;
    apply_ok(st, &r);
    int alice[] = {D_ALICE};
    add_member(st, M_ALICE, alice, 1, NOW);
    uint64_t next = W.ctr_owner + 1;

    /* A successful request does change the dump (the comparison means something). */
    mbuf d0 = {0}, d1 = {0};
    size_t r0, r1;
    dump_now(&st, &d0, &r0);
    req_init(&r, RC_REQ_UPDATE_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_ALICE]);
    r.status = RC_STATUS_SUSPENDED;
    apply_ok(st, &r);
    dump_now(&st, &d1, &r1);
    assert_int_equal(r1, r0 + 1); /* one more applied request */
    assert_true(d0.len != d1.len || memcmp(d0.p, d1.p, d0.len) != 0);
    mbuf_free(&d0);
    mbuf_free(&d1);
    next = W.ctr_owner + 1;

    /* A signer who is not an owner of the list. */
    req_init(&r, RC_REQ_ADD_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_BOB]);
    r.privilege = RC_PRIV_RECRYPT;
    req_dev(&r, W.ls1, D_BOB1, NOW);
    refused(&st, &r, W.stranger, 1, RC_E_POLICY, "is not an owner of team@example.org");

    /* An ADMIN owner adding an owner: SUPER is needed. */
    req_init(&r, RC_REQ_ADD_OWNER, LIST);
    r.owner = W.stranger->pub;
    r.privilege = RC_PRIV_ADMIN;
    refused(&st, &r, W.admin, 1, RC_E_POLICY, "has ADMIN, SUPER is needed");

    /* ...while the ADMIN may add a member (and its counter starts at 0). */
    req_init(&r, RC_REQ_ADD_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_CAROL]);
    r.privilege = RC_PRIV_RECRYPT;
    req_dev(&r, W.ls1, D_CAROL, NOW);
    assert_int_equal(submit_as(st, &r, W.admin, 1, &err), RC_OK);

    /* The same request again: a replay, whatever the counter says. */
    refused(&st, &r, W.admin, 1, RC_E_EXISTS, "request already applied (replay)");

    /* A new request whose counter is not above the last one. */
    req_init(&r, RC_REQ_UPDATE_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_CAROL]);
    r.status = RC_STATUS_SUSPENDED;
    r.created_at = NOW + 5;
    refused(&st, &r, W.admin, 1, RC_E_POLICY, "counter 1 is not above the last applied 1");
    req_init(&r, RC_REQ_UPDATE_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_ALICE]);
    r.status = RC_STATUS_ACTIVE;
    refused(&st, &r, W.owner, next - 2, RC_E_POLICY, "replayed or out-of-order request");

    /* A list the store does not know. */
    req_init(&r, RC_REQ_ADD_MEMBER, "other@example.org");
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_BOB]);
    r.privilege = RC_PRIV_RECRYPT;
    refused(&st, &r, W.owner, next, RC_E_NOT_FOUND, "unknown list other@example.org");

    /* An entry whose K does not match: r·G + K != A. */
    req_init(&r, RC_REQ_ADD_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_BOB]);
    r.privilege = RC_PRIV_RECRYPT;
    req_dev(&r, W.ls1, D_BOB1, NOW);
    req_dev(&r, W.ls1, D_BOB2, NOW);
    memcpy(r.devices[1].K, r.devices[0].K, 32);
    refused(&st, &r, W.owner, next, RC_E_CRYPTO,
            "device entry for bob@example.org (device ");

    /* r sealed to another service's key. */
    req_init(&r, RC_REQ_ADD_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_BOB]);
    r.privilege = RC_PRIV_RECRYPT;
    req_dev(&r, W.ls1, D_BOB1, NOW);
    req_dev_for(&r, W.ls1, D_BOB2, MEMBER[M_BOB], NOW, &W.other_svc->pub);
    refused(&st, &r, W.owner, next, RC_E_CRYPTO, "is not sealed to this service");

    /* A request for another service altogether. */
    req_init(&r, RC_REQ_ADD_MEMBER, LIST);
    memcpy(r.service_pk, W.other_svc->pub.pk, 32);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_BOB]);
    r.privilege = RC_PRIV_RECRYPT;
    req_dev_for(&r, W.ls1, D_BOB1, MEMBER[M_BOB], NOW, &W.other_svc->pub);
    refused(&st, &r, W.owner, next, RC_E_POLICY, "request is for another service (key ");

    /* Adding a member who is there. */
    req_init(&r, RC_REQ_ADD_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_ALICE]);
    r.privilege = RC_PRIV_RECRYPT;
    req_dev(&r, W.ls1, D_ALICE, NOW + 9);
    refused(&st, &r, W.owner, next, RC_E_EXISTS, "alice@example.org is already a member");

    /* More state checks. */
    req_init(&r, RC_REQ_CREATE_GROUP, LIST);
    r.statement = W.st1;
    r.owner = W.owner->pub;
    refused(&st, &r, W.owner, next, RC_E_EXISTS, "list team@example.org exists");

    req_init(&r, RC_REQ_ADD_MEMBER, LIST); /* an entry of another epoch */
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_BOB]);
    r.privilege = RC_PRIV_RECRYPT;
    req_dev(&r, W.ls2, D_BOB1, NOW);
    refused(&st, &r, W.owner, next, RC_E_POLICY, "not the target epoch 1");

    req_init(&r, RC_REQ_ADD_MEMBER, LIST); /* an entry for someone else */
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_BOB]);
    r.privilege = RC_PRIV_RECRYPT;
    req_dev(&r, W.ls1, D_CAROL, NOW);
    refused(&st, &r, W.owner, next, RC_E_INVALID, "is for carol@example.org, not for bob");

    req_init(&r, RC_REQ_ADD_MEMBER, LIST); /* the same device twice */
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_BOB]);
    r.privilege = RC_PRIV_RECRYPT;
    req_dev(&r, W.ls1, D_BOB1, NOW);
    req_dev(&r, W.ls1, D_BOB1, NOW);
    refused(&st, &r, W.owner, next, RC_E_EXISTS, "is already enrolled in epoch 1");

    req_init(&r, RC_REQ_ADD_MEMBER, LIST); /* no device */
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_BOB]);
    r.privilege = RC_PRIV_RECRYPT;
    refused(&st, &r, W.owner, next, RC_E_INVALID, "carries no device entry");

    req_init(&r, RC_REQ_UPDATE_MEMBER, LIST); /* unknown member */
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_BOB]);
    r.status = RC_STATUS_ACTIVE;
    refused(&st, &r, W.owner, next, RC_E_NOT_FOUND, "bob@example.org is not a member");

    req_init(&r, RC_REQ_UPDATE_MEMBER, LIST); /* devices for a suspension */
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_ALICE]);
    r.status = RC_STATUS_SUSPENDED;
    req_dev(&r, W.ls1, D_ALICE, NOW);
    refused(&st, &r, W.owner, next, RC_E_POLICY, "a suspended member gets none");

    req_init(&r, RC_REQ_UPDATE_GROUP, LIST); /* not a newer epoch */
    r.statement = W.st1;
    refused(&st, &r, W.owner, next, RC_E_POLICY, "epoch 1 is not above the current 1");

    rc_list_secret *rogue = rc_secret_alloc(sizeof *rogue);
    assert_non_null(rogue);
    assert_int_equal(rc_list_generate(rogue, LIST, 2, NULL, &err), RC_OK);
    req_init(&r, RC_REQ_UPDATE_GROUP, LIST); /* another list signing key */
    assert_int_equal(rc_statement_sign(&r.statement, rogue, NOW, 0, &err), RC_OK);
    refused(&st, &r, W.owner, next, RC_E_POLICY, "not by the list's signing key");
    rc_secret_free(rogue);

    req_init(&r, RC_REQ_UPDATE_GROUP, LIST); /* an entry for a non-member */
    r.statement = W.st2;
    req_dev(&r, W.ls2, D_ALICE, NOW);
    req_dev(&r, W.ls2, D_BOB1, NOW);
    refused(&st, &r, W.owner, next, RC_E_NOT_FOUND, "bob@example.org, who is not a member");

    req_init(&r, RC_REQ_UPDATE_GROUP, LIST); /* an entry split from the old key */
    r.statement = W.st2;
    req_dev(&r, W.ls2, D_ALICE, NOW);
    req_dev(&r, W.ls2, D_CAROL, NOW);
    r.devices[1].epoch = 2;
    {
        rc_request tmp;
        req_init(&tmp, RC_REQ_ADD_MEMBER, LIST);
        req_dev(&tmp, W.ls1, D_CAROL, NOW);
        memcpy(r.devices[1].sealed_r, tmp.devices[0].sealed_r, RC_SEALED_R_BYTES);
        rc_request_free(&tmp);
    }
    refused(&st, &r, W.owner, next, RC_E_CRYPTO, "does not split the list key of epoch 2");

    /* Reinstating without fresh entries would revive the old ones. */
    req_init(&r, RC_REQ_UPDATE_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_ALICE]);
    r.status = RC_STATUS_ACTIVE;
    refused(&st, &r, W.owner, next, RC_E_POLICY, "needs fresh device entries");

    /* After all that, the next counter still works. */
    req_init(&r, RC_REQ_UPDATE_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_ALICE]);
    r.status = RC_STATUS_ACTIVE;
    r.flags = RC_UPDATE_REPLACE_DEVICES;
    req_dev(&r, W.ls1, D_ALICE, NOW);
    apply_ok(st, &r);
    assert_int_equal(W.ctr_owner, next);
    W.n_secrets = 0;
    store_destroy(st);
}

/* A signature is rc_request_decode's business: any changed byte fails. */
static void test_request_tamper(void **state)
{
    (void)state;
    rc_request r, dec;
    rc_error err;
    uint8_t *enc;
    size_t len;
    memset(W.svc, 0, sizeof *W.svc);
    assert_int_equal(rc_service_generate(W.svc, &err), RC_OK);
    req_init(&r, RC_REQ_ADD_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_BOB]);
    r.privilege = RC_PRIV_RECRYPT;
    req_dev(&r, W.ls1, D_BOB1, NOW);
    r.counter = 7;
    assert_int_equal(rc_request_sign(&r, W.owner, &err), RC_OK);
    assert_int_equal(rc_request_encode(&r, &enc, &len, &err), RC_OK);
    assert_int_equal(rc_request_decode(&dec, enc, len, &err), RC_OK);
    rc_request_free(&dec);
    for (size_t i = 0; i < len; i++) {
        enc[i] ^= 0x04;
        int rc = rc_request_decode(&dec, enc, len, &err);
        enc[i] ^= 0x04;
        if (rc == RC_OK)
            fail_msg("a request with byte %zu changed decodes", i);
        assert_int_equal(err.code, rc);
        assert_null(dec.devices);
        if (i >= len - RC_SIG_BYTES) {
            assert_int_equal(rc, RC_E_SIGNATURE);
            assert_non_null(strstr(err.msg, "signature does not verify"));
        }
    }
    free(enc);
    rc_request_free(&r);
    W.n_secrets = 0;
}

/* ---------------------------------------------------------------- concurrency */

#define RACE_REQUESTS 201 /* 67 members: add, suspend, reinstate */
#define RACE_BASE_TIME 5000

/* The writer's request s (1-based): member s/3, one of three steps. Its
 * counter is s + 1 (the list's creation was 1), applied at BASE + counter. */
static void race_member(char *out, size_t cap, uint64_t s)
{
    snprintf(out, cap, "m%03llu@example.org", (unsigned long long)((s - 1) / 3));
}

/* No cmocka in here: this runs in the forked writer. */
static int race_writer(const char *dir)
{
    rc_store *st = NULL;
    rc_error err;
    rc_device_secret *dev = rc_secret_alloc(sizeof *dev);
    rc_req_device *d = calloc(1, sizeof *d);
    if (!dev || !d || rc_store_open(&st, dir, 0, 0, &err) != 0)
        return 2;
    for (uint64_t s = 1; s <= RACE_REQUESTS; s++) {
        rc_request r, dec;
        uint8_t *enc = NULL;
        size_t len;
        int phase = (int)((s - 1) % 3), rc = 0;
        req_init(&r, phase == 0 ? RC_REQ_ADD_MEMBER : RC_REQ_UPDATE_MEMBER, LIST);
        race_member(r.member, sizeof r.member, s);
        r.privilege = RC_PRIV_RECRYPT;
        r.status = phase == 1 ? RC_STATUS_SUSPENDED : RC_STATUS_ACTIVE;
        r.flags = phase == 2 ? RC_UPDATE_REPLACE_DEVICES : 0;
        r.counter = s + 1;
        r.created_at = RACE_BASE_TIME + s;
        r.not_after = r.created_at + RC_REQUEST_DEFAULT_LIFETIME;
        for (int i = 0; i < 2 && phase != 1 && rc == 0; i++)
            if ((rc = rc_device_generate(dev, &err)) == 0 &&
                (rc = rc_req_device_make(d, W.ls1, &dev->pub, r.member, s, &W.svc->pub,
                                         &err)) == 0)
                rc = rc_request_add_device(&r, d, &err);
        if (rc == 0 && (rc = rc_request_sign(&r, W.owner, &err)) == 0 &&
            (rc = rc_request_encode(&r, &enc, &len, &err)) == 0 &&
            (rc = rc_request_decode(&dec, enc, len, &err)) == 0) {
            rc = rc_store_apply(st, W.svc, &dec, RACE_BASE_TIME + s + 1, &err);
            rc_request_free(&dec);
        }
        free(enc);
        rc_request_free(&r);
        if (rc) {
            fprintf(stderr, "writer: request %llu: %s\n", (unsigned long long)s, err.msg);
            return 1;
        }
        usleep(10000); /* let the reader see many states */
    }
    rc_store_close(st);
    rc_secret_free(dev);
    free(d);
    return 0;
}

typedef struct {
    size_t n, active, suspended, bad_name;
    uint64_t max_updated;
    int status[RACE_REQUESTS / 3 + 1];
} race_members;

static int race_member_row(void *ctx, const rc_store_member *m)
{
    race_members *rm = ctx;
    unsigned idx;
    if (sscanf(m->address, "m%3u@", &idx) != 1 || idx > RACE_REQUESTS / 3) {
        rm->bad_name++;
        return 0;
    }
    rm->status[idx] = m->status;
    rm->n++;
    rm->active += m->status == RC_STATUS_ACTIVE;
    rm->suspended += m->status == RC_STATUS_SUSPENDED;
    if (m->updated_at > rm->max_updated)
        rm->max_updated = m->updated_at;
    return 0;
}

typedef struct {
    size_t per_member[RACE_REQUESTS / 3 + 1];
    size_t n;
} race_devices;

static int race_device_row(void *ctx, const rc_store_device *d)
{
    race_devices *rd = ctx;
    unsigned idx;
    if (sscanf(d->member, "m%3u@", &idx) == 1 && idx <= RACE_REQUESTS / 3)
        rd->per_member[idx]++;
    rd->n++;
    return 0;
}

static int race_owner_row(void *ctx, const rc_store_owner *o)
{
    *(uint64_t *)ctx = o->last_counter;
    return 0;
}

/* One consistent look at the store: returns the owner's counter, or 0 and
 * a reason in why when the invariant does not hold. */
static uint64_t race_check(rc_store *st, char *why, size_t cap)
{
    rc_error err;
    rc_store_reader *rd = NULL;
    uint64_t counter = 0, result = 0;
    race_members *rm = calloc(1, sizeof *rm);
    race_devices *rdv = calloc(1, sizeof *rdv);
    rc_device_entry *e = NULL;
    size_t n_e = 0;
    assert_non_null(rm);
    assert_non_null(rdv);
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_each_owner(rd, W.list_id, race_owner_row, &counter, &err), RC_OK);
    assert_int_equal(rc_store_each_member(rd, W.list_id, race_member_row, rm, &err), RC_OK);
    assert_int_equal(rc_store_each_device(rd, W.list_id, 1, race_device_row, rdv, &err), RC_OK);
    assert_int_equal(rc_store_recrypt_entries(rd, W.svc, W.list_id, 1, UINT64_MAX, UINT64_MAX, &e, &n_e, &err), RC_OK);
    rc_secret_free(e);
    rc_store_reader_end(rd);

    uint64_t s = counter - 1; /* the writer's requests applied so far */
    size_t want_n = s ? (size_t)((s - 1) / 3 + 1) : 0;
    int last_phase = s ? (int)((s - 1) % 3) : 0;
    if (counter < 1)
        snprintf(why, cap, "owner counter %llu", (unsigned long long)counter);
    else if (rm->bad_name || rm->n != want_n)
        snprintf(why, cap, "counter %llu: %zu members, expected %zu", (unsigned long long)counter,
                 rm->n, want_n);
    else if (s && rm->max_updated != RACE_BASE_TIME + counter)
        snprintf(why, cap, "counter %llu: last update at %llu", (unsigned long long)counter,
                 (unsigned long long)rm->max_updated);
    else if (rm->suspended != (size_t)(s && last_phase == 1) ||
             (s && rm->status[want_n - 1] !=
                       (last_phase == 1 ? RC_STATUS_SUSPENDED : RC_STATUS_ACTIVE)))
        snprintf(why, cap, "counter %llu: %zu suspended members", (unsigned long long)counter,
                 rm->suspended);
    else if (rdv->n != 2 * rm->n)
        snprintf(why, cap, "counter %llu: %zu device rows for %zu members",
                 (unsigned long long)counter, rdv->n, rm->n);
    else if (n_e != 2 * rm->active)
        snprintf(why, cap, "counter %llu: %zu recryption entries for %zu active members",
                 (unsigned long long)counter, n_e, rm->active);
    else {
        result = counter;
        for (size_t i = 0; i < rm->n; i++)
            if (rdv->per_member[i] != 2) {
                snprintf(why, cap, "counter %llu: member %zu has %zu device rows",
                         (unsigned long long)counter, i, rdv->per_member[i]);
                result = 0;
            }
    }
    free(rm);
    free(rdv);
    return result;
}

static void test_concurrent_reader(void **state)
{
    (void)state;
    rc_store *st = store_new();
    rc_error err;
    create_list(st);
    rc_store_close(st); /* never use an LMDB environment across fork() */

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(race_writer(W.dir));

    assert_int_equal(rc_store_open(&st, W.dir, 0, 1, &err), RC_OK);
    size_t iterations = 0, distinct = 0, violations = 0;
    uint64_t last = 0;
    char why[256] = "";
    int status = 0, done = 0;
    time_t start = time(NULL);
    while (!done) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        assert_true(w >= 0);
        done = w == pid;
        uint64_t c = race_check(st, why, sizeof why);
        if (!c) {
            if (violations++ < 5)
                print_error("violation: %s\n", why);
        } else if (c != last) {
            if (c < last)
                fail_msg("the counter went back from %llu to %llu", (unsigned long long)last,
                         (unsigned long long)c);
            distinct++;
            last = c;
        }
        iterations++;
        if (time(NULL) - start > 120) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("the writer did not finish");
        }
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(violations, 0);
    assert_int_equal(last, RACE_REQUESTS + 1); /* saw the final state */
    assert_true(iterations >= 50);
    assert_true(distinct >= 10); /* and many states on the way */
    print_message("reader: %zu iterations, %zu distinct states, %ld s\n", iterations, distinct,
                  (long)(time(NULL) - start));
    W.ctr_owner = RACE_REQUESTS + 1;
    store_destroy(st);
}

/* ---------------------------------------------------------------- creation, schema */

static void set_meta(const char *dir, const char *key, const void *val, size_t len)
{
    MDB_env *env = raw_open(dir, 0);
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    if (val)
        assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    else
        assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static uint32_t raw_schema(const char *dir)
{
    MDB_env *env = raw_open(dir, MDB_RDONLY);
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {6, "schema"}, v;
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    assert_int_equal(v.mv_size, 4);
    uint32_t ver = rc_be32_get(v.mv_data);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return ver;
}

/* Whether the database exists in the store. */
static int raw_has_db(const char *dir, const char *db)
{
    MDB_env *env = raw_open(dir, MDB_RDONLY);
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    int mrc = mdb_dbi_open(txn, db, 0, &dbi);
    assert_true(mrc == 0 || mrc == MDB_NOTFOUND);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return mrc == 0;
}

static void test_create_and_schema(void **state)
{
    (void)state;
    rc_error err;
    rc_service_public pub;
    rc_store *st = store_new(), *st2 = NULL;

    /* Fresh store: the current schema, a mark secret, every database empty
     * but meta. */
    rc_store_reader *rd;
    uint8_t mark[32], mark2[32];
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_schema(rd), RC_STORE_SCHEMA_VERSION);
    assert_int_equal(RC_STORE_SCHEMA_VERSION, 5);
    assert_int_equal(rc_store_mark_secret(rd, mark, &err), RC_OK);
    assert_false(sodium_is_zero(mark, 32));
    rc_store_list l;
    assert_int_equal(rc_store_get_list(rd, LIST, &l, &err), RC_E_NOT_FOUND);
    assert_non_null(strstr(err.msg, "unknown list team@example.org"));
    rc_store_reader_end(rd);
    rc_store_close(st);
    for (size_t i = 1; i < N_DBS; i++)
        assert_int_equal(raw_count(W.dir, DBS[i]), 0);
    assert_int_equal(raw_count(W.dir, "meta"), 2);

    /* Another store has another mark secret and service key. */
    char *first = W.dir;
    W.dir = NULL;
    rc_service_secret keep = *W.svc;
    st = store_new();
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_mark_secret(rd, mark2, &err), RC_OK);
    rc_store_reader_end(rd);
    assert_memory_not_equal(mark, mark2, 32);
    assert_memory_not_equal(keep.pub.pk, W.svc->pub.pk, 32);
    sodium_memzero(&keep, sizeof keep);
    store_destroy(st);
    W.dir = first;

    /* A directory that holds a store is refused. */
    assert_int_equal(rc_store_create(W.dir, 0, &pub, &err), RC_E_EXISTS);
    assert_non_null(strstr(err.msg, "already holds a store"));

    /* Two readers and a writer at once in one process are fine. */
    assert_int_equal(rc_store_open(&st, W.dir, 0, 0, &err), RC_OK);
    rc_store_reader *r1, *r2;
    assert_int_equal(rc_store_reader_begin(st, &r1, &err), RC_OK);
    assert_int_equal(rc_store_reader_begin(st, &r2, &err), RC_OK);
    create_list(st);
    assert_int_equal(rc_store_get_list(r1, LIST, &l, &err), RC_E_NOT_FOUND); /* snapshot */
    rc_store_reader_end(r1);
    rc_store_reader_end(r2);
    assert_int_equal(rc_store_reader_begin(st, &r1, &err), RC_OK);
    assert_int_equal(rc_store_get_list(r1, LIST, &l, &err), RC_OK);
    rc_store_reader_end(r1);
    rc_store_close(st);

    /* A newer schema is refused, read-only or not, and left alone. */
    uint8_t v6[4] = {0, 0, 0, 6};
    set_meta(W.dir, "schema", v6, 4);
    for (unsigned fl = 0; fl <= (RC_STORE_READONLY | RC_STORE_NO_MIGRATE); fl++) {
        st2 = (rc_store *)(uintptr_t)1;
        assert_int_equal(rc_store_open(&st2, W.dir, 0, fl, &err), RC_E_VERSION);
        assert_null(st2);
        assert_int_equal(err.code, RC_E_VERSION);
        assert_string_equal(err.msg, "store schema version 6 is newer than this build "
                                     "understands (5)");
    }
    assert_int_equal(raw_schema(W.dir), 6);
    /* Schema 0 and a malformed version are invalid. */
    uint8_t v0[4] = {0, 0, 0, 0};
    set_meta(W.dir, "schema", v0, 4);
    assert_int_equal(rc_store_open(&st2, W.dir, 0, 0, &err), RC_E_FORMAT);
    assert_string_equal(err.msg, "store schema version 0 is invalid");
    set_meta(W.dir, "schema", v0, 3);
    assert_int_equal(rc_store_open(&st2, W.dir, 0, 0, &err), RC_E_FORMAT);
    assert_string_equal(err.msg, "store schema version is malformed");
    /* No schema at all: not a recrypt store. */
    set_meta(W.dir, "schema", NULL, 0);
    assert_int_equal(rc_store_open(&st2, W.dir, 0, 1, &err), RC_E_FORMAT);
    assert_non_null(strstr(err.msg, "not a recrypt store (no schema version)"));
    /* Back to 4: opens again, the list is there. */
    uint8_t v4[4] = {0, 0, 0, 4};
    set_meta(W.dir, "schema", v4, 4);
    assert_int_equal(rc_store_open(&st, W.dir, 0, RC_STORE_READONLY, &err), RC_OK);
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_get_list(rd, LIST, &l, &err), RC_OK);
    rc_store_reader_end(rd);

    /* A directory without a store. */
    char *empty = tmpdir_new();
    assert_int_equal(rc_store_open(&st2, empty, 0, 1, &err), RC_E_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no store in"));
    rmdir(empty);
    free(empty);
    W.n_secrets = 0;
    store_destroy(st);
}

/* A small map fills up: the refusal says so and the store stays usable. */
static void test_map_full(void **state)
{
    (void)state;
    rc_error err;
    rc_store *st = store_new();
    create_list(st);
    rc_store_close(st);
    assert_int_equal(rc_store_open(&st, W.dir, 64 * 1024, 0, &err), RC_OK);
    int full = 0;
    for (int i = 0; i < 200 && !full; i++) {
        rc_request r;
        req_init(&r, RC_REQ_ADD_MEMBER, LIST);
        snprintf(r.member, sizeof r.member, "x%03d@example.org", i);
        r.privilege = RC_PRIV_RECRYPT;
        for (int k = 0; k < 8; k++)
            req_dev_for(&r, W.ls1, D_ALICE + (k % N_D), r.member, NOW, &W.svc->pub);
        /* the same device key twice would be refused: vary them */
        for (int k = 0; k < 8; k++)
            randombytes_buf(r.devices[k].device.sign_pk, 32);
        int rc = submit_as(st, &r, W.owner, ++W.ctr_owner, &err);
        if (rc) {
            assert_int_equal(rc, RC_E_IO);
            assert_non_null(strstr(err.msg, "store is full: raise the map size"));
            W.ctr_owner--;
            full = 1;
        }
        rc_request_free(&r);
        W.n_secrets = 0;
    }
    assert_true(full);
    rc_store_close(st);
    assert_int_equal(rc_store_open(&st, W.dir, 0, 0, &err), RC_OK);
    const int alice[] = {D_ALICE};
    add_member(st, M_ALICE, alice, 1, NOW);
    W.n_secrets = 0;
    store_destroy(st);
}

/* ---------------------------------------------------------------- migration */

/* Turn a store made by this build into the store a build of schema ver
 * (1 or 3) wrote: without the databases introduced after ver (schema 4:
 * "copies"; 2: the replay cache's time index "delivered-at"), and with
 * meta/schema ver. Every other row is left as it is (the replay cache's
 * 17-byte rows too, which a schema-1 build did not write). */
static void downgrade_to(const char *dir, uint32_t ver)
{
    MDB_env *env = raw_open(dir, 0);
    MDB_txn *txn;
    MDB_dbi dbi, meta;
    uint8_t vb[4];
    put_u32(vb, ver);
    MDB_val k = {6, "schema"}, v = {4, vb};
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    for (size_t i = 0; i < N_DBS; i++) {
        if (db_since(DBS[i]) <= ver)
            continue;
        assert_int_equal(mdb_dbi_open(txn, DBS[i], 0, &dbi), 0);
        assert_int_equal(mdb_drop(txn, dbi, 1), 0);
    }
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    assert_int_equal(raw_schema(dir), ver);
    for (size_t i = 0; i < N_DBS; i++)
        assert_int_equal(raw_has_db(dir, DBS[i]), db_since(DBS[i]) <= ver);
}

static void downgrade_to_v1(const char *dir)
{
    downgrade_to(dir, 1);
}

/* A row written straight into a database. */
static void raw_put(const char *dir, const char *db, const void *key, size_t klen,
                    const void *val, size_t vlen)
{
    MDB_env *env = raw_open(dir, 0);
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

#define WINDOW 3600u

static int match_E(void *ctx, const uint8_t E[32])
{
    return memcmp(ctx, E, 32) == 0;
}

/* A post handed to the MTA at now, and the MTA's receipt for it: returns
 * what rc_store_delivered_begin found (the receipt then finds it pending,
 * or delivered already). */
static int post_delivered(rc_store *st, const uint8_t E[32], uint64_t now, uint64_t window)
{
    rc_error err;
    int state = -1, was = -1;
    uint64_t first = 0;
    uint8_t got[32];
    assert_int_equal(rc_store_delivered_begin(st, E, now, 0, window, &state, &first, &err), RC_OK);
    if (state == RC_POST_NEW)
        assert_int_equal(first, now);
    assert_int_equal(rc_store_delivered_confirm(st, E, 12, match_E, (void *)E, got, &was, &err),
                     RC_OK);
    assert_int_equal(was, state == RC_POST_NEW ? RC_POST_PENDING : state);
    assert_memory_equal(got, E, 32);
    return state;
}

/* want_seen 1: E was delivered within the window; 0: new, and now delivered. */
static void seen_is(rc_store *st, const uint8_t E[32], uint64_t now, int want_seen)
{
    assert_int_equal(post_delivered(st, E, now, WINDOW),
                     want_seen ? RC_POST_DELIVERED : RC_POST_NEW);
}

static void test_migrate_from_schema_1(void **state)
{
    (void)state;
    rc_error err;
    rc_store *st = store_new(), *st2;
    rc_store_reader *rd;
    rc_store_list l;
    uint8_t E[3][32];
    create_list(st);
    const int alice[] = {D_ALICE};
    add_member(st, M_ALICE, alice, 1, NOW);
    /* The replay cache of schema 1: E0 delivered long ago, E1 and E2 within
     * the window of T. */
    const uint64_t T = NOW + 100000;
    for (int i = 0; i < 3; i++)
        randombytes_buf(E[i], 32);
    seen_is(st, E[1], T - 10, 0);
    seen_is(st, E[2], T - 5, 0);
    seen_is(st, E[0], T - 2 * WINDOW, 0); /* last, so that nothing prunes it */
    rc_store_close(st);
    downgrade_to_v1(W.dir);
    mbuf v1 = {0};
    size_t rows1;
    raw_dump(W.dir, &v1, &rows1); /* delivered-at is absent: stops there */

    /* Read only: opens as it is, reads, writes nothing, stays at 1. */
    assert_int_equal(rc_store_open(&st, W.dir, 0, RC_STORE_READONLY, &err), RC_OK);
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_schema(rd), 1);
    assert_int_equal(rc_store_get_list(rd, LIST, &l, &err), RC_OK);
    rc_store_member m;
    assert_int_equal(rc_store_get_member(rd, W.list_id, MEMBER[M_ALICE], &m, &err), RC_OK);
    assert_int_equal(m.status, RC_STATUS_ACTIVE);
    rc_store_reader_end(rd);
    int seen;
    uint64_t first;
    assert_int_equal(rc_store_delivered_begin(st, E[1], T, 0, WINDOW, &seen, &first, &err),
                     RC_E_INVALID);
    rc_store_close(st);
    assert_int_equal(raw_schema(W.dir), 1);

    /* Read-write without migrating (what recrypt-milter -n does): reads,
     * refuses every write with a clear message, stays at 1. */
    assert_int_equal(rc_store_open(&st, W.dir, 0, RC_STORE_NO_MIGRATE, &err), RC_OK);
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_schema(rd), 1);
    assert_int_equal(rc_store_get_list(rd, LIST, &l, &err), RC_OK);
    rc_store_reader_end(rd);
    assert_int_equal(rc_store_delivered_begin(st, E[1], T, 0, WINDOW, &seen, &first, &err),
                     RC_E_VERSION);
    assert_string_equal(err.msg, "store schema version 1 is not migrated to 5 yet: open it for "
                                 "writing without RC_STORE_NO_MIGRATE");
    assert_int_equal(rc_store_delivered_forget(st, E[1], T, &err), RC_E_VERSION);
    rc_request r;
    req_init(&r, RC_REQ_ADD_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_BOB]);
    r.privilege = RC_PRIV_RECRYPT;
    req_dev(&r, W.ls1, D_BOB1, NOW);
    assert_int_equal(submit_as(st, &r, W.owner, W.ctr_owner + 1, &err), RC_E_VERSION);
    rc_request_free(&r);
    rc_store_close(st);
    assert_int_equal(raw_schema(W.dir), 1);
    assert_false(raw_has_db(W.dir, "delivered-at"));
    mbuf same = {0};
    size_t rows;
    raw_dump(W.dir, &same, &rows);
    assert_int_equal(rows, rows1);
    assert_int_equal(same.len, v1.len);
    assert_memory_equal(same.p, v1.p, v1.len);
    mbuf_free(&same);

    /* Read-write: migrated to 4 in one transaction (1 -> 2 -> 3 -> 4);
     * every row kept, the time index built from the replay cache, whose
     * rows all count as delivered, and no copies recorded. */
    assert_int_equal(rc_store_open(&st, W.dir, 0, 0, &err), RC_OK);
    assert_int_equal(rc_store_found_schema(st), 1);
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_schema(rd), RC_STORE_SCHEMA_VERSION);
    assert_int_equal(rc_store_get_list(rd, LIST, &l, &err), RC_OK);
    rc_store_reader_end(rd);
    rc_store_close(st);
    assert_int_equal(raw_schema(W.dir), RC_STORE_SCHEMA_VERSION);
    assert_true(raw_has_db(W.dir, "copies"));
    assert_int_equal(raw_count(W.dir, "copies"), 0);
    assert_int_equal(raw_count(W.dir, "delivered"), 3);
    assert_int_equal(raw_count(W.dir, "delivered-at"), 3);
    mbuf v2 = {0};
    size_t rows2;
    raw_dump(W.dir, &v2, &rows2);
    /* The same rows but meta/schema, then three index rows, then the
     * empty "copies" (the last database of the dump). */
    assert_int_equal(rows2, rows1 + 3);
    assert_true(v2.len > v1.len);
    size_t meta_len = 0; /* "meta\0" and its rows come first; compare after */
    const uint8_t *lists1 = memmem(v1.p, v1.len, "lists", 6);
    const uint8_t *lists2 = memmem(v2.p, v2.len, "lists", 6);
    assert_non_null(lists1);
    assert_non_null(lists2);
    meta_len = (size_t)(lists1 - v1.p);
    assert_int_equal((size_t)(lists2 - v2.p), meta_len);
    assert_true(v1.len > meta_len + 15);
    assert_memory_equal(v1.p + v1.len - 15, "copies\0svckeys", 15);
    assert_memory_equal(v2.p + v2.len - 15, "copies\0svckeys", 15);
    assert_memory_equal(lists2, lists1, v1.len - 15 - meta_len);
    mbuf_free(&v1);
    mbuf_free(&v2);

    /* Opened again, nothing is migrated twice; the cache works as before:
     * E1 and E2 are still replays, E0 has expired and is recorded anew. */
    assert_int_equal(rc_store_open(&st, W.dir, 0, 0, &err), RC_OK);
    seen_is(st, E[1], T, 1);
    seen_is(st, E[2], T, 1);
    seen_is(st, E[0], T, 0);
    assert_int_equal(raw_count(W.dir, "delivered"), 3);
    assert_int_equal(raw_count(W.dir, "delivered-at"), 3);
    /* A writer works: bob joins. */
    const int bob[] = {D_BOB1};
    add_member(st, M_BOB, bob, 1, NOW);
    W.n_secrets = 0;
    store_destroy(st);

    /* A migration that fails (a damaged replay-cache row) leaves the store
     * exactly as it was, still readable. */
    st = store_new();
    create_list(st);
    seen_is(st, E[0], T, 0);
    rc_store_close(st);
    downgrade_to_v1(W.dir);
    raw_put(W.dir, "delivered", E[1], 32, "bad", 3);
    raw_dump(W.dir, &v1, &rows1);
    st2 = (rc_store *)(uintptr_t)1;
    assert_int_equal(rc_store_open(&st2, W.dir, 0, 0, &err), RC_E_FORMAT);
    assert_null(st2);
    char want[512];
    snprintf(want, sizeof want,
             "cannot migrate the store in %s from schema 1 to 5 (the store is unchanged): "
             "store is damaged: malformed row in 'delivered'",
             W.dir);
    assert_string_equal(err.msg, want);
    assert_int_equal(raw_schema(W.dir), 1);
    assert_false(raw_has_db(W.dir, "delivered-at"));
    raw_dump(W.dir, &same, &rows);
    assert_int_equal(rows, rows1);
    assert_int_equal(same.len, v1.len);
    assert_memory_equal(same.p, v1.p, v1.len);
    mbuf_free(&same);
    mbuf_free(&v1);
    assert_int_equal(rc_store_open(&st, W.dir, 0, RC_STORE_READONLY, &err), RC_OK);
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_get_list(rd, LIST, &l, &err), RC_OK);
    rc_store_reader_end(rd);
    W.n_secrets = 0;
    store_destroy(st);

    /* A migration that does not fit in the map fails at whichever step the
     * map runs out (indexing, the version, the commit), leaves the store at
     * schema 1 and releases the writer: a larger map then migrates it. */
    st = store_new();
    for (int i = 0; i < 2000; i++) {
        randombytes_buf(E[0], 32);
        seen_is(st, E[0], T + (uint64_t)i, 0);
    }
    rc_store_close(st);
    downgrade_to_v1(W.dir);
    struct stat sb;
    char data[4200];
    snprintf(data, sizeof data, "%s/data.mdb", W.dir);
    assert_int_equal(stat(data, &sb), 0);
    int fails = 0;
    size_t map = (size_t)sb.st_size;
    for (;; map += 4096) {
        int rc = rc_store_open(&st, W.dir, map, 0, &err);
        if (rc == RC_OK)
            break;
        fails++;
        assert_int_equal(rc, RC_E_IO);
        assert_non_null(strstr(err.msg, "from schema 1 to 5 (the store is unchanged): store is "
                                        "full: raise the map size"));
        assert_int_equal(raw_schema(W.dir), 1);
        assert_true(fails < 200);
    }
    assert_true(fails > 1);
    assert_int_equal(rc_store_found_schema(st), 1);
    rc_store_close(st);
    assert_int_equal(raw_schema(W.dir), RC_STORE_SCHEMA_VERSION);
    assert_int_equal(raw_count(W.dir, "delivered-at"), 2000);
    store_destroy(NULL);

    /* A schema-1 build still running after the migration records posts in
     * "delivered" only; the next read-write open indexes them again, so
     * they are pruned like the others. */
    st = store_new();
    seen_is(st, E[0], T, 0);
    rc_store_close(st);
    uint8_t when[8];
    rc_be64_put(when, T - 2 * WINDOW);
    raw_put(W.dir, "delivered", E[1], 32, when, 8); /* an old build's row */
    assert_int_equal(raw_count(W.dir, "delivered"), 2);
    assert_int_equal(raw_count(W.dir, "delivered-at"), 1);
    assert_int_equal(rc_store_open(&st, W.dir, 0, RC_STORE_READONLY, &err), RC_OK);
    rc_store_close(st); /* read only: nothing repaired */
    assert_int_equal(raw_count(W.dir, "delivered-at"), 1);
    assert_int_equal(rc_store_open(&st, W.dir, 0, 0, &err), RC_OK);
    assert_int_equal(rc_store_found_schema(st), RC_STORE_SCHEMA_VERSION);
    assert_int_equal(raw_count(W.dir, "delivered-at"), 2);
    seen_is(st, E[2], T + 1, 0); /* prunes the old build's expired row */
    assert_int_equal(raw_count(W.dir, "delivered"), 2);
    assert_int_equal(raw_count(W.dir, "delivered-at"), 2);
    seen_is(st, E[1], T + 1, 0); /* E1 was forgotten: recorded anew */
    store_destroy(st);
}

/* The replay cache holds one window's traffic, however long it runs: every
 * post forgets the posts older than the window, oldest first. */
static void test_replay_cache_bounded(void **state)
{
    (void)state;
    rc_error err;
    rc_store *st = store_new();
    uint8_t first[32], last[32], E[32];
    const uint64_t win = 100, posts = 3000;
    int seen;
    uint64_t t0;
    for (uint64_t t = 1; t <= posts; t++) {
        randombytes_buf(E, 32);
        if (t == 1)
            memcpy(first, E, 32);
        memcpy(last, E, 32);
        /* Every other post stays pending (its receipt never came). */
        if (t % 2)
            assert_int_equal(post_delivered(st, E, NOW + t, win), RC_POST_NEW);
        else {
            assert_int_equal(rc_store_delivered_begin(st, E, NOW + t, 0, win, &seen, &t0, &err),
                             RC_OK);
            assert_int_equal(seen, RC_POST_NEW);
        }
    }
    /* Posts at NOW+2900 .. NOW+3000 are within the window of NOW+3000,
     * pending and delivered alike. */
    assert_int_equal(raw_count(W.dir, "delivered"), win + 1);
    assert_int_equal(raw_count(W.dir, "delivered-at"), win + 1);
    assert_int_equal(rc_store_delivered_begin(st, last, NOW + posts, 0, win, &seen, &t0, &err),
                     RC_OK);
    assert_int_equal(seen, RC_POST_PENDING);
    assert_int_equal(t0, NOW + posts);
    assert_int_equal(rc_store_delivered_begin(st, first, NOW + posts, 0, win, &seen, &t0, &err),
                     RC_OK);
    assert_int_equal(seen, RC_POST_NEW);
    /* forget drops both rows of a post. */
    assert_int_equal(rc_store_delivered_forget(st, first, NOW + posts, &err), RC_OK);
    assert_int_equal(raw_count(W.dir, "delivered"), win + 1);
    assert_int_equal(raw_count(W.dir, "delivered-at"), win + 1);
    assert_int_equal(rc_store_delivered_forget(st, first, NOW + posts, &err), RC_OK); /* absent */
    /* After a long pause, the next post forgets 64 old posts at most, and
     * the cache shrinks back within a few posts. */
    for (int i = 0; i < 3; i++) {
        randombytes_buf(E, 32);
        assert_int_equal(post_delivered(st, E, NOW + posts + 10 * win, win), RC_POST_NEW);
    }
    assert_int_equal(raw_count(W.dir, "delivered"), 3);
    assert_int_equal(raw_count(W.dir, "delivered-at"), 3);
    /* A window so long that time + window would overflow: still a replay,
     * and the entry just recorded is not taken for an expired one. */
    const uint64_t huge = UINT64_MAX - (NOW + posts) + 1000;
    randombytes_buf(E, 32);
    assert_int_equal(post_delivered(st, E, NOW + posts, huge), RC_POST_NEW);
    assert_int_equal(post_delivered(st, E, NOW + posts + 1, huge), RC_POST_DELIVERED);
    store_destroy(st);
}

static int match_none(void *ctx, const uint8_t E[32])
{
    (void)ctx;
    (void)E;
    return 0;
}

/* A post is delivered only once the MTA's receipt says so: until then a
 * retry is processed again (pending, with the first attempt's time); a
 * receipt needs the right E (prefix and match), and a forged or stale one
 * changes nothing. */
static void test_replay_pending(void **state)
{
    (void)state;
    rc_error err;
    rc_store *st = store_new();
    uint8_t E[32], E2[32], got[32];
    int s, was;
    uint64_t t0;
    randombytes_buf(E, 32);
    /* First attempt: new, recorded as pending since NOW. */
    assert_int_equal(rc_store_delivered_begin(st, E, NOW, 0, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_NEW);
    assert_int_equal(t0, NOW);
    /* The retry (the MTA did not commit, or did not say): pending, first
     * attempt at NOW; nothing written. */
    assert_int_equal(rc_store_delivered_begin(st, E, NOW + 60, 0, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_PENDING);
    assert_int_equal(t0, NOW);
    assert_int_equal(raw_count(W.dir, "delivered"), 1);
    /* A receipt whose match fails (a forged tag) finds nothing. */
    assert_int_equal(rc_store_delivered_confirm(st, E, 12, match_none, NULL, got, &was, &err),
                     RC_OK);
    assert_int_equal(was, RC_POST_NEW);
    assert_int_equal(rc_store_delivered_begin(st, E, NOW + 61, 0, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_PENDING);
    /* Another E with the same 12-byte prefix (a collision): the receipt
     * takes the one that matches, the other stays pending. */
    memcpy(E2, E, 32);
    E2[31] ^= 1;
    assert_int_equal(rc_store_delivered_begin(st, E2, NOW + 62, 0, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_NEW);
    assert_int_equal(rc_store_delivered_confirm(st, E2, 12, match_E, E2, got, &was, &err), RC_OK);
    assert_int_equal(was, RC_POST_PENDING);
    assert_memory_equal(got, E2, 32);
    assert_int_equal(rc_store_delivered_begin(st, E, NOW + 63, 0, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_PENDING);
    assert_int_equal(rc_store_delivered_begin(st, E2, NOW + 63, 0, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_DELIVERED);
    assert_int_equal(t0, NOW + 62);
    /* The receipt for E: delivered from now on; a second receipt is a no-op. */
    assert_int_equal(rc_store_delivered_confirm(st, E, 12, match_E, E, got, &was, &err), RC_OK);
    assert_int_equal(was, RC_POST_PENDING);
    assert_int_equal(rc_store_delivered_confirm(st, E, 12, match_E, E, got, &was, &err), RC_OK);
    assert_int_equal(was, RC_POST_DELIVERED);
    assert_int_equal(rc_store_delivered_begin(st, E, NOW + 64, 0, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_DELIVERED);
    assert_int_equal(t0, NOW); /* the first attempt's time stays */
    assert_int_equal(raw_count(W.dir, "delivered"), 2);
    assert_int_equal(raw_count(W.dir, "delivered-at"), 2);
    /* A receipt for a post the cache does not hold. */
    uint8_t other[32];
    randombytes_buf(other, 32);
    assert_int_equal(rc_store_delivered_confirm(st, other, 12, match_E, other, got, &was, &err),
                     RC_OK);
    assert_int_equal(was, RC_POST_NEW);
    assert_int_equal(rc_store_delivered_confirm(st, other, 0, match_E, other, got, &was, &err),
                     RC_E_INVALID);
    /* A pending post whose attempt failed before the MTA had it is
     * forgotten: the next attempt is new again. */
    randombytes_buf(other, 32);
    assert_int_equal(rc_store_delivered_begin(st, other, NOW + 65, 0, WINDOW, &s, &t0, &err), RC_OK);
    /* Not with another first attempt (a concurrent attempt's record). */
    assert_int_equal(rc_store_delivered_forget(st, other, NOW + 64, &err), RC_OK);
    assert_int_equal(rc_store_delivered_begin(st, other, NOW + 65, 0, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_PENDING);
    assert_int_equal(rc_store_delivered_forget(st, other, NOW + 65, &err), RC_OK);
    assert_int_equal(rc_store_delivered_begin(st, other, NOW + 66, 0, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_NEW);
    assert_int_equal(t0, NOW + 66);
    /* Attempt A records a new post, attempt B finds it pending and is
     * queued, its receipt comes; then A fails and forgets: B's row stays. */
    uint8_t race[32];
    randombytes_buf(race, 32);
    assert_int_equal(rc_store_delivered_begin(st, race, NOW + 70, 0, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_NEW);
    assert_int_equal(rc_store_delivered_begin(st, race, NOW + 71, 0, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_PENDING);
    assert_int_equal(rc_store_delivered_confirm(st, race, 12, match_E, race, got, &was, &err),
                     RC_OK);
    assert_int_equal(rc_store_delivered_forget(st, race, NOW + 70, &err), RC_OK);
    assert_int_equal(rc_store_delivered_begin(st, race, NOW + 72, 0, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_DELIVERED);
    /* Past the window a pending post is new again, with a new time. */
    assert_int_equal(rc_store_delivered_begin(st, other, NOW + 67 + WINDOW, 0, WINDOW, &s, &t0, &err),
                     RC_OK);
    assert_int_equal(s, RC_POST_NEW);
    assert_int_equal(t0, NOW + 67 + WINDOW);
    /* A post dated ahead of its first attempt (within FutureSkew) stays
     * fresh until its Date plus the window, and so does its row: a replay
     * one window after the first attempt is still known. */
    uint8_t ahead[32];
    const uint64_t dated = NOW + 1000 + 3000;
    randombytes_buf(ahead, 32);
    assert_int_equal(rc_store_delivered_begin(st, ahead, NOW + 1000, dated, WINDOW, &s, &t0, &err),
                     RC_OK);
    assert_int_equal(s, RC_POST_NEW);
    assert_int_equal(t0, NOW + 1000);
    assert_int_equal(rc_store_delivered_confirm(st, ahead, 12, match_E, ahead, got, &was, &err),
                     RC_OK);
    assert_int_equal(rc_store_delivered_begin(st, ahead, NOW + 1000 + WINDOW + 100, dated, WINDOW,
                                              &s, &t0, &err),
                     RC_OK);
    assert_int_equal(s, RC_POST_DELIVERED);
    assert_int_equal(t0, NOW + 1000); /* the first attempt, not the Date */
    assert_int_equal(rc_store_delivered_begin(st, ahead, dated + WINDOW, dated, WINDOW, &s, &t0, &err),
                     RC_OK);
    assert_int_equal(s, RC_POST_DELIVERED);
    assert_int_equal(
        rc_store_delivered_begin(st, ahead, dated + WINDOW + 1, dated, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_NEW); /* stale by then: the freshness check refuses it anyway */
    /* A damaged row is reported, not taken for a new post. */
    raw_put(W.dir, "delivered", other, 32, "bad", 3);
    assert_int_equal(rc_store_delivered_begin(st, other, NOW + 68 + WINDOW, 0, WINDOW, &s, &t0, &err),
                     RC_E_FORMAT);
    assert_non_null(strstr(err.msg, "malformed row in 'delivered'"));
    store_destroy(st);
}

/* The audience of a post: devices enrolled before its cutoff, of members
 * whose record has not changed since (a retry's first attempt). */
static void test_recrypt_audience(void **state)
{
    (void)state;
    rc_error err;
    rc_store *st = store_new();
    rc_store_reader *rd;
    rc_device_entry *e = NULL;
    size_t n = 0;
    create_list(st);
    const int alice[] = {D_ALICE}, bob[] = {D_BOB1, D_BOB2}, carol[] = {D_CAROL};
    add_member(st, M_ALICE, alice, 1, NOW - 100);
    add_member(st, M_BOB, bob, 2, NOW - 50);
    add_member(st, M_CAROL, carol, 1, NOW);
    static const struct {
        uint64_t before, since;
        size_t n;
    } cases[] = {
        {UINT64_MAX, UINT64_MAX, 4}, {NOW - 50, UINT64_MAX, 1}, {NOW - 49, UINT64_MAX, 3},
        {NOW + 1, UINT64_MAX, 4},    {NOW - 100, UINT64_MAX, 0}, {UINT64_MAX, NOW, 0},
        {UINT64_MAX, NOW + 1, 4},
    };
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(rc_store_recrypt_entries(rd, W.svc, W.list_id, 1, cases[i].before,
                                                  cases[i].since, &e, &n, &err),
                         RC_OK);
        if (n != cases[i].n)
            fail_msg("case %zu: %zu entries, expected %zu", i, n, cases[i].n);
        for (size_t j = 0; j < n; j++)
            assert_true(e[j].enrolled_at < cases[i].before);
        rc_secret_free(e);
    }
    rc_store_reader_end(rd);
    store_destroy(st);
}

/* ---------------------------------------------------------------- a post's audience, by member */

/* Apply r as the main owner at `now` (submit_as applies at NOW); must succeed. */
static void apply_at(rc_store *st, rc_request *r, uint64_t now)
{
    rc_error err;
    uint8_t *enc;
    size_t len;
    rc_request dec;
    r->counter = ++W.ctr_owner;
    assert_int_equal(rc_request_sign(r, W.owner, &err), RC_OK);
    assert_int_equal(rc_request_encode(r, &enc, &len, &err), RC_OK);
    assert_int_equal(rc_request_decode(&dec, enc, len, &err), RC_OK);
    free(enc);
    if (rc_store_apply(st, W.svc, &dec, now, &err) != RC_OK)
        fail_msg("%s refused: %s", rc_request_type_name(r->type), err.msg);
    rc_request_free(&dec);
    rc_request_free(r);
}

/* addr joins at `now` with devices devs[0..n), enrolled at enrolled[i]. */
static void join_at(rc_store *st, const char *addr, rc_device_secret *const *devs, size_t n,
                    const uint64_t *enrolled, uint64_t now)
{
    rc_error err;
    rc_request r;
    req_init(&r, RC_REQ_ADD_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", addr);
    r.privilege = RC_PRIV_RECRYPT;
    for (size_t i = 0; i < n; i++) {
        rc_req_device *d = calloc(1, sizeof *d);
        assert_non_null(d);
        assert_int_equal(
            rc_req_device_make(d, W.ls1, &devs[i]->pub, addr, enrolled[i], &W.svc->pub, &err),
            RC_OK);
        assert_int_equal(rc_request_add_device(&r, d, &err), RC_OK);
        free(d);
    }
    apply_at(st, &r, now);
}

static void set_status(rc_store *st, const char *addr, uint8_t status)
{
    rc_request r;
    req_init(&r, RC_REQ_UPDATE_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", addr);
    r.status = status;
    apply_at(st, &r, NOW);
}

/* Which member each device row of epoch 1 belongs to, by K. */
typedef struct {
    uint8_t K[16][32];
    char member[16][RC_ADDR_MAX + 1];
    size_t n;
} owner_of_K;

static int collect_K(void *ctx, const rc_store_device *d)
{
    owner_of_K *o = ctx;
    assert_true(o->n < 16);
    memcpy(o->K[o->n], d->K, 32);
    snprintf(o->member[o->n], sizeof o->member[0], "%s", d->member);
    o->n++;
    return 0;
}

static const char *member_of_K(const owner_of_K *o, const uint8_t K[32])
{
    for (size_t i = 0; i < o->n; i++)
        if (!memcmp(o->K[i], K, 32))
            return o->member[i];
    return NULL;
}

typedef struct {
    const char *addr;
    size_t n;
} group;

/* The audience for (before, since), with and without svc, against the
 * expected groups (in the store's order) and rc_store_recrypt_entries. */
static void check_audience(rc_store_reader *rd, const owner_of_K *owners, uint64_t before,
                           uint64_t since, const group *want, size_t n_want)
{
    rc_error err;
    rc_store_audience a, counts;
    rc_device_entry *e = NULL;
    size_t n = 0, total = 0;
    memset(&a, 0xa5, sizeof a);
    assert_int_equal(rc_store_audience_get(rd, W.svc, W.list_id, 1, before, since, &a, &err),
                     RC_OK);
    assert_non_null(a.entries);
    assert_non_null(a.members);
    if (a.n_members != n_want)
        fail_msg("before %llu since %llu: %zu members, expected %zu", (unsigned long long)before,
                 (unsigned long long)since, a.n_members, n_want);
    for (size_t i = 0; i < n_want; i++) {
        assert_string_equal(a.members[i].address, want[i].addr);
        assert_int_equal(a.members[i].n, want[i].n);
        assert_int_equal(a.members[i].first, total);
        for (size_t j = a.members[i].first; j < a.members[i].first + a.members[i].n; j++) {
            const char *m = member_of_K(owners, a.entries[j].K);
            assert_non_null(m);
            assert_string_equal(m, want[i].addr);
            assert_true(a.entries[j].enrolled_at < before);
        }
        total += want[i].n;
    }
    assert_int_equal(a.n_entries, total);

    /* The same entries, in the same order, as rc_store_recrypt_entries. */
    assert_int_equal(rc_store_recrypt_entries(rd, W.svc, W.list_id, 1, before, since, &e, &n, &err),
                     RC_OK);
    assert_int_equal(n, a.n_entries);
    for (size_t j = 0; j < n; j++) {
        assert_memory_equal(e[j].r, a.entries[j].r, sizeof e[j].r);
        assert_memory_equal(e[j].K, a.entries[j].K, sizeof e[j].K);
        assert_int_equal(e[j].W_len, a.entries[j].W_len);
        assert_memory_equal(e[j].W, a.entries[j].W, e[j].W_len);
        assert_int_equal(e[j].enrolled_at, a.entries[j].enrolled_at);
        assert_int_equal(rc_entry_check(e[j].r, e[j].K, W.st1.A, &err), RC_OK);
    }
    rc_secret_free(e);

    /* Without the service key: the same members and counts, no entries. */
    assert_int_equal(rc_store_audience_get(rd, NULL, W.list_id, 1, before, since, &counts, &err),
                     RC_OK);
    assert_null(counts.entries);
    assert_non_null(counts.members);
    assert_int_equal(counts.n_entries, a.n_entries);
    assert_int_equal(counts.n_members, a.n_members);
    for (size_t i = 0; i < a.n_members; i++) {
        assert_string_equal(counts.members[i].address, a.members[i].address);
        assert_int_equal(counts.members[i].first, a.members[i].first);
        assert_int_equal(counts.members[i].n, a.members[i].n);
    }
    rc_store_audience_free(&counts);
    rc_store_audience_free(&a);
    assert_null(a.entries);
    assert_null(a.members);
    assert_int_equal(a.n_entries + a.n_members, 0);
    rc_store_audience_free(&a); /* freed and zeroed: again is harmless */
}

/* The audience grouped by member: members with one and three devices, a
 * suspended and a revoked member left out, a device enrolled after the
 * cutoff left out (and a member with no other device with it), a member
 * updated after unchanged_since left out. */
static void test_audience_by_member(void **state)
{
    (void)state;
    rc_error err;
    rc_store *st = store_new();
    rc_store_reader *rd;
    rc_device_secret *x[6];
    for (int i = 0; i < 6; i++) {
        x[i] = rc_secret_alloc(sizeof *x[i]);
        assert_non_null(x[i]);
        assert_int_equal(rc_device_generate(x[i], &err), RC_OK);
    }
    create_list(st);
    const uint64_t old[3] = {NOW - 100, NOW - 100, NOW - 100},
                   mid[3] = {NOW - 50, NOW - 50, NOW - 50};
    rc_device_secret *alice[] = {W.dev[D_ALICE]}, *bob[] = {W.dev[D_BOB1], W.dev[D_BOB2], x[0]},
                     *carol[] = {W.dev[D_CAROL]}, *dave[] = {x[1]}, *erin[] = {x[2], x[3]},
                     *frank[] = {x[4]}, *gina[] = {x[5]};
    const uint64_t erin_at[] = {NOW - 100, NOW + 100}, frank_at[] = {NOW + 100};
    join_at(st, "alice@example.org", alice, 1, old, NOW);
    join_at(st, "bob@example.org", bob, 3, mid, NOW);
    join_at(st, "carol@example.org", carol, 1, old, NOW);
    join_at(st, "dave@example.org", dave, 1, old, NOW);
    join_at(st, "erin@example.org", erin, 2, erin_at, NOW);
    join_at(st, "frank@example.org", frank, 1, frank_at, NOW);
    join_at(st, "gina@example.org", gina, 1, old, NOW + 10);  /* changed after NOW + 1 */
    set_status(st, "carol@example.org", RC_STATUS_SUSPENDED); /* keeps her device row */
    set_status(st, "dave@example.org", RC_STATUS_REVOKED);    /* loses his */
    W.n_secrets = 0;

    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    owner_of_K owners;
    memset(&owners, 0, sizeof owners);
    assert_int_equal(rc_store_each_device(rd, W.list_id, 1, collect_K, &owners, &err), RC_OK);
    assert_int_equal(owners.n, 9); /* alice 1, bob 3, carol 1, erin 2, frank 1, gina 1 */

    /* The store's order: str8(member), so shorter addresses first. */
    const group all[] = {{"bob@example.org", 3},
                         {"erin@example.org", 2},
                         {"gina@example.org", 1},
                         {"alice@example.org", 1},
                         {"frank@example.org", 1}};
    check_audience(rd, &owners, UINT64_MAX, UINT64_MAX, all, 5);
    /* A post dated NOW, first attempted before gina's change: erin's second
     * device, frank's only one and gina are not in it. */
    const group at_now[] = {
        {"bob@example.org", 3}, {"erin@example.org", 1}, {"alice@example.org", 1}};
    check_audience(rd, &owners, NOW, NOW + 1, at_now, 3);
    /* Only unchanged_since: gina out, frank in. */
    const group since[] = {{"bob@example.org", 3},
                           {"erin@example.org", 2},
                           {"alice@example.org", 1},
                           {"frank@example.org", 1}};
    check_audience(rd, &owners, UINT64_MAX, NOW + 1, since, 4);
    /* Before bob's devices were enrolled. */
    const group early[] = {
        {"erin@example.org", 1}, {"gina@example.org", 1}, {"alice@example.org", 1}};
    check_audience(rd, &owners, NOW - 50, UINT64_MAX, early, 3);
    check_audience(rd, &owners, NOW - 100, UINT64_MAX, NULL, 0); /* nobody */

    /* A service key the shares are not sealed to: RC_E_CRYPTO naming the
     * device, nothing returned; without a key nothing is unsealed. */
    rc_store_audience a;
    memset(&a, 0xa5, sizeof a);
    assert_int_equal(
        rc_store_audience_get(rd, W.other_svc, W.list_id, 1, UINT64_MAX, UINT64_MAX, &a, &err),
        RC_E_CRYPTO);
    /* The first row of the scan: bob's device with the lowest key. */
    const uint8_t *low = bob[0]->pub.sign_pk;
    for (int i = 1; i < 3; i++)
        if (memcmp(bob[i]->pub.sign_pk, low, 32) < 0)
            low = bob[i]->pub.sign_pk;
    char fp[RC_UDF_MAX], want[RC_ERROR_MSG_MAX];
    assert_int_equal(rc_key_fingerprint(fp, sizeof fp, RC_KT_DEVICE, low, 32, &err), RC_OK);
    snprintf(want, sizeof want,
             "service share of device %s (bob@example.org, epoch 1) does not open with this "
             "service key",
             fp);
    assert_string_equal(err.msg, want);
    assert_null(a.entries);
    assert_null(a.members);
    assert_int_equal(a.n_entries + a.n_members, 0);
    /* An unknown epoch; missing arguments. */
    assert_int_equal(
        rc_store_audience_get(rd, W.svc, W.list_id, 2, UINT64_MAX, UINT64_MAX, &a, &err),
        RC_E_NOT_FOUND);
    assert_null(a.members);
    assert_int_equal(rc_store_audience_get(rd, W.svc, NULL, 1, UINT64_MAX, UINT64_MAX, &a, &err),
                     RC_E_INVALID);
    assert_int_equal(
        rc_store_audience_get(rd, W.svc, W.list_id, 1, UINT64_MAX, UINT64_MAX, NULL, &err),
        RC_E_INVALID);
    rc_store_audience_free(NULL);
    rc_store_reader_end(rd);
    for (int i = 0; i < 6; i++)
        rc_secret_free(x[i]);
    store_destroy(st);
}

/* Rows of `members` members of the list list_id, two devices each in
 * epoch 1, written straight into the store: member i is "m%06u@example.org";
 * every 10th is suspended; every 7th has its second device enrolled at
 * NOW + 100, the others at NOW - 100. */
static void raw_members(MDB_txn *txn, MDB_dbi mdb, MDB_dbi ddb, const uint8_t list_id[32],
                        uint32_t members)
{
    for (uint32_t i = 0; i < members; i++) {
        char addr[32];
        uint8_t k[128], v[256];
        int len = snprintf(addr, sizeof addr, "m%06u@example.org", i);
        memcpy(k, list_id, 32);
        memcpy(k + 32, addr, (size_t)len);
        v[0] = 1;
        v[1] = RC_PRIV_RECRYPT;
        v[2] = i % 10 == 9 ? RC_STATUS_SUSPENDED : RC_STATUS_ACTIVE;
        rc_be64_put(v + 3, NOW);
        MDB_val mk = {32 + (size_t)len, k}, mv = {11, v};
        assert_int_equal(mdb_put(txn, mdb, &mk, &mv, 0), 0);
        for (uint32_t j = 0; j < 2; j++) {
            size_t o = 41 + (size_t)len, vo = 0;
            memcpy(k, list_id, 32);
            rc_be64_put(k + 32, 1);
            k[40] = (uint8_t)len;
            memcpy(k + 41, addr, (size_t)len);
            memset(k + o, 0, 32); /* the device key */
            rc_be32_put(k + o, i);
            k[o + 4] = (uint8_t)j;
            o += 32;
            memset(v, 0, sizeof v);
            v[vo++] = 1;
            vo += 32 + 32 + RC_SEALED_R_BYTES; /* wrap_pk, K, sealed_r */
            v[vo++] = 0;
            v[vo++] = 48; /* W_len */
            vo += 48;
            rc_be64_put(v + vo, j == 1 && i % 7 == 0 ? NOW + 100 : NOW - 100);
            vo += 8;
            MDB_val dk = {o, k}, dv = {vo, v};
            assert_int_equal(mdb_put(txn, ddb, &dk, &dv, 0), 0);
        }
    }
}

/* The audience of such a list at NOW, without the service key: checked
 * member by member. */
static void raw_audience(rc_store_reader *rd, const uint8_t list_id[32], uint32_t members)
{
    rc_error err;
    {
        rc_store_audience a;
        assert_int_equal(rc_store_audience_get(rd, NULL, list_id, 1, NOW, UINT64_MAX, &a, &err),
                         RC_OK);
        size_t first = 0, m = 0;
        for (uint32_t i = 0; i < members; i++) {
            if (i % 10 == 9)
                continue;
            char addr[32];
            snprintf(addr, sizeof addr, "m%06u@example.org", i);
            assert_true(m < a.n_members);
            assert_string_equal(a.members[m].address, addr);
            assert_int_equal(a.members[m].first, first);
            assert_int_equal(a.members[m].n, i % 7 == 0 ? 1 : 2);
            first += a.members[m].n;
            m++;
        }
        assert_int_equal(a.n_members, m);
        assert_int_equal(a.n_entries, first);
        assert_null(a.entries);
        rc_store_audience_free(&a);
    }
}

/* 100 000 device rows of 50 000 members (and another list next to it)
 * written straight into the store: the audience is grouped right at that
 * scale, and another list's rows do not leak into it. (How fast it is read
 * is the benchmarks' business: bench/store-bench.) */
static void test_audience_scale(void **state)
{
    (void)state;
    enum { BIG = 50000, SMALL = BIG / 4 };
    rc_error err;
    rc_store *st = store_new();
    create_list(st);
    rc_store_close(st);

    uint8_t small_id[32];
    memset(small_id, 0xee, sizeof small_id);
    MDB_env *env = raw_open(W.dir, 0);
    MDB_txn *txn;
    MDB_dbi mdb, ddb, edb;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "members", 0, &mdb), 0);
    assert_int_equal(mdb_dbi_open(txn, "devices", 0, &ddb), 0);
    assert_int_equal(mdb_dbi_open(txn, "epochs", 0, &edb), 0);
    /* The small list borrows LIST's epoch 1 (only the epoch is checked). */
    uint8_t ek[40];
    memcpy(ek, W.list_id, 32);
    rc_be64_put(ek + 32, 1);
    MDB_val k = {40, ek}, v;
    assert_int_equal(mdb_get(txn, edb, &k, &v), 0);
    memcpy(ek, small_id, 32);
    assert_int_equal(mdb_put(txn, edb, &k, &v, 0), 0);
    raw_members(txn, mdb, ddb, W.list_id, BIG);
    raw_members(txn, mdb, ddb, small_id, SMALL);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    rc_store_reader *rd;
    assert_int_equal(rc_store_open(&st, W.dir, 0, RC_STORE_READONLY, &err), RC_OK);
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    raw_audience(rd, W.list_id, BIG);
    raw_audience(rd, small_id, SMALL);
    rc_store_reader_end(rd);
    store_destroy(st);
}

/* ---------------------------------------------------------------- split delivery */

/* A "copies" row's value (u64 time), or 0 when absent. */
static uint64_t raw_copy_time(const char *dir, const uint8_t E[32], const char *member)
{
    MDB_env *env = raw_open(dir, MDB_RDONLY);
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t kb[32 + RC_ADDR_MAX];
    uint64_t t = 0;
    memcpy(kb, E, 32);
    memcpy(kb + 32, member, strlen(member));
    MDB_val k = {32 + strlen(member), kb}, v;
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "copies", 0, &dbi), 0);
    int mrc = mdb_get(txn, dbi, &k, &v);
    assert_true(mrc == 0 || mrc == MDB_NOTFOUND);
    if (mrc == 0) {
        assert_int_equal(v.mv_size, 8);
        t = rc_be64_get(v.mv_data);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return t;
}

static int copy_sent(rc_store *st, const uint8_t E[32], const char *member)
{
    rc_error err;
    rc_store_reader *rd;
    int sent = -1;
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_copy_is_sent(rd, E, member, &sent, &err), RC_OK);
    rc_store_reader_end(rd);
    assert_true(sent == 0 || sent == 1);
    return sent;
}

static size_t copies_of(rc_store *st, const uint8_t E[32])
{
    rc_error err;
    rc_store_reader *rd;
    size_t n = 99;
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_copies_count(rd, E, &n, &err), RC_OK);
    rc_store_reader_end(rd);
    return n;
}

static void begin_new(rc_store *st, const uint8_t E[32], uint64_t now, uint64_t *first)
{
    rc_error err;
    int s = -1;
    assert_int_equal(rc_store_delivered_begin(st, E, now, 0, WINDOW, &s, first, &err), RC_OK);
    assert_int_equal(s, RC_POST_NEW);
}

/* Recording queued copies: per member, idempotent, all or nothing, only
 * for a post in the replay cache; a post's copies are told apart from a
 * neighbouring post's. */
static void test_copies_record(void **state)
{
    (void)state;
    rc_error err;
    rc_store *st = store_new();
    uint8_t E[32], E2[32], got[32];
    uint64_t first;
    int was;
    randombytes_buf(E, 32);
    memcpy(E2, E, 32);
    E2[31] ^= 1; /* its rows sort right next to E's */
    const char *ab[] = {"alice@example.org", "bob@example.org"};

    /* Not in the replay cache: refused, nothing written. */
    assert_int_equal(rc_store_copies_record(st, E, ab, 2, NOW, &err), RC_E_NOT_FOUND);
    assert_non_null(strstr(err.msg, "not in the replay cache"));
    assert_int_equal(raw_count(W.dir, "copies"), 0);

    begin_new(st, E, NOW, &first);
    assert_int_equal(copies_of(st, E), 0);
    assert_int_equal(copy_sent(st, E, "alice@example.org"), 0);
    assert_int_equal(rc_store_copies_record(st, E, ab, 2, NOW + 1, &err), RC_OK);
    assert_int_equal(copies_of(st, E), 2);
    assert_int_equal(copy_sent(st, E, "alice@example.org"), 1);
    assert_int_equal(copy_sent(st, E, "Bob@Example.ORG"), 1); /* canonicalised */
    assert_int_equal(copy_sent(st, E, "carol@example.org"), 0);
    assert_int_equal(copy_sent(st, E2, "alice@example.org"), 0);
    assert_int_equal(raw_copy_time(W.dir, E, "bob@example.org"), NOW + 1);

    /* Again, with carol: bob keeps his time, carol gets hers. */
    const char *bc[] = {"bob@example.org", "Carol@example.org"};
    assert_int_equal(rc_store_copies_record(st, E, bc, 2, NOW + 5, &err), RC_OK);
    assert_int_equal(copies_of(st, E), 3);
    assert_int_equal(raw_copy_time(W.dir, E, "bob@example.org"), NOW + 1);
    assert_int_equal(raw_copy_time(W.dir, E, "carol@example.org"), NOW + 5);
    assert_int_equal(raw_count(W.dir, "copies"), 3);
    assert_int_equal(rc_store_copies_record(st, E, NULL, 0, NOW + 6, &err), RC_OK); /* none */
    assert_int_equal(raw_count(W.dir, "copies"), 3);

    /* All or nothing: one bad address (or none) after a good one. */
    const char *bad[] = {"dave@example.org", "not an address", "erin@example.org"};
    assert_int_equal(rc_store_copies_record(st, E, bad, 3, NOW + 7, &err), RC_E_INVALID);
    const char *hole[] = {"dave@example.org", NULL};
    assert_int_equal(rc_store_copies_record(st, E, hole, 2, NOW + 7, &err), RC_E_INVALID);
    assert_int_equal(rc_store_copies_record(st, E, NULL, 1, NOW + 7, &err), RC_E_INVALID);
    assert_int_equal(raw_count(W.dir, "copies"), 3);
    assert_int_equal(copy_sent(st, E, "dave@example.org"), 0);

    /* A neighbouring post's copies are its own. */
    begin_new(st, E2, NOW + 8, &first);
    assert_int_equal(rc_store_copies_record(st, E2, &bad[0], 1, NOW + 8, &err), RC_OK);
    assert_int_equal(copies_of(st, E), 3);
    assert_int_equal(copies_of(st, E2), 1);
    assert_int_equal(copy_sent(st, E2, "dave@example.org"), 1);
    assert_int_equal(copy_sent(st, E, "dave@example.org"), 0);

    /* The receipt changes nothing about the copies. */
    assert_int_equal(rc_store_delivered_confirm(st, E, 12, match_E, E, got, &was, &err), RC_OK);
    assert_int_equal(was, RC_POST_PENDING);
    assert_int_equal(copies_of(st, E), 3);

    /* Readers: bad arguments. */
    rc_store_reader *rd;
    int sent = 7;
    size_t n = 7;
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_copy_is_sent(rd, E, "no address", &sent, &err), RC_E_INVALID);
    assert_int_equal(sent, 0);
    assert_int_equal(rc_store_copy_is_sent(rd, E, NULL, &sent, &err), RC_E_INVALID);
    assert_int_equal(rc_store_copies_count(rd, NULL, &n, &err), RC_E_INVALID);
    rc_store_reader_end(rd);

    /* Read-only: readable, not writable. */
    rc_store_close(st);
    assert_int_equal(rc_store_open(&st, W.dir, 0, RC_STORE_READONLY, &err), RC_OK);
    assert_int_equal(copies_of(st, E), 3);
    assert_int_equal(rc_store_copies_record(st, E, &bad[0], 1, NOW + 9, &err), RC_E_INVALID);
    assert_non_null(strstr(err.msg, "read-only"));
    assert_int_equal(raw_count(W.dir, "copies"), 4);
    store_destroy(st);
}

/* A post's copies live as long as its replay-cache row: pruned with it,
 * forgotten with it, dropped when an expired post is recorded anew. */
static void test_copies_lifetime(void **state)
{
    (void)state;
    rc_error err;
    rc_store *st = store_new();
    uint8_t old[32], young[32], failed[32], again[32], other[32];
    uint64_t f_old, f_young, f_failed, f_again, f_other;
    const char *three[] = {"alice@example.org", "bob@example.org", "carol@example.org"};
    randombytes_buf(old, 32);
    randombytes_buf(young, 32);
    randombytes_buf(failed, 32);
    randombytes_buf(again, 32);
    randombytes_buf(other, 32);
    begin_new(st, old, NOW, &f_old);
    begin_new(st, again, NOW + 1, &f_again);
    assert_int_equal(rc_store_copies_record(st, old, three, 3, NOW + 1, &err), RC_OK);
    assert_int_equal(rc_store_copies_record(st, again, three, 2, NOW + 2, &err), RC_OK);
    assert_int_equal(raw_count(W.dir, "copies"), 5);

    /* forget: only the attempt's own pending row, and its copies with it. */
    begin_new(st, failed, NOW + 2, &f_failed);
    assert_int_equal(rc_store_copies_record(st, failed, three, 1, NOW + 3, &err), RC_OK);
    assert_int_equal(rc_store_delivered_forget(st, failed, f_failed - 1, &err), RC_OK);
    assert_int_equal(copies_of(st, failed), 1); /* not ours: kept */
    assert_int_equal(rc_store_delivered_forget(st, failed, f_failed, &err), RC_OK);
    assert_int_equal(copies_of(st, failed), 0);
    assert_int_equal(raw_count(W.dir, "copies"), 5);
    assert_int_equal(rc_store_copies_record(st, failed, three, 1, NOW + 4, &err), RC_E_NOT_FOUND);

    /* An expired post recorded anew starts without copies (and the
     * pruning of that call takes `old`, expired too, with its copies). */
    int s;
    uint64_t t0;
    assert_int_equal(
        rc_store_delivered_begin(st, again, NOW + 1 + WINDOW + 1, 0, WINDOW, &s, &t0, &err), RC_OK);
    assert_int_equal(s, RC_POST_NEW);
    assert_int_equal(copies_of(st, again), 0);
    assert_int_equal(copies_of(st, old), 0);
    assert_int_equal(raw_count(W.dir, "copies"), 0);
    assert_int_equal(rc_store_copies_record(st, again, three, 3, NOW + WINDOW + 3, &err), RC_OK);
    begin_new(st, young, NOW + WINDOW + 10, &f_young);
    assert_int_equal(rc_store_copies_record(st, young, three, 3, NOW + WINDOW + 11, &err), RC_OK);
    assert_int_equal(raw_count(W.dir, "copies"), 6);

    /* Pruning: a later post forgets the expired ones, their copies with
     * them; the young post keeps its copies. */
    rc_store_close(st);
    assert_int_equal(rc_store_open(&st, W.dir, 0, 0, &err), RC_OK);
    begin_new(st, other, NOW + 2 * WINDOW + 3, &f_other);
    assert_int_equal(copies_of(st, again), 0);
    assert_int_equal(copies_of(st, young), 3);
    assert_int_equal(raw_count(W.dir, "copies"), 3);
    assert_int_equal(raw_count(W.dir, "delivered"), 2);
    /* And the young one in turn, one window later. */
    begin_new(st, old, NOW + 4 * WINDOW, &f_old);
    assert_int_equal(copies_of(st, young), 0);
    assert_int_equal(raw_count(W.dir, "copies"), 0);
    (void)f_young;
    (void)f_again;
    (void)f_other;
    store_destroy(st);
}

/* Version 2 statements (FORMAT.md §4): CreateGroup and UpdateGroup carry
 * the epoch's service signing seed sealed to the service key; the store
 * checks it against statement.service_pk and keeps it sealed per epoch
 * ("svckeys", schema 5). A store of schema 4 migrates to an empty
 * "svckeys"; unmigrated, it has no service keys (RC_E_NOT_FOUND). */
static void test_service_keys(void **state)
{
    (void)state;
    rc_error err;
    rc_store *st = store_new();
    rc_store_reader *rd;
    uint8_t seed1[32], seed2[32], pk1[32], pk2[32], got[32];
    randombytes_buf(seed1, 32);
    randombytes_buf(seed2, 32);
    rc_svc_public(pk1, seed1);
    rc_svc_public(pk2, seed2);
    rc_request r;
    /* the seed does not match the statement's service key: refused */
    req_init(&r, RC_REQ_CREATE_GROUP, LIST);
    assert_int_equal(rc_statement_sign_v2(&r.statement, W.ls1, NOW - 100, 0, pk1, NULL, 0, &err),
                     RC_OK);
    r.owner = W.owner->pub;
    assert_int_equal(rc_svc_seed_seal(r.sealed_svc_seed, seed2, W.svc->pub.pk, &err), RC_OK);
    assert_int_equal(submit_as(st, &r, W.owner, ++W.ctr_owner, &err), RC_E_CRYPTO);
    assert_non_null(strstr(err.msg, "is not the one its list key statement names"));
    /* sealed to another service: refused */
    assert_int_equal(rc_svc_seed_seal(r.sealed_svc_seed, seed1, W.other_svc->pub.pk, &err), RC_OK);
    assert_int_equal(submit_as(st, &r, W.owner, ++W.ctr_owner, &err), RC_E_CRYPTO);
    /* right: the list exists, its epoch 1 has the key */
    assert_int_equal(rc_svc_seed_seal(r.sealed_svc_seed, seed1, W.svc->pub.pk, &err), RC_OK);
    apply_ok(st, &r);
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_service_seed(rd, W.svc, W.list_id, 1, got, &err), RC_OK);
    assert_memory_equal(got, seed1, 32);
    assert_int_equal(rc_store_service_seed(rd, W.other_svc, W.list_id, 1, got, &err), RC_E_CRYPTO);
    assert_int_equal(rc_store_service_seed(rd, W.svc, W.list_id, 2, got, &err), RC_E_NOT_FOUND);
    rc_store_epoch ep;
    assert_int_equal(rc_store_get_epoch(rd, W.list_id, 1, &ep, &err), RC_OK);
    assert_int_equal(ep.statement.version, 2);
    assert_memory_equal(ep.statement.service_pk, pk1, 32);
    rc_store_reader_end(rd);
    /* rotation: UpdateGroup with a revocation and the next seed */
    req_init(&r, RC_REQ_UPDATE_GROUP, LIST);
    assert_int_equal(rc_statement_sign_v2(&r.statement, W.ls2, NOW - 100, 0, pk2,
                                          (const uint8_t(*)[32])W.dev[D_ALICE]->pub.sign_pk, 1,
                                          &err),
                     RC_OK);
    assert_int_equal(rc_svc_seed_seal(r.sealed_svc_seed, seed2, W.svc->pub.pk, &err), RC_OK);
    apply_ok(st, &r);
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_service_seed(rd, W.svc, W.list_id, 2, got, &err), RC_OK);
    assert_memory_equal(got, seed2, 32);
    assert_int_equal(rc_store_get_epoch(rd, W.list_id, 2, &ep, &err), RC_OK);
    assert_int_equal(ep.statement.n_revoked, 1);
    rc_store_reader_end(rd);
    rc_store_close(st);

    /* schema 4: no "svckeys"; unmigrated it has no keys, migrated an empty table */
    downgrade_to(W.dir, 4);
    assert_int_equal(rc_store_open(&st, W.dir, 0, RC_STORE_NO_MIGRATE, &err), RC_OK);
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_service_seed(rd, W.svc, W.list_id, 1, got, &err), RC_E_NOT_FOUND);
    rc_store_reader_end(rd);
    rc_store_close(st);
    assert_int_equal(rc_store_open(&st, W.dir, 0, 0, &err), RC_OK);
    assert_int_equal(rc_store_found_schema(st), 4);
    assert_int_equal(raw_schema(W.dir), 5);
    assert_true(raw_has_db(W.dir, "svckeys"));
    assert_int_equal(raw_count(W.dir, "svckeys"), 0);
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_service_seed(rd, W.svc, W.list_id, 2, got, &err), RC_E_NOT_FOUND);
    rc_store_reader_end(rd);
    sodium_memzero(got, 32);
    store_destroy(st);
}

/* A store of schema 3 (no "copies"): read as it is without migrating
 * (no copies recorded, writes refused, the store unchanged), migrated to
 * 4 by a read-write open with every row kept, then used. */
static void test_migrate_from_schema_3(void **state)
{
    (void)state;
    rc_error err;
    rc_store *st = store_new();
    rc_store_reader *rd;
    rc_store_list l;
    uint8_t E[32];
    uint64_t first;
    int s;
    const char *ab[] = {"alice@example.org", "bob@example.org"};
    create_list(st);
    const int alice[] = {D_ALICE};
    add_member(st, M_ALICE, alice, 1, NOW);
    randombytes_buf(E, 32);
    begin_new(st, E, NOW, &first);
    rc_store_close(st);
    downgrade_to(W.dir, 3);
    mbuf v3 = {0}, same = {0}, v4 = {0};
    size_t rows3, rows;
    raw_dump(W.dir, &v3, &rows3);

    /* Read only, and read-write without migrating: no copies, no writes. */
    for (int pass = 0; pass < 2; pass++) {
        unsigned fl = pass ? RC_STORE_NO_MIGRATE : RC_STORE_READONLY;
        int sent = 7;
        size_t n = 7;
        assert_int_equal(rc_store_open(&st, W.dir, 0, fl, &err), RC_OK);
        assert_int_equal(rc_store_found_schema(st), 3);
        assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
        assert_int_equal(rc_store_schema(rd), 3);
        assert_int_equal(rc_store_get_list(rd, LIST, &l, &err), RC_OK);
        assert_int_equal(rc_store_copy_is_sent(rd, E, "alice@example.org", &sent, &err), RC_OK);
        assert_int_equal(sent, 0);
        assert_int_equal(rc_store_copies_count(rd, E, &n, &err), RC_OK);
        assert_int_equal(n, 0);
        rc_store_reader_end(rd);
        int rc = rc_store_copies_record(st, E, ab, 2, NOW + 1, &err);
        if (pass) {
            assert_int_equal(rc, RC_E_VERSION);
            assert_string_equal(err.msg, "store schema version 3 is not migrated to 5 yet: open "
                                         "it for writing without RC_STORE_NO_MIGRATE");
        } else {
            assert_int_equal(rc, RC_E_INVALID);
        }
        rc_store_close(st);
        raw_dump(W.dir, &same, &rows);
        assert_int_equal(rows, rows3);
        assert_int_equal(same.len, v3.len);
        assert_memory_equal(same.p, v3.p, v3.len);
        mbuf_free(&same);
    }

    /* Read-write: migrated; the same rows (but meta/schema), an empty
     * "copies"; the pending post is still pending, and takes copies. */
    assert_int_equal(rc_store_open(&st, W.dir, 0, 0, &err), RC_OK);
    assert_int_equal(rc_store_found_schema(st), 3);
    assert_int_equal(raw_schema(W.dir), RC_STORE_SCHEMA_VERSION);
    assert_true(raw_has_db(W.dir, "copies"));
    raw_dump(W.dir, &v4, &rows);
    assert_int_equal(rows, rows3);
    const uint8_t *lists3 = memmem(v3.p, v3.len, "lists", 6);
    const uint8_t *lists4 = memmem(v4.p, v4.len, "lists", 6);
    assert_non_null(lists3);
    assert_non_null(lists4);
    assert_int_equal((size_t)(lists3 - v3.p), (size_t)(lists4 - v4.p));
    assert_int_equal(v3.len, v4.len);
    assert_memory_equal(lists3, lists4, v3.len - (size_t)(lists3 - v3.p));
    mbuf_free(&v3);
    mbuf_free(&v4);
    assert_int_equal(rc_store_delivered_begin(st, E, NOW + 1, 0, WINDOW, &s, &first, &err), RC_OK);
    assert_int_equal(s, RC_POST_PENDING);
    assert_int_equal(rc_store_copies_record(st, E, ab, 2, NOW + 1, &err), RC_OK);
    assert_int_equal(copies_of(st, E), 2);
    rc_store_close(st);
    assert_int_equal(rc_store_open(&st, W.dir, 0, 0, &err), RC_OK);
    assert_int_equal(rc_store_found_schema(st), RC_STORE_SCHEMA_VERSION); /* not migrated twice */
    assert_int_equal(copies_of(st, E), 2);
    rc_store_close(st);

    /* A store rewound to 3 by hand with its copies left behind: the
     * migration empties them (a schema-3 build pruned without them). */
    set_meta(W.dir, "schema", "\0\0\0\3", 4);
    assert_int_equal(raw_count(W.dir, "copies"), 2);
    assert_int_equal(rc_store_open(&st, W.dir, 0, 0, &err), RC_OK);
    assert_int_equal(rc_store_found_schema(st), 3);
    assert_int_equal(raw_count(W.dir, "copies"), 0);
    assert_int_equal(copies_of(st, E), 0);
    W.n_secrets = 0;
    store_destroy(st);
}

typedef struct {
    const uint8_t *pk;
    rc_store_owner found;
    int n;
} owner_find;

static int find_owner_cb(void *ctx, const rc_store_owner *o)
{
    owner_find *f = ctx;
    if (memcmp(o->owner.sign_pk, f->pk, 32) == 0) {
        f->found = *o;
        f->n++;
    }
    return 0;
}

/* The owner row of pk, if any: 1 found (in *out), 0 not. */
static int owner_row(rc_store *st, const rc_owner_secret *who, rc_store_owner *out)
{
    rc_store_reader *rd;
    rc_error err;
    owner_find f;
    memset(&f, 0, sizeof f);
    f.pk = who->pub.sign_pk;
    assert_int_equal(rc_store_reader_begin(st, &rd, &err), RC_OK);
    assert_int_equal(rc_store_each_owner(rd, W.list_id, find_owner_cb, &f, &err), RC_OK);
    rc_store_reader_end(rd);
    *out = f.found;
    return f.n;
}

/* UpdateOwner and RemoveOwner (issue 13): SUPER only, the last SUPER owner
 * stays, a removed owner's later requests are refused; each refusal leaves
 * every row as it was. */
static void test_owner_changes(void **state)
{
    (void)state;
    rc_store *st = store_new();
    rc_request r;
    rc_store_owner o;
    rc_error err;
    create_list(st);
    req_init(&r, RC_REQ_ADD_OWNER, LIST);
    r.owner = W.admin->pub;
    r.privilege = RC_PRIV_ADMIN;
    apply_ok(st, &r);

    /* The creator is the only SUPER: it can be neither lowered nor removed. */
    req_init(&r, RC_REQ_UPDATE_OWNER, LIST);
    r.owner = W.owner->pub;
    r.privilege = RC_PRIV_ADMIN;
    refused(&st, &r, W.owner, W.ctr_owner + 1, RC_E_POLICY,
            "is the last SUPER owner of team@example.org: it cannot be lowered to admin");
    req_init(&r, RC_REQ_REMOVE_OWNER, LIST);
    r.owner = W.owner->pub;
    refused(&st, &r, W.owner, W.ctr_owner + 1, RC_E_POLICY, "it cannot be removed");
    /* An ADMIN may do neither. */
    req_init(&r, RC_REQ_UPDATE_OWNER, LIST);
    r.owner = W.admin->pub;
    r.privilege = RC_PRIV_SUPER;
    refused(&st, &r, W.admin, 1, RC_E_POLICY, "has ADMIN, SUPER is needed for UpdateOwner");
    req_init(&r, RC_REQ_REMOVE_OWNER, LIST);
    r.owner = W.owner->pub;
    refused(&st, &r, W.admin, 1, RC_E_POLICY, "has ADMIN, SUPER is needed for RemoveOwner");
    /* Unknown owner, bad privilege. */
    req_init(&r, RC_REQ_REMOVE_OWNER, LIST);
    r.owner = W.stranger->pub;
    refused(&st, &r, W.owner, W.ctr_owner + 1, RC_E_NOT_FOUND, "is not an owner of");
    req_init(&r, RC_REQ_UPDATE_OWNER, LIST);
    r.owner = W.admin->pub;
    r.privilege = RC_PRIV_RECRYPT;
    refused(&st, &r, W.owner, W.ctr_owner + 1, RC_E_INVALID, "must be admin or super");

    /* Raise the ADMIN to SUPER; then it removes the creator. */
    req_init(&r, RC_REQ_UPDATE_OWNER, LIST);
    r.owner = W.admin->pub;
    r.privilege = RC_PRIV_SUPER;
    apply_ok(st, &r);
    assert_int_equal(owner_row(st, W.admin, &o), 1);
    assert_int_equal(o.privilege, RC_PRIV_SUPER);
    assert_int_equal(o.last_counter, 0); /* its counter is its own, untouched */
    req_init(&r, RC_REQ_REMOVE_OWNER, LIST);
    r.owner = W.owner->pub;
    assert_int_equal(submit_as(st, &r, W.admin, 1, &err), RC_OK);
    rc_request_free(&r);
    assert_int_equal(owner_row(st, W.owner, &o), 0);
    assert_int_equal(owner_row(st, W.admin, &o), 1);

    /* The removed owner's later requests are refused (exit 77 in recryptctl). */
    req_init(&r, RC_REQ_ADD_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_BOB]);
    r.privilege = RC_PRIV_RECRYPT;
    req_dev(&r, W.ls1, D_BOB1, NOW);
    refused(&st, &r, W.owner, W.ctr_owner + 1, RC_E_POLICY, "is not an owner of team@example.org");
    /* The one SUPER left cannot lower or remove itself. */
    req_init(&r, RC_REQ_UPDATE_OWNER, LIST);
    r.owner = W.admin->pub;
    r.privilege = RC_PRIV_ADMIN;
    refused(&st, &r, W.admin, 2, RC_E_POLICY, "last SUPER owner");
    req_init(&r, RC_REQ_REMOVE_OWNER, LIST);
    r.owner = W.admin->pub;
    refused(&st, &r, W.admin, 2, RC_E_POLICY, "last SUPER owner");
    W.n_secrets = 0;
    store_destroy(st);
}

/* Requests expire (REQUESTS.md §9.1: "now > not_after: refused; created_at
 * more than RC_REQUEST_FUTURE_SKEW ahead of now: refused; not_after -
 * created_at outside 1..RC_REQUEST_MAX_LIFETIME: refused"), with the dates
 * in the message, and nothing changed. */
static void test_request_dates(void **state)
{
    (void)state;
    rc_store *st = store_new();
    rc_request r;
    rc_error err;
    create_list(st);
    uint64_t c = W.ctr_owner + 1;
#define AS_MEMBER(req)                                                           \
    do {                                                                        \
        req_init(&(req), RC_REQ_ADD_MEMBER, LIST);                              \
        snprintf((req).member, sizeof (req).member, "%s", MEMBER[M_ALICE]);     \
        (req).privilege = RC_PRIV_RECRYPT;                                      \
        req_dev(&(req), W.ls1, D_ALICE, NOW);                                   \
    } while (0)
    /* NOW is 1700000000 = 2023-11-14T22:13:20Z. */
    AS_MEMBER(r);
    r.created_at = NOW - 8 * 86400;
    r.not_after = NOW - 1;
    refused(&st, &r, W.owner, c, RC_E_POLICY,
            "request expired at 2023-11-14T22:13:19Z (made 2023-11-06T22:13:20Z; now "
            "2023-11-14T22:13:20Z): make it again");
    AS_MEMBER(r);
    r.created_at = NOW + RC_REQUEST_FUTURE_SKEW + 1;
    r.not_after = r.created_at + 86400;
    refused(&st, &r, W.owner, c, RC_E_POLICY,
            "request made 2023-11-14T23:13:21Z, more than 60 minutes ahead of this server's "
            "clock (2023-11-14T22:13:20Z)");
    AS_MEMBER(r);
    r.not_after = NOW + RC_REQUEST_MAX_LIFETIME + 1;
    refused(&st, &r, W.owner, c, RC_E_POLICY, "its lifetime must be positive and at most 90 days");
    AS_MEMBER(r);
    r.not_after = NOW;
    refused(&st, &r, W.owner, c, RC_E_POLICY, "its lifetime must be positive");
    AS_MEMBER(r);
    r.not_after = 0;
    refused(&st, &r, W.owner, c, RC_E_POLICY, "its lifetime must be positive");
    /* At the edges: an hour ahead, the last second of its life, 90 days. */
    AS_MEMBER(r);
    r.created_at = NOW + RC_REQUEST_FUTURE_SKEW;
    r.not_after = r.created_at + RC_REQUEST_MAX_LIFETIME;
    assert_int_equal(submit_as(st, &r, W.owner, c++, &err), RC_OK);
    rc_request_free(&r);
    req_init(&r, RC_REQ_UPDATE_MEMBER, LIST);
    snprintf(r.member, sizeof r.member, "%s", MEMBER[M_ALICE]);
    r.status = RC_STATUS_SUSPENDED;
    r.created_at = NOW - 86400;
    r.not_after = NOW;
    assert_int_equal(submit_as(st, &r, W.owner, c++, &err), RC_OK);
    rc_request_free(&r);
#undef AS_MEMBER
    W.n_secrets = 0;
    store_destroy(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_life_cycle),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_owner_changes),
        cmocka_unit_test(test_request_dates),
        cmocka_unit_test(test_request_tamper),
        cmocka_unit_test(test_create_and_schema),
        cmocka_unit_test(test_map_full),
        cmocka_unit_test(test_concurrent_reader),
        cmocka_unit_test(test_migrate_from_schema_1),
        cmocka_unit_test(test_replay_cache_bounded),
        cmocka_unit_test(test_replay_pending),
        cmocka_unit_test(test_recrypt_audience),
        cmocka_unit_test(test_audience_by_member),
        cmocka_unit_test(test_audience_scale),
        cmocka_unit_test(test_copies_record),
        cmocka_unit_test(test_copies_lifetime),
        cmocka_unit_test(test_migrate_from_schema_3),
        cmocka_unit_test(test_service_keys),
    };
    return cmocka_run_group_tests(tests, world_setup, world_teardown);
}
