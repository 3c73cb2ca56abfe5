/*
 * store.h - the server's membership store (LMDB): lists, epochs and their
 * public keys, members, device entries, owner keys with privileges and
 * counters, applied request ids, bounce addresses, the server's secret for
 * marking processed mail, and a schema version. docs/STORE.md documents
 * the layout.
 *
 * Writers: rc_store_apply, one LMDB write transaction per request, all or
 * nothing; `recryptctl apply` is the only writer of membership data. The
 * milter (and its receipt command) writes only the replay cache
 * (rc_store_delivered_*); the fan-out command (recrypt-fanout) writes it
 * too and, alone, the records of split delivery (rc_store_copies_record).
 * Readers (recryptctl show, the milter, recrypt-fanout) use an
 * rc_store_reader: one read transaction, so a reader never sees half a
 * request. Readers and a writer may run at the same time in different
 * processes.
 *
 * The store holds no secret that decrypts mail: service shares r stay
 * sealed to the service key (rc_store_recrypt_entries and
 * rc_store_audience_get unseal them into guarded memory for one post), W
 * is sealed to its device.
 *
 * Ownership: rc_store and rc_store_reader are opaque and freed with their
 * close/end functions. Structs filled by the getters and passed to the
 * iteration callbacks are plain copies owned by the caller (or valid for
 * the duration of the callback, respectively).
 */
#ifndef RECRYPT_STORE_H
#define RECRYPT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <recrypt/recrypt.h>
#include <recrypt/request.h>

/* 2: the replay cache's time index "delivered-at"; 3: pending rows in the
 * replay cache; 4: the records of split delivery "copies"; 5: the service
 * signing keys "svckeys" (docs/STORE.md §4). */
#define RC_STORE_SCHEMA_VERSION 5
#define RC_STORE_DEFAULT_MAP_SIZE ((size_t)1 << 30) /* 1 GiB of address space */
#define RC_STORE_SERVICE_KEY_FILE "service.key"

typedef struct rc_store rc_store;
typedef struct rc_store_reader rc_store_reader;

typedef struct {
    char address[RC_ADDR_MAX + 1];
    uint8_t list_id[RC_ID_BYTES];
    uint64_t current_epoch;
    char bounce[RC_ADDR_MAX + 1];
    uint8_t signer_pk[RC_SIGN_PK_BYTES]; /* the list signing key */
    uint64_t created_at;
} rc_store_list;

typedef struct {
    uint64_t epoch;
    uint64_t grace_until; /* 0 while current; afterwards: usable until then */
    rc_statement statement; /* holds A */
} rc_store_epoch;

typedef struct {
    char address[RC_ADDR_MAX + 1];
    uint8_t privilege;
    uint8_t status;
    uint64_t updated_at;
} rc_store_member;

typedef struct {
    char member[RC_ADDR_MAX + 1];
    uint64_t epoch;
    rc_device_public device;
    uint8_t K[RC_POINT_BYTES];
    uint8_t sealed_r[RC_SEALED_R_BYTES];
    uint8_t W[RC_WRAP_MAX];
    size_t W_len;
    uint64_t enrolled_at;
} rc_store_device;

typedef struct {
    rc_owner_public owner;
    uint8_t privilege;
    uint64_t last_counter;
} rc_store_owner;

/* Create a new store in dir (created 0750 if missing): schema version, the
 * mark secret, and the service key file dir/service.key (0600, generated).
 * Refuses a directory that already holds a store. Prints nothing; returns
 * the service's public key in *svc_pub. */
int rc_store_create(const char *dir, size_t map_size, rc_service_public *svc_pub, rc_error *err);

/* rc_store_open flags. */
#define RC_STORE_READONLY 1u   /* no writer transactions (LMDB MDB_RDONLY) */
#define RC_STORE_NO_MIGRATE 2u /* read-write, but leave an older schema as it is */

/* Open an existing store. map_size 0: the default. A store of an older
 * schema is migrated to RC_STORE_SCHEMA_VERSION in one write transaction
 * (completely or not at all), and a read-write open rebuilds the replay
 * cache's index when an older build wrote the cache after a migration.
 * With RC_STORE_READONLY or RC_STORE_NO_MIGRATE an older store is opened
 * as it is and readable; every write is refused (RC_E_INVALID read-only,
 * RC_E_VERSION not migrated). A newer or unknown schema is refused with a
 * clear message (RC_E_VERSION, RC_E_FORMAT). */
int rc_store_open(rc_store **out, const char *dir, size_t map_size, unsigned flags,
                  rc_error *err);
void rc_store_close(rc_store *st);
/* Threads that unseal service shares for rc_store_audience_get and
 * rc_store_recrypt_entries (default 1; 0 means 1). For a large list this is
 * most of a post's set-up (recrypt-fanout sets FanoutThreads). */
void rc_store_set_threads(rc_store *st, unsigned threads);
/* The schema version this rc_store_open migrated from (callers say so);
 * the store's version when it did not migrate it. */
