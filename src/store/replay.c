/*
 * replay.c - the milter's replay cache ("delivered" and its time index
 * "delivered-at", docs/STORE.md §3.8: rc_store_delivered_begin, _confirm,
 * _forget), written by the milter, its receipt command and recrypt-fanout,
 * and the records of split delivery ("copies", §3.10), written by
 * recrypt-fanout alone. Each writer runs its own write transaction on a
 * store opened read-write at the current schema (writable); a post's copies
 * go with its replay-cache row, in the same transaction.
 */
#include <lmdb.h>
#include <stddef.h>
#include <string.h>

#include "bytes.h"
#include "store_internal.h"

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
