/*
 * store.c - the server's membership store on LMDB (see store.h and
 * docs/STORE.md for the layout).
 *
 * One environment, ten named databases. rc_store_apply checks a decoded
 * request against the store and applies it inside one write transaction:
 * any refusal aborts the transaction, so the store is either unchanged or
 * carries the whole request. Readers use one read transaction each
 * (MDB_NOTLS: it may span calls and threads).
 *
 * Schema versions: rc_store_open migrates an older store to
 * RC_STORE_SCHEMA_VERSION in one write transaction (the table
 * `migrations` below, one step per version); a read-only open leaves it as
 * it is and only reads.
 *
 * Secrets: the service shares r are stored sealed to the service key
 * (sealed_r) and only unsealed into stack buffers that are wiped at once
 * (apply) or into guarded memory handed to the caller (recrypt entries).
 * Nothing here prints or logs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "store.h"

#define ROW_VERSION 1
#define N_DBS 10
#define MAX_DBS 12 /* room for two more */

/* Longest key: devices (list id, epoch, str8 member, device key). */
#define KEY_MAX (RC_ID_BYTES + 8 + 1 + RC_ADDR_MAX + RC_SIGN_PK_BYTES)
/* Longest value: devices. */
#define DEVICE_VAL_MAX (1 + 32 + 32 + RC_SEALED_R_BYTES + 2 + RC_WRAP_MAX + 8)
#define EPOCH_VAL_MAX (1 + 8 + 2 + RC_STATEMENT_MAX)
#define LIST_VAL_MAX (1 + RC_ID_BYTES + 8 + 1 + RC_ADDR_MAX + 32 + 8)

/* A replay-cache row of schema 3 (keep ‖ state ‖ first; see "replay cache"). */
#define ROW_BYTES 17

#define DATA_FILE "data.mdb"
#define LOCK_FILE "lock.mdb"
#define DATA_MODE 0640
/* Readers write their slot into the lock file's reader table, so the
 * service user (group) needs write access to it; it holds no data. */
#define LOCK_MODE 0660
#define DIR_MODE 0750

#define META_SCHEMA "schema"
#define META_MARK "mark-secret"

struct rc_store {
    MDB_env *env;
    MDB_dbi meta, lists, epochs, members, devices, owners, applied, delivered, delivered_at, copies;
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
    DB_COPIES
};

static const char *const db_names[N_DBS] = {"meta",         "lists",  "epochs",  "members",
                                            "devices",      "owners", "applied", "delivered",
                                            "delivered-at", "copies"};
/* The schema version that introduced each database. */
static const uint32_t db_since[N_DBS] = {1, 1, 1, 1, 1, 1, 1, 1, 2, 4};

static MDB_dbi *db_slot(rc_store *st, int i)
{
    MDB_dbi *slots[N_DBS] = {&st->meta,         &st->lists,  &st->epochs,  &st->members,
                             &st->devices,      &st->owners, &st->applied, &st->delivered,
                             &st->delivered_at, &st->copies};
    return slots[i];
}

/* ---------------------------------------------------------------- errors */

static int mdb_error(rc_error *err, int mrc, const char *what)
{
    if (mrc == MDB_MAP_FULL)
        return rc_error_set(err, RC_E_IO, "store is full: raise the map size (%s)", what);
    return rc_error_set(err, RC_E_IO, "store: %s: %s", what, mdb_strerror(mrc));
}

static int damaged(rc_error *err, const char *db)
{
    return rc_error_set(err, RC_E_FORMAT, "store is damaged: malformed row in '%s'", db);
}

static void fpr(char out[RC_UDF_MAX], const char *type, const uint8_t *pk)
{
    if (rc_key_fingerprint(out, RC_UDF_MAX, type, pk, 32, NULL) != 0)
        snprintf(out, RC_UDF_MAX, "(no fingerprint)");
}

/* ---------------------------------------------------------------- keys */

static size_t key_list_member(uint8_t *k, const uint8_t list_id[32], const char *addr)
{
    size_t n = strlen(addr);
    memcpy(k, list_id, 32);
    memcpy(k + 32, addr, n);
    return 32 + n;
}

static size_t key_list_epoch(uint8_t *k, const uint8_t list_id[32], uint64_t epoch)
{
    memcpy(k, list_id, 32);
    rc_be64_put(k + 32, epoch);
    return 40;
}

/* list id ‖ epoch ‖ str8 member: the prefix of one member's devices. */
static size_t key_device_prefix(uint8_t *k, const uint8_t list_id[32], uint64_t epoch,
                                const char *member)
{
    size_t n = strlen(member);
    size_t o = key_list_epoch(k, list_id, epoch);
    k[o++] = (uint8_t)n;
    memcpy(k + o, member, n);
    return o + n;
}

static size_t key_device(uint8_t *k, const uint8_t list_id[32], uint64_t epoch,
                         const char *member, const uint8_t sign_pk[32])
{
    size_t o = key_device_prefix(k, list_id, epoch, member);
    memcpy(k + o, sign_pk, 32);
    return o + 32;
}

static size_t key_owner(uint8_t *k, const uint8_t list_id[32], const uint8_t sign_pk[32])
{
    memcpy(k, list_id, 32);
    memcpy(k + 32, sign_pk, 32);
    return 64;
}

/* ---------------------------------------------------------------- row codecs */

static int decode_list(const MDB_val *k, const MDB_val *v, rc_store_list *out, rc_error *err)
{
    memset(out, 0, sizeof *out);
    if (k->mv_size < 3 || k->mv_size > RC_ADDR_MAX)
        return damaged(err, "lists");
    memcpy(out->address, k->mv_data, k->mv_size);
    out->address[k->mv_size] = '\0';
    rc_rd r = {v->mv_data, v->mv_size, 0, 0};
    uint8_t ver = rc_rd_u8(&r);
    rc_rd_copy(&r, out->list_id, 32);
    out->current_epoch = rc_rd_u64(&r);
    rc_rd_str8(&r, out->bounce, RC_ADDR_MAX);
    rc_rd_copy(&r, out->signer_pk, 32);
    out->created_at = rc_rd_u64(&r);
    if (!rc_rd_done(&r) || ver != ROW_VERSION || strlen(out->address) != k->mv_size)
        return damaged(err, "lists");
    return 0;
}

static int encode_list(uint8_t *buf, size_t cap, size_t *len, const rc_store_list *l)
{
    rc_wr w = {buf, cap, 0, 0};
    rc_wr_u8(&w, ROW_VERSION);
    rc_wr_bytes(&w, l->list_id, 32);
    rc_wr_u64(&w, l->current_epoch);
    rc_wr_str8(&w, l->bounce);
    rc_wr_bytes(&w, l->signer_pk, 32);
    rc_wr_u64(&w, l->created_at);
    *len = w.len;
    return w.bad ? -1 : 0;
}

static int decode_epoch(const MDB_val *k, const MDB_val *v, rc_store_epoch *out, rc_error *err)
{
    memset(out, 0, sizeof *out);
    if (k->mv_size != 40)
        return damaged(err, "epochs");
    out->epoch = rc_be64_get((const uint8_t *)k->mv_data + 32);
    rc_rd r = {v->mv_data, v->mv_size, 0, 0};
    uint8_t ver = rc_rd_u8(&r);
    out->grace_until = rc_rd_u64(&r);
    uint16_t n = rc_rd_u16(&r);
    const uint8_t *p = rc_rd_bytes(&r, n);
    if (!rc_rd_done(&r) || ver != ROW_VERSION || !p)
        return damaged(err, "epochs");
    if (rc_statement_from_bytes(&out->statement, p, n, NULL) != 0 ||
        out->statement.epoch != out->epoch)
        return damaged(err, "epochs");
    return 0;
}

static int put_epoch(MDB_txn *txn, rc_store *st, const uint8_t list_id[32],
                     const rc_statement *s, uint64_t grace_until, unsigned flags, rc_error *err)
{
    uint8_t kb[40], vb[EPOCH_VAL_MAX], sb[RC_STATEMENT_MAX];
    size_t slen;
    int rc = rc_statement_to_bytes(sb, sizeof sb, &slen, s, err);
    if (rc)
        return rc;
    rc_wr w = {vb, sizeof vb, 0, 0};
    rc_wr_u8(&w, ROW_VERSION);
    rc_wr_u64(&w, grace_until);
    rc_wr_u16(&w, (uint16_t)slen);
    rc_wr_bytes(&w, sb, slen);
    if (w.bad)
        return rc_error_set(err, RC_E_INTERNAL, "epoch row does not encode");
    MDB_val k = {key_list_epoch(kb, list_id, s->epoch), kb}, v = {w.len, vb};
    int mrc = mdb_put(txn, st->epochs, &k, &v, flags);
    if (mrc == MDB_KEYEXIST)
        return rc_error_set(err, RC_E_EXISTS, "epoch %llu of %s exists",
                            (unsigned long long)s->epoch, s->address);
    return mrc ? mdb_error(err, mrc, "writing an epoch") : 0;
}

static int decode_member(const MDB_val *k, const MDB_val *v, rc_store_member *out,
                         rc_error *err)
{
    memset(out, 0, sizeof *out);
    if (k->mv_size < 32 + 3 || k->mv_size > 32 + RC_ADDR_MAX)
        return damaged(err, "members");
    memcpy(out->address, (const uint8_t *)k->mv_data + 32, k->mv_size - 32);
    out->address[k->mv_size - 32] = '\0';
    rc_rd r = {v->mv_data, v->mv_size, 0, 0};
    uint8_t ver = rc_rd_u8(&r);
    out->privilege = rc_rd_u8(&r);
    out->status = rc_rd_u8(&r);
    out->updated_at = rc_rd_u64(&r);
    if (!rc_rd_done(&r) || ver != ROW_VERSION || strlen(out->address) != k->mv_size - 32)
        return damaged(err, "members");
    return 0;
}

