/*
 * recryptctl - the list owner's tool and the server's store manager.
 *
 * Owner side (on the owner's machine, keystore $RECRYPT_HOME): owner key,
 * lists, members, devices, rotation; each command writes a signed request
 * (armored text) to stdout or --out FILE, or applies it to a local store
 * with --apply DIR when owner and server are one machine.
 * Server side: server init, apply (verify and apply requests; the only
 * writer of the store), show (no secrets).
 */
#include <errno.h>
#include <stdarg.h>
#include <pwd.h>
#include <sys/stat.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include "bytes.h"
#include "owner.h"
#include "store.h"

static const char *progname = "recryptctl";

#define MAX_DEVICE_ARGS 64
#define DEFAULT_GRACE_DAYS 7

/* How long the requests this run makes stay valid (--expires DAYS). */
static uint64_t request_lifetime = RC_REQUEST_DEFAULT_LIFETIME;

typedef struct {
    const char *home, *db, *out, *service_key, *bounce, *apply_db, *key_file, *privilege;
    const char *secrets_out, *user;
    const char *devices[MAX_DEVICE_ARGS];
    size_t n_devices;
    long grace_days; /* -1: the command's default */
    long valid_days; /* 0: no expiry */
    size_t map_size;
    int protect;
} ctl_opts;

static void usage(FILE *f)
{
    fprintf(f,
"Usage: recryptctl [OPTIONS] COMMAND ...\n"
"\n"
"Manage end-to-end encrypted mailing lists. The list owner runs the owner\n"
"commands on their own machine (the list's private key never leaves it);\n"
"each writes a signed request that the mail server applies with\n"
"'recryptctl apply'. The server never learns a key that decrypts mail.\n"
"\n"
"Owner commands (keystore: --home DIR, $RECRYPT_HOME, ~/.local/share/recrypt):\n"
"  init                                  create this owner's signing key; prints\n"
"                                        the owner's public key line\n"
"  whoami                                print the owner's public key line\n"
"  list create LIST --service-key KEY    create a list served by the service\n"
"        [--bounce ADDR] [--valid-days N] [--protect]\n"
"                                        (--protect locks the list secrets with a\n"
"                                        passphrase: $RECRYPT_PASSPHRASE_FILE or the\n"
"                                        terminal)\n"
"  list key LIST                         print the signed list key for senders\n"
"  list rotate LIST [--grace DAYS]       new list key (epoch), entries for every\n"
"                                        continuing device; the old key stays\n"
"                                        usable for DAYS (default 7)\n"
"  member add LIST ADDRESS --device KEY [--device KEY ...]\n"
"                                        (prints the list signing key's\n"
"                                        fingerprint and the 'recrypt list pin'\n"
"                                        line for the member)\n"
"  member device-add LIST ADDRESS --device KEY [...]\n"
"  member suspend LIST ADDRESS           stop delivering to the member at once\n"
"  member reinstate LIST ADDRESS         fresh entries for the member's devices\n"
"  member revoke LIST ADDRESS [--grace DAYS]\n"
"                                        remove the member and rotate the list key\n"
"                                        (no grace by default)\n"
"  member remove-device LIST ADDRESS FINGERPRINT\n"
"                                        drop one device (a lost phone) and rotate\n"
"                                        the list key with no grace\n"
"  member show LIST                      members, their status and each device's\n"
"                                        fingerprint (from this keystore)\n"
"  owner add LIST OWNERKEY --privilege admin|super\n"
"        [--secrets-out FILE]            (the list secrets sealed to that owner)\n"
"  owner set-privilege LIST OWNERKEY admin|super\n"
"  owner remove LIST OWNERKEY            (both need SUPER; the last SUPER owner\n"
"                                        stays)\n"
"  list import FILE                      take over list secrets sealed to you\n"
"Request output: stdout, or --out FILE; --apply DIR applies it to the store\n"
"in DIR directly (owner and server on one machine). A request expires after\n"
"--expires DAYS (default 7, at most 90): the server refuses it afterwards.\n"
"\n"
"Server commands:\n"
"  server init --db DIR [--map-size MiB] [--user USER]\n"
"                                        create the store and the service key\n"
"                                        (DIR/service.key, 0600), owned by USER\n"
"                                        (the milter's user); prints the\n"
"                                        service's public key line for owners\n"
"  apply --db DIR [--key FILE] [FILE ...|-]\n"
"                                        verify and apply requests, each in one\n"
"                                        transaction; stops at the first refusal\n"
"  show --db DIR [LIST]                  lists, epochs, members, devices, owners\n"
"\n"
"Exit status: 0 success, 64 usage, 65 malformed request or key, 66 no such\n"
"list or member, 74 I/O error, 77 refused (signature, privilege, replay,\n"
"expired).\n"
"See recryptctl(1) and docs/owner-guide.md.\n");
}

static int exit_code(int rc)
{
    switch (rc) {
    case RC_OK: return EX_OK;
    case RC_E_INVALID: return EX_USAGE;
    case RC_E_FORMAT:
    case RC_E_VERSION:
    case RC_E_CRYPTO:
    case RC_E_AUTH: return EX_DATAERR;
    case RC_E_NOT_FOUND: return EX_NOINPUT;
    case RC_E_SIGNATURE:
    case RC_E_POLICY:
    case RC_E_PERMISSION:
    case RC_E_EXISTS: return EX_NOPERM;
    case RC_E_IO: return EX_IOERR;
    case RC_E_DAMAGED: return EX_CONFIG;
    default: return EX_SOFTWARE;
    }
}

static int fail(const rc_error *err)
{
    fprintf(stderr, "%s: %s\n", progname, err->msg[0] ? err->msg : rc_strerror(err->code));
    return exit_code(err->code);
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "%s: %s (see 'recryptctl --help')\n", progname, msg);
    return EX_USAGE;
}

/* ---- output of requests ---- */

static int file_sink(void *ctx, const uint8_t *p, size_t n)
{
    return fwrite(p, 1, n, (FILE *)ctx) == n ? 0 : -1;
}

static int load_service_secret(const char *db, const char *key_file, rc_service_secret *svc,
                               rc_error *err)
{
    char path[PATH_MAX], *s = rc_secret_alloc(RC_KEYSTR_MAX);
    if (!s)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    if (key_file)
        snprintf(path, sizeof path, "%s", key_file);
    else
        snprintf(path, sizeof path, "%s/%s", db, RC_STORE_SERVICE_KEY_FILE);
    int rc = rc_keyfile_read(path, s, RC_KEYSTR_MAX, err);
    if (rc == 0)
        rc = rc_service_secret_decode(svc, s, err);
    rc_secret_free(s);
    return rc;
}

static void describe(const rc_request *req, char *out, size_t outlen)
{
    switch (req->type) {
    case RC_REQ_CREATE_GROUP:
    case RC_REQ_UPDATE_GROUP:
        snprintf(out, outlen, "%s %s epoch %llu, %zu device entr%s",
                 rc_request_type_name(req->type), req->list,
                 (unsigned long long)req->statement.epoch, req->n_devices,
                 req->n_devices == 1 ? "y" : "ies");
        break;
    case RC_REQ_ADD_MEMBER:
    case RC_REQ_UPDATE_MEMBER:
        snprintf(out, outlen, "%s %s %s%s%s, %zu device entr%s", rc_request_type_name(req->type),
                 req->list, req->member, req->type == RC_REQ_UPDATE_MEMBER ? " -> " : "",
                 req->type == RC_REQ_UPDATE_MEMBER ? rc_status_name(req->status) : "",
                 req->n_devices, req->n_devices == 1 ? "y" : "ies");
        break;
    case RC_REQ_UPDATE_OWNER:
    case RC_REQ_REMOVE_OWNER: {
        char fp[RC_UDF_MAX];
        rc_key_fingerprint(fp, sizeof fp, RC_KT_OWNER, req->owner.sign_pk, 32, NULL);
        snprintf(out, outlen, "%s %s owner %s%s%s", rc_request_type_name(req->type), req->list,
                 fp, req->type == RC_REQ_UPDATE_OWNER ? " -> " : "",
                 req->type == RC_REQ_UPDATE_OWNER ? rc_privilege_name(req->privilege) : "");
        break;
    }
    default:
        snprintf(out, outlen, "%s %s (%s)", rc_request_type_name(req->type), req->list,
                 rc_privilege_name(req->privilege));
    }
}

