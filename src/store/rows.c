/*
 * rows.c - the store's rows in code (docs/STORE.md): errors that name a
 * damaged database, the keys, the row codecs (decode_* for readers, put_*
 * and encode_list for apply.c), lookups of one row in a transaction, and
 * walks over the rows that share a key prefix. Every other part of the
 * store reads and writes rows through these; all take the caller's
 * transaction and leave it open, and fill the caller's structs.
 */
#include <lmdb.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "store_internal.h"

/* ---------------------------------------------------------------- errors */

int mdb_error(rc_error *err, int mrc, const char *what)
{
    if (mrc == MDB_MAP_FULL)
        return rc_error_set(err, RC_E_IO, "store is full: raise the map size (%s)", what);
    return rc_error_set(err, RC_E_IO, "store: %s: %s", what, mdb_strerror(mrc));
}

int damaged(rc_error *err, const char *db)
{
    return rc_error_set(err, RC_E_FORMAT, "store is damaged: malformed row in '%s'", db);
}

void fpr(char out[RC_UDF_MAX], const char *type, const uint8_t *pk)
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

size_t key_list_epoch(uint8_t *k, const uint8_t list_id[32], uint64_t epoch)
{
    memcpy(k, list_id, 32);
    rc_be64_put(k + 32, epoch);
    return 40;
}

/* list id ‖ epoch ‖ str8 member: the prefix of one member's devices. */
size_t key_device_prefix(uint8_t *k, const uint8_t list_id[32], uint64_t epoch, const char *member)
{
    size_t n = strlen(member);
    size_t o = key_list_epoch(k, list_id, epoch);
    k[o++] = (uint8_t)n;
    memcpy(k + o, member, n);
    return o + n;
}

size_t key_device(uint8_t *k, const uint8_t list_id[32], uint64_t epoch, const char *member,
                  const uint8_t sign_pk[32])
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

int decode_list(const MDB_val *k, const MDB_val *v, rc_store_list *out, rc_error *err)
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

int encode_list(uint8_t *buf, size_t cap, size_t *len, const rc_store_list *l)
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

int decode_epoch(const MDB_val *k, const MDB_val *v, rc_store_epoch *out, rc_error *err)
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

int put_epoch(MDB_txn *txn, rc_store *st, const uint8_t list_id[32], const rc_statement *s,
              uint64_t grace_until, unsigned flags, rc_error *err)
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

int decode_member(const MDB_val *k, const MDB_val *v, rc_store_member *out, rc_error *err)
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

int put_member(MDB_txn *txn, rc_store *st, const uint8_t list_id[32], const rc_store_member *m,
               rc_error *err)
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

int decode_device(const MDB_val *k, const MDB_val *v, rc_store_device *out, rc_error *err)
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

int decode_owner(const MDB_val *k, const MDB_val *v, rc_store_owner *out, rc_error *err)
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

int put_owner(MDB_txn *txn, rc_store *st, const uint8_t list_id[32], const rc_store_owner *o,
              unsigned flags, rc_error *err)
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

int txn_get_list(rc_store *st, MDB_txn *txn, const char *canon, rc_store_list *out, rc_error *err)
{
    MDB_val k = {strlen(canon), (void *)canon}, v;
    int mrc = mdb_get(txn, st->lists, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return rc_error_set(err, RC_E_NOT_FOUND, "unknown list %s", canon);
    if (mrc)
        return mdb_error(err, mrc, "reading a list");
    return decode_list(&k, &v, out, err);
}

int txn_get_epoch(rc_store *st, MDB_txn *txn, const uint8_t list_id[32], uint64_t epoch,
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

int txn_get_member(rc_store *st, MDB_txn *txn, const uint8_t list_id[32], const char *canon,
                   rc_store_member *out, rc_error *err)
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

int txn_get_owner(rc_store *st, MDB_txn *txn, const uint8_t list_id[32], const uint8_t sign_pk[32],
                  rc_store_owner *out, rc_error *err)
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
int scan_prefix(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen, row_fn fn, void *ctx,
                rc_error *err)
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
int delete_prefix(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen, size_t *n_deleted,
                  rc_error *err)
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
