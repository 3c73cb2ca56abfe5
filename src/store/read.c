/*
 * read.c - readers of the store: an rc_store_reader is one read
 * transaction (MDB_NOTLS: it may span calls and threads), so a reader never
 * sees half a request. The schema, the mark secret, the getters and the
 * iteration over lists, epochs, members, devices and owners. The reader is
 * its caller's until rc_store_reader_end; rows handed to a callback are
 * valid for that call.
 */
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "store_internal.h"

int rc_store_reader_begin(rc_store *st, rc_store_reader **out, rc_error *err)
{
    if (!st || !out)
        return rc_error_set(err, RC_E_INVALID, "rc_store_reader_begin: missing argument");
    *out = NULL;
    rc_store_reader *rd = calloc(1, sizeof *rd);
    if (!rd)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    rd->st = st;
    int rc = store_intact(st, err);
    if (rc) {
        free(rd);
        return rc;
    }
    int mrc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &rd->txn);
    if (mrc) {
        free(rd);
        if (mrc == MDB_MAP_RESIZED)
            return rc_error_set(err, RC_E_IO,
                                "the store's map was enlarged by a writer: reopen the store");
        return mdb_error(err, mrc, "starting a read transaction");
    }
    *out = rd;
    return 0;
}

void rc_store_reader_end(rc_store_reader *rd)
{
    if (!rd)
        return;
    mdb_txn_abort(rd->txn);
    free(rd);
}

uint32_t rc_store_schema(rc_store_reader *rd)
{
    MDB_val k = {strlen(META_SCHEMA), META_SCHEMA}, v;
    if (!rd || mdb_get(rd->txn, rd->st->meta, &k, &v) != 0 || v.mv_size != 4)
        return 0;
    return rc_be32_get(v.mv_data);
}