/* Apply decoded requests to a store, in order, stopping at the first refusal. */
static int apply_requests(const char *db, const char *key_file, size_t map_size,
                          rc_request *reqs, size_t n, rc_error *err)
{
    rc_store *st = NULL;
    rc_service_secret *svc = rc_secret_alloc(sizeof *svc);
    int rc = svc ? load_service_secret(db, key_file, svc, err)
                 : rc_error_set(err, RC_E_NOMEM, "out of memory");
    if (rc == 0)
        rc = rc_store_open(&st, db, map_size, 0, err);
    if (rc == 0 && rc_store_found_schema(st) < RC_STORE_SCHEMA_VERSION)
        fprintf(stderr, "%s: store %s migrated from schema %u to %u\n", progname, db,
                rc_store_found_schema(st), RC_STORE_SCHEMA_VERSION);
    uint64_t now = (uint64_t)time(NULL);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char what[RC_ADDR_MAX * 2 + 128];
        describe(&reqs[i], what, sizeof what);
        rc = rc_store_apply(st, svc, &reqs[i], now, err);
        if (rc == RC_E_INVALID) /* a request the store cannot take is malformed, not a usage error */
            rc = err->code = RC_E_FORMAT;
        if (rc == 0)
            fprintf(stderr, "%s: applied: %s\n", progname, what);
        else {
            char msg[RC_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", err->msg);
            rc_error_set(err, rc, "refused: %s: %s (store unchanged by this request)", what, msg);
        }
    }
    rc_store_close(st);
    rc_secret_free(svc);
    return rc;
}

/* Write requests (armored) to --out/stdout, or apply them with --apply. */
static int emit(const ctl_opts *o, rc_request *reqs, size_t n, rc_error *err)
{
    if (o->apply_db)
        return apply_requests(o->apply_db, o->key_file, o->map_size, reqs, n, err);
    FILE *f = stdout;
    if (o->out && !(f = fopen(o->out, "w")))
        return rc_error_set(err, RC_E_IO, "cannot write %s: %s", o->out, strerror(errno));
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = rc_request_armor(&reqs[i], file_sink, f, err);
    if ((f == stdout ? fflush(f) : fclose(f)) != 0 && rc == 0)
        rc = rc_error_set(err, RC_E_IO, "cannot write the request");
    return rc;
}

static int read_all(const char *path, char **out, size_t *len, rc_error *err);

/* ---- owner side ---- */

typedef struct {
    owner_ks ks;
    rc_owner_secret *owner;
    rc_list_secret *ls;
    rc_service_public svc;
    char list[RC_ADDR_MAX + 1];
    uint64_t epoch;
} owner_ctx;

static void owner_ctx_free(owner_ctx *c)
{
    rc_secret_free(c->owner);
    rc_secret_free(c->ls);
}

/* Load what every request about an existing list needs. */
static int owner_ctx_load(owner_ctx *c, const ctl_opts *o, const char *list, rc_error *err)
{
    memset(c, 0, sizeof *c);
    c->owner = rc_secret_alloc(sizeof *c->owner);
    c->ls = rc_secret_alloc(sizeof *c->ls);
    if (!c->owner || !c->ls)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    int rc;
    if ((rc = rc_address_canonical(c->list, list, err)) || (rc = owner_ks_open(&c->ks, o->home, err)) ||
        (rc = owner_key_load(&c->ks, c->owner, err)) ||
        (rc = owner_service_load(&c->ks, c->list, &c->svc, err)) ||
        (rc = owner_current_epoch(&c->ks, c->list, &c->epoch, err)) ||
        (rc = owner_secret_load(&c->ks, c->list, c->epoch, c->ls, err)))
        return rc;
    return 0;
}

static int request_start(rc_request *req, owner_ctx *c, uint8_t type, rc_error *err)
{
    memset(req, 0, sizeof *req);
    req->version = RC_REQUEST_VERSION;
    req->type = type;
    memcpy(req->service_pk, c->svc.pk, 32);
    snprintf(req->list, sizeof req->list, "%s", c->list);
    req->created_at = (uint64_t)time(NULL);
    req->not_after = req->created_at + request_lifetime;
    return owner_next_counter(&c->ks, c->list, &req->counter, err);
}

static int cmd_init(const ctl_opts *o)
{
    rc_error err;
    owner_ks ks;
    char line[RC_KEYSTR_MAX], fp[RC_UDF_MAX];
    rc_owner_secret *owner = rc_secret_alloc(sizeof *owner);
    int rc = owner ? owner_ks_open(&ks, o->home, &err) : rc_error_set(&err, RC_E_NOMEM, "oom");
    if (rc == 0 && (rc = owner_key_create(&ks, owner, &err)) == 0 &&
        (rc = rc_owner_public_encode(line, sizeof line, &owner->pub, &err)) == 0) {
        rc_key_fingerprint(fp, sizeof fp, RC_KT_OWNER, owner->pub.sign_pk, 32, NULL);
        printf("%s\n", line);
        fprintf(stderr, "%s: owner key created in %s (fingerprint %s)\n", progname, ks.dir, fp);
    }
    rc_secret_free(owner);
    return rc ? fail(&err) : 0;
}

static int cmd_whoami(const ctl_opts *o)
{
    rc_error err;
    owner_ks ks;
    char line[RC_KEYSTR_MAX];
    rc_owner_secret *owner = rc_secret_alloc(sizeof *owner);
    int rc = owner ? owner_ks_open(&ks, o->home, &err) : rc_error_set(&err, RC_E_NOMEM, "oom");
    if (rc == 0 && (rc = owner_key_load(&ks, owner, &err)) == 0 &&
        (rc = rc_owner_public_encode(line, sizeof line, &owner->pub, &err)) == 0)
        printf("%s\n", line);
    rc_secret_free(owner);
    return rc ? fail(&err) : 0;
}

/* The statement of c->ls's epoch (version 2, FORMAT.md §4) for req: a
 * fresh service signing seed of this epoch goes sealed to the service
 * (req->sealed_svc_seed); its public key and the revoked device keys go
 * into the statement. */
static int sign_statement(owner_ctx *c, const ctl_opts *o, rc_request *req,
                          const uint8_t (*revoked)[RC_SIGN_PK_BYTES], size_t n_revoked,
                          rc_error *err)
{
    uint64_t now = (uint64_t)time(NULL);
    uint8_t *seed = rc_secret_alloc(RC_SVC_SEED_BYTES), svc_pk[RC_SIGN_PK_BYTES];
    if (!seed)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    randombytes_buf(seed, RC_SVC_SEED_BYTES);
    rc_svc_public(svc_pk, seed);
    int rc = rc_svc_seed_seal(req->sealed_svc_seed, seed, c->svc.pk, err);
    rc_secret_free(seed);
    /* Valid from an hour ago, so that posts from slightly slow clocks pass. */
    if (rc == 0)
        rc = rc_statement_sign_v2(&req->statement, c->ls, now - 3600,
                                  o->valid_days > 0 ? now + (uint64_t)o->valid_days * 86400 : 0,
                                  svc_pk, revoked, n_revoked, err);
    return rc ? rc : owner_statement_save(&c->ks, &req->statement, err);
}