static int put_member(MDB_txn *txn, rc_store *st, const uint8_t list_id[32],
                      const rc_store_member *m, rc_error *err)
{
    uint8_t kb[KEY_MAX], vb[1 + 1 + 1 + 8];
    rc_wr w = {vb, sizeof vb, 0, 0};
    rc_wr_u8(&w, ROW_VERSION);
    rc_wr_u8(&w, m->privilege);
    rc_wr_u8(&w, m->status);
    rc_wr_u64(&w, m->updated_at);
    MDB_val k = {key_list_member(kb, list_id, m->address), kb}, v = {w.len, vb};
    int mrc = mdb_put(txn, st->members, &k, &v, 0);
    return mrc ? mdb_error(err, mrc, "writing a member") : 0;
}

static int decode_device(const MDB_val *k, const MDB_val *v, rc_store_device *out,
                         rc_error *err)
{
    memset(out, 0, sizeof *out);
    const uint8_t *kp = k->mv_data;
    if (k->mv_size < 41)
        return damaged(err, "devices");
    size_t n = kp[40];
    if (k->mv_size != 41 + n + 32 || n < 3)
        return damaged(err, "devices");
    out->epoch = rc_be64_get(kp + 32);
    memcpy(out->member, kp + 41, n);
    out->member[n] = '\0';
    memcpy(out->device.sign_pk, kp + 41 + n, 32);
    rc_rd r = {v->mv_data, v->mv_size, 0, 0};
    uint8_t ver = rc_rd_u8(&r);
    rc_rd_copy(&r, out->device.wrap_pk, 32);
    rc_rd_copy(&r, out->K, 32);
    rc_rd_copy(&r, out->sealed_r, RC_SEALED_R_BYTES);
    out->W_len = rc_rd_u16(&r);
    if (out->W_len > RC_WRAP_MAX)
        return damaged(err, "devices");
    rc_rd_copy(&r, out->W, out->W_len);
    out->enrolled_at = rc_rd_u64(&r);
    if (!rc_rd_done(&r) || ver != ROW_VERSION || strlen(out->member) != n)
        return damaged(err, "devices");
    return 0;
}

static int decode_owner(const MDB_val *k, const MDB_val *v, rc_store_owner *out, rc_error *err)
{
    memset(out, 0, sizeof *out);
    if (k->mv_size != 64)
        return damaged(err, "owners");
    memcpy(out->owner.sign_pk, (const uint8_t *)k->mv_data + 32, 32);
    rc_rd r = {v->mv_data, v->mv_size, 0, 0};
    uint8_t ver = rc_rd_u8(&r);
    out->privilege = rc_rd_u8(&r);
    rc_rd_copy(&r, out->owner.box_pk, 32);
    out->last_counter = rc_rd_u64(&r);
    if (!rc_rd_done(&r) || ver != ROW_VERSION)
        return damaged(err, "owners");
    return 0;
}

static int put_owner(MDB_txn *txn, rc_store *st, const uint8_t list_id[32],
                     const rc_store_owner *o, unsigned flags, rc_error *err)
{
    uint8_t kb[64], vb[1 + 1 + 32 + 8];
    rc_wr w = {vb, sizeof vb, 0, 0};
    rc_wr_u8(&w, ROW_VERSION);
    rc_wr_u8(&w, o->privilege);
    rc_wr_bytes(&w, o->owner.box_pk, 32);
    rc_wr_u64(&w, o->last_counter);
    MDB_val k = {key_owner(kb, list_id, o->owner.sign_pk), kb}, v = {w.len, vb};
    int mrc = mdb_put(txn, st->owners, &k, &v, flags);
    if (mrc == MDB_KEYEXIST) {
        char f[RC_UDF_MAX];
        fpr(f, RC_KT_OWNER, o->owner.sign_pk);
        return rc_error_set(err, RC_E_EXISTS, "owner %s exists", f);
    }
    return mrc ? mdb_error(err, mrc, "writing an owner") : 0;
}

/* ---------------------------------------------------------------- lookups in a txn */

