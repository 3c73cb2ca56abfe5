/*
 * big-list - a benchmark helper: fills a store (made by `recryptctl server
 * init`) with one list of MEMBERS members of PER devices each, the real
 * way (an owner key, signed CreateGroup and AddMember requests of version
 * RC_REQUEST_VERSION built as recryptctl builds them, applied with
 * rc_store_apply), much faster than one `recryptctl member add` and
 * one `recrypt keygen` process per member. For bench/postfix-bench.sh's
 * large lists (10,000 and 100,000 devices). Not a test; not installed.
 *
 *   big-list DB LIST MEMBERS PER DOMAIN OUTDIR
 *
 * Members are m000001@DOMAIN, ...; they are listed one per line in
 * OUTDIR/members.txt, the list key line goes to OUTDIR/list.key, and the
 * first device of the first, middle and last member gets a keystore
 * OUTDIR/dev-<N>/device.key (0600), so that `RECRYPT_HOME=OUTDIR/dev-<N>
 * recrypt open` can open that member's copy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sodium.h>
#include <recrypt/recrypt.h>
#include <recrypt/request.h>
#include "store.h"

static int die(const char *what, const rc_error *err)
{
    fprintf(stderr, "big-list: %s: %s\n", what, err ? err->msg : strerror(errno));
    return 1;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A request header as recryptctl's request_start writes it (version
 * RC_REQUEST_VERSION, expiring RC_REQUEST_DEFAULT_LIFETIME after
 * created_at); the counter is the caller's, one per request. */
static void request_start(rc_request *r, uint8_t type, const rc_service_public *svc,
                          const char *list, uint64_t now, uint64_t counter)
{
    memset(r, 0, sizeof *r);
    r->version = RC_REQUEST_VERSION;
    r->type = type;
    memcpy(r->service_pk, svc->pk, 32);
    snprintf(r->list, sizeof r->list, "%s", list);
    r->created_at = now;
    r->not_after = now + RC_REQUEST_DEFAULT_LIFETIME;
    r->counter = counter;
}

/* The epoch's version 2 statement, as recryptctl's sign_statement makes it:
 * a fresh service signing seed sealed to the service (r->sealed_svc_seed),
 * its public key named in the statement; valid from an hour ago, no
 * expiry, nothing revoked. */
