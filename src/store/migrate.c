/*
 * migrate.c - schema versions of the store (docs/STORE.md "Migration"):
 * reading meta/schema, the table `migrations` below (one step per version),
 * store_migrate, which runs them in one write transaction (the store is
 * migrated completely or not at all), and store_repair_index, which
 * rebuilds the replay cache's index that an older build left behind.
 * rc_store_open (store.c) calls them; a read-only open leaves an older
 * store as it is and only reads. Each function here begins and ends its
 * own transaction, or works inside the caller's (read_schema, the steps).
 */
#include <lmdb.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "store_internal.h"

/* meta/schema in txn: 0 and *ver set, or an error naming dir. */
int read_schema(MDB_txn *txn, MDB_dbi *meta, const char *dir, uint32_t *ver, rc_error *err)
{
    MDB_val k = {strlen(META_SCHEMA), META_SCHEMA}, v;
    int mrc = mdb_dbi_open(txn, "meta", 0, meta);
    if (mrc == 0)
        mrc = mdb_get(txn, *meta, &k, &v);
    if (mrc == MDB_NOTFOUND || mrc == MDB_INCOMPATIBLE)
        return rc_error_set(err, RC_E_FORMAT, "%s is not a recrypt store (no schema version)",
                            dir);
    if (mrc)
        return mdb_error(err, mrc, "reading the schema version");
    if (v.mv_size != 4)
        return rc_error_set(err, RC_E_FORMAT, "store schema version is malformed");
    *ver = rc_be32_get(v.mv_data);
    if (*ver > RC_STORE_SCHEMA_VERSION)
        return rc_error_set(err, RC_E_VERSION,
                            "store schema version %u is newer than this build understands (%u)",
                            *ver, RC_STORE_SCHEMA_VERSION);
    if (*ver < 1)
        return rc_error_set(err, RC_E_FORMAT, "store schema version %u is invalid", *ver);
    return 0;
}

/* ---------------------------------------------------------------- migrations
 *
 * One step per schema version: steps[i].run turns schema steps[i].from into
 * from + 1 inside the caller's write transaction. store_migrate runs every
 * step a store needs and the new version in that one transaction: the store
 * is either migrated completely or unchanged. */

/* (Re)build the replay cache's time index "delivered-at" (u64 time ‖ E
 * -> empty) from "delivered", emptying it first when it exists. */