uint32_t rc_store_found_schema(const rc_store *st);

/* Verify req against the store and apply it in one write transaction.
 * svc: the service key (it unseals r to check r·G + K == A). now: the
 * service's clock; a request is refused (RC_E_POLICY) when now is past its
 * not_after, when its created_at lies more than RC_REQUEST_FUTURE_SKEW
 * ahead of now, or when its lifetime is outside 1..RC_REQUEST_MAX_LIFETIME.
 * Refusals leave the store unchanged and say why. */
int rc_store_apply(rc_store *st, const rc_service_secret *svc, const rc_request *req,
                   uint64_t now, rc_error *err);

int rc_store_reader_begin(rc_store *st, rc_store_reader **out, rc_error *err);
void rc_store_reader_end(rc_store_reader *rd);

uint32_t rc_store_schema(rc_store_reader *rd);
/* RC_E_NOT_FOUND when there is no such list / epoch. */
int rc_store_get_list(rc_store_reader *rd, const char *address, rc_store_list *out,
                      rc_error *err);
int rc_store_get_epoch(rc_store_reader *rd, const uint8_t list_id[RC_ID_BYTES], uint64_t epoch,
                       rc_store_epoch *out, rc_error *err);
int rc_store_get_member(rc_store_reader *rd, const uint8_t list_id[RC_ID_BYTES],
                        const char *address, rc_store_member *out, rc_error *err);

/* Iteration: the callback returns 0 to go on, non-zero to stop (that value
 * is returned). */
typedef int (*rc_store_list_fn)(void *ctx, const rc_store_list *l);
typedef int (*rc_store_epoch_fn)(void *ctx, const rc_store_epoch *e);
typedef int (*rc_store_member_fn)(void *ctx, const rc_store_member *m);
typedef int (*rc_store_device_fn)(void *ctx, const rc_store_device *d);
typedef int (*rc_store_owner_fn)(void *ctx, const rc_store_owner *o);
int rc_store_each_list(rc_store_reader *rd, rc_store_list_fn fn, void *ctx, rc_error *err);
int rc_store_each_epoch(rc_store_reader *rd, const uint8_t list_id[RC_ID_BYTES],
                        rc_store_epoch_fn fn, void *ctx, rc_error *err);
int rc_store_each_member(rc_store_reader *rd, const uint8_t list_id[RC_ID_BYTES],
                         rc_store_member_fn fn, void *ctx, rc_error *err);
/* Every device entry of one epoch, whatever the member's status. */
int rc_store_each_device(rc_store_reader *rd, const uint8_t list_id[RC_ID_BYTES], uint64_t epoch,
                         rc_store_device_fn fn, void *ctx, rc_error *err);
int rc_store_each_owner(rc_store_reader *rd, const uint8_t list_id[RC_ID_BYTES],
                        rc_store_owner_fn fn, void *ctx, rc_error *err);

/* What the service recrypts with: the entries of ACTIVE members for one
 * epoch, r unsealed with svc, restricted to the post's audience: devices
 * enrolled before enrolled_before, of members whose record (updated_at)
 * has not changed since unchanged_since (UINT64_MAX for either: no
 * restriction). *out is rc_secret_alloc'ed (free with rc_secret_free); *n
 * may be 0. */
int rc_store_recrypt_entries(rc_store_reader *rd, const rc_service_secret *svc,
                             const uint8_t list_id[RC_ID_BYTES], uint64_t epoch,
                             uint64_t enrolled_before, uint64_t unchanged_since,
                             rc_device_entry **out, size_t *n, rc_error *err);

/* One member of a post's audience: its entries are entries[first .. first + n). */
typedef struct {
    char address[RC_ADDR_MAX + 1];
    size_t first, n; /* n >= 1 */
} rc_store_audience_member;

/* A post's audience (see rc_store_recrypt_entries for who is in it), in the
 * store's order, grouped by member. entries is rc_secret_alloc'ed (NULL when
 * svc was NULL: then only the members and their counts are filled, and no
 * service share is unsealed; n_entries is the sum of the members' n all the
 * same); members is malloc'ed. On success both arrays that are filled are
 * non-NULL, also when empty. */
typedef struct {
    rc_device_entry *entries;
    size_t n_entries;
    rc_store_audience_member *members;
    size_t n_members;
} rc_store_audience;

/* Fill *out (zeroed first; left zeroed on failure, with the errors of
 * rc_store_recrypt_entries: RC_E_NOT_FOUND for an unknown epoch,
 * RC_E_CRYPTO for a service share that does not open). One scan of the
 * epoch's device rows (two: count, then fill), one member lookup per
 * member: linear in the number of devices. */
int rc_store_audience_get(rc_store_reader *rd, const rc_service_secret *svc /* may be NULL */,
                          const uint8_t list_id[RC_ID_BYTES], uint64_t epoch,
                          uint64_t enrolled_before, uint64_t unchanged_since,
                          rc_store_audience *out, rc_error *err);