static int cmd_list_create(const ctl_opts *o, const char *list)
{
    rc_error err;
    owner_ctx c;
    rc_request req;
    int rc;
    memset(&c, 0, sizeof c);
    memset(&req, 0, sizeof req);
    c.owner = rc_secret_alloc(sizeof *c.owner);
    c.ls = rc_secret_alloc(sizeof *c.ls);
    if (!o->service_key) {
        owner_ctx_free(&c);
        return usage_error("list create needs --service-key KEY (from 'recryptctl server init')");
    }
    if (!c.owner || !c.ls)
        rc = rc_error_set(&err, RC_E_NOMEM, "out of memory");
    else if ((rc = rc_address_canonical(c.list, list, &err)) == 0 &&
             (rc = owner_ks_open(&c.ks, o->home, &err)) == 0 &&
             (rc = owner_key_load(&c.ks, c.owner, &err)) == 0 &&
             (rc = rc_service_public_decode(&c.svc, o->service_key, &err)) == 0) {
        if (owner_list_exists(&c.ks, c.list))
            rc = rc_error_set(&err, RC_E_EXISTS, "this keystore already manages %s", c.list);
    }
    if (rc == 0 && o->bounce) {
        char canon[RC_ADDR_MAX + 1];
        if ((rc = rc_address_canonical(canon, o->bounce, &err)) == 0)
            snprintf(req.bounce, sizeof req.bounce, "%s", canon);
    }
    if (rc == 0 && (rc = owner_list_prepare(&c.ks, c.list, &err)) == 0 &&
        (rc = rc_list_generate(c.ls, c.list, 1, NULL, &err)) == 0 &&
        (!o->protect || (rc = owner_set_protected(&c.ks, c.list, &err)) == 0) &&
        (rc = owner_secret_save(&c.ks, c.ls, o->protect, &err)) == 0 &&
        (rc = owner_service_save(&c.ks, c.list, &c.svc, &err)) == 0 &&
        (rc = owner_set_current_epoch(&c.ks, c.list, 1, &err)) == 0) {
        char bounce[RC_ADDR_MAX + 1];
        snprintf(bounce, sizeof bounce, "%s", req.bounce);
        if ((rc = request_start(&req, &c, RC_REQ_CREATE_GROUP, &err)) == 0 &&
            (rc = sign_statement(&c, o, &req, NULL, 0, &err)) == 0) {
            snprintf(req.bounce, sizeof req.bounce, "%s", bounce);
            req.owner = c.owner->pub;
            if ((rc = rc_request_sign(&req, c.owner, &err)) == 0)
                rc = emit(o, &req, 1, &err);
        }
    }
    if (rc == 0) {
        char fp[RC_UDF_MAX];
        rc_key_fingerprint(fp, sizeof fp, "list-signer", c.ls->sign_pk, 32, NULL);
        fprintf(stderr, "%s: list %s created (epoch 1); list signing key %s\n", progname, c.list,
                fp);
    }
    rc_request_free(&req);
    owner_ctx_free(&c);
    return rc ? fail(&err) : 0;
}

static int cmd_list_key(const ctl_opts *o, const char *list)
{
    rc_error err;
    owner_ks ks;
    rc_statement st;
    char canon[RC_ADDR_MAX + 1], line[RC_KEYSTR_MAX];
    uint64_t epoch;
    int rc;
    if ((rc = rc_address_canonical(canon, list, &err)) ||
        (rc = owner_ks_open(&ks, o->home, &err)) ||
        (rc = owner_current_epoch(&ks, canon, &epoch, &err)) ||
        (rc = owner_statement_load(&ks, canon, epoch, &st, line, sizeof line, &err)))
        return fail(&err);
    char fp[RC_UDF_MAX];
    rc_key_fingerprint(fp, sizeof fp, "list-signer", st.signer_pk, 32, NULL);
    printf("%s\n", line);
    fprintf(stderr, "%s: %s epoch %llu, signed by %s\n", progname, canon,
            (unsigned long long)epoch, fp);
    fprintf(stderr, "%s: a member pins it with: recrypt list pin %s %s\n", progname, canon, fp);
    return 0;
}

/* Entries for the given devices of `member` under list secret ls. */
static int add_entries(rc_request *req, owner_ctx *c, const rc_list_secret *ls,
                       const char *member, const rc_device_public *devs, size_t n, rc_error *err)
{
    uint64_t now = (uint64_t)time(NULL);
    for (size_t i = 0; i < n; i++) {
        rc_req_device d;
        int rc = rc_req_device_make(&d, ls, &devs[i], member, now, &c->svc, err);
        if (rc == 0)
            rc = rc_request_add_device(req, &d, err);
        sodium_memzero(&d, sizeof d);
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_devices(const ctl_opts *o, rc_device_public *devs, rc_error *err)
{
    if (o->n_devices == 0)
        return rc_error_set(err, RC_E_INVALID, "give at least one --device KEY (the line "
                                               "'recrypt keygen' printed)");
    for (size_t i = 0; i < o->n_devices; i++) {
        int rc = rc_device_public_decode(&devs[i], o->devices[i], err);
        if (rc) {
            char msg[RC_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", err->msg);
            return rc_error_set(err, rc, "--device %zu: %s", i + 1, msg);
        }
    }
    return 0;
}

static roster_entry *roster_find(roster *r, const char *member)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->e[i].member, member) == 0)
            return &r->e[i];
    return NULL;
}

/* member add / device-add */
static int cmd_member_devices(const ctl_opts *o, const char *list, const char *member,
                              int is_add)
{
    rc_error err;
    owner_ctx c;
    rc_request req;
    roster ro = {0};
    rc_device_public devs[MAX_DEVICE_ARGS];
    char addr[RC_ADDR_MAX + 1];
    memset(&req, 0, sizeof req);
    int rc = owner_ctx_load(&c, o, list, &err);
    if (rc == 0)
        rc = rc_address_canonical(addr, member, &err);
    if (rc == 0)
        rc = parse_devices(o, devs, &err);
    if (rc == 0)
        rc = roster_load(&c.ks, c.list, &ro, &err);
    if (rc == 0) {
        roster_entry *e = roster_find(&ro, addr);
        if (is_add && e)
            rc = rc_error_set(&err, RC_E_EXISTS, "%s is already a member of %s", addr, c.list);
        else if (!is_add && !e)
            rc = rc_error_set(&err, RC_E_NOT_FOUND, "%s is not a member of %s", addr, c.list);
        else if (!is_add && e->status != RC_STATUS_ACTIVE)
            rc = rc_error_set(&err, RC_E_POLICY, "%s is %s: reinstate the member first", addr,
                              rc_status_name(e->status));
    }
    if (rc == 0 && (rc = request_start(&req, &c, is_add ? RC_REQ_ADD_MEMBER : RC_REQ_UPDATE_MEMBER,
                                       &err)) == 0) {
        snprintf(req.member, sizeof req.member, "%s", addr);
        req.privilege = RC_PRIV_RECRYPT;
        req.status = RC_STATUS_ACTIVE;
        if ((rc = add_entries(&req, &c, c.ls, addr, devs, o->n_devices, &err)) == 0 &&
            (rc = rc_request_sign(&req, c.owner, &err)) == 0 &&
            (rc = emit(o, &req, 1, &err)) == 0) {
            for (size_t i = 0; rc == 0 && i < o->n_devices; i++)
                if ((rc = roster_add(&ro, addr, RC_STATUS_ACTIVE, &devs[i], &err)) == 0)
                    ro.e[ro.n - 1].enrolled_at = req.devices[i].enrolled_at;
            if (rc == 0)
                rc = roster_save(&c.ks, c.list, &ro, &err);
        }
    }
    if (rc == 0) {
        /* The enrolment hands the member the list's signing fingerprint:
         * a device pins it explicitly, never from the first mail. */
        char fp[RC_UDF_MAX];
        rc_key_fingerprint(fp, sizeof fp, "list-signer", c.ls->sign_pk, 32, NULL);
        fprintf(stderr, "%s: %s enrolled in %s; list signing key %s\n", progname, addr, c.list,
                fp);
        fprintf(stderr, "%s: give %s this line to run on each new device:\n", progname, addr);
        fprintf(stderr, "recrypt list pin %s %s\n", c.list, fp);
    }
    rc_request_free(&req);
    roster_free(&ro);
    owner_ctx_free(&c);
    return rc ? fail(&err) : 0;
}