static int txn_get_list(rc_store *st, MDB_txn *txn, const char *canon, rc_store_list *out,
                        rc_error *err)
{
    MDB_val k = {strlen(canon), (void *)canon}, v;
    int mrc = mdb_get(txn, st->lists, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return rc_error_set(err, RC_E_NOT_FOUND, "unknown list %s", canon);
    if (mrc)
        return mdb_error(err, mrc, "reading a list");
    return decode_list(&k, &v, out, err);
}

static int txn_get_epoch(rc_store *st, MDB_txn *txn, const uint8_t list_id[32], uint64_t epoch,
                         rc_store_epoch *out, rc_error *err)
{
    uint8_t kb[40];
    MDB_val k = {key_list_epoch(kb, list_id, epoch), kb}, v;
    int mrc = mdb_get(txn, st->epochs, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return rc_error_set(err, RC_E_NOT_FOUND, "no epoch %llu in this list",
                            (unsigned long long)epoch);
    if (mrc)
        return mdb_error(err, mrc, "reading an epoch");
    return decode_epoch(&k, &v, out, err);
}

static int txn_get_member(rc_store *st, MDB_txn *txn, const uint8_t list_id[32],
                          const char *canon, rc_store_member *out, rc_error *err)
{
    uint8_t kb[KEY_MAX];
    MDB_val k = {key_list_member(kb, list_id, canon), kb}, v;
    int mrc = mdb_get(txn, st->members, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return rc_error_set(err, RC_E_NOT_FOUND, "%s is not a member", canon);
    if (mrc)
        return mdb_error(err, mrc, "reading a member");
    return decode_member(&k, &v, out, err);
}

static int txn_get_owner(rc_store *st, MDB_txn *txn, const uint8_t list_id[32],
                         const uint8_t sign_pk[32], rc_store_owner *out, rc_error *err)
{
    uint8_t kb[64];
    MDB_val k = {key_owner(kb, list_id, sign_pk), kb}, v;
    int mrc = mdb_get(txn, st->owners, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return rc_error_set(err, RC_E_NOT_FOUND, "no such owner");
    if (mrc)
        return mdb_error(err, mrc, "reading an owner");
    return decode_owner(&k, &v, out, err);
}

/* Walk the rows whose key starts with prefix. fn returns 0 to go on; its
 * non-zero result stops the walk and is returned. */
typedef int (*row_fn)(void *ctx, const MDB_val *k, const MDB_val *v);

static int scan_prefix(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen,
                       row_fn fn, void *ctx, rc_error *err)
{
    MDB_cursor *c;
    int mrc = mdb_cursor_open(txn, dbi, &c);
    if (mrc)
        return mdb_error(err, mrc, "opening a cursor");
    MDB_val k = {plen, (void *)prefix}, v;
    int rc = 0;
    mrc = plen ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        if (k.mv_size < plen || (plen && memcmp(k.mv_data, prefix, plen) != 0))
            break;
        if ((rc = fn(ctx, &k, &v)) != 0)
            break;
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc)
        return rc;
    if (mrc && mrc != MDB_NOTFOUND)
        return mdb_error(err, mrc, "walking the store");
    return 0;
}

/* Delete every row whose key starts with prefix. */
static int delete_prefix(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen,
                         size_t *n_deleted, rc_error *err)
{
    MDB_cursor *c;
    int mrc = mdb_cursor_open(txn, dbi, &c);
    if (mrc)
        return mdb_error(err, mrc, "opening a cursor");
    for (;;) {
        /* Seek afresh after each delete rather than trusting the cursor. */
        MDB_val k = {plen, (void *)prefix}, v;
        mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (mrc || k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        if ((mrc = mdb_cursor_del(c, 0)) != 0)
            break;
        if (n_deleted)
            (*n_deleted)++;
    }
    mdb_cursor_close(c);
    if (mrc && mrc != MDB_NOTFOUND)
        return mdb_error(err, mrc, "deleting device entries");
    return 0;
}

/* ---------------------------------------------------------------- apply */

typedef struct {
    rc_store *st;
    MDB_txn *txn;
    const rc_service_secret *svc;
    const rc_request *req;
    uint64_t now;
    uint8_t list_id[32];
    rc_store_list list;
    char signer_fpr[RC_UDF_MAX];
} apply_ctx;

static int is_canonical(const char *s)
{
    char canon[RC_ADDR_MAX + 1];
    return rc_address_canonical(canon, s, NULL) == 0 && strcmp(canon, s) == 0;
}

/* Check every device entry of the request against epoch (whose key is A):
 * canonical member (equal to `only_member` when given), the epoch, W's
 * length, r sealed to this service, r·G + K == A. r is wiped at once. */
static int check_devices(apply_ctx *a, uint64_t epoch, const uint8_t A[32],
                         const char *only_member, rc_error *err)
{
    const rc_request *req = a->req;
    for (size_t i = 0; i < req->n_devices; i++) {
        const rc_req_device *d = &req->devices[i];
        char df[RC_UDF_MAX];
        uint8_t r[RC_SCALAR_BYTES];
        fpr(df, RC_KT_DEVICE, d->device.sign_pk);
        if (memchr(d->member, '\0', sizeof d->member) == NULL || !is_canonical(d->member))
            return rc_error_set(err, RC_E_INVALID,
                                "device entry %zu names no canonical member address", i);
        if (only_member && strcmp(d->member, only_member) != 0)
            return rc_error_set(err, RC_E_INVALID,
                                "device entry %zu is for %s, not for %s", i, d->member,
                                only_member);
        if (d->epoch != epoch)
            return rc_error_set(err, RC_E_POLICY,
                                "device entry for %s is for epoch %llu, not the target epoch "
                                "%llu",
                                d->member, (unsigned long long)d->epoch,
                                (unsigned long long)epoch);
        if (d->W_len < crypto_box_SEALBYTES || d->W_len > RC_WRAP_MAX)
            return rc_error_set(err, RC_E_FORMAT, "device entry for %s has a W of bad length %zu",
                                d->member, d->W_len);
        if (crypto_box_seal_open(r, d->sealed_r, RC_SEALED_R_BYTES, a->svc->pub.pk,
                                 a->svc->sk) != 0) {
            sodium_memzero(r, sizeof r);
            return rc_error_set(err, RC_E_CRYPTO,
                                "service share of device %s (%s) is not sealed to this service",
                                df, d->member);
        }
        int rc = rc_entry_check(r, d->K, A, NULL);
        sodium_memzero(r, sizeof r);
        if (rc)
            return rc_error_set(err, RC_E_CRYPTO,
                                "device entry for %s (device %s) does not split the list key "
                                "of epoch %llu",
                                d->member, df, (unsigned long long)epoch);
    }
    return 0;
}

static int put_devices(apply_ctx *a, rc_error *err)
{
    const rc_request *req = a->req;
    for (size_t i = 0; i < req->n_devices; i++) {
        const rc_req_device *d = &req->devices[i];
        uint8_t kb[KEY_MAX], vb[DEVICE_VAL_MAX];
        rc_wr w = {vb, sizeof vb, 0, 0};
        rc_wr_u8(&w, ROW_VERSION);
        rc_wr_bytes(&w, d->device.wrap_pk, 32);
        rc_wr_bytes(&w, d->K, 32);
        rc_wr_bytes(&w, d->sealed_r, RC_SEALED_R_BYTES);
        rc_wr_u16(&w, (uint16_t)d->W_len);
        rc_wr_bytes(&w, d->W, d->W_len);
        rc_wr_u64(&w, d->enrolled_at);
        if (w.bad)
            return rc_error_set(err, RC_E_INTERNAL, "device row does not encode");
        MDB_val k = {key_device(kb, a->list_id, d->epoch, d->member, d->device.sign_pk), kb};
        MDB_val v = {w.len, vb};
        int mrc = mdb_put(a->txn, a->st->devices, &k, &v, MDB_NOOVERWRITE);
        if (mrc == MDB_KEYEXIST) {
            char df[RC_UDF_MAX];
            fpr(df, RC_KT_DEVICE, d->device.sign_pk);
            return rc_error_set(err, RC_E_EXISTS,
                                "device %s of %s is already enrolled in epoch %llu (or listed "
                                "twice)",
                                df, d->member, (unsigned long long)d->epoch);
        }
        if (mrc)
            return mdb_error(err, mrc, "writing a device entry");
    }
    return 0;
}

static int put_list(apply_ctx *a, unsigned flags, rc_error *err)
{
    uint8_t vb[LIST_VAL_MAX];
    size_t len;
    if (encode_list(vb, sizeof vb, &len, &a->list) != 0)
        return rc_error_set(err, RC_E_INTERNAL, "list row does not encode");
    MDB_val k = {strlen(a->list.address), a->list.address}, v = {len, vb};
    int mrc = mdb_put(a->txn, a->st->lists, &k, &v, flags);
    if (mrc == MDB_KEYEXIST)
        return rc_error_set(err, RC_E_EXISTS, "list %s exists", a->list.address);
    return mrc ? mdb_error(err, mrc, "writing a list") : 0;
}

static int apply_create_group(apply_ctx *a, rc_error *err)
{
    const rc_request *req = a->req;
    const rc_statement *s = &req->statement;
    int rc;

    rc = txn_get_list(a->st, a->txn, req->list, &a->list, NULL);
    if (rc == 0)
        return rc_error_set(err, RC_E_EXISTS, "list %s exists", req->list);
    if (rc != RC_E_NOT_FOUND)
        return txn_get_list(a->st, a->txn, req->list, &a->list, err);
    if (req->n_devices)
        return rc_error_set(err, RC_E_INVALID, "a CreateGroup request carries no device entry");
    if ((rc = rc_statement_verify(s, err)) != 0)
        return rc;
    if (strcmp(s->address, req->list) != 0)
        return rc_error_set(err, RC_E_POLICY, "the list key statement is for %.254s, not %s",
                            s->address, req->list);
    if (s->epoch < 1)
        return rc_error_set(err, RC_E_POLICY, "the list key statement has epoch 0");
    if (memcmp(req->owner.sign_pk, req->signer_pk, 32) != 0)
        return rc_error_set(err, RC_E_POLICY,
                            "the creating owner's key is not the key that signed the request");

    memset(&a->list, 0, sizeof a->list);
    memcpy(a->list.address, req->list, strlen(req->list) + 1);
    memcpy(a->list.list_id, a->list_id, 32);
    a->list.current_epoch = s->epoch;
    memcpy(a->list.signer_pk, s->signer_pk, 32);
    a->list.created_at = a->now;
    if (req->bounce[0]) {
        if (memchr(req->bounce, '\0', sizeof req->bounce) == NULL || !is_canonical(req->bounce))
            return rc_error_set(err, RC_E_INVALID, "bounce address is not canonical");
        memcpy(a->list.bounce, req->bounce, strlen(req->bounce) + 1);
    } else {
        const char *at = strchr(req->list, '@');
        int n = snprintf(a->list.bounce, sizeof a->list.bounce, "%.*s-bounces%s",
                         (int)(at - req->list), req->list, at);
        if (n < 0 || (size_t)n > RC_ADDR_MAX)
            return rc_error_set(err, RC_E_INVALID,
                                "list address too long for a bounce address; name one");
    }
    if ((rc = put_list(a, MDB_NOOVERWRITE, err)) != 0 ||
        (rc = put_epoch(a->txn, a->st, a->list_id, s, 0, MDB_NOOVERWRITE, err)) != 0)
        return rc;
    rc_store_owner o;
    memset(&o, 0, sizeof o);
    o.owner = req->owner;
    o.privilege = RC_PRIV_SUPER;
    o.last_counter = req->counter;
    return put_owner(a->txn, a->st, a->list_id, &o, MDB_NOOVERWRITE, err);
}

static int apply_add_member(apply_ctx *a, const rc_store_epoch *cur, rc_error *err)
{
    const rc_request *req = a->req;
    rc_store_member m;
    int rc = txn_get_member(a->st, a->txn, a->list_id, req->member, &m, NULL);
    if (rc == 0)
        return rc_error_set(err, RC_E_EXISTS,
                            "%s is already a member of %s (%s)%s", req->member, req->list,
                            rc_status_name(m.status),
                            m.status == RC_STATUS_REVOKED
                                ? ": re-add a revoked member with UpdateMember"
                                : "");
    if (rc != RC_E_NOT_FOUND)
        return txn_get_member(a->st, a->txn, a->list_id, req->member, &m, err);
    if (req->privilege != RC_PRIV_RECRYPT)
        return rc_error_set(err, RC_E_INVALID, "a member's privilege must be recrypt, not %s",
                            rc_privilege_name(req->privilege));
    if (req->n_devices == 0)
        return rc_error_set(err, RC_E_INVALID, "AddMember for %s carries no device entry",
                            req->member);
    if ((rc = check_devices(a, cur->epoch, cur->statement.A, req->member, err)) != 0)
        return rc;
    memset(&m, 0, sizeof m);
    memcpy(m.address, req->member, strlen(req->member) + 1);
    m.privilege = RC_PRIV_RECRYPT;
    m.status = RC_STATUS_ACTIVE;
    m.updated_at = a->now;
    if ((rc = put_member(a->txn, a->st, a->list_id, &m, err)) != 0)
        return rc;
    return put_devices(a, err);
}

typedef struct {
    uint64_t epochs[64];
    size_t n;
    int more;
} epoch_list;

static int collect_epoch(void *ctx, const MDB_val *k, const MDB_val *v)
{
    epoch_list *el = ctx;
    (void)v;
    if (k->mv_size != 40)
        return RC_E_FORMAT;
    if (el->n == sizeof el->epochs / sizeof el->epochs[0]) {
        el->more = 1;
        return 1;
    }
    el->epochs[el->n++] = rc_be64_get((const uint8_t *)k->mv_data + 32);
    return 0;
}

/* Call fn for every epoch of the list, in order, in batches (the cursor is
 * closed before fn runs, so fn may write). */
typedef int (*epoch_do_fn)(apply_ctx *a, uint64_t epoch, const void *ctx, rc_error *err);

static int for_each_epoch(apply_ctx *a, epoch_do_fn fn, const void *ctx, rc_error *err)
{
    uint64_t from = 0;
    for (;;) {
        /* list id ‖ epoch keys sort by epoch. */
        epoch_list el;
        uint8_t kb[40];
        memset(&el, 0, sizeof el);
        key_list_epoch(kb, a->list_id, from);
        MDB_cursor *c;
        int mrc = mdb_cursor_open(a->txn, a->st->epochs, &c);
        if (mrc)
            return mdb_error(err, mrc, "opening a cursor");
        MDB_val k = {40, kb}, v;
        mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        while (mrc == 0 && k.mv_size >= 32 && memcmp(k.mv_data, a->list_id, 32) == 0) {
            int rc = collect_epoch(&el, &k, &v);
            if (rc < 0) {
                mdb_cursor_close(c);
                return damaged(err, "epochs");
            }
            if (rc)
                break;
            mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(c);
        if (mrc && mrc != MDB_NOTFOUND)
            return mdb_error(err, mrc, "walking the epochs");
        for (size_t i = 0; i < el.n; i++) {
            int rc = fn(a, el.epochs[i], ctx, err);
            if (rc)
                return rc;
        }
        if (!el.more || el.n == 0 || el.epochs[el.n - 1] == UINT64_MAX)
            return 0;
        from = el.epochs[el.n - 1] + 1;
    }
}

static int delete_member_in_epoch(apply_ctx *a, uint64_t epoch, const void *member,
                                  rc_error *err)
{
    uint8_t pb[KEY_MAX];
    size_t plen = key_device_prefix(pb, a->list_id, epoch, member);
    return delete_prefix(a->txn, a->st->devices, pb, plen, NULL, err);
}

/* Delete the member's device rows of every epoch of the list. */
static int delete_member_everywhere(apply_ctx *a, const char *member, rc_error *err)
{
    return for_each_epoch(a, delete_member_in_epoch, member, err);
}

/* A rotation without grace (a revocation) ends every grace period still
 * running, not only the one of the epoch it replaces: the revoked member
 * may know any of those keys. */
static int end_grace_of_epoch(apply_ctx *a, uint64_t epoch, const void *ctx, rc_error *err)
{
    (void)ctx;
    rc_store_epoch e;
    int rc = txn_get_epoch(a->st, a->txn, a->list_id, epoch, &e, err);
    if (rc || e.grace_until <= 1 || epoch == a->list.current_epoch)
        return rc;
    return put_epoch(a->txn, a->st, a->list_id, &e.statement, 1, 0, err);
}

static int apply_update_member(apply_ctx *a, const rc_store_epoch *cur, rc_error *err)
{
    const rc_request *req = a->req;
    rc_store_member m;
    int rc = txn_get_member(a->st, a->txn, a->list_id, req->member, &m, NULL);
    if (rc == RC_E_NOT_FOUND)
        return rc_error_set(err, RC_E_NOT_FOUND, "%s is not a member of %s", req->member,
                            req->list);
    if (rc)
        return txn_get_member(a->st, a->txn, a->list_id, req->member, &m, err);
    if (req->status != RC_STATUS_ACTIVE && req->status != RC_STATUS_SUSPENDED &&
        req->status != RC_STATUS_REVOKED)
        return rc_error_set(err, RC_E_INVALID, "unknown member status %u", req->status);
    if (req->flags & ~RC_UPDATE_REPLACE_DEVICES)
        return rc_error_set(err, RC_E_INVALID, "unknown UpdateMember flags 0x%02x", req->flags);
    if (req->n_devices && req->status != RC_STATUS_ACTIVE)
        return rc_error_set(err, RC_E_POLICY,
                            "device entries for %s, who is to be %s: a %s member gets none",
                            req->member, rc_status_name(req->status),
                            rc_status_name(req->status));
    /* A reinstated member gets fresh entries with a new enrolment time
     * (CRYPTO.md): the old ones must not come back to life. */
    if (m.status != RC_STATUS_ACTIVE && req->status == RC_STATUS_ACTIVE &&
        (!(req->flags & RC_UPDATE_REPLACE_DEVICES) || req->n_devices == 0))
        return rc_error_set(err, RC_E_POLICY,
                            "reinstating %s needs fresh device entries that replace the old "
                            "ones",
                            req->member);
    if ((rc = check_devices(a, cur->epoch, cur->statement.A, req->member, err)) != 0)
        return rc;
    if (req->status == RC_STATUS_REVOKED) {
        if ((rc = delete_member_everywhere(a, req->member, err)) != 0)
            return rc;
    } else if (req->flags & RC_UPDATE_REPLACE_DEVICES) {
        uint8_t pb[KEY_MAX];
        size_t plen = key_device_prefix(pb, a->list_id, cur->epoch, req->member);
        if ((rc = delete_prefix(a->txn, a->st->devices, pb, plen, NULL, err)) != 0)
            return rc;
    }
    if ((rc = put_devices(a, err)) != 0)
        return rc;
    m.status = req->status;
    m.updated_at = a->now;
    return put_member(a->txn, a->st, a->list_id, &m, err);
}

static int apply_update_group(apply_ctx *a, const rc_store_epoch *cur, rc_error *err)
{
    const rc_request *req = a->req;
    const rc_statement *s = &req->statement;
    int rc;
    if ((rc = rc_statement_verify(s, err)) != 0)
        return rc;
    if (strcmp(s->address, req->list) != 0)
        return rc_error_set(err, RC_E_POLICY, "the list key statement is for %.254s, not %s",
                            s->address, req->list);
    if (memcmp(s->signer_pk, a->list.signer_pk, 32) != 0) {
        char have[RC_UDF_MAX], want[RC_UDF_MAX];
        fpr(have, "list-signer", s->signer_pk);
        fpr(want, "list-signer", a->list.signer_pk);
        return rc_error_set(err, RC_E_POLICY,
                            "the new list key statement is signed by %s, not by the list's "
                            "signing key %s",
                            have, want);
    }
    if (s->epoch <= a->list.current_epoch)
        return rc_error_set(err, RC_E_POLICY, "epoch %llu is not above the current %llu",
                            (unsigned long long)s->epoch,
                            (unsigned long long)a->list.current_epoch);
    for (size_t i = 0; i < req->n_devices; i++) {
        const rc_req_device *d = &req->devices[i];
        rc_store_member m;
        if (memchr(d->member, '\0', sizeof d->member) == NULL || !is_canonical(d->member))
            return rc_error_set(err, RC_E_INVALID,
                                "device entry %zu names no canonical member address", i);
        rc = txn_get_member(a->st, a->txn, a->list_id, d->member, &m, NULL);
        if (rc == RC_E_NOT_FOUND)
            return rc_error_set(err, RC_E_NOT_FOUND,
                                "device entry for %s, who is not a member of %s", d->member,
                                req->list);
        if (rc)
            return txn_get_member(a->st, a->txn, a->list_id, d->member, &m, err);
        if (m.status == RC_STATUS_REVOKED)
            return rc_error_set(err, RC_E_POLICY, "device entry for %s, who is revoked",
                                d->member);
    }
    if ((rc = check_devices(a, s->epoch, s->A, NULL, err)) != 0)
        return rc;

    if (req->grace_until == 0 && (rc = for_each_epoch(a, end_grace_of_epoch, NULL, err)) != 0)
        return rc;
    rc_store_epoch prev = *cur;
    prev.grace_until = req->grace_until ? req->grace_until : 1;
    if ((rc = put_epoch(a->txn, a->st, a->list_id, &prev.statement, prev.grace_until, 0, err)) ||
        (rc = put_epoch(a->txn, a->st, a->list_id, s, 0, MDB_NOOVERWRITE, err)) ||
        (rc = put_devices(a, err)))
        return rc;
    a->list.current_epoch = s->epoch;
    return put_list(a, 0, err);
}

static int apply_add_owner(apply_ctx *a, rc_error *err)
{
    const rc_request *req = a->req;
    if (req->privilege != RC_PRIV_ADMIN && req->privilege != RC_PRIV_SUPER)
        return rc_error_set(err, RC_E_INVALID, "an owner's privilege must be admin or super");
    if (req->n_devices)
        return rc_error_set(err, RC_E_INVALID, "an AddOwner request carries no device entry");
    rc_store_owner o;
    memset(&o, 0, sizeof o);
    o.owner = req->owner;
    o.privilege = req->privilege;
    o.last_counter = 0;
    return put_owner(a->txn, a->st, a->list_id, &o, MDB_NOOVERWRITE, err);
}

static int apply_in_txn(apply_ctx *a, rc_error *err)
{
    const rc_request *req = a->req;
    int rc;

    if (memcmp(req->service_pk, a->svc->pub.pk, 32) != 0) {
        char have[RC_UDF_MAX], want[RC_UDF_MAX];
        fpr(have, RC_KT_SERVICE, req->service_pk);
        fpr(want, RC_KT_SERVICE, a->svc->pub.pk);
        return rc_error_set(err, RC_E_POLICY,
                            "request is for another service (key %s; this service is %s)", have,
                            want);
    }
    if (req->version != RC_FORMAT_VERSION)
        return rc_error_set(err, RC_E_VERSION, "request version %u is not supported",
                            req->version);
    if (memchr(req->list, '\0', sizeof req->list) == NULL || !is_canonical(req->list))
        return rc_error_set(err, RC_E_INVALID, "the request names no canonical list address");
    if ((rc = rc_list_id(a->list_id, req->list, err)) != 0)
        return rc;
    if (req->n_devices > RC_REQUEST_MAX_DEVICES || (req->n_devices && !req->devices))
        return rc_error_set(err, RC_E_INVALID, "bad device entry array");

    MDB_val ik = {32, (void *)req->id}, iv;
    int mrc = mdb_get(a->txn, a->st->applied, &ik, &iv);
    if (mrc == 0)
        return rc_error_set(err, RC_E_EXISTS, "request already applied (replay)");
    if (mrc != MDB_NOTFOUND)
        return mdb_error(err, mrc, "reading applied requests");

    fpr(a->signer_fpr, RC_KT_OWNER, req->signer_pk);

    switch (req->type) {
    case RC_REQ_CREATE_GROUP:
        rc = apply_create_group(a, err);
        break;
    case RC_REQ_UPDATE_GROUP:
    case RC_REQ_ADD_MEMBER:
    case RC_REQ_UPDATE_MEMBER:
    case RC_REQ_ADD_OWNER: {
        rc_store_owner o;
        rc_store_epoch cur;
        if ((rc = txn_get_list(a->st, a->txn, req->list, &a->list, err)) != 0)
            return rc;
        rc = txn_get_owner(a->st, a->txn, a->list_id, req->signer_pk, &o, NULL);
        if (rc == RC_E_NOT_FOUND)
            return rc_error_set(err, RC_E_POLICY, "signer %s is not an owner of %s",
                                a->signer_fpr, req->list);
        if (rc)
            return txn_get_owner(a->st, a->txn, a->list_id, req->signer_pk, &o, err);
        uint8_t need = req->type == RC_REQ_ADD_OWNER ? RC_PRIV_SUPER : RC_PRIV_ADMIN;
        if (o.privilege != RC_PRIV_ADMIN && o.privilege != RC_PRIV_SUPER)
            return damaged(err, "owners");
        if (o.privilege < need)
            return rc_error_set(err, RC_E_POLICY, "signer %s has %s, %s is needed for %s",
                                a->signer_fpr, o.privilege == RC_PRIV_ADMIN ? "ADMIN" : "SUPER",
                                need == RC_PRIV_SUPER ? "SUPER" : "ADMIN",
                                rc_request_type_name(req->type));
        if (req->counter <= o.last_counter)
            return rc_error_set(err, RC_E_POLICY,
                                "counter %llu is not above the last applied %llu: replayed or "
                                "out-of-order request",
                                (unsigned long long)req->counter,
                                (unsigned long long)o.last_counter);
        o.last_counter = req->counter;
        if ((rc = put_owner(a->txn, a->st, a->list_id, &o, 0, err)) != 0)
            return rc;
        if ((rc = txn_get_epoch(a->st, a->txn, a->list_id, a->list.current_epoch, &cur, err)))
            return rc;
        int names_member = req->type == RC_REQ_ADD_MEMBER || req->type == RC_REQ_UPDATE_MEMBER;
        if (names_member &&
            (memchr(req->member, '\0', sizeof req->member) == NULL || !is_canonical(req->member)))
            return rc_error_set(err, RC_E_INVALID, "the request names no canonical member");
        if (req->type == RC_REQ_ADD_MEMBER)
            rc = apply_add_member(a, &cur, err);
        else if (req->type == RC_REQ_UPDATE_MEMBER)
            rc = apply_update_member(a, &cur, err);
        else if (req->type == RC_REQ_UPDATE_GROUP)
            rc = apply_update_group(a, &cur, err);
        else
            rc = apply_add_owner(a, err);
        break;
    }
    default:
        return rc_error_set(err, RC_E_INVALID, "unknown request type %u", req->type);
    }
    if (rc)
        return rc;

    uint8_t vb[8 + 1 + 1 + RC_ADDR_MAX];
    rc_wr w = {vb, sizeof vb, 0, 0};
    rc_wr_u64(&w, a->now);
    rc_wr_u8(&w, req->type);
    rc_wr_str8(&w, req->list);
    iv.mv_size = w.len;
    iv.mv_data = vb;
    mrc = mdb_put(a->txn, a->st->applied, &ik, &iv, MDB_NOOVERWRITE);
    if (mrc == MDB_KEYEXIST)
        return rc_error_set(err, RC_E_EXISTS, "request already applied (replay)");
    return mrc ? mdb_error(err, mrc, "recording the request") : 0;
}

/* Writers need a read-write open of a store at this build's schema. */
static int writable(const rc_store *st, rc_error *err)
{
    if (st->readonly)
        return rc_error_set(err, RC_E_INVALID, "the store is open read-only");
    if (st->schema != RC_STORE_SCHEMA_VERSION)
        return rc_error_set(err, RC_E_VERSION,
                            "store schema version %u is not migrated to %u yet: open it for "
                            "writing without RC_STORE_NO_MIGRATE",
                            st->schema, RC_STORE_SCHEMA_VERSION);
    return 0;
}

int rc_store_apply(rc_store *st, const rc_service_secret *svc, const rc_request *req,
                   uint64_t now, rc_error *err)
{
    if (!st || !svc || !req)
        return rc_error_set(err, RC_E_INVALID, "rc_store_apply: missing argument");
    int rc = writable(st, err);
    if (rc)
        return rc;
    apply_ctx a;
    memset(&a, 0, sizeof a);
    a.st = st;
    a.svc = svc;
    a.req = req;
    a.now = now;
    int mrc = mdb_txn_begin(st->env, NULL, 0, &a.txn);
    if (mrc)
        return mdb_error(err, mrc, "starting a write transaction");
    rc = apply_in_txn(&a, err);
    if (rc) {
        mdb_txn_abort(a.txn);
        return rc;
    }
    mrc = mdb_txn_commit(a.txn); /* frees the txn, also on failure */
    if (mrc)
        return mdb_error(err, mrc, "committing the request");
    rc_error_clear(err);
    return 0;
}

/* ---------------------------------------------------------------- create, open */

static int path_in(char *out, size_t cap, const char *dir, const char *name, rc_error *err)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return rc_error_set(err, RC_E_INVALID, "store directory path too long");
    return 0;
}

static int env_new(MDB_env **out, const char *dir, size_t map_size, unsigned flags,
                   rc_error *err)
{
    MDB_env *env;
    int mrc = mdb_env_create(&env);
    if (mrc)
        return mdb_error(err, mrc, "creating the environment");
    if ((mrc = mdb_env_set_mapsize(env, map_size ? map_size : RC_STORE_DEFAULT_MAP_SIZE)) ||
        (mrc = mdb_env_set_maxdbs(env, MAX_DBS)) ||
        (mrc = mdb_env_open(env, dir, flags | MDB_NOTLS, DATA_MODE))) {
        mdb_env_close(env);
        if (mrc == EACCES)
            return rc_error_set(err, RC_E_PERMISSION,
                                "cannot open the store in %s: permission denied (readers need "
                                "read access to data.mdb and write access to lock.mdb)",
                                dir);
        return rc_error_set(err, RC_E_IO, "cannot open the store in %s: %s", dir,
                            mdb_strerror(mrc));
    }
    *out = env;
    return 0;
}

int rc_store_create(const char *dir, size_t map_size, rc_service_public *svc_pub, rc_error *err)
{
    char data[PATH_MAX], lock[PATH_MAX], key[PATH_MAX];
    struct stat sb;
    int rc;
    if (!dir || !svc_pub)
        return rc_error_set(err, RC_E_INVALID, "rc_store_create: missing argument");
    if ((rc = path_in(data, sizeof data, dir, DATA_FILE, err)) ||
        (rc = path_in(lock, sizeof lock, dir, LOCK_FILE, err)) ||
        (rc = path_in(key, sizeof key, dir, RC_STORE_SERVICE_KEY_FILE, err)))
        return rc;
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT)
            return rc_error_set(err, RC_E_IO, "cannot examine %s: %s", dir, strerror(errno));
        if (mkdir(dir, DIR_MODE) != 0 || chmod(dir, DIR_MODE) != 0)
            return rc_error_set(err, RC_E_IO, "cannot create %s: %s", dir, strerror(errno));
    } else if (!S_ISDIR(sb.st_mode)) {
        return rc_error_set(err, RC_E_INVALID, "%s is not a directory", dir);
    }
    if (lstat(data, &sb) == 0)
        return rc_error_set(err, RC_E_EXISTS, "%s already holds a store", dir);
    if (lstat(key, &sb) == 0)
        return rc_error_set(err, RC_E_EXISTS, "%s already holds a service key (%s)", dir,
                            RC_STORE_SERVICE_KEY_FILE);

    MDB_env *env;
    if ((rc = env_new(&env, dir, map_size, 0, err)) != 0)
        return rc;
    /* mdb_env_open's mode passes through the umask: set it exactly. */
    if (chmod(data, DATA_MODE) != 0 || chmod(lock, LOCK_MODE) != 0) {
        rc = rc_error_set(err, RC_E_IO, "cannot set the mode of the store files: %s",
                          strerror(errno));
        goto fail_env;
    }

    MDB_txn *txn;
    int mrc = mdb_txn_begin(env, NULL, 0, &txn);
    if (mrc) {
        rc = mdb_error(err, mrc, "starting a write transaction");
        goto fail_env;
    }
    rc_store tmp;
    for (int i = 0; i < N_DBS && !mrc; i++)
        mrc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, db_slot(&tmp, i));
    uint8_t schema[4], mark[32];
    rc_be32_put(schema, RC_STORE_SCHEMA_VERSION);
    randombytes_buf(mark, sizeof mark);
    MDB_val k1 = {strlen(META_SCHEMA), META_SCHEMA}, v1 = {4, schema};
    MDB_val k2 = {strlen(META_MARK), META_MARK}, v2 = {32, mark};
    if (!mrc)
        mrc = mdb_put(txn, tmp.meta, &k1, &v1, 0);
    if (!mrc)
        mrc = mdb_put(txn, tmp.meta, &k2, &v2, 0);
    sodium_memzero(mark, sizeof mark);
    if (mrc) {
        mdb_txn_abort(txn);
        rc = mdb_error(err, mrc, "initialising the store");
        goto fail_env;
    }
    if ((mrc = mdb_txn_commit(txn)) != 0) {
        rc = mdb_error(err, mrc, "initialising the store");
        goto fail_env;
    }
    mdb_env_close(env);

    rc_service_secret *svc = rc_secret_alloc(sizeof *svc);
    char *ks = rc_secret_alloc(RC_KEYSTR_MAX);
    if (!svc || !ks)
        rc = rc_error_set(err, RC_E_NOMEM, "out of memory");
    else if ((rc = rc_service_generate(svc, err)) == 0 &&
             (rc = rc_service_secret_encode(ks, RC_KEYSTR_MAX, svc, err)) == 0 &&
             (rc = rc_keyfile_write(key, ks, err)) == 0)
        *svc_pub = svc->pub;
    rc_secret_free(ks);
    rc_secret_free(svc);
    if (rc == 0) {
        rc_error_clear(err);
        return 0;
    }
    unlink(data);
    unlink(lock);
    return rc;

fail_env:
    mdb_env_close(env);
    unlink(data);
    unlink(lock);
    return rc;
}

/* meta/schema in txn: 0 and *ver set, or an error naming dir. */
static int read_schema(MDB_txn *txn, MDB_dbi *meta, const char *dir, uint32_t *ver, rc_error *err)
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

static const struct {
    uint32_t from;
    int (*run)(MDB_txn *txn, rc_error *err);
} migrations[] = {
    {1, migrate_1_to_2},
    {2, migrate_2_to_3},
    {3, migrate_3_to_4},
};

/* Migrate the store to RC_STORE_SCHEMA_VERSION in one write transaction.
 * *migrated_from: the version this call migrated from, or the current
 * version when another process had done it meanwhile. */
static int store_migrate(MDB_env *env, const char *dir, uint32_t found, uint32_t *migrated_from,
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
static int store_repair_index(MDB_env *env, rc_error *err)
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

int rc_store_open(rc_store **out, const char *dir, size_t map_size, unsigned flags, rc_error *err)
{
    char data[PATH_MAX];
    struct stat sb;
    int rc;
    if (!out || !dir)
        return rc_error_set(err, RC_E_INVALID, "rc_store_open: missing argument");
    *out = NULL;
    if ((rc = path_in(data, sizeof data, dir, DATA_FILE, err)) != 0)
        return rc;
    if (stat(data, &sb) != 0) {
        if (errno == EACCES)
            return rc_error_set(err, RC_E_PERMISSION,
                                "cannot open the store in %s: permission denied (this user "
                                "cannot reach %s)",
                                dir, DATA_FILE);
        return rc_error_set(err, errno == ENOENT ? RC_E_NOT_FOUND : RC_E_IO,
                            "no store in %s (%s: %s)", dir, DATA_FILE, strerror(errno));
    }
    rc_store *st = calloc(1, sizeof *st);
    if (!st)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    st->readonly = (flags & RC_STORE_READONLY) ? 1 : 0;
    st->threads = 1;
    if ((rc = env_new(&st->env, dir, map_size, st->readonly ? MDB_RDONLY : 0, err)) != 0) {
        free(st);
        return rc;
    }
    MDB_txn *txn;
    int mrc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (mrc) {
        rc = mdb_error(err, mrc, "starting a read transaction");
        goto fail;
    }
    rc = read_schema(txn, &st->meta, dir, &st->schema, err);
    st->found_schema = st->schema;
    if (rc == 0 && !st->readonly && !(flags & RC_STORE_NO_MIGRATE)) {
        mdb_txn_abort(txn);
        txn = NULL;
        if (st->schema < RC_STORE_SCHEMA_VERSION)
            rc = store_migrate(st->env, dir, st->schema, &st->found_schema, err);
        else
            rc = store_repair_index(st->env, err);
        if (rc == 0 && (mrc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) != 0) {
            txn = NULL;
            rc = mdb_error(err, mrc, "starting a read transaction");
        }
        if (rc == 0)
            rc = read_schema(txn, &st->meta, dir, &st->schema, err);
    }
    /* The databases of the store's schema; a later one stays unopened (an
     * unmigrated store is only read, and its readers do not use them). */
    for (int i = 1; rc == 0 && i < N_DBS; i++) {
        if (db_since[i] > st->schema)
            continue;
        mrc = mdb_dbi_open(txn, db_names[i], 0, db_slot(st, i));
        if (mrc == MDB_NOTFOUND)
            rc = rc_error_set(err, RC_E_FORMAT, "store is damaged: no '%s' database",
                              db_names[i]);
        else if (mrc)
            rc = mdb_error(err, mrc, "opening a database");
    }
    if (rc) {
        if (txn)
            mdb_txn_abort(txn);
        goto fail;
    }
    /* Committing keeps the database handles for later transactions. */
    if ((mrc = mdb_txn_commit(txn)) != 0) {
        rc = mdb_error(err, mrc, "opening the databases");
        goto fail;
    }
    *out = st;
    rc_error_clear(err);
    return 0;
fail:
    mdb_env_close(st->env);
    free(st);
    return rc;
}

uint32_t rc_store_found_schema(const rc_store *st)
{
    return st ? st->found_schema : 0;
}

void rc_store_set_threads(rc_store *st, unsigned threads)
{
    if (st)
        st->threads = threads ? threads : 1;
}

void rc_store_close(rc_store *st)
{
    if (!st)
        return;
    mdb_env_close(st->env);
    free(st);
}

/* ---------------------------------------------------------------- readers */

int rc_store_reader_begin(rc_store *st, rc_store_reader **out, rc_error *err)
{
    if (!st || !out)
        return rc_error_set(err, RC_E_INVALID, "rc_store_reader_begin: missing argument");
    *out = NULL;
    rc_store_reader *rd = calloc(1, sizeof *rd);
    if (!rd)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    rd->st = st;
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

/* ---------------------------------------------------------------- recryption entries */

/* A post's audience: one scan of the epoch's device rows (list id ‖ epoch
 * ‖ str8 member ‖ device key), where a member's devices are contiguous,
 * so the member row is looked up once per member, when the scan reaches
 * its first device. Two passes in one read transaction: the first counts
 * entries and members, the second fills arrays of exactly that size (and
 * finds the same rows: the snapshot does not change). */
typedef struct {
    rc_store_reader *rd;
    const rc_service_secret *svc; /* NULL: count only, unseal nothing */
    const uint8_t *list_id;
    int filling;                       /* 0: the counting pass */
    rc_device_entry *entries;          /* second pass, with svc */
    uint8_t (*sealed)[RC_SEALED_R_BYTES]; /* each entry's sealed r, opened after the scan */
    uint8_t (*device_pk)[RC_SIGN_PK_BYTES]; /* each entry's device key (for errors) */
    rc_store_audience_member *members; /* second pass, when wanted */
    size_t n, cap;                     /* entries */
    size_t n_members, cap_members;
    uint64_t enrolled_before, unchanged_since; /* the post's audience */
    char member[RC_ADDR_MAX + 1]; /* last member looked up */
    int member_active;            /* active, and unchanged since unchanged_since */
    int member_open;              /* the last member has an audience entry */
    rc_error *err;
} audience_ctx;

static int audience_row(void *c, const MDB_val *k, const MDB_val *v)
{
    audience_ctx *e = c;
    const uint8_t *kp = k->mv_data;
    if (k->mv_size < 41 || k->mv_size != 41 + (size_t)kp[40] + 32 || kp[40] < 3)
        return damaged(e->err, "devices");
    size_t mlen = kp[40];
    if (strlen(e->member) != mlen || memcmp(e->member, kp + 41, mlen) != 0) {
        rc_store_member m;
        memcpy(e->member, kp + 41, mlen);
        e->member[mlen] = '\0';
        if (strlen(e->member) != mlen)
            return damaged(e->err, "devices");
        e->member_open = 0;
        int rc = txn_get_member(e->rd->st, e->rd->txn, e->list_id, e->member, &m, NULL);
        if (rc == RC_E_NOT_FOUND) {
            e->member_active = 0;
        } else if (rc) {
            return txn_get_member(e->rd->st, e->rd->txn, e->list_id, e->member, &m, e->err);
        } else {
            e->member_active = m.status == RC_STATUS_ACTIVE && m.updated_at < e->unchanged_since;
        }
    }
    if (!e->member_active)
        return 0;
    /* enrolled_at is the value's last 8 bytes (decode_device checks the rest). */
    if (v->mv_size < 8)
        return damaged(e->err, "devices");
    if (rc_be64_get((const uint8_t *)v->mv_data + v->mv_size - 8) >= e->enrolled_before)
        return 0;
    /* The member's first device in the audience opens its group. */
    if (!e->member_open) {
        e->member_open = 1;
        if (e->filling && e->members) {
            if (e->n_members >= e->cap_members)
                return rc_error_set(e->err, RC_E_INTERNAL, "device entries changed during a read");
            rc_store_audience_member *am = &e->members[e->n_members];
            memcpy(am->address, e->member, mlen + 1);
            am->first = e->n;
            am->n = 0;
        }
        e->n_members++;
    }
    if (e->filling && e->members)
        e->members[e->n_members - 1].n++;
    if (!e->filling || !e->entries) {
        e->n++;
        return 0;
    }
    if (e->n >= e->cap)
        return rc_error_set(e->err, RC_E_INTERNAL, "device entries changed during a read");
    rc_store_device *d = malloc(sizeof *d);
    if (!d)
        return rc_error_set(e->err, RC_E_NOMEM, "out of memory");
    int rc = decode_device(k, v, d, e->err);
    if (rc == 0) {
        /* r is unsealed after the scan, on all threads (unseal_all). */
        rc_device_entry *o = &e->entries[e->n];
        memcpy(e->sealed[e->n], d->sealed_r, RC_SEALED_R_BYTES);
        memcpy(e->device_pk[e->n], d->device.sign_pk, RC_SIGN_PK_BYTES);
        memcpy(o->K, d->K, 32);
        memcpy(o->W, d->W, d->W_len);
        o->W_len = d->W_len;
        o->enrolled_at = d->enrolled_at;
        e->n++;
    }
    free(d);
    return rc;
}

/* Unsealing the service shares: crypto_box_seal_open per entry, the
 * largest part of a post's set-up for a large list, split over threads
 * (each a contiguous slice). */
typedef struct {
    const rc_service_secret *svc;
    rc_device_entry *entries;
    const uint8_t (*sealed)[RC_SEALED_R_BYTES];
    size_t from, to, bad; /* bad: the first entry that did not open, or SIZE_MAX */
} unseal_slice;

static void *unseal_run(void *arg)
{
    unseal_slice *u = arg;
    u->bad = SIZE_MAX;
    for (size_t i = u->from; i < u->to; i++)
        if (crypto_box_seal_open(u->entries[i].r, u->sealed[i], RC_SEALED_R_BYTES, u->svc->pub.pk,
                                 u->svc->sk) != 0) {
            u->bad = i;
            break;
        }
    return NULL;
}

#define UNSEAL_THREADS_MAX 64

/* The index of the first entry whose r does not open, or SIZE_MAX. */
static size_t unseal_all(const rc_service_secret *svc, rc_device_entry *entries,
                         const uint8_t (*sealed)[RC_SEALED_R_BYTES], size_t n, unsigned threads)
{
    unseal_slice u[UNSEAL_THREADS_MAX];
    pthread_t th[UNSEAL_THREADS_MAX];
    int started[UNSEAL_THREADS_MAX] = {0};
    if (threads < 1 || n < 256 * (size_t)threads)
        threads = 1;
    if (threads > UNSEAL_THREADS_MAX)
        threads = UNSEAL_THREADS_MAX;
    size_t per = (n + threads - 1) / threads;
    for (unsigned t = 0; t < threads; t++) {
        u[t].svc = svc;
        u[t].entries = entries;
        u[t].sealed = sealed;
        u[t].from = t * per < n ? t * per : n;
        u[t].to = (t + 1) * per < n ? (t + 1) * per : n;
    }
    for (unsigned t = 1; t < threads; t++)
        started[t] = pthread_create(&th[t], NULL, unseal_run, &u[t]) == 0;
    unseal_run(&u[0]);
    for (unsigned t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            unseal_run(&u[t]);
    }
    for (unsigned t = 0; t < threads; t++)
        if (u[t].bad != SIZE_MAX)
            return u[t].bad;
    return SIZE_MAX;
}

/* The audience into *out (zeroed first, and again on failure). Entries
 * only with svc; members only when with_members. */
static int audience_collect(rc_store_reader *rd, const rc_service_secret *svc,
                            const uint8_t list_id[RC_ID_BYTES], uint64_t epoch,
                            uint64_t enrolled_before, uint64_t unchanged_since, int with_members,
                            rc_store_audience *out, rc_error *err)
{
    rc_store_epoch ep;
    uint8_t pb[40];
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = txn_get_epoch(rd->st, rd->txn, list_id, epoch, &ep, err)) != 0)
        return rc;
    size_t plen = key_list_epoch(pb, list_id, epoch);
    audience_ctx e;
    memset(&e, 0, sizeof e);
    e.rd = rd;
    e.svc = svc;
    e.list_id = list_id;
    e.enrolled_before = enrolled_before;
    e.unchanged_since = unchanged_since;
    e.err = err;
    if ((rc = scan_prefix(rd->txn, rd->st->devices, pb, plen, audience_row, &e, err)) != 0)
        return rc;
    e.cap = e.n;
    e.cap_members = e.n_members;
    if (e.cap > SIZE_MAX / sizeof *e.entries || e.cap_members > SIZE_MAX / sizeof *e.members)
        return rc_error_set(err, RC_E_NOMEM, "out of memory for %zu device entries", e.cap);
    if (svc && (!(e.entries = rc_secret_alloc((e.cap ? e.cap : 1) * sizeof *e.entries)) ||
                !(e.sealed = malloc((e.cap ? e.cap : 1) * sizeof *e.sealed)) ||
                !(e.device_pk = malloc((e.cap ? e.cap : 1) * sizeof *e.device_pk)))) {
        rc_secret_free(e.entries);
        free(e.sealed);
        return rc_error_set(err, RC_E_NOMEM, "out of memory for %zu device entries", e.cap);
    }
    /* Members are collected also when the caller does not want them: an
     * entry whose share does not open is reported with its member. */
    if (!(e.members = malloc((e.cap_members ? e.cap_members : 1) * sizeof *e.members))) {
        rc_secret_free(e.entries);
        free(e.sealed);
        free(e.device_pk);
        return rc_error_set(err, RC_E_NOMEM, "out of memory for %zu members", e.cap_members);
    }
    e.filling = 1;
    e.n = e.n_members = 0;
    e.member[0] = '\0';
    e.member_active = e.member_open = 0;
    rc = scan_prefix(rd->txn, rd->st->devices, pb, plen, audience_row, &e, err);
    if (rc == 0 && (e.n != e.cap || e.n_members != e.cap_members))
        rc = rc_error_set(err, RC_E_INTERNAL, "device entries changed during a read");
    if (rc == 0 && svc) {
        size_t bad = unseal_all(svc, e.entries, (const uint8_t(*)[RC_SEALED_R_BYTES])e.sealed,
                                e.n, rd->st->threads);
        if (bad != SIZE_MAX) {
            const char *who = "?";
            for (size_t i = 0; i < e.n_members; i++)
                if (bad >= e.members[i].first && bad < e.members[i].first + e.members[i].n)
                    who = e.members[i].address;
            char df[RC_UDF_MAX];
            fpr(df, RC_KT_DEVICE, e.device_pk[bad]);
            rc = rc_error_set(err, RC_E_CRYPTO,
                              "service share of device %s (%s, epoch %llu) does not open with "
                              "this service key",
                              df, who, (unsigned long long)epoch);
        }
    }
    free(e.sealed);
    free(e.device_pk);
    if (rc) {
        rc_secret_free(e.entries);
        free(e.members);
        return rc;
    }
    out->entries = e.entries;
    out->n_entries = e.n;
    if (with_members) {
        out->members = e.members;
        out->n_members = e.n_members;
    } else {
        free(e.members);
    }
    return 0;
}

int rc_store_audience_get(rc_store_reader *rd, const rc_service_secret *svc,
                          const uint8_t list_id[RC_ID_BYTES], uint64_t epoch,
                          uint64_t enrolled_before, uint64_t unchanged_since,
                          rc_store_audience *out, rc_error *err)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!rd || !list_id || !out)
        return rc_error_set(err, RC_E_INVALID, "rc_store_audience_get: missing argument");
    return audience_collect(rd, svc, list_id, epoch, enrolled_before, unchanged_since, 1, out, err);
}

