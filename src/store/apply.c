/*
 * apply.c - rc_store_apply: `recryptctl apply`, the only writer of
 * membership data. A decoded request is checked against the store and
 * applied inside one write transaction: any refusal aborts the
 * transaction, so the store is either unchanged or carries the whole
 * request (docs/REQUESTS.md says what is refused). The service shares r
 * are unsealed into stack buffers only to check r·G + K == A, and wiped at
 * once. The request stays the caller's; nothing here keeps a pointer to it.
 */
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bytes.h"
#include "store_internal.h"

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

/* A version 2 statement names the epoch's service signing key: its seed
 * must open with the service key and give statement.service_pk; it is kept
 * sealed, as r is ("svckeys", STORE.md §3.11). */
static int put_svc_key(apply_ctx *a, const rc_statement *s, rc_error *err)
{
    if (s->version != RC_STATEMENT_V2)
        return 0;
    uint8_t *seed = rc_secret_alloc(RC_SVC_SEED_BYTES), pk[32];
    if (!seed)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    int rc = rc_svc_seed_open(seed, a->req->sealed_svc_seed, a->svc, err);
    if (rc == 0) {
        rc_svc_public(pk, seed);
        if (sodium_memcmp(pk, s->service_pk, 32) != 0)
            rc = rc_error_set(err, RC_E_CRYPTO,
                              "the service signing key sent for epoch %llu is not the one its "
                              "list key statement names",
                              (unsigned long long)s->epoch);
    }
    rc_secret_free(seed);
    if (rc)
        return rc;
    uint8_t kb[40];
    MDB_val k = {key_list_epoch(kb, a->list_id, s->epoch), kb},
            v = {RC_SEALED_SVC_SEED_BYTES, (void *)a->req->sealed_svc_seed};
    int mrc = mdb_put(a->txn, a->st->svckeys, &k, &v, MDB_NOOVERWRITE);
    if (mrc == MDB_KEYEXIST)
        return rc_error_set(err, RC_E_EXISTS, "epoch %llu already has a service signing key",
                            (unsigned long long)s->epoch);
    return mrc ? mdb_error(err, mrc, "writing a service signing key") : 0;
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
    if ((rc = put_svc_key(a, s, err)) != 0 || (rc = put_list(a, MDB_NOOVERWRITE, err)) != 0 ||
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
     * (docs/SCHEME.md): the old ones must not come back to life. */
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
    if ((rc = put_svc_key(a, s, err)) ||
        (rc = put_epoch(a->txn, a->st, a->list_id, &prev.statement, prev.grace_until, 0, err)) ||
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

/* Owners of the list with SUPER, in this transaction. */
typedef struct {
    size_t n_super;
} super_count;

static int count_super(void *ctx, const MDB_val *k, const MDB_val *v)
{
    super_count *sc = ctx;
    rc_store_owner o;
    if (decode_owner(k, v, &o, NULL) != 0)
        return RC_E_FORMAT;
    if (o.privilege == RC_PRIV_SUPER)
        sc->n_super++;
    return 0;
}

/* UpdateOwner and RemoveOwner: the owner exists; the list keeps at least
 * one SUPER owner. */
static int apply_change_owner(apply_ctx *a, rc_error *err)
{
    const rc_request *req = a->req;
    rc_store_owner o;
    char f[RC_UDF_MAX];
    fpr(f, RC_KT_OWNER, req->owner.sign_pk);
    if (req->n_devices)
        return rc_error_set(err, RC_E_INVALID, "an %s request carries no device entry",
                            rc_request_type_name(req->type));
    if (req->type == RC_REQ_UPDATE_OWNER && req->privilege != RC_PRIV_ADMIN &&
        req->privilege != RC_PRIV_SUPER)
        return rc_error_set(err, RC_E_INVALID, "an owner's privilege must be admin or super");
    int rc = txn_get_owner(a->st, a->txn, a->list_id, req->owner.sign_pk, &o, NULL);
    if (rc == RC_E_NOT_FOUND)
        return rc_error_set(err, RC_E_NOT_FOUND, "%s is not an owner of %s", f, req->list);
    if (rc)
        return txn_get_owner(a->st, a->txn, a->list_id, req->owner.sign_pk, &o, err);
    int lowers = o.privilege == RC_PRIV_SUPER &&
                 (req->type == RC_REQ_REMOVE_OWNER || req->privilege != RC_PRIV_SUPER);
    if (lowers) {
        super_count sc = {0};
        rc = scan_prefix(a->txn, a->st->owners, a->list_id, 32, count_super, &sc, err);
        if (rc == RC_E_FORMAT)
            return damaged(err, "owners");
        if (rc)
            return rc;
        if (sc.n_super <= 1)
            return rc_error_set(err, RC_E_POLICY,
                                "%s is the last SUPER owner of %s: it cannot be %s (add "
                                "another SUPER owner first)",
                                f, req->list,
                                req->type == RC_REQ_REMOVE_OWNER ? "removed" : "lowered to admin");
    }
    if (req->type == RC_REQ_REMOVE_OWNER) {
        uint8_t kb[64];
        size_t n = 0;
        memcpy(kb, a->list_id, 32);
        memcpy(kb + 32, req->owner.sign_pk, 32);
        if ((rc = delete_prefix(a->txn, a->st->owners, kb, 64, &n, err)) != 0)
            return rc;
        return n == 1 ? 0 : damaged(err, "owners");
    }
    o.privilege = req->privilege;
    return put_owner(a->txn, a->st, a->list_id, &o, 0, err);
}

/* A request is applied only between created_at - RC_REQUEST_FUTURE_SKEW
 * and not_after, and its lifetime is at most RC_REQUEST_MAX_LIFETIME. */
static int check_dates(const rc_request *req, uint64_t now, rc_error *err)
{
    char made[32], until[32], clock[32];
    rc_iso_utc(made, sizeof made, req->created_at);
    rc_iso_utc(until, sizeof until, req->not_after);
    rc_iso_utc(clock, sizeof clock, now);
    if (req->not_after <= req->created_at ||
        req->not_after - req->created_at > RC_REQUEST_MAX_LIFETIME)
        return rc_error_set(err, RC_E_POLICY,
                            "request made %s, valid until %s: its lifetime must be positive and "
                            "at most %u days",
                            made, until, RC_REQUEST_MAX_LIFETIME / 86400);
    if (req->created_at > now && req->created_at - now > RC_REQUEST_FUTURE_SKEW)
        return rc_error_set(err, RC_E_POLICY,
                            "request made %s, more than %u minutes ahead of this server's clock "
                            "(%s): check the owner's clock",
                            made, RC_REQUEST_FUTURE_SKEW / 60, clock);
    if (now > req->not_after)
        return rc_error_set(err, RC_E_POLICY,
                            "request expired at %s (made %s; now %s): make it again", until, made,
                            clock);
    return 0;
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
    if (req->version != RC_REQUEST_VERSION)
        return rc_error_set(err, RC_E_VERSION,
                            "request version %u is not supported (this build reads %u)",
                            req->version, RC_REQUEST_VERSION);
    if ((rc = check_dates(req, a->now, err)) != 0)
        return rc;
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
    case RC_REQ_ADD_OWNER:
    case RC_REQ_UPDATE_OWNER:
    case RC_REQ_REMOVE_OWNER: {
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
        int about_owners = req->type == RC_REQ_ADD_OWNER || req->type == RC_REQ_UPDATE_OWNER ||
                           req->type == RC_REQ_REMOVE_OWNER;
        uint8_t need = about_owners ? RC_PRIV_SUPER : RC_PRIV_ADMIN;
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
        else if (req->type == RC_REQ_ADD_OWNER)
            rc = apply_add_owner(a, err);
        else
            rc = apply_change_owner(a, err);
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