/* A rotation request: new epoch, entries for every continuing device; its
 * statement revokes the n_revoked device keys given (their certificates of
 * earlier epochs stop counting for posts dated from the new epoch on). */
static int build_rotation(rc_request *req, owner_ctx *c, const ctl_opts *o, roster *ro,
                          uint64_t grace_days, const uint8_t (*revoked)[RC_SIGN_PK_BYTES],
                          size_t n_revoked, rc_error *err)
{
    rc_list_secret *next = rc_secret_alloc(sizeof *next);
    int rc = next ? rc_list_generate(next, c->list, c->epoch + 1, c->ls->sign_sk, err)
                  : rc_error_set(err, RC_E_NOMEM, "out of memory");
    if (rc == 0)
        rc = request_start(req, c, RC_REQ_UPDATE_GROUP, err);
    uint64_t now = (uint64_t)time(NULL);
    /* The new revocations, then those of the current statement carried
     * forward (a reader that skips an epoch still learns them), at most
     * RC_STATEMENT_MAX_REVOKED, newest first. */
    static uint8_t all[RC_STATEMENT_MAX_REVOKED][RC_SIGN_PK_BYTES];
    size_t n_all = 0;
    rc_statement *cur = rc == 0 ? malloc(sizeof *cur) : NULL;
    char line[RC_KEYSTR_MAX];
    if (rc == 0 && n_revoked > RC_STATEMENT_MAX_REVOKED)
        rc = rc_error_set(err, RC_E_INVALID, "a rotation revokes at most %d device keys",
                          RC_STATEMENT_MAX_REVOKED);
    for (size_t i = 0; rc == 0 && i < n_revoked; i++)
        memcpy(all[n_all++], revoked[i], RC_SIGN_PK_BYTES);
    if (rc == 0 && cur && owner_statement_load(&c->ks, c->list, c->epoch, cur, line, sizeof line,
                                               NULL) == 0)
        for (size_t i = 0; i < cur->n_revoked && n_all < RC_STATEMENT_MAX_REVOKED; i++) {
            size_t j = 0;
            while (j < n_all && memcmp(all[j], cur->revoked[i], RC_SIGN_PK_BYTES) != 0)
                j++;
            if (j == n_all)
                memcpy(all[n_all++], cur->revoked[i], RC_SIGN_PK_BYTES);
        }
    free(cur);
    if (rc == 0) {
        rc_list_secret *prev = c->ls;
        c->ls = next; /* sign the statement with the new epoch's key */
        rc = sign_statement(c, o, req, (const uint8_t(*)[RC_SIGN_PK_BYTES])all, n_all, err);
        c->ls = prev;
        req->grace_until = grace_days ? now + grace_days * 86400 : 0;
    }
    /* Entries for active members only: a suspended member gets fresh ones
     * when reinstated, and must not learn the new key meanwhile. */
    for (size_t i = 0; rc == 0 && i < ro->n; i++)
        if (ro->e[i].status == RC_STATUS_ACTIVE)
            rc = add_entries(req, c, next, ro->e[i].member, &ro->e[i].device, 1, err);
    if (rc == 0)
        rc = rc_request_sign(req, c->owner, err);
    /* The new secret is saved only once the request exists. */
    if (rc == 0 && (rc = owner_secret_save(&c->ks, next, owner_is_protected(&c->ks, c->list),
                                           err)) == 0)
        rc = owner_set_current_epoch(&c->ks, c->list, next->epoch, err);
    rc_secret_free(next);
    return rc;
}

static int cmd_member_status(const ctl_opts *o, const char *list, const char *member,
                             uint8_t status)
{
    rc_error err;
    owner_ctx c;
    rc_request reqs[2];
    size_t n = 0;
    roster ro = {0};
    char addr[RC_ADDR_MAX + 1];
    memset(reqs, 0, sizeof reqs);
    int rc = owner_ctx_load(&c, o, list, &err);
    if (rc == 0)
        rc = rc_address_canonical(addr, member, &err);
    if (rc == 0)
        rc = roster_load(&c.ks, c.list, &ro, &err);
    rc_device_public devs[MAX_DEVICE_ARGS];
    size_t nd = 0;
    for (size_t i = 0; rc == 0 && i < ro.n; i++)
        if (strcmp(ro.e[i].member, addr) == 0 && nd < MAX_DEVICE_ARGS)
            devs[nd++] = ro.e[i].device;
    if (rc == 0 && nd == 0)
        rc = rc_error_set(&err, RC_E_NOT_FOUND, "%s is not a member of %s", addr, c.list);
    if (rc == 0 && (rc = request_start(&reqs[0], &c, RC_REQ_UPDATE_MEMBER, &err)) == 0) {
        snprintf(reqs[0].member, sizeof reqs[0].member, "%s", addr);
        reqs[0].status = status;
        if (status == RC_STATUS_ACTIVE) { /* reinstate: fresh entries, new enrolment time */
            reqs[0].flags = RC_UPDATE_REPLACE_DEVICES;
            rc = add_entries(&reqs[0], &c, c.ls, addr, devs, nd, &err);
        }
        if (rc == 0)
            rc = rc_request_sign(&reqs[0], c.owner, &err);
        n = 1;
    }
    for (size_t i = 0; rc == 0 && i < ro.n; i++)
        if (strcmp(ro.e[i].member, addr) == 0) {
            ro.e[i].status = status;
            if (status == RC_STATUS_ACTIVE && reqs[0].n_devices)
                ro.e[i].enrolled_at = reqs[0].devices[0].enrolled_at;
        }
    /* Revocation rotates the list key: the service and the revoked member
     * together know the old one. */
    if (rc == 0 && status == RC_STATUS_REVOKED) {
        uint8_t revoked[MAX_DEVICE_ARGS][RC_SIGN_PK_BYTES];
        size_t nr = 0;
        for (size_t i = 0; i < nd && nr < RC_STATEMENT_MAX_REVOKED; i++)
            memcpy(revoked[nr++], devs[i].sign_pk, RC_SIGN_PK_BYTES);
        rc = build_rotation(&reqs[1], &c, o, &ro, o->grace_days > 0 ? (uint64_t)o->grace_days : 0,
                            (const uint8_t(*)[RC_SIGN_PK_BYTES])revoked, nr, &err);
        n = 2;
    }
    if (rc == 0 && (rc = emit(o, reqs, n, &err)) == 0)
        rc = roster_save(&c.ks, c.list, &ro, &err);
    if (rc == 0 && status == RC_STATUS_REVOKED)
        fprintf(stderr, "%s: %s revoked; the list key rotated to epoch %llu: publish it "
                        "('recryptctl list key %s')\n",
                progname, addr, (unsigned long long)reqs[1].statement.epoch, c.list);
    for (size_t i = 0; i < 2; i++)
        rc_request_free(&reqs[i]);
    roster_free(&ro);
    owner_ctx_free(&c);
    return rc ? fail(&err) : 0;
}


/* A fingerprint as typed: upper case, without dashes and white space. */
static void fp_normalize(char *out, size_t cap, const char *in)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++)
        if (*in != '-' && *in != ' ' && *in != '\t')
            out[n++] = (char)(*in >= 'a' && *in <= 'z' ? *in - 'a' + 'A' : *in);
    out[n] = '\0';
}

