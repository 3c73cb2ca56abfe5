/*
 * store-bench - figures for the milter's replay cache in the LMDB store
 * (src/store): what recording a post costs, how large the cache stays, and
 * how long migrating a schema-1 store with a full cache takes.
 *
 * A fresh store in a private temporary directory; N posts with random E,
 * one a second (the clock is simulated), each recorded as pending with
 * rc_store_delivered_begin (a freshness window of W seconds) and then
 * promoted by its receipt, rc_store_delivered_confirm (every 1000th time,
 * the post before is also sent again, which must be seen as delivered).
 * Then
 * the store is rewound to schema 1 (its time index dropped, as
 * tests/tools/rc-harness.c store-schema does) and reopened read-write,
 * which migrates it. A benchmark, not a test: run it by hand
 * (cmake --build BUILD --target bench); bench/README.md explains it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <recrypt/recrypt.h>
#include "store.h"

static void die(const char *what, const rc_error *err)
{
    fprintf(stderr, "store-bench: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(1);
}

static int same_E(void *ctx, const uint8_t E[32])
{
    return memcmp(ctx, E, 32) == 0;
}

static void die_mdb(const char *what, int mrc)
{
    fprintf(stderr, "store-bench: %s: %s\n", what, mdb_strerror(mrc));
    exit(1);
}

static void fail(const char *what)
{
    fprintf(stderr, "store-bench: %s\n", what);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Entries of one database, or -1 when it does not exist. */
static long raw_entries(const char *dir, const char *db)
{
    MDB_env *env;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_stat s;
    long n = -1;
    int mrc;
    if ((mrc = mdb_env_create(&env)) || (mrc = mdb_env_set_maxdbs(env, 16)) ||
        (mrc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0640)) ||
        (mrc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)))
        die_mdb("opening the store", mrc);
    if (mdb_dbi_open(txn, db, 0, &dbi) == 0 && mdb_stat(txn, dbi, &s) == 0)
        n = (long)s.ms_entries;
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return n;
}

/* What the schema-1 build wrote: no delivered-at, meta/schema 1. */
static void rewind_to_v1(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi at, meta;
    uint8_t one[4] = {0, 0, 0, 1};
    MDB_val k = {6, "schema"}, v = {4, one};
    int mrc;
    if ((mrc = mdb_env_create(&env)) || (mrc = mdb_env_set_maxdbs(env, 16)) ||
        (mrc = mdb_env_open(env, dir, MDB_NOTLS, 0640)) ||
        (mrc = mdb_txn_begin(env, NULL, 0, &txn)) ||
        (mrc = mdb_dbi_open(txn, "delivered-at", 0, &at)) || (mrc = mdb_drop(txn, at, 1)) ||
        (mrc = mdb_dbi_open(txn, "meta", 0, &meta)) || (mrc = mdb_put(txn, meta, &k, &v, 0)) ||
        (mrc = mdb_txn_commit(txn)))
        die_mdb("rewinding the store to schema 1", mrc);
    mdb_env_close(env);
}

static long file_kib(const char *dir, const char *name)
{
    char p[4400];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0 ? (long)(sb.st_size / 1024) : -1;
}

int main(int argc, char **argv)
{
    unsigned long posts = 20000, window = 3600;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--posts") && i + 1 < argc)
            posts = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--window") && i + 1 < argc)
            window = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr,
                    "usage: store-bench [--posts N (20000)] [--window SECONDS (3600)]\n"
                    "  N posts, one a second, recorded in the replay cache of a fresh store;\n"
                    "  then the store rewound to schema 1 and migrated.\n");
            return 2;
        }
    }
    if (posts < 1 || window < 1) {
        fprintf(stderr, "store-bench: --posts and --window must be at least 1\n");
        return 2;
    }
    rc_error err;
    rc_service_public pub;
    rc_store *st;
    if (rc_init(&err))
        die("rc_init", &err);
    char base[4096], dir[4200];
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/store-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base))
        die("mkdtemp", NULL);
    snprintf(dir, sizeof dir, "%s/db", base);
    if (rc_store_create(dir, 0, &pub, &err) || rc_store_open(&st, dir, 0, 0, &err))
        die("creating the store", &err);

    printf("store-bench: %lu posts, one a second, window %lu s, LMDB %s\n", posts, window,
           MDB_VERSION_STRING);
    uint8_t E[32], again[32];
    const uint64_t t0 = 1700000000;
    double worst = 0, worst_r = 0, t_begin = 0, t_confirm = 0;
    unsigned long replays = 0;
    for (unsigned long i = 0; i < posts; i++) {
        int seen;
        uint64_t first;
        uint8_t got[32];
        randombytes_buf(E, sizeof E);
        double a = now_s();
        if (rc_store_delivered_begin(st, E, t0 + i, 0, window, &seen, &first, &err))
            die("recording a post", &err);
        double d = now_s() - a;
        t_begin += d;
        if (d > worst)
            worst = d;
        if (seen != RC_POST_NEW)
            fail("a fresh E was seen as a replay");
        a = now_s();
        if (rc_store_delivered_confirm(st, E, 12, same_E, E, got, &seen, &err))
            die("recording a receipt", &err);
        d = now_s() - a;
        t_confirm += d;
        if (d > worst_r)
            worst_r = d;
        if (seen != RC_POST_PENDING)
            fail("the receipt did not find its pending post");
        /* Every 1000th post, the previous one again (one second old). */
        if (i % 1000 == 999 && i > 0) {
            if (rc_store_delivered_begin(st, again, t0 + i, 0, window, &seen, &first, &err))
                die("recording a replay", &err);
            if (seen != RC_POST_DELIVERED)
                fail("a replay within the window was not seen");
            replays++;
        }
        memcpy(again, E, sizeof E);
    }
    rc_store_close(st);
    long n_del = raw_entries(dir, "delivered"), n_at = raw_entries(dir, "delivered-at");
    printf("  record a post        %8.1f us mean, %8.1f us worst (pending: one write transaction)\n",
           t_begin / (double)posts * 1e6, worst * 1e6);
    printf("  record its receipt   %8.1f us mean, %8.1f us worst (delivered: one write transaction)\n",
           t_confirm / (double)posts * 1e6, worst_r * 1e6);
    printf("  replays seen         %8lu of %lu sent again within the window\n", replays, replays);
    printf("  cache entries        %8ld (delivered), %ld (delivered-at); one window holds %lu\n",
           n_del, n_at, posts < window + 1 ? posts : window + 1);
    printf("  data.mdb             %8ld KiB\n", file_kib(dir, "data.mdb"));

    rewind_to_v1(dir);
    double a = now_s();
    if (rc_store_open(&st, dir, 0, 0, &err))
        die("migrating", &err);
    double mig = now_s() - a;
    rc_store_close(st);
    printf("  migrate 1 -> 3       %8.1f ms for %ld cache entries (rc_store_open, one transaction);"
           " delivered-at then %ld\n",
           mig * 1e3, n_del, raw_entries(dir, "delivered-at"));

    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "store-bench: could not remove %s\n", base);
    return n_del == n_at && (unsigned long)n_del <= window + 1 ? 0 : 1;
}