void rc_store_audience_free(rc_store_audience *a)
{
    if (!a)
        return;
    rc_secret_free(a->entries);
    free(a->members);
    memset(a, 0, sizeof *a);
}

int rc_store_recrypt_entries(rc_store_reader *rd, const rc_service_secret *svc,
                             const uint8_t list_id[RC_ID_BYTES], uint64_t epoch,
                             uint64_t enrolled_before, uint64_t unchanged_since,
                             rc_device_entry **out, size_t *n, rc_error *err)
{
    rc_store_audience a;
    if (!rd || !svc || !list_id || !out || !n)
        return rc_error_set(err, RC_E_INVALID, "rc_store_recrypt_entries: missing argument");
    *out = NULL;
    *n = 0;
    int rc =
        audience_collect(rd, svc, list_id, epoch, enrolled_before, unchanged_since, 0, &a, err);
    if (rc)
        return rc;
    *out = a.entries;
    *n = a.n_entries;
    return 0;
}

/* ---------------------------------------------------------------- replay cache */

/* The replay cache: "delivered" (E -> row) and its time index
 * "delivered-at" (u64 keep ‖ E -> empty). A row is
 *   u64 keep ‖ u8 state ‖ u64 first   (17 bytes; state 1 pending: handed
 *                                      to the MTA, fate unknown; 2
 *                                      delivered: the MTA's receipt came)
 *   u64 time                          (8 bytes, written by schema 2:
 *                                      delivered, keep = first = time)
 * keep is the later of the first attempt and the post's Date: the post is
 * fresh until keep + window at most, so its row is kept until then. keep
 * and first never change, so the index row stays. Each post that is
 * recorded also drops up to PRUNE_MAX entries older than the window,
 * oldest first, so the cache holds about one window's traffic. Whatever
 * drops a post's row drops its records of split delivery ("copies", see
 * below) in the same transaction. */