/* member show: the owner's view of the list, from this keystore. */
static int cmd_member_show(const ctl_opts *o, const char *list)
{
    rc_error err;
    owner_ks ks;
    roster ro = {0};
    char canon[RC_ADDR_MAX + 1];
    uint64_t epoch = 0;
    int rc;
    if ((rc = rc_address_canonical(canon, list, &err)) ||
        (rc = owner_ks_open(&ks, o->home, &err)) ||
        (rc = owner_current_epoch(&ks, canon, &epoch, &err)) ||
        (rc = roster_load(&ks, canon, &ro, &err)))
        return fail(&err);
    printf("list %s epoch %llu (this owner's keystore)\n", canon, (unsigned long long)epoch);
    for (size_t i = 0; i < ro.n; i++) {
        int first = 1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(ro.e[j].member, ro.e[i].member) == 0)
                first = 0;
        if (!first)
            continue;
        printf("member %s %s\n", ro.e[i].member, rc_status_name(ro.e[i].status));
        for (size_t j = i; j < ro.n; j++) {
            if (strcmp(ro.e[j].member, ro.e[i].member) != 0)
                continue;
            char fp[RC_UDF_MAX], when[32];
            rc_key_fingerprint(fp, sizeof fp, RC_FP_DEVICE_SIGNER, ro.e[j].device.sign_pk, 32,
                               NULL);
            if (ro.e[j].enrolled_at)
                printf("  device %s enrolled %s\n", fp,
                       rc_iso_utc(when, sizeof when, ro.e[j].enrolled_at));
            else
                printf("  device %s\n", fp);
        }
    }
    if (ro.n == 0)
        printf("(no members)\n");
    roster_free(&ro);
    return 0;
}

/* member remove-device: drop one device of a member from the roster and
 * rotate with no grace, so that the device reads nothing posted after. */
static int cmd_member_remove_device(const ctl_opts *o, const char *list, const char *member,
                                    const char *fingerprint)
{
    rc_error err;
    owner_ctx c;
    rc_request req;
    roster ro = {0};
    char addr[RC_ADDR_MAX + 1], want[RC_UDF_MAX * 2], removed[RC_UDF_MAX] = "";
    memset(&req, 0, sizeof req);
    if (o->grace_days > 0)
        return usage_error("member remove-device rotates with no grace; --grace is not allowed");
    fp_normalize(want, sizeof want, fingerprint);
    if (!want[0])
        return usage_error("give the device's fingerprint ('recrypt pubkey' prints it), or a "
                           "prefix of it that names one device");
    int rc = owner_ctx_load(&c, o, list, &err);
    if (rc == 0)
        rc = rc_address_canonical(addr, member, &err);
    if (rc == 0)
        rc = roster_load(&c.ks, c.list, &ro, &err);
    size_t n_dev = 0, n_match = 0, hit = 0;
    uint8_t status = 0;
    char others[512] = "", matches[512] = "";
    for (size_t i = 0; rc == 0 && i < ro.n; i++) {
        if (strcmp(ro.e[i].member, addr) != 0)
            continue;
        char fp[RC_UDF_MAX], norm[RC_UDF_MAX];
        rc_key_fingerprint(fp, sizeof fp, RC_FP_DEVICE_SIGNER, ro.e[i].device.sign_pk, 32, NULL);
        fp_normalize(norm, sizeof norm, fp);
        status = ro.e[i].status;
        n_dev++;
        size_t ol = strlen(others);
        snprintf(others + ol, sizeof others - ol, "%s%s", ol ? ", " : "", fp);
        if (strncmp(norm, want, strlen(want)) == 0) {
            size_t ml = strlen(matches);
            snprintf(matches + ml, sizeof matches - ml, "%s%s", ml ? ", " : "", fp);
            n_match++;
            hit = i;
            snprintf(removed, sizeof removed, "%s", fp);
        }
    }
    if (rc == 0 && n_dev == 0)
        rc = rc_error_set(&err, RC_E_NOT_FOUND, "%s is not a member of %s", addr, c.list);
    else if (rc == 0 && status == RC_STATUS_REVOKED)
        rc = rc_error_set(&err, RC_E_POLICY, "%s is revoked: no device of it is enrolled",
                          addr);
    else if (rc == 0 && n_match == 0)
        rc = rc_error_set(&err, RC_E_NOT_FOUND,
                          "%s has no device with fingerprint %s (its devices: %s); nothing "
                          "changed",
                          addr, fingerprint, others);
    else if (rc == 0 && n_match > 1)
        rc = rc_error_set(&err, RC_E_INVALID,
                          "fingerprint %s is ambiguous: it begins %zu devices of %s (%s); give "
                          "more of it; nothing changed",
                          fingerprint, n_match, addr, matches);
    else if (rc == 0 && n_dev == 1)
        rc = rc_error_set(&err, RC_E_POLICY,
                          "%s is the last device of %s: use 'recryptctl member revoke %s %s' to "
                          "remove the member; nothing changed",
                          removed, addr, c.list, addr);
    if (rc == 0) {
        /* The new statement revokes the removed device's key: its
         * certificates of earlier epochs stop counting (FORMAT.md §4). */
        uint8_t gone[1][RC_SIGN_PK_BYTES];
        memcpy(gone[0], ro.e[hit].device.sign_pk, RC_SIGN_PK_BYTES);
        memmove(&ro.e[hit], &ro.e[hit + 1], (ro.n - hit - 1) * sizeof *ro.e);
        ro.n--;
        rc = build_rotation(&req, &c, o, &ro, 0, (const uint8_t(*)[RC_SIGN_PK_BYTES])gone, 1,
                            &err);
    }
    if (rc == 0 && (rc = emit(o, &req, 1, &err)) == 0)
        rc = roster_save(&c.ks, c.list, &ro, &err);
    if (rc == 0)
        fprintf(stderr,
                "%s: device %s of %s removed; the list key rotated to epoch %llu with no grace "
                "(earlier epochs refused once applied): publish it ('recryptctl list key %s')\n",
                progname, removed, addr, (unsigned long long)req.statement.epoch, c.list);
    rc_request_free(&req);
    roster_free(&ro);
    owner_ctx_free(&c);
    return rc ? fail(&err) : 0;
}

static int cmd_list_rotate(const ctl_opts *o, const char *list)
{
    rc_error err;
    owner_ctx c;
    rc_request req;
    roster ro = {0};
    memset(&req, 0, sizeof req);
    int rc = owner_ctx_load(&c, o, list, &err);
    if (rc == 0)
        rc = roster_load(&c.ks, c.list, &ro, &err);
    if (rc == 0)
        rc = build_rotation(&req, &c, o, &ro,
                            o->grace_days >= 0 ? (uint64_t)o->grace_days : DEFAULT_GRACE_DAYS,
                            NULL, 0, &err);
    if (rc == 0)
        rc = emit(o, &req, 1, &err);
    if (rc == 0)
        fprintf(stderr, "%s: %s rotated to epoch %llu; publish the new list key ('recryptctl "
                        "list key %s')\n",
                progname, c.list, (unsigned long long)req.statement.epoch, c.list);
    rc_request_free(&req);
    roster_free(&ro);
    owner_ctx_free(&c);
    return rc ? fail(&err) : 0;
}

#define BUNDLE_BEGIN "-----BEGIN RECRYPT LIST SECRETS-----"
#define BUNDLE_END "-----END RECRYPT LIST SECRETS-----"

/* Append printf-style text to a growing secret buffer. */
typedef struct {
    char *p;
    size_t len, cap;
    int bad;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sbuf_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len)
        b->bad = 1;
    else
        b->len += (size_t)n;
}

/* The list secrets of every epoch this keystore holds, the list keys, the
 * service key and the roster, sealed to a co-owner's X25519 key. It goes
 * from owner to owner as a file, never through the service. */