void rc_store_audience_free(rc_store_audience *a); /* frees both arrays, zeroes *a; NULL-safe */

/* The milter's replay cache (sub-database "delivered": E -> first attempt
 * time and state, and its time index "delivered-at"; docs/STORE.md §3.8).
 * A milter is not told whether the MTA committed a message, so a post
 * handed to the MTA is only pending; it becomes delivered when the MTA
 * delivers the receipt recipient the milter added (rc_store_delivered_confirm,
 * run by recrypt-milter -r from the MTA's receipt transport). */
enum {
    RC_POST_NEW = 0,       /* not in the cache (or expired) */
    RC_POST_PENDING = 1,   /* handed to the MTA, no receipt yet */
    RC_POST_DELIVERED = 2, /* the MTA's receipt came */
};
/* Before a post is handed to the MTA. *state is what the cache held for E
 * (RC_POST_PENDING or RC_POST_DELIVERED while the post is still fresh,
 * that is until the later of its first attempt and its Date, plus
 * `window`); for RC_POST_NEW, E is now recorded as pending, first attempt
 * now, kept until max(now, date) + window (and up to 64 expired entries
 * are forgotten, oldest first). *first: the first attempt's time (now for
 * a new post). Nothing is written for a pending or delivered E. */
int rc_store_delivered_begin(rc_store *st, const uint8_t E[RC_POINT_BYTES], uint64_t now,
                             uint64_t date, uint64_t window, int *state, uint64_t *first,
                             rc_error *err);
/* The receipt: the pending E that starts with prefix (prefix_len bytes)
 * and for which match returns non-zero becomes delivered. *state is what
 * the cache held: RC_POST_PENDING (now delivered; E_out set),
 * RC_POST_DELIVERED (nothing to do; E_out set) or RC_POST_NEW (no such
 * post: pruned, forgotten, or never recorded). */
typedef int (*rc_store_post_match_fn)(void *ctx, const uint8_t E[RC_POINT_BYTES]);
int rc_store_delivered_confirm(rc_store *st, const uint8_t *prefix, size_t prefix_len,
                               rc_store_post_match_fn match, void *ctx,
                               uint8_t E_out[RC_POINT_BYTES], int *state, rc_error *err);
/* Drop E, a new post whose attempt failed before the MTA could commit it:
 * only if its row is still pending with this first attempt (`first`, as
 * rc_store_delivered_begin returned it), so that a concurrent attempt of
 * the same post that found it pending keeps it. Absent or not ours: 0,
 * nothing changed. Each of these needs a store opened read-write at the
 * current schema and runs its own write transaction. */
int rc_store_delivered_forget(rc_store *st, const uint8_t E[RC_POINT_BYTES], uint64_t first,
                              rc_error *err);

/* Split delivery (docs/STORE.md §3.10): the members whose copy of post E the MTA has queued.
 * Rows live as long as E's replay-cache row: pruning or forgetting E (or
 * recording an expired E anew) drops them in the same transaction. member
 * is canonicalised (RC_E_INVALID when it is no address). A reader of a
 * store older than schema 4 (opened without migrating) sees no copies. */
/* *sent = 1 if member's copy of E is recorded, else 0. */
int rc_store_copy_is_sent(rc_store_reader *rd, const uint8_t E[RC_POINT_BYTES], const char *member,
                          int *sent, rc_error *err);
/* Record the copies of E for these n members as queued at `now`, in one write transaction (all or
 * nothing). Members already recorded keep their row. Needs a read-write store at the current schema
 * (same rule as rc_store_delivered_begin), and E in the replay cache (RC_E_NOT_FOUND otherwise:
 * rows of a post the cache does not hold would never be pruned). n may be 0. */
int rc_store_copies_record(rc_store *st, const uint8_t E[RC_POINT_BYTES],
                           const char *const *members, size_t n, uint64_t now, rc_error *err);
/* How many copies of E are recorded. */
int rc_store_copies_count(rc_store_reader *rd, const uint8_t E[RC_POINT_BYTES], size_t *n,
                          rc_error *err);

/* The service signing seed of an epoch whose statement is of version 2
 * (FORMAT.md §8.1), unsealed with svc into seed (the caller's guarded
 * memory; wipe it). RC_E_NOT_FOUND when the epoch has none (a version 1
 * statement, or a store older than schema 5 opened without migrating);
 * RC_E_CRYPTO when it does not open with svc. */
int rc_store_service_seed(rc_store_reader *rd, const rc_service_secret *svc,
                          const uint8_t list_id[RC_ID_BYTES], uint64_t epoch,
                          uint8_t seed[RC_SVC_SEED_BYTES], rc_error *err);

/* The server's 32-byte secret for marking processed mail. */
int rc_store_mark_secret(rc_store_reader *rd, uint8_t out[32], rc_error *err);

#endif
