/*
 * audience.c - a post's audience and what the service recrypts with
 * (rc_store_audience_get, rc_store_recrypt_entries): the device entries of
 * one epoch's ACTIVE members, restricted by enrolment and change times
 * (store.h), read in the reader's transaction, with the service shares r
 * unsealed on rc_store_set_threads threads into guarded memory
 * (rc_secret_alloc) that the caller frees (rc_store_audience_free,
 * rc_secret_free).
 */
#include <lmdb.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "parallel.h"
#include "store_internal.h"

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
 * (src/common/parallel.h). */
typedef struct {
    const rc_service_secret *svc;
    rc_device_entry *entries;
    const uint8_t (*sealed)[RC_SEALED_R_BYTES];
    size_t bad[RC_PARALLEL_MAX]; /* per slice: the first entry that did not open, or SIZE_MAX */
} unseal_ctx;

static void unseal_slice(void *arg, unsigned slice, size_t from, size_t to)
{
    unseal_ctx *u = arg;
    u->bad[slice] = SIZE_MAX;
    for (size_t i = from; i < to; i++)
        if (crypto_box_seal_open(u->entries[i].r, u->sealed[i], RC_SEALED_R_BYTES, u->svc->pub.pk,
                                 u->svc->sk) != 0) {
            u->bad[slice] = i;
            break;
        }
}

/* The index of the first entry whose r does not open, or SIZE_MAX. */
static size_t unseal_all(const rc_service_secret *svc, rc_device_entry *entries,
                         const uint8_t (*sealed)[RC_SEALED_R_BYTES], size_t n, unsigned threads)
{
    unseal_ctx u = {.svc = svc, .entries = entries, .sealed = sealed};
    unsigned slices = rc_parallel_slices(n, threads, unseal_slice, &u);
    for (unsigned t = 0; t < slices; t++)
        if (u.bad[t] != SIZE_MAX)
            return u.bad[t];
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