static int export_secrets(owner_ctx *c, const rc_owner_public *to, const char *path,
                          rc_error *err)
{
    roster ro = {0};
    char line[2 * RC_KEYSTR_MAX], svc[RC_KEYSTR_MAX], dev[RC_KEYSTR_MAX + RC_ADDR_MAX + 64];
    sbuf b = {rc_secret_alloc(1 << 20), 0, 1 << 20, 0};
    rc_list_secret *ls = rc_secret_alloc(sizeof *ls);
    int rc = (!b.p || !ls) ? rc_error_set(err, RC_E_NOMEM, "out of memory")
                           : roster_load(&c->ks, c->list, &ro, err);
    if (rc == 0)
        rc = rc_service_public_encode(svc, sizeof svc, &c->svc, err);
    if (rc == 0)
        sbuf_add(&b, "list %s\nservice %s\ncurrent %llu\n", c->list, svc,
                 (unsigned long long)c->epoch);
    for (uint64_t e = 1; rc == 0 && e <= c->epoch; e++) {
        rc_statement st;
        if (owner_secret_load(&c->ks, c->list, e, ls, NULL) != 0)
            continue; /* older epochs may have been dropped */
        if ((rc = rc_list_secret_encode(line, sizeof line, ls, err)) == 0)
            sbuf_add(&b, "secret %s\n", line);
        if (rc == 0 && owner_statement_load(&c->ks, c->list, e, &st, line, sizeof line, NULL) == 0)
            sbuf_add(&b, "listkey %s\n", line);
    }
    for (size_t i = 0; rc == 0 && i < ro.n; i++) {
        if (roster_format_line(dev, sizeof dev, &ro.e[i]) != 0)
            b.bad = 1;
        else
            sbuf_add(&b, "roster %s\n", dev);
    }
    if (rc == 0 && b.bad)
        rc = rc_error_set(err, RC_E_INVALID, "too much to export");
    uint8_t *sealed = rc == 0 ? malloc(b.len + crypto_box_SEALBYTES) : NULL;
    if (rc == 0 && (!sealed || crypto_box_seal(sealed, (uint8_t *)b.p, b.len, to->box_pk) != 0))
        rc = rc_error_set(err, RC_E_CRYPTO, "cannot seal the list secrets");
    if (rc == 0) {
        size_t slen = b.len + crypto_box_SEALBYTES;
        mode_t old = umask(077);
        FILE *f = fopen(path, "w");
        umask(old);
        if (!f)
            rc = rc_error_set(err, RC_E_IO, "cannot write %s: %s", path, strerror(errno));
        else {
            fprintf(f, "%s\nList: %s\nFor the owner whose key was given to 'owner add'.\n\n",
                    BUNDLE_BEGIN, c->list);
            for (size_t off = 0; off < slen; off += 57) {
                char l[80];
                sodium_bin2base64(l, sizeof l, sealed + off, slen - off < 57 ? slen - off : 57,
                                  sodium_base64_VARIANT_ORIGINAL);
                fprintf(f, "%s\n", l);
            }
            fprintf(f, "%s\n", BUNDLE_END);
            if (fclose(f) != 0)
                rc = rc_error_set(err, RC_E_IO, "cannot write %s", path);
        }
    }
    if (rc == 0)
        fprintf(stderr, "%s: list secrets of %s sealed to the new owner in %s; hand it over "
                        "directly, not through the mail server\n",
                progname, c->list, path);
    free(sealed);
    rc_secret_free(b.p);
    rc_secret_free(ls);
    roster_free(&ro);
    return rc;
}

static int cmd_list_import(const ctl_opts *o, const char *path)
{
    rc_error err;
    owner_ks ks;
    char *text = NULL;
    size_t len = 0;
    rc_owner_secret *owner = rc_secret_alloc(sizeof *owner);
    rc_list_secret *ls = rc_secret_alloc(sizeof *ls);
    uint8_t *sealed = NULL;
    char *plain = NULL;
    roster ro = {0};
    int rc = (!owner || !ls) ? rc_error_set(&err, RC_E_NOMEM, "out of memory")
                             : owner_ks_open(&ks, o->home, &err);
    if (rc == 0)
        rc = owner_key_load(&ks, owner, &err);
    if (rc == 0)
        rc = read_all(path, &text, &len, &err);
    const char *b = NULL, *e = NULL;
    if (rc == 0 && (!(b = strstr(text, BUNDLE_BEGIN)) || !(e = strstr(b, BUNDLE_END)) ||
                    !(b = strstr(b, "\n\n"))))
        rc = rc_error_set(&err, RC_E_FORMAT, "%s is not a list secrets file (or is truncated)",
                          path);
    size_t slen = 0;
    if (rc == 0) {
        sealed = malloc(len);
        if (!sealed || sodium_base642bin(sealed, len, b, (size_t)(e - b), " \r\n", &slen, NULL,
                                         sodium_base64_VARIANT_ORIGINAL) != 0 ||
            slen <= crypto_box_SEALBYTES)
            rc = rc_error_set(&err, RC_E_FORMAT, "%s is corrupted", path);
    }
    if (rc == 0) {
        plain = rc_secret_alloc(slen - crypto_box_SEALBYTES + 1);
        if (!plain || crypto_box_seal_open((uint8_t *)plain, sealed, slen, owner->pub.box_pk,
                                           owner->box_sk) != 0)
            rc = rc_error_set(&err, RC_E_AUTH, "%s is not sealed to this owner's key", path);
        else
            plain[slen - crypto_box_SEALBYTES] = '\0';
    }
    char list[RC_ADDR_MAX + 1] = "";
    uint64_t current = 0;
    int protect = getenv("RECRYPT_PASSPHRASE_FILE") != NULL || o->protect;
    char *save = NULL;
    for (char *l = rc == 0 ? strtok_r(plain, "\n", &save) : NULL; rc == 0 && l;
         l = strtok_r(NULL, "\n", &save)) {
        char *v = strchr(l, ' ');
        if (!v) {
            rc = rc_error_set(&err, RC_E_FORMAT, "%s: damaged content", path);
            break;
        }
        *v++ = '\0';
        if (strcmp(l, "list") == 0) {
            if ((rc = rc_address_canonical(list, v, &err)) == 0) {
                if (owner_list_exists(&ks, list))
                    rc = rc_error_set(&err, RC_E_EXISTS, "this keystore already manages %s",
                                      list);
                else if ((rc = owner_list_prepare(&ks, list, &err)) == 0 && protect)
                    rc = owner_set_protected(&ks, list, &err);
            }
        } else if (!list[0]) {
            rc = rc_error_set(&err, RC_E_FORMAT, "%s: damaged content", path);
        } else if (strcmp(l, "service") == 0) {
            rc_service_public svc;
            if ((rc = rc_service_public_decode(&svc, v, &err)) == 0)
                rc = owner_service_save(&ks, list, &svc, &err);
        } else if (strcmp(l, "current") == 0) {
            current = strtoull(v, NULL, 10);
        } else if (strcmp(l, "secret") == 0) {
            if ((rc = rc_list_secret_decode(ls, v, &err)) == 0)
                rc = owner_secret_save(&ks, ls, protect, &err);
        } else if (strcmp(l, "listkey") == 0) {
            rc_statement st;
            if ((rc = rc_statement_decode(&st, v, &err)) == 0)
                rc = owner_statement_save(&ks, &st, &err);
        } else if (strcmp(l, "roster") == 0) {
            if ((rc = roster_add_line(&ro, v, &err)) != 0)
                rc = rc_error_set(&err, RC_E_FORMAT, "%s: damaged roster", path);
        }
    }
    if (rc == 0 && (!list[0] || !current))
        rc = rc_error_set(&err, RC_E_FORMAT, "%s: damaged content", path);
    if (rc == 0 && (rc = roster_save(&ks, list, &ro, &err)) == 0)
        rc = owner_set_current_epoch(&ks, list, current, &err);
    if (rc == 0)
        fprintf(stderr, "%s: imported %s (epoch %llu, %zu devices)\n", progname, list,
                (unsigned long long)current, ro.n);
    free(text);
    free(sealed);
    if (plain)
        rc_secret_free(plain);
    rc_secret_free(owner);
    rc_secret_free(ls);
    roster_free(&ro);
    return rc ? fail(&err) : 0;
}