#define PRUNE_MAX 64
#define ROW_PENDING 1
#define ROW_DELIVERED 2

static size_t key_delivered_at(uint8_t k[8 + RC_POINT_BYTES], uint64_t t,
                               const uint8_t E[RC_POINT_BYTES])
{
    rc_be64_put(k, t);
    memcpy(k + 8, E, RC_POINT_BYTES);
    return 8 + RC_POINT_BYTES;
}

/* A row of "delivered": 0 and its keep time, state and first attempt, or
 * -1 when malformed. first may be NULL. */
static int delivered_row(const MDB_val *v, uint64_t *t, int *state, uint64_t *first)
{
    const uint8_t *p = v->mv_data;
    uint64_t f;
    if (v->mv_size == 8) {
        *state = RC_POST_DELIVERED;
        f = rc_be64_get(p);
    } else if (v->mv_size == ROW_BYTES && (p[8] == ROW_PENDING || p[8] == ROW_DELIVERED)) {
        *state = p[8] == ROW_PENDING ? RC_POST_PENDING : RC_POST_DELIVERED;
        f = rc_be64_get(p + 9);
    } else {
        return -1;
    }
    *t = rc_be64_get(p);
    if (first)
        *first = f;
    return 0;
}

static void row_put(uint8_t row[ROW_BYTES], uint64_t keep, int state, uint64_t first)
{
    rc_be64_put(row, keep);
    row[8] = state == RC_POST_PENDING ? ROW_PENDING : ROW_DELIVERED;
    rc_be64_put(row + 9, first);
}

