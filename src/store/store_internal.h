/*
 * store_internal.h - what the parts of the membership store share; private
 * to src/store. Every other module, the tests, the tools and the benchmarks
 * include store.h only.
 *
 * One environment, ten named databases (docs/STORE.md). The parts:
 *   store.c     the environment: create, open, close, the table of
 *               databases, and who may write (writable)
 *   migrate.c   schema versions: reading the version, the migrations, and
 *               the repair of the replay cache's index
 *   rows.c      errors, keys, row codecs, lookups in a transaction and
 *               prefix walks: the layout of docs/STORE.md in code
 *   apply.c     rc_store_apply: a request checked and applied in one write
 *               transaction (the only writer of membership data)
 *   read.c      readers: one read transaction, the getters and iteration
 *   audience.c  a post's audience and the recryption entries
 *   replay.c    the replay cache ("delivered", "delivered-at") and the
 *               records of split delivery ("copies")
 *
 * Ownership: an rc_store belongs to whoever opened it (rc_store_close frees
 * it), an rc_store_reader to whoever began it (rc_store_reader_end). The
 * functions below that take an MDB_txn work inside it and leave it open:
 * the caller commits or aborts. Rows they fill are the caller's copies.
 *
 * Secrets: the service shares r are stored sealed to the service key
 * (sealed_r) and only unsealed into stack buffers that are wiped at once
 * (apply) or into guarded memory handed to the caller (recrypt entries).
 * Nothing here prints or logs.
 */
#ifndef RECRYPT_STORE_INTERNAL_H
#define RECRYPT_STORE_INTERNAL_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define ROW_VERSION 1

/* Longest key: devices (list id, epoch, str8 member, device key). */
#define KEY_MAX (RC_ID_BYTES + 8 + 1 + RC_ADDR_MAX + RC_SIGN_PK_BYTES)
/* Longest value: devices. */
#define DEVICE_VAL_MAX (1 + 32 + 32 + RC_SEALED_R_BYTES + 2 + RC_WRAP_MAX + 8)
#define EPOCH_VAL_MAX (1 + 8 + 2 + RC_STATEMENT_MAX)
#define LIST_VAL_MAX (1 + RC_ID_BYTES + 8 + 1 + RC_ADDR_MAX + 32 + 8)

/* 0, or RC_E_DAMAGED when data.mdb is shorter than the open environment's
 * last page (a read would be a SIGBUS). Checked before every transaction. */
int store_intact(const rc_store *st, rc_error *err);

/* A replay-cache row of schema 3 (keep ‖ state ‖ first; see "replay cache"). */
#define ROW_BYTES 17

#define META_SCHEMA "schema"
#define META_MARK "mark-secret"

struct rc_store {
    MDB_env *env;
    MDB_dbi meta, lists, epochs, members, devices, owners, applied, delivered, delivered_at, copies,
        svckeys;
    int readonly;
    uint32_t schema; /* as found (read-only) or after migration */
    uint32_t found_schema; /* as found, before any migration */
    unsigned threads;        /* for unsealing service shares (rc_store_set_threads) */
};

struct rc_store_reader {
    rc_store *st;
    MDB_txn *txn;
};

enum {
    DB_META,
    DB_LISTS,
    DB_EPOCHS,
    DB_MEMBERS,
    DB_DEVICES,
    DB_OWNERS,
    DB_APPLIED,
    DB_DELIVERED,
    DB_DELIVERED_AT,
    DB_COPIES,
    DB_SVCKEYS
};

/* store.c: the handle of database i (DB_*); whether st may be written (a
 * read-write open at this build's schema; else the error says why). */
MDB_dbi *db_slot(rc_store *st, int i);
int writable(const rc_store *st, rc_error *err);

/* migrate.c */
int read_schema(MDB_txn *txn, MDB_dbi *meta, const char *dir, uint32_t *ver, rc_error *err);
int store_migrate(MDB_env *env, const char *dir, uint32_t found, uint32_t *migrated_from,
                  rc_error *err);
int store_repair_index(MDB_env *env, rc_error *err);

/* rows.c: errors */
int mdb_error(rc_error *err, int mrc, const char *what);
int damaged(rc_error *err, const char *db);
void fpr(char out[RC_UDF_MAX], const char *type, const uint8_t *pk);

/* rows.c: keys */
size_t key_list_epoch(uint8_t *k, const uint8_t list_id[32], uint64_t epoch);
size_t key_device_prefix(uint8_t *k, const uint8_t list_id[32], uint64_t epoch, const char *member);
size_t key_device(uint8_t *k, const uint8_t list_id[32], uint64_t epoch, const char *member,
                  const uint8_t sign_pk[32]);

/* rows.c: row codecs */
int decode_list(const MDB_val *k, const MDB_val *v, rc_store_list *out, rc_error *err);
int encode_list(uint8_t *buf, size_t cap, size_t *len, const rc_store_list *l);
int decode_epoch(const MDB_val *k, const MDB_val *v, rc_store_epoch *out, rc_error *err);
int put_epoch(MDB_txn *txn, rc_store *st, const uint8_t list_id[32], const rc_statement *s,
              uint64_t grace_until, unsigned flags, rc_error *err);
int decode_member(const MDB_val *k, const MDB_val *v, rc_store_member *out, rc_error *err);
int put_member(MDB_txn *txn, rc_store *st, const uint8_t list_id[32], const rc_store_member *m,
               rc_error *err);
int decode_device(const MDB_val *k, const MDB_val *v, rc_store_device *out, rc_error *err);
int decode_owner(const MDB_val *k, const MDB_val *v, rc_store_owner *out, rc_error *err);
int put_owner(MDB_txn *txn, rc_store *st, const uint8_t list_id[32], const rc_store_owner *o,
              unsigned flags, rc_error *err);

/* rows.c: lookups in a txn */
int txn_get_list(rc_store *st, MDB_txn *txn, const char *canon, rc_store_list *out, rc_error *err);
int txn_get_epoch(rc_store *st, MDB_txn *txn, const uint8_t list_id[32], uint64_t epoch,
                  rc_store_epoch *out, rc_error *err);
int txn_get_member(rc_store *st, MDB_txn *txn, const uint8_t list_id[32], const char *canon,
                   rc_store_member *out, rc_error *err);
int txn_get_owner(rc_store *st, MDB_txn *txn, const uint8_t list_id[32], const uint8_t sign_pk[32],
                  rc_store_owner *out, rc_error *err);

/* Walk the rows whose key starts with prefix. fn returns 0 to go on; its
 * non-zero result stops the walk and is returned. */
typedef int (*row_fn)(void *ctx, const MDB_val *k, const MDB_val *v);
int scan_prefix(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen, row_fn fn, void *ctx,
                rc_error *err);
/* Delete every row whose key starts with prefix. */
int delete_prefix(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen, size_t *n_deleted,
                  rc_error *err);

#endif