static int cmd_owner_add(const ctl_opts *o, const char *list, const char *owner_key)
{
    rc_error err;
    owner_ctx c;
    rc_request req;
    memset(&req, 0, sizeof req);
    uint8_t priv = 0;
    if (o->privilege && strcmp(o->privilege, "admin") == 0)
        priv = RC_PRIV_ADMIN;
    else if (o->privilege && strcmp(o->privilege, "super") == 0)
        priv = RC_PRIV_SUPER;
    else
        return usage_error("owner add needs --privilege admin or --privilege super");
    int rc = owner_ctx_load(&c, o, list, &err);
    if (rc == 0 && (rc = rc_owner_public_decode(&req.owner, owner_key, &err)) == 0) {
        rc_owner_public newo = req.owner;
        if ((rc = request_start(&req, &c, RC_REQ_ADD_OWNER, &err)) == 0) {
            req.owner = newo;
            req.privilege = priv;
            if ((rc = rc_request_sign(&req, c.owner, &err)) == 0)
                rc = emit(o, &req, 1, &err);
            if (rc == 0 && o->secrets_out)
                rc = export_secrets(&c, &newo, o->secrets_out, &err);
        }
    }
    rc_request_free(&req);
    owner_ctx_free(&c);
    return rc ? fail(&err) : 0;
}


/* owner set-privilege / owner remove (privilege 0). */
static int cmd_owner_change(const ctl_opts *o, const char *list, const char *owner_key,
                            const char *privilege)
{
    rc_error err;
    owner_ctx c;
    rc_request req;
    rc_owner_public who;
    memset(&req, 0, sizeof req);
    uint8_t priv = 0;
    if (privilege && strcmp(privilege, "admin") == 0)
        priv = RC_PRIV_ADMIN;
    else if (privilege && strcmp(privilege, "super") == 0)
        priv = RC_PRIV_SUPER;
    else if (privilege)
        return usage_error("owner set-privilege takes admin or super");
    int rc = owner_ctx_load(&c, o, list, &err);
    if (rc == 0 && (rc = rc_owner_public_decode(&who, owner_key, &err)) == 0 &&
        (rc = request_start(&req, &c, priv ? RC_REQ_UPDATE_OWNER : RC_REQ_REMOVE_OWNER, &err)) ==
            0) {
        req.owner = who;
        req.privilege = priv;
        if ((rc = rc_request_sign(&req, c.owner, &err)) == 0)
            rc = emit(o, &req, 1, &err);
    }
    if (rc == 0) {
        char fp[RC_UDF_MAX];
        rc_key_fingerprint(fp, sizeof fp, RC_KT_OWNER, who.sign_pk, 32, NULL);
        if (priv)
            fprintf(stderr, "%s: owner %s of %s to have %s\n", progname, fp, c.list,
                    rc_privilege_name(priv));
        else
            fprintf(stderr, "%s: owner %s to be removed from %s; it still holds the list "
                            "secrets it had: rotate ('recryptctl list rotate %s --grace 0') if "
                            "it should read no more\n",
                    progname, fp, c.list, c.list);
    }
    rc_request_free(&req);
    owner_ctx_free(&c);
    return rc ? fail(&err) : 0;
}

/* ---- server side ---- */

static int cmd_server_init(const ctl_opts *o)
{
    rc_error err;
    rc_service_public pub;
    char line[RC_KEYSTR_MAX];
    if (!o->db)
        return usage_error("server init needs --db DIR");
    struct passwd *pw = NULL;
    if (o->user && !(pw = getpwnam(o->user))) {
        rc_error_set(&err, RC_E_NOT_FOUND, "no such user '%s' (--user)", o->user);
        return fail(&err);
    }
    int rc = rc_store_create(o->db, o->map_size, &pub, &err);
    if (rc == 0)
        rc = rc_service_public_encode(line, sizeof line, &pub, &err);
    /* The service reads the store and its key as this user; apply may
     * still run as root later: LMDB writes in place, ownership stays. */
    static const char *const files[] = {"", "/data.mdb", "/lock.mdb", ("/" RC_STORE_SERVICE_KEY_FILE)};
    for (size_t i = 0; rc == 0 && pw && i < sizeof files / sizeof *files; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s%s", o->db, files[i]);
        if (chown(path, pw->pw_uid, pw->pw_gid) != 0)
            rc = rc_error_set(&err, RC_E_IO, "cannot give %s to %s: %s", path, o->user,
                              strerror(errno));
    }
    if (rc)
        return fail(&err);
    printf("%s\n", line);
    fprintf(stderr, "%s: store created in %s; give the service key line above to list owners\n",
            progname, o->db);
    return 0;
}

static int read_all(const char *path, char **out, size_t *len, rc_error *err)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f)
        return rc_error_set(err, RC_E_IO, "cannot read %s: %s", path, strerror(errno));
    size_t cap = 65536, n = 0;
    char *b = malloc(cap + 1);
    size_t got;
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(b, (cap *= 2) + 1);
            if (!nb) {
                free(b);
                b = NULL;
            } else
                b = nb;
        }
    }
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (!b || bad) {
        free(b);
        return rc_error_set(err, bad ? RC_E_IO : RC_E_NOMEM, "cannot read %s", path);
    }
    b[n] = '\0';
    *out = b;
    *len = n;
    return 0;
}