/* A post recorded at t is older than the window at now (no overflow; a
 * time after now, from a clock stepped back, is not expired). */
static int expired(uint64_t t, uint64_t now, uint64_t window)
{
    return now > t && now - t > window;
}

/* Delete the records of split delivery of E (every "copies" row whose key
 * starts with E): they live as long as E's replay-cache row. */
static int copies_drop(MDB_txn *txn, rc_store *st, const uint8_t E[RC_POINT_BYTES])
{
    MDB_cursor *c;
    int mrc = mdb_cursor_open(txn, st->copies, &c);
    if (mrc)
        return mrc;
    for (;;) {
        /* Seek afresh after each delete rather than trusting the cursor. */
        MDB_val k = {RC_POINT_BYTES, (void *)E}, v;
        mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (mrc || k.mv_size < RC_POINT_BYTES || memcmp(k.mv_data, E, RC_POINT_BYTES) != 0)
            break;
        if ((mrc = mdb_cursor_del(c, 0)) != 0)
            break;
    }
    mdb_cursor_close(c);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

/* Delete E (recorded at t) from both databases, and its copies; absent
 * rows are fine. */
static int delivered_del(MDB_txn *txn, rc_store *st, const uint8_t E[RC_POINT_BYTES], uint64_t t)
{
    uint8_t ik[8 + RC_POINT_BYTES];
    MDB_val k = {RC_POINT_BYTES, (void *)E}, ikv = {key_delivered_at(ik, t, E), ik};
    int mrc = mdb_del(txn, st->delivered, &k, NULL);
    if (mrc == 0 || mrc == MDB_NOTFOUND)
        mrc = mdb_del(txn, st->delivered_at, &ikv, NULL);
    if (mrc == 0 || mrc == MDB_NOTFOUND)
        mrc = copies_drop(txn, st, E);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

static int delivered_prune(MDB_txn *txn, rc_store *st, uint64_t now, uint64_t window)
{
    MDB_cursor *c;
    MDB_val k, v;
    int mrc = mdb_cursor_open(txn, st->delivered_at, &c);
    if (mrc)
        return mrc;
    int left = PRUNE_MAX, r = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (r == 0 && left-- > 0 && k.mv_size == 8 + RC_POINT_BYTES &&
           expired(rc_be64_get(k.mv_data), now, window)) {
        uint64_t t = rc_be64_get(k.mv_data), rt;
        int state;
        uint8_t E[RC_POINT_BYTES];
        memcpy(E, (const uint8_t *)k.mv_data + 8, RC_POINT_BYTES);
        MDB_val ek = {RC_POINT_BYTES, E}, ev;
        /* Only the row of this time: a newer record of E has its own
         * (and the copies are the newer record's). With the row go its
         * copies; with no row, copies left behind are nobody's. */
        r = mdb_get(txn, st->delivered, &ek, &ev);
        if (r == 0 && delivered_row(&ev, &rt, &state, NULL) == 0 && rt == t) {
            r = mdb_del(txn, st->delivered, &ek, NULL);
            if (r == 0)
                r = copies_drop(txn, st, E);
        } else if (r == MDB_NOTFOUND) {
            r = copies_drop(txn, st, E);
        } /* else r == 0 (a newer record of E) or an error */
        if (r == 0)
            r = mdb_cursor_del(c, 0);
        /* The deleted row was the first: the next oldest is first now. */
        if (r == 0)
            r = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    }
    mdb_cursor_close(c);
    return r == MDB_NOTFOUND || r == 0 ? 0 : r;
}

int rc_store_delivered_begin(rc_store *st, const uint8_t E[RC_POINT_BYTES], uint64_t now,
                             uint64_t date, uint64_t window, int *state, uint64_t *first,
                             rc_error *err)
{
    MDB_txn *txn;
    uint64_t t = 0, f = 0;
    int found = RC_POST_NEW;
    *state = RC_POST_NEW;
    *first = now;
    int rc = writable(st, err);
    if (rc)
        return rc;
    int mrc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (mrc)
        return mdb_error(err, mrc, "starting a write transaction");
    MDB_val k = {RC_POINT_BYTES, (void *)E}, v;
    mrc = mdb_get(txn, st->delivered, &k, &v);
    if (mrc && mrc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return mdb_error(err, mrc, "reading the replay cache");
    }
    if (mrc == 0 && delivered_row(&v, &t, &found, &f) != 0) {
        mdb_txn_abort(txn);
        return damaged(err, "delivered");
    }
    if (mrc == 0 && !expired(t, now, window)) {
        /* Known within the window: nothing to write. */
        *state = found;
        *first = f;
        mdb_txn_abort(txn);
        return 0;
    }
    /* An expired record of the same E: drop it and its index row. */
    mrc = mrc == 0 ? delivered_del(txn, st, E, t) : 0;
    uint64_t keep = date > now ? date : now;
    uint8_t row[ROW_BYTES], ik[8 + RC_POINT_BYTES];
    row_put(row, keep, RC_POST_PENDING, now);
    MDB_val nv = {sizeof row, row}, ikv = {key_delivered_at(ik, keep, E), ik}, empty = {0, NULL};
    if (mrc == 0)
        mrc = mdb_put(txn, st->delivered, &k, &nv, 0);
    if (mrc == 0)
        mrc = mdb_put(txn, st->delivered_at, &ikv, &empty, 0);
    if (mrc == 0)
        mrc = delivered_prune(txn, st, now, window);
    if (mrc == 0)
        mrc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    return mrc ? mdb_error(err, mrc, "recording a post as pending") : 0;
}

int rc_store_delivered_confirm(rc_store *st, const uint8_t *prefix, size_t prefix_len,
                               rc_store_post_match_fn match, void *ctx,
                               uint8_t E_out[RC_POINT_BYTES], int *state, rc_error *err)
{
    MDB_txn *txn;
    MDB_cursor *c;
    *state = RC_POST_NEW;
    if (!prefix || prefix_len == 0 || prefix_len > RC_POINT_BYTES || !match)
        return rc_error_set(err, RC_E_INVALID, "rc_store_delivered_confirm: bad argument");
    int rc = writable(st, err);
    if (rc)
        return rc;
    int mrc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (mrc)
        return mdb_error(err, mrc, "starting a write transaction");
    if ((mrc = mdb_cursor_open(txn, st->delivered, &c)) != 0) {
        mdb_txn_abort(txn);
        return mdb_error(err, mrc, "reading the replay cache");
    }
    uint8_t key[RC_POINT_BYTES] = {0};
    memcpy(key, prefix, prefix_len);
    MDB_val k = {prefix_len, key}, v;
    uint64_t t = 0, f = 0;
    int found = RC_POST_NEW, r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    /* Every E that starts with prefix (one, but for a collision). */
    while (r == 0 && k.mv_size == RC_POINT_BYTES && memcmp(k.mv_data, prefix, prefix_len) == 0) {
        if (delivered_row(&v, &t, &found, &f) != 0) {
            mdb_cursor_close(c);
            mdb_txn_abort(txn);
            return damaged(err, "delivered");
        }
        if (match(ctx, k.mv_data)) {
            memcpy(E_out, k.mv_data, RC_POINT_BYTES);
            break;
        }
        found = RC_POST_NEW;
        r = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (r && r != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return mdb_error(err, r, "reading the replay cache");
    }
    *state = found;
    if (found != RC_POST_PENDING) { /* unknown, or delivered already */
        mdb_txn_abort(txn);
        return 0;
    }
    uint8_t row[ROW_BYTES];
    row_put(row, t, RC_POST_DELIVERED, f);
    MDB_val ek = {RC_POINT_BYTES, E_out}, nv = {sizeof row, row};
    mrc = mdb_put(txn, st->delivered, &ek, &nv, 0);
    if (mrc == 0)
        mrc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    return mrc ? mdb_error(err, mrc, "recording a delivered post") : 0;
}

int rc_store_delivered_forget(rc_store *st, const uint8_t E[RC_POINT_BYTES], uint64_t first,
                              rc_error *err)
{
    MDB_txn *txn;
    int rc = writable(st, err);
    if (rc)
        return rc;
    int mrc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (mrc)
        return mdb_error(err, mrc, "starting a write transaction");
    MDB_val k = {RC_POINT_BYTES, (void *)E}, v;
    uint64_t t, f;
    int state;
    mrc = mdb_get(txn, st->delivered, &k, &v);
    /* Only this attempt's own record: still pending, first attempt at
     * `first`. Another attempt of the same post may have found it pending
     * meanwhile and been queued (and even confirmed): its row stays. */
    if (mrc == 0 && delivered_row(&v, &t, &state, &f) == 0 && state == RC_POST_PENDING &&
        f == first)
        mrc = delivered_del(txn, st, E, t);
    else if (mrc == 0)
        mrc = MDB_NOTFOUND;
    if (mrc && mrc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return mdb_error(err, mrc, "forgetting a post");
    }
    mrc = mdb_txn_commit(txn);
    return mrc ? mdb_error(err, mrc, "forgetting a post") : 0;
}

/* ---------------------------------------------------------------- split delivery */

/* "copies": key E ‖ canonical member (no NUL), value u64 time the MTA
 * queued that member's copy of post E. Written by the fan-out command
 * (recrypt-fanout) after the MTA accepted a copy; read by it on a retry of
 * the post, to send only the copies still missing. The rows of E go
 * with E's replay-cache row (delivered_del, delivered_prune). */
#define COPY_KEY_MAX (RC_POINT_BYTES + RC_ADDR_MAX)

/* The key of member's copy of E; RC_E_INVALID when member is no address. */
static int key_copy(uint8_t k[COPY_KEY_MAX], size_t *klen, const uint8_t E[RC_POINT_BYTES],
                    const char *member, rc_error *err)
{
    char canon[RC_ADDR_MAX + 1];
    if (!member)
        return rc_error_set(err, RC_E_INVALID, "split delivery: no member address");
    int rc = rc_address_canonical(canon, member, err);
    if (rc)
        return rc;
    size_t n = strlen(canon);
    memcpy(k, E, RC_POINT_BYTES);
    memcpy(k + RC_POINT_BYTES, canon, n);
    *klen = RC_POINT_BYTES + n;
    return 0;
}

/* A reader of a store opened without migrating, older than schema 4, has
 * no "copies" database (and no copy was recorded in it). */
static int has_copies(const rc_store_reader *rd)
{
    return rd->st->schema >= 4;
}

int rc_store_copy_is_sent(rc_store_reader *rd, const uint8_t E[RC_POINT_BYTES], const char *member,
                          int *sent, rc_error *err)
{
    uint8_t kb[COPY_KEY_MAX];
    size_t klen = 0;
    if (sent)
        *sent = 0;
    if (!rd || !E || !sent)
        return rc_error_set(err, RC_E_INVALID, "rc_store_copy_is_sent: missing argument");
    int rc = key_copy(kb, &klen, E, member, err);
    if (rc || !has_copies(rd))
        return rc;
    MDB_val k = {klen, kb}, v;
    int mrc = mdb_get(rd->txn, rd->st->copies, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return 0;
    if (mrc)
        return mdb_error(err, mrc, "reading the records of split delivery");
    if (v.mv_size != 8)
        return damaged(err, "copies");
    *sent = 1;
    return 0;
}

static int count_copy(void *ctx, const MDB_val *k, const MDB_val *v)
{
    size_t *n = ctx;
    (void)k;
    if (v->mv_size != 8)
        return RC_E_FORMAT;
    (*n)++;
    return 0;
}

int rc_store_copies_count(rc_store_reader *rd, const uint8_t E[RC_POINT_BYTES], size_t *n,
                          rc_error *err)
{
    if (n)
        *n = 0;
    if (!rd || !E || !n)
        return rc_error_set(err, RC_E_INVALID, "rc_store_copies_count: missing argument");
    if (!has_copies(rd))
        return 0;
    int rc = scan_prefix(rd->txn, rd->st->copies, E, RC_POINT_BYTES, count_copy, n, err);
    if (rc == RC_E_FORMAT) {
        *n = 0;
        return damaged(err, "copies");
    }
    if (rc)
        *n = 0;
    return rc;
}

int rc_store_copies_record(rc_store *st, const uint8_t E[RC_POINT_BYTES],
                           const char *const *members, size_t n, uint64_t now, rc_error *err)
{
    MDB_txn *txn;
    if (!st || !E || (n && !members))
        return rc_error_set(err, RC_E_INVALID, "rc_store_copies_record: missing argument");
    int rc = writable(st, err);
    if (rc)
        return rc;
    int mrc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (mrc)
        return mdb_error(err, mrc, "starting a write transaction");
    /* Only for a post the replay cache holds: its pruning drops the rows. */
    MDB_val ek = {RC_POINT_BYTES, (void *)E}, ev;
    mrc = mdb_get(txn, st->delivered, &ek, &ev);
    if (mrc == MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return rc_error_set(err, RC_E_NOT_FOUND,
                            "split delivery: the post is not in the replay cache (pruned, "
                            "forgotten, or never recorded)");
    }
    if (mrc) {
        mdb_txn_abort(txn);
        return mdb_error(err, mrc, "reading the replay cache");
    }
    uint8_t tb[8];
    rc_be64_put(tb, now);
    for (size_t i = 0; i < n; i++) {
        uint8_t kb[COPY_KEY_MAX];
        size_t klen = 0;
        if ((rc = key_copy(kb, &klen, E, members[i], err)) != 0) {
            mdb_txn_abort(txn);
            return rc;
        }
        MDB_val k = {klen, kb}, v = {sizeof tb, tb};
        mrc = mdb_put(txn, st->copies, &k, &v, MDB_NOOVERWRITE);
        if (mrc && mrc != MDB_KEYEXIST) { /* a recorded copy keeps its time */
            mdb_txn_abort(txn);
            return mdb_error(err, mrc, "recording queued copies");
        }
    }
    mrc = mdb_txn_commit(txn);
    if (mrc)
        return mdb_error(err, mrc, "recording queued copies");
    rc_error_clear(err);
    return 0;
}
