/*
 * store.c - the server's membership store on LMDB (see store.h and
 * docs/STORE.md for the layout; store_internal.h for its parts): the
 * environment. Creating a store, opening it (migrate.c brings an older
 * schema up to date), closing it, the table of its databases, and who may
 * write (writable: a read-write open at this build's schema).
 *
 * One environment, ten named databases, opened with MDB_NOTLS (a read
 * transaction may span calls and threads). An rc_store is its opener's
 * until rc_store_close. Nothing here prints or logs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "store_internal.h"

#define N_DBS 11
#define MAX_DBS 12 /* room for two more */

#define DATA_FILE "data.mdb"
#define LOCK_FILE "lock.mdb"
#define DATA_MODE 0640
/* Readers write their slot into the lock file's reader table, so the
 * service user (group) needs write access to it; it holds no data. */
#define LOCK_MODE 0660
#define DIR_MODE 0750

static const char *const db_names[N_DBS] = {"meta",         "lists",  "epochs",  "members",
                                            "devices",      "owners", "applied", "delivered",
                                            "delivered-at", "copies", "svckeys"};
/* The schema version that introduced each database. */
static const uint32_t db_since[N_DBS] = {1, 1, 1, 1, 1, 1, 1, 1, 2, 4, 5};

MDB_dbi *db_slot(rc_store *st, int i)
{
    MDB_dbi *slots[N_DBS] = {&st->meta,         &st->lists,  &st->epochs,  &st->members,
                             &st->devices,      &st->owners, &st->applied, &st->delivered,
                             &st->delivered_at, &st->copies, &st->svckeys};
    return slots[i];
}

/* ------------------------------------------------------- a truncated data.mdb
 *
 * LMDB maps data.mdb and reads its pages in place: a file shorter than its
 * own metadata says (a bad copy, a full disk during a restore, a damaged
 * file system) makes the first read of a missing page a SIGBUS, which
 * kills the process with no message. So the file is checked against its
 * meta pages before it is mapped (data_file_intact), and against the open
 * environment's last page before every transaction (store_intact).
 *
 * The two meta pages (LMDB 0.9, 64-bit; docs/STORE.md section 1): page 0
 * at offset 0 and page 1 at offset psize, each a 16-byte page header then
 * the meta: u32 magic 0xBEEFC0DE, u32 version 1, the map address and size
 * (8 + 8), the free-list database record (48 bytes, whose first u32 is
 * the page size) and the main one (48), u64 last page, u64 txnid, all in
 * host byte order. The meta with the larger txnid is the current one. */
#define LMDB_MAGIC 0xBEEFC0DEu
#define META_AT 16
#define META_PSIZE 24
#define META_LAST_PG 120
#define META_TXNID 128

static int truncated(rc_error *err, const char *dir, unsigned long long have,
                   unsigned long long need)
{
    return rc_error_set(err, RC_E_DAMAGED,
                        "the store%s%s is damaged: data.mdb holds %llu bytes but its last "
                        "transaction uses %llu; restore it from a backup made with mdb_copy "
                        "(admin guide, section 14)",
                        dir[0] ? " in " : "", dir, have, need);
}

static int data_file_intact(const char *path, const char *dir, rc_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0; /* mdb_env_open says why */
    struct stat sb;
    uint8_t page[META_AT + META_TXNID + 8];
    uint32_t psize = 0;
    uint64_t best_txn = 0, need = 0;
    int found = 0;
    if (fstat(fd, &sb) == 0 && pread(fd, page, sizeof page, 0) == (ssize_t)sizeof page)
        memcpy(&psize, page + META_AT + META_PSIZE, 4);
    for (int i = 0; psize >= 512 && psize <= 65536 && !(psize & (psize - 1)) && i < 2; i++) {
        uint32_t magic, version;
        uint64_t last, txnid;
        if (pread(fd, page, sizeof page, (off_t)i * psize) != (ssize_t)sizeof page)
            break;
        memcpy(&magic, page + META_AT, 4);
        memcpy(&version, page + META_AT + 4, 4);
        memcpy(&last, page + META_AT + META_LAST_PG, 8);
        memcpy(&txnid, page + META_AT + META_TXNID, 8);
        if (magic != LMDB_MAGIC || version != 1 || last > (uint64_t)1 << 40)
            continue;
        if (!found || txnid > best_txn) {
            best_txn = txnid;
            need = (last + 1) * psize;
            found = 1;
        }
    }
    close(fd);
    /* Not a store LMDB can read at all: mdb_env_open refuses it (MDB_INVALID)
     * without mapping it. */
    if (!found)
        return 0;
    if ((uint64_t)sb.st_size < need)
        return truncated(err, dir, (unsigned long long)sb.st_size, (unsigned long long)need);
    return 0;
}

int store_intact(const rc_store *st, rc_error *err)
{
    MDB_envinfo info;
    MDB_stat ms;
    mdb_filehandle_t fd;
    struct stat sb;
    if (mdb_env_info(st->env, &info) || mdb_env_stat(st->env, &ms) ||
        mdb_env_get_fd(st->env, &fd) || fstat(fd, &sb) != 0)
        return rc_error_set(err, RC_E_IO, "cannot check the store's data file: %s",
                            strerror(errno));
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    if ((uint64_t)sb.st_size < need)
        return truncated(err, "", (unsigned long long)sb.st_size, (unsigned long long)need);
    return 0;
}

/* Writers need a read-write open of a store at this build's schema. */
int writable(const rc_store *st, rc_error *err)
{
    int rc = store_intact(st, err);
    if (rc)
        return rc;
    if (st->readonly)
        return rc_error_set(err, RC_E_INVALID, "the store is open read-only");
    if (st->schema != RC_STORE_SCHEMA_VERSION)
        return rc_error_set(err, RC_E_VERSION,
                            "store schema version %u is not migrated to %u yet: open it for "
                            "writing without RC_STORE_NO_MIGRATE",
                            st->schema, RC_STORE_SCHEMA_VERSION);
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
    if ((rc = data_file_intact(data, dir, err)) != 0)
        return rc;
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