static int index_delivered(MDB_txn *txn, rc_error *err)
{
    MDB_dbi delivered, at;
    MDB_cursor *c;
    MDB_val k, v;
    int mrc = mdb_dbi_open(txn, "delivered", 0, &delivered);
    if (mrc == MDB_NOTFOUND)
        return rc_error_set(err, RC_E_FORMAT, "store is damaged: no 'delivered' database");
    if (mrc || (mrc = mdb_dbi_open(txn, "delivered-at", MDB_CREATE, &at)) != 0 ||
        (mrc = mdb_drop(txn, at, 0)) != 0 || (mrc = mdb_cursor_open(txn, delivered, &c)) != 0)
        return mdb_error(err, mrc, "indexing the replay cache");
    int r = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (r == 0) {
        if (k.mv_size != RC_POINT_BYTES || !(v.mv_size == 8 || v.mv_size == ROW_BYTES)) {
            mdb_cursor_close(c);
            return damaged(err, "delivered");
        }
        uint8_t ik[8 + RC_POINT_BYTES];
        memcpy(ik, v.mv_data, 8);
        memcpy(ik + 8, k.mv_data, RC_POINT_BYTES);
        MDB_val ikv = {sizeof ik, ik}, empty = {0, NULL};
        if ((r = mdb_put(txn, at, &ikv, &empty, 0)) != 0)
            break;
        r = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return r == MDB_NOTFOUND ? 0 : mdb_error(err, r, "indexing the replay cache");
}

/* 1 -> 2: the replay cache gets its time index, so that old entries are
 * found oldest first. */
static int migrate_1_to_2(MDB_txn *txn, rc_error *err)
{
    return index_delivered(txn, err);
}

/* 2 -> 3: replay-cache rows of 17 bytes (keep ‖ state ‖ first: pending
 * until the MTA's receipt, then delivered); every schema-2 row (8 bytes)
 * was recorded as delivered and stays so, as it is. Nothing to rewrite:
 * the version keeps older builds, which would take the new rows for
 * damage, away from the store. */
static int migrate_2_to_3(MDB_txn *txn, rc_error *err)
{
    (void)txn;
    (void)err;
    return 0;
}

/* 3 -> 4: the records of split delivery, "copies" (E ‖ member -> u64
 * time), start empty: no copy was recorded before. A "copies" database
 * that is there already (a store rewound by hand from schema 4) is
 * emptied: a schema-3 build pruned posts without their copies. */
static int migrate_3_to_4(MDB_txn *txn, rc_error *err)
{
    MDB_dbi copies;
    int mrc = mdb_dbi_open(txn, "copies", MDB_CREATE, &copies);
    if (mrc == 0)
        mrc = mdb_drop(txn, copies, 0);
    return mrc ? mdb_error(err, mrc, "creating the records of split delivery") : 0;
}

/* 4 -> 5: the service signing keys of version 2 statements, "svckeys"
 * (list id ‖ u64 epoch -> the seed sealed to the service key), start
 * empty: every epoch of an older store has a version 1 statement, which
 * names no service key. */
static int migrate_4_to_5(MDB_txn *txn, rc_error *err)
{
    MDB_dbi svckeys;
    int mrc = mdb_dbi_open(txn, "svckeys", MDB_CREATE, &svckeys);
    if (mrc == 0)
        mrc = mdb_drop(txn, svckeys, 0);
    return mrc ? mdb_error(err, mrc, "creating the service signing keys") : 0;
}

static const struct {
    uint32_t from;
    int (*run)(MDB_txn *txn, rc_error *err);
} migrations[] = {
    {1, migrate_1_to_2},
    {2, migrate_2_to_3},
    {3, migrate_3_to_4},
    {4, migrate_4_to_5},
};

/* Migrate the store to RC_STORE_SCHEMA_VERSION in one write transaction.
 * *migrated_from: the version this call migrated from, or the current
 * version when another process had done it meanwhile. */
int store_migrate(MDB_env *env, const char *dir, uint32_t found, uint32_t *migrated_from,
                  rc_error *err)
{
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    uint32_t ver = 0;
    int rc, mrc = mdb_txn_begin(env, NULL, 0, &txn);
    if (mrc) {
        txn = NULL;
        rc = mdb_error(err, mrc, "starting a write transaction");
    } else {
        /* Again inside the write transaction: another process may have
         * migrated the store meanwhile, or even to a newer schema. */
        rc = read_schema(txn, &meta, dir, &ver, err);
        if (rc) {
            mdb_txn_abort(txn);
            return rc; /* says what it found */
        }
        found = ver;
    }
    while (rc == 0 && ver < RC_STORE_SCHEMA_VERSION) {
        size_t i = 0;
        while (i < sizeof migrations / sizeof migrations[0] && migrations[i].from != ver)
            i++;
        if (i == sizeof migrations / sizeof migrations[0])
            rc = rc_error_set(err, RC_E_INTERNAL, "no migration from store schema %u", ver);
        else if ((rc = migrations[i].run(txn, err)) == 0)
            ver++;
    }
    if (rc == 0 && ver != found) {
        uint8_t b[4];
        rc_be32_put(b, ver);
        MDB_val k = {strlen(META_SCHEMA), META_SCHEMA}, v = {4, b};
        if ((mrc = mdb_put(txn, meta, &k, &v, 0)) != 0) {
            rc = mdb_error(err, mrc, "writing the schema version");
        } else {
            mrc = mdb_txn_commit(txn);
            txn = NULL;
            if (mrc)
                rc = mdb_error(err, mrc, "committing the migration");
        }
    }
    if (txn)
        mdb_txn_abort(txn);
    if (rc) {
        char why[RC_ERROR_MSG_MAX];
        snprintf(why, sizeof why, "%s", err ? err->msg : "");
        return rc_error_set(err, rc,
                            "cannot migrate the store in %s from schema %u to %u (the store "
                            "is unchanged): %s",
                            dir, found, RC_STORE_SCHEMA_VERSION, why);
    }
    *migrated_from = found;
    return 0;
}

/* A schema-1 build that kept running after another process migrated the
 * store records posts in "delivered" only; their entries would never be
 * pruned. A read-write open finds that (the two databases differ in size)
 * and rebuilds the index in one write transaction. */
int store_repair_index(MDB_env *env, rc_error *err)
{
    MDB_txn *txn;
    MDB_dbi del, at;
    MDB_stat s1, s2;
    int mrc = mdb_txn_begin(env, NULL, 0, &txn);
    if (mrc)
        return mdb_error(err, mrc, "starting a write transaction");
    int rc = 0;
    if ((mrc = mdb_dbi_open(txn, "delivered", 0, &del)) != 0 ||
        (mrc = mdb_dbi_open(txn, "delivered-at", 0, &at)) != 0 ||
        (mrc = mdb_stat(txn, del, &s1)) != 0 || (mrc = mdb_stat(txn, at, &s2)) != 0)
        rc = mrc == MDB_NOTFOUND
                 ? rc_error_set(err, RC_E_FORMAT, "store is damaged: no replay cache")
                 : mdb_error(err, mrc, "checking the replay cache");
    else if (s1.ms_entries != s2.ms_entries && (rc = index_delivered(txn, err)) == 0) {
        if ((mrc = mdb_txn_commit(txn)) != 0)
            rc = mdb_error(err, mrc, "rebuilding the replay cache index");
        return rc;
    }
    mdb_txn_abort(txn);
    return rc;
}