static int sign_statement(rc_request *r, const rc_list_secret *ls, const rc_service_public *svc,
                          uint64_t now, rc_error *err)
{
    uint8_t *seed = rc_secret_alloc(RC_SVC_SEED_BYTES), svc_pk[RC_SIGN_PK_BYTES];
    if (!seed)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    randombytes_buf(seed, RC_SVC_SEED_BYTES);
    rc_svc_public(svc_pk, seed);
    int rc = rc_svc_seed_seal(r->sealed_svc_seed, seed, svc->pk, err);
    rc_secret_free(seed);
    return rc ? rc : rc_statement_sign_v2(&r->statement, ls, now - 3600, 0, svc_pk, NULL, 0, err);
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int bad = fputs(text, f) < 0;
    return fclose(f) != 0 || bad ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: big-list DB LIST MEMBERS PER DOMAIN OUTDIR\n");
        return 2;
    }
    const char *db = argv[1], *list = argv[2], *domain = argv[5], *out = argv[6];
    long members = strtol(argv[3], NULL, 10), per = strtol(argv[4], NULL, 10);
    if (members < 1 || members > 10000000 || per < 1 || per > 100) {
        fprintf(stderr, "big-list: MEMBERS 1..10000000, PER 1..100\n");
        return 2;
    }
    rc_error err;
    if (rc_init(&err))
        return die("rc_init", &err);
    char path[4096], *ks = rc_secret_alloc(RC_KEYSTR_MAX);
    rc_service_secret *svc = rc_secret_alloc(sizeof *svc);
    rc_owner_secret *owner = rc_secret_alloc(sizeof *owner);
    rc_list_secret *ls = rc_secret_alloc(sizeof *ls);
    rc_device_secret *dev = rc_secret_alloc(sizeof *dev);
    rc_req_device *d = calloc(1, sizeof *d);
    if (!ks || !svc || !owner || !ls || !dev || !d)
        return die("out of memory", NULL);
    snprintf(path, sizeof path, "%s/%s", db, RC_STORE_SERVICE_KEY_FILE);
    if (rc_keyfile_read(path, ks, RC_KEYSTR_MAX, &err) || rc_service_secret_decode(svc, ks, &err))
        return die(path, &err);
    rc_store *st = NULL;
    if (rc_store_open(&st, db, 0, 0, &err))
        return die(db, &err);
    if (mkdir(out, 0700) != 0 && errno != EEXIST)
        return die(out, NULL);

    uint64_t now = (uint64_t)time(NULL), counter = 0;
    rc_statement stmt;
    rc_request r;
    if (rc_owner_generate(owner, &err) || rc_list_generate(ls, list, 1, NULL, &err))
        return die("keys", &err);
    request_start(&r, RC_REQ_CREATE_GROUP, &svc->pub, list, now, ++counter);
    if (sign_statement(&r, ls, &svc->pub, now, &err))
        return die("list key statement", &err);
    r.owner = owner->pub;
    if (rc_request_sign(&r, owner, &err) || rc_store_apply(st, svc, &r, now, &err))
        return die("create the list", &err);
    stmt = r.statement;
    rc_request_free(&r);
    if (rc_statement_encode(ks, RC_KEYSTR_MAX, &stmt, &err))
        return die("list key", &err);
    snprintf(path, sizeof path, "%s/list.key", out);
    char line[RC_KEYSTR_MAX + 2];
    snprintf(line, sizeof line, "%s\n", ks);
    if (write_text(path, line))
        return die(path, NULL);
    snprintf(path, sizeof path, "%s/members.txt", out);
    FILE *mf = fopen(path, "w");
    if (!mf)
        return die(path, NULL);

    double t0 = now_s();
    long samples[3] = {1, (members + 1) / 2, members};
    for (long m = 1; m <= members; m++) {
        char member[RC_ADDR_MAX + 1];
        snprintf(member, sizeof member, "m%06ld@%s", m, domain);
        fprintf(mf, "%s\n", member);
        request_start(&r, RC_REQ_ADD_MEMBER, &svc->pub, list, now, ++counter);
        snprintf(r.member, sizeof r.member, "%s", member);
        r.privilege = RC_PRIV_RECRYPT;
        for (long j = 0; j < per; j++) {
            if (rc_device_generate(dev, &err) ||
                rc_req_device_make(d, ls, &dev->pub, member, now - 60, &svc->pub, &err) ||
                rc_request_add_device(&r, d, &err))
                return die("device", &err);
            if (j == 0 && (m == samples[0] || m == samples[1] || m == samples[2])) {
                snprintf(path, sizeof path, "%s/dev-%ld", out, m);
                if (mkdir(path, 0700) != 0 && errno != EEXIST)
                    return die(path, NULL);
                snprintf(path, sizeof path, "%s/dev-%ld/device.key", out, m);
                if (rc_device_secret_encode(ks, RC_KEYSTR_MAX, dev, &err) ||
                    rc_keyfile_write(path, ks, &err))
                    return die(path, &err);
            }
        }
        if (rc_request_sign(&r, owner, &err) || rc_store_apply(st, svc, &r, now, &err))
            return die(member, &err);
        rc_request_free(&r);
        if (m % 10000 == 0)
            fprintf(stderr, "big-list: %ld of %ld members (%.0f s)\n", m, members, now_s() - t0);
    }
    if (fclose(mf) != 0)
        return die("members.txt", NULL);
    printf("big-list: %s: %ld members x %ld devices in %.1f s\n", list, members, per,
           now_s() - t0);
    rc_store_close(st);
    free(d);
    rc_secret_free(dev);
    rc_secret_free(ls);
    rc_secret_free(owner);
    rc_secret_free(svc);
    rc_secret_free(ks);
    return 0;
}