int rc_store_mark_secret(rc_store_reader *rd, uint8_t out[32], rc_error *err)
{
    MDB_val k = {strlen(META_MARK), META_MARK}, v;
    int mrc = mdb_get(rd->txn, rd->st->meta, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return rc_error_set(err, RC_E_FORMAT, "store is damaged: no mark secret");
    if (mrc)
        return mdb_error(err, mrc, "reading the mark secret");
    if (v.mv_size != 32)
        return damaged(err, "meta");
    memcpy(out, v.mv_data, 32);
    return 0;
}

int rc_store_service_seed(rc_store_reader *rd, const rc_service_secret *svc,
                          const uint8_t list_id[RC_ID_BYTES], uint64_t epoch,
                          uint8_t seed[RC_SVC_SEED_BYTES], rc_error *err)
{
    if (rd->st->schema < 5)
        return rc_error_set(err, RC_E_NOT_FOUND, "this store (schema %u) keeps no service "
                                                 "signing keys", rd->st->schema);
    uint8_t kb[40];
    MDB_val k = {key_list_epoch(kb, list_id, epoch), kb}, v;
    int mrc = mdb_get(rd->txn, rd->st->svckeys, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return rc_error_set(err, RC_E_NOT_FOUND, "epoch %llu has no service signing key",
                            (unsigned long long)epoch);
    if (mrc)
        return mdb_error(err, mrc, "reading a service signing key");
    if (v.mv_size != RC_SEALED_SVC_SEED_BYTES)
        return damaged(err, "svckeys");
    return rc_svc_seed_open(seed, v.mv_data, svc, err);
}

int rc_store_get_list(rc_store_reader *rd, const char *address, rc_store_list *out,
                      rc_error *err)
{
    char canon[RC_ADDR_MAX + 1];
    int rc = rc_address_canonical(canon, address, err);
    return rc ? rc : txn_get_list(rd->st, rd->txn, canon, out, err);
}

int rc_store_get_epoch(rc_store_reader *rd, const uint8_t list_id[RC_ID_BYTES], uint64_t epoch,
                       rc_store_epoch *out, rc_error *err)
{
    return txn_get_epoch(rd->st, rd->txn, list_id, epoch, out, err);
}

int rc_store_get_member(rc_store_reader *rd, const uint8_t list_id[RC_ID_BYTES],
                        const char *address, rc_store_member *out, rc_error *err)
{
    char canon[RC_ADDR_MAX + 1];
    int rc = rc_address_canonical(canon, address, err);
    return rc ? rc : txn_get_member(rd->st, rd->txn, list_id, canon, out, err);
}

/* Iteration adapters: decode each row and hand it to the user's callback.
 * A decoding failure stops the walk with its code (negative); the user's
 * non-zero result is passed through. */
typedef struct {
    void *fn;
    void *ctx;
    rc_error *err;
} each_ctx;

#define EACH_ADAPTER(name, type, decoder, fntype)                                              \
    static int name(void *c, const MDB_val *k, const MDB_val *v)                               \
    {                                                                                          \
        each_ctx *e = c;                                                                       \
        type row;                                                                              \
        int rc = decoder(k, v, &row, e->err);                                                  \
        return rc ? rc : ((fntype)e->fn)(e->ctx, &row);                                        \
    }

EACH_ADAPTER(each_list_row, rc_store_list, decode_list, rc_store_list_fn)
EACH_ADAPTER(each_epoch_row, rc_store_epoch, decode_epoch, rc_store_epoch_fn)
EACH_ADAPTER(each_member_row, rc_store_member, decode_member, rc_store_member_fn)
EACH_ADAPTER(each_owner_row, rc_store_owner, decode_owner, rc_store_owner_fn)

/* rc_store_device is large (W): keep it off the adapter's stack frame. */
static int each_device_row(void *c, const MDB_val *k, const MDB_val *v)
{
    each_ctx *e = c;
    rc_store_device *row = malloc(sizeof *row);
    if (!row)
        return rc_error_set(e->err, RC_E_NOMEM, "out of memory");
    int rc = decode_device(k, v, row, e->err);
    if (rc == 0)
        rc = ((rc_store_device_fn)e->fn)(e->ctx, row);
    free(row);
    return rc;
}

/* db: index into db_names. */
static int run_each(rc_store_reader *rd, int db, const uint8_t *prefix, size_t plen,
                    row_fn adapter, void *fn, void *ctx, rc_error *err)
{
    if (!rd || !fn)
        return rc_error_set(err, RC_E_INVALID, "store iteration: missing argument");
    each_ctx e = {fn, ctx, err};
    return scan_prefix(rd->txn, *db_slot(rd->st, db), prefix, plen, adapter, &e, err);
}

int rc_store_each_list(rc_store_reader *rd, rc_store_list_fn fn, void *ctx, rc_error *err)
{
    return run_each(rd, DB_LISTS, NULL, 0, each_list_row, (void *)fn, ctx, err);
}

int rc_store_each_epoch(rc_store_reader *rd, const uint8_t list_id[RC_ID_BYTES],
                        rc_store_epoch_fn fn, void *ctx, rc_error *err)
{
    return run_each(rd, DB_EPOCHS, list_id, 32, each_epoch_row, (void *)fn, ctx, err);
}

int rc_store_each_member(rc_store_reader *rd, const uint8_t list_id[RC_ID_BYTES],
                         rc_store_member_fn fn, void *ctx, rc_error *err)
{
    return run_each(rd, DB_MEMBERS, list_id, 32, each_member_row, (void *)fn, ctx, err);
}

int rc_store_each_device(rc_store_reader *rd, const uint8_t list_id[RC_ID_BYTES], uint64_t epoch,
                         rc_store_device_fn fn, void *ctx, rc_error *err)
{
    uint8_t pb[40];
    size_t plen = key_list_epoch(pb, list_id, epoch);
    return run_each(rd, DB_DEVICES, pb, plen, each_device_row, (void *)fn, ctx, err);
}

int rc_store_each_owner(rc_store_reader *rd, const uint8_t list_id[RC_ID_BYTES],
                        rc_store_owner_fn fn, void *ctx, rc_error *err)
{
    return run_each(rd, DB_OWNERS, list_id, 32, each_owner_row, (void *)fn, ctx, err);
}