static int cmd_apply(const ctl_opts *o, char **files, int nfiles)
{
    rc_error err;
    static char *dash[] = {"-"};
    if (!o->db)
        return usage_error("apply needs --db DIR");
    if (nfiles == 0) {
        files = dash;
        nfiles = 1;
    }
    for (int i = 0; i < nfiles; i++) {
        char *text = NULL;
        size_t len = 0, n = 0;
        rc_request *reqs = NULL;
        int rc = read_all(files[i], &text, &len, &err);
        if (rc == 0) {
            rc = rc_request_read_armored(text, len, &reqs, &n, &err);
            free(text);
        }
        if (rc) {
            char msg[RC_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", err.msg);
            rc_error_set(&err, rc, "%s: %s (nothing applied from this file)", files[i], msg);
            return fail(&err);
        }
        rc = apply_requests(o->db, o->key_file, o->map_size, reqs, n, &err);
        for (size_t k = 0; k < n; k++)
            rc_request_free(&reqs[k]);
        free(reqs);
        if (rc)
            return fail(&err);
    }
    return 0;
}

static int show_member(void *ctx, const rc_store_member *m)
{
    (void)ctx;
    printf("  member %s %s\n", m->address, rc_status_name(m->status));
    return 0;
}

static int show_device(void *ctx, const rc_store_device *d)
{
    (void)ctx;
    char fp[RC_UDF_MAX];
    rc_key_fingerprint(fp, sizeof fp, RC_FP_DEVICE_SIGNER, d->device.sign_pk, 32, NULL);
    char when[32];
    printf("    epoch %llu device %s of %s enrolled %s\n", (unsigned long long)d->epoch, fp,
           d->member, rc_iso_utc(when, sizeof when, d->enrolled_at));
    return 0;
}

static int show_owner(void *ctx, const rc_store_owner *ow)
{
    (void)ctx;
    char fp[RC_UDF_MAX];
    rc_key_fingerprint(fp, sizeof fp, RC_KT_OWNER, ow->owner.sign_pk, 32, NULL);
    printf("  owner %s %s counter %llu\n", fp, rc_privilege_name(ow->privilege),
           (unsigned long long)ow->last_counter);
    return 0;
}

typedef struct {
    rc_store_reader *rd;
    const char *only;
} show_ctx;

static int show_epoch(void *ctx, const rc_store_epoch *e)
{
    (void)ctx;
    char fp[RC_UDF_MAX];
    rc_key_fingerprint(fp, sizeof fp, "list-signer", e->statement.signer_pk, 32, NULL);
    if (e->grace_until && e->grace_until <= (uint64_t)time(NULL))
        printf("  epoch %llu (previous; refused)\n", (unsigned long long)e->epoch);
    else if (e->grace_until) {
        char when[32];
        printf("  epoch %llu (previous; usable until %s)\n", (unsigned long long)e->epoch,
               rc_iso_utc(when, sizeof when, e->grace_until));
    }
    else
        printf("  epoch %llu (current), signed by %s\n", (unsigned long long)e->epoch, fp);
    return 0;
}

static int show_list(void *ctx, const rc_store_list *l)
{
    show_ctx *s = ctx;
    if (s->only && strcmp(s->only, l->address) != 0)
        return 0;
    char when[32];
    printf("list %s current-epoch %llu bounce %s created %s\n", l->address,
           (unsigned long long)l->current_epoch, l->bounce,
           rc_iso_utc(when, sizeof when, l->created_at));
    rc_store_each_epoch(s->rd, l->list_id, show_epoch, NULL, NULL);
    rc_store_each_owner(s->rd, l->list_id, show_owner, NULL, NULL);
    rc_store_each_member(s->rd, l->list_id, show_member, NULL, NULL);
    rc_store_each_device(s->rd, l->list_id, l->current_epoch, show_device, NULL, NULL);
    return 0;
}

static int cmd_show(const ctl_opts *o, const char *list)
{
    rc_error err;
    rc_store *st = NULL;
    rc_store_reader *rd = NULL;
    char canon[RC_ADDR_MAX + 1];
    if (!o->db)
        return usage_error("show needs --db DIR");
    int rc = list ? rc_address_canonical(canon, list, &err) : 0;
    if (rc == 0)
        rc = rc_store_open(&st, o->db, o->map_size, RC_STORE_READONLY, &err);
    if (rc == 0)
        rc = rc_store_reader_begin(st, &rd, &err);
    if (rc == 0 && list) {
        rc_store_list l;
        rc = rc_store_get_list(rd, canon, &l, &err);
    }
    if (rc == 0) {
        show_ctx s = {rd, list ? canon : NULL};
        rc = rc_store_each_list(rd, show_list, &s, &err);
    }
    rc_store_reader_end(rd);
    rc_store_close(st);
    return rc ? fail(&err) : 0;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},     {"db", required_argument, NULL, 'd'},
        {"out", required_argument, NULL, 'o'},      {"service-key", required_argument, NULL, 'S'},
        {"bounce", required_argument, NULL, 'b'},   {"apply", required_argument, NULL, 'A'},
        {"key", required_argument, NULL, 'K'},      {"device", required_argument, NULL, 'D'},
        {"grace", required_argument, NULL, 'g'},    {"valid-days", required_argument, NULL, 'v'},
        {"map-size", required_argument, NULL, 'm'}, {"privilege", required_argument, NULL, 'P'},
        {"protect", no_argument, NULL, 'p'},        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},        {"secrets-out", required_argument, NULL, 'O'},
        {"user", required_argument, NULL, 'u'},     {"expires", required_argument, NULL, 'e'},
        {NULL, 0, NULL, 0}};
    ctl_opts o = {.grace_days = -1};
    rc_error err;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        switch (c) {
        case 'H': o.home = optarg; break;
        case 'd': o.db = optarg; break;
        case 'o': o.out = optarg; break;
        case 'S': o.service_key = optarg; break;
        case 'b': o.bounce = optarg; break;
        case 'A': o.apply_db = optarg; break;
        case 'K': o.key_file = optarg; break;
        case 'P': o.privilege = optarg; break;
        case 'p': o.protect = 1; break;
        case 'O': o.secrets_out = optarg; break;
        case 'u': o.user = optarg; break;
        case 'D':
            if (o.n_devices == MAX_DEVICE_ARGS)
                return usage_error("too many --device options");
            o.devices[o.n_devices++] = optarg;
            break;
        case 'e':
            errno = 0;
            long days = strtol(optarg, &end, 10);
            if (errno || *end || days < 1 || days > (long)(RC_REQUEST_MAX_LIFETIME / 86400))
                return usage_error("--expires takes a number of days from 1 to 90");
            request_lifetime = (uint64_t)days * 86400;
            break;
        case 'g':
        case 'v':
        case 'm': {
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || v < 0)
                return usage_error("--grace, --valid-days and --map-size take a number");
            if (c == 'g')
                o.grace_days = v;
            else if (c == 'v')
                o.valid_days = v;
            else
                o.map_size = (size_t)v << 20;
            break;
        }
        case 'h': usage(stdout); return 0;
        case 'V': printf("recryptctl %s\n", RC_VERSION_STRING); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    int nargs = argc - optind;
    char **a = argv + optind;
    if (nargs < 1) {
        usage(stderr);
        return EX_USAGE;
    }
    if (rc_init(&err) != 0)
        return fail(&err);
#define IS(i, w) (nargs > (i) && strcmp(a[i], (w)) == 0)
    if (IS(0, "init") && nargs == 1)
        return cmd_init(&o);
    if (IS(0, "whoami") && nargs == 1)
        return cmd_whoami(&o);
    if (IS(0, "list") && IS(1, "create") && nargs == 3)
        return cmd_list_create(&o, a[2]);
    if (IS(0, "list") && IS(1, "key") && nargs == 3)
        return cmd_list_key(&o, a[2]);
    if (IS(0, "list") && IS(1, "rotate") && nargs == 3)
        return cmd_list_rotate(&o, a[2]);
    if (IS(0, "member") && IS(1, "add") && nargs == 4)
        return cmd_member_devices(&o, a[2], a[3], 1);
    if (IS(0, "member") && IS(1, "device-add") && nargs == 4)
        return cmd_member_devices(&o, a[2], a[3], 0);
    if (IS(0, "member") && IS(1, "suspend") && nargs == 4)
        return cmd_member_status(&o, a[2], a[3], RC_STATUS_SUSPENDED);
    if (IS(0, "member") && IS(1, "reinstate") && nargs == 4)
        return cmd_member_status(&o, a[2], a[3], RC_STATUS_ACTIVE);
    if (IS(0, "member") && IS(1, "revoke") && nargs == 4)
        return cmd_member_status(&o, a[2], a[3], RC_STATUS_REVOKED);
    if (IS(0, "owner") && IS(1, "add") && nargs == 4)
        return cmd_owner_add(&o, a[2], a[3]);
    if (IS(0, "owner") && IS(1, "set-privilege") && nargs == 5)
        return cmd_owner_change(&o, a[2], a[3], a[4]);
    if (IS(0, "owner") && IS(1, "remove") && nargs == 4)
        return cmd_owner_change(&o, a[2], a[3], NULL);
    if (IS(0, "member") && IS(1, "show") && nargs == 3)
        return cmd_member_show(&o, a[2]);
    if (IS(0, "member") && IS(1, "remove-device") && nargs == 5)
        return cmd_member_remove_device(&o, a[2], a[3], a[4]);
    if (IS(0, "list") && IS(1, "import") && nargs == 3)
        return cmd_list_import(&o, a[2]);
    if (IS(0, "server") && IS(1, "init") && nargs == 2)
        return cmd_server_init(&o);
    if (IS(0, "apply"))
        return cmd_apply(&o, a + 1, nargs - 1);
    if (IS(0, "show") && nargs <= 2)
        return cmd_show(&o, nargs == 2 ? a[1] : NULL);
#undef IS
    fprintf(stderr, "%s: unknown command '%s' or wrong number of arguments (try "
                    "'recryptctl --help')\n",
            progname, a[0]);
    return EX_USAGE;
}
