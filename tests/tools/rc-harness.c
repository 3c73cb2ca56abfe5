/*
 * rc-harness - a test and demo stand-in for the parts that later issues
 * deliver: it plays the list owner (recryptctl) and the recryption service
 * (recrypt-milter) on plain files, through the same library calls those
 * will use. Not installed; not for production.
 *
 * State directory layout:
 *   current                 the current epoch number
 *   epoch-N/list.secret     the owner's list secret for epoch N (0600)
 *   epoch-N/listkey         the signed list key statement of epoch N
 *   epoch-N/entries         one device entry a line: member r W enrolled_at
 *                           (r and W in base64url; what the service stores)
 *
 * `recrypt-store` plays the service on the real LMDB store that recryptctl
 * writes: the list from --list, its epochs, grace and active entries.
 * `store-schema` prints or rewinds that store's schema version (for the
 * migration tests).
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include <recrypt/recrypt.h>
#include "store.h"

static rc_error err;

__attribute__((noreturn)) static void die(const char *what)
{
    fprintf(stderr, "rc-harness: %s%s%s\n", what, err.msg[0] ? ": " : "", err.msg);
    exit(1);
}

static unsigned long long current_epoch(const char *dir)
{
    char p[4096];
    unsigned long long e = 0;
    snprintf(p, sizeof p, "%s/current", dir);
    FILE *f = fopen(p, "r");
    if (!f || fscanf(f, "%llu", &e) != 1)
        die("no list in this directory");
    fclose(f);
    return e;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        die(path);
}

static void load_list(const char *dir, unsigned long long epoch, rc_list_secret *ls)
{
    char p[4096], s[RC_KEYSTR_MAX];
    snprintf(p, sizeof p, "%s/epoch-%llu/list.secret", dir, epoch);
    if (rc_keyfile_read(p, s, sizeof s, &err) || rc_list_secret_decode(ls, s, &err))
        die("cannot load the list secret");
    sodium_memzero(s, sizeof s);
}

static void load_statement(const char *dir, unsigned long long epoch, rc_statement *st)
{
    char p[4096], s[RC_KEYSTR_MAX];
    snprintf(p, sizeof p, "%s/epoch-%llu/listkey", dir, epoch);
    FILE *f = fopen(p, "r");
    if (!f || !fgets(s, sizeof s, f))
        die("cannot read the list key");
    fclose(f);
    if (rc_statement_decode(st, s, &err))
        die("bad list key");
}

/* A new epoch (the first when sign_sk is NULL) with its statement. */
static void new_epoch(const char *dir, const char *address, unsigned long long epoch,
                      const uint8_t *sign_sk, uint64_t not_after)
{
    char p[4096], s[RC_KEYSTR_MAX + 2];
    rc_list_secret *ls = rc_secret_alloc(sizeof *ls);
    rc_statement st;
    uint64_t now = (uint64_t)time(NULL);
    if (rc_list_generate(ls, address, epoch, sign_sk, &err) ||
        rc_statement_sign(&st, ls, now - 7 * 86400, not_after, &err))
        die("cannot create the list key");
    snprintf(p, sizeof p, "%s/epoch-%llu", dir, epoch);
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        die(p);
    snprintf(p, sizeof p, "%s/epoch-%llu/list.secret", dir, epoch);
    if (rc_list_secret_encode(s, sizeof s, ls, &err) || rc_keyfile_write(p, s, &err))
        die("cannot save the list secret");
    if (rc_statement_encode(s, sizeof s - 1, &st, &err))
        die("cannot encode the statement");
    strcat(s, "\n");
    snprintf(p, sizeof p, "%s/epoch-%llu/listkey", dir, epoch);
    write_file(p, s);
    snprintf(p, sizeof p, "%s/epoch-%llu/entries", dir, epoch);
    write_file(p, "");
    snprintf(s, sizeof s, "%llu\n", epoch);
    snprintf(p, sizeof p, "%s/current", dir);
    write_file(p, s);
    rc_secret_free(ls);
}

static void b64(char *out, size_t outlen, const uint8_t *in, size_t len)
{
    sodium_bin2base64(out, outlen, in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void unb64(uint8_t *out, size_t outlen, size_t *len, const char *in)
{
    if (sodium_base642bin(out, outlen, in, strlen(in), NULL, len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        die("damaged entries file");
}

static size_t load_entries(const char *dir, unsigned long long epoch, rc_device_entry **out)
{
    char p[4096], line[4096], member[300], rb[64], wb[2048];
    unsigned long long at;
    size_t n = 0, cap = 16, len;
    rc_device_entry *e = malloc(cap * sizeof *e);
    snprintf(p, sizeof p, "%s/epoch-%llu/entries", dir, epoch);
    FILE *f = fopen(p, "r");
    if (!f || !e)
        die(p);
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%299s %63s %2047s %llu", member, rb, wb, &at) != 4)
            die("damaged entries file");
        if (n == cap && !(e = realloc(e, (cap *= 2) * sizeof *e)))
            die("out of memory");
        unb64(e[n].r, 32, &len, rb);
        unb64(e[n].W, sizeof e[n].W, &e[n].W_len, wb);
        e[n].enrolled_at = at;
        n++;
    }
    fclose(f);
    *out = e;
    return n;
}

static int fd_sink(void *ctx, const uint8_t *p, size_t len)
{
    return fwrite(p, 1, len, (FILE *)ctx) == len ? 0 : -1;
}

/* Copy stdin into an unlinked temporary file. */
static int spool(void)
{
    char path[] = "/tmp/rc-harness.XXXXXX";
    int fd = mkstemp(path);
    char buf[65536];
    ssize_t n;
    if (fd < 0)
        die("mkstemp");
    unlink(path);
    while ((n = read(0, buf, sizeof buf)) > 0)
        if (write(fd, buf, (size_t)n) != n)
            die("spool");
    lseek(fd, 0, SEEK_SET);
    return fd;
}

static void write_list_key(const rc_statement *st)
{
    char key[RC_KEYSTR_MAX];
    rc_statement_encode(key, sizeof key, st, &err);
    /* The list key header, folded at 76 columns. */
    fputs(RC_HDR_LIST_KEY ":", stdout);
    for (size_t i = 0, room = 76 - strlen(RC_HDR_LIST_KEY) - 2; i < strlen(key);) {
        size_t k = strlen(key) - i < room ? strlen(key) - i : room;
        printf(" %.*s\n", (int)k, key + i);
        i += k;
        room = 75;
    }
}

/* The service step on the LMDB store, as the milter will do it. */
static int recrypt_store(const char *db, const char *list, int no_table, int unsigned_copy,
                         uint64_t now)
{
    char p[4096], s[RC_KEYSTR_MAX];
    rc_service_secret *svc = rc_secret_alloc(sizeof *svc);
    rc_store *st;
    rc_store_reader *rd = NULL;
    rc_store_list l;
    rc_store_epoch e;
    rc_mail *m;
    rc_device_entry *entries;
    size_t n, n_written = 0;
    snprintf(p, sizeof p, "%s/" RC_STORE_SERVICE_KEY_FILE, db);
    if (rc_keyfile_read(p, s, sizeof s, &err) || rc_service_secret_decode(svc, s, &err))
        die("cannot load the service key");
    int fd = spool();
    if (rc_store_open(&st, db, 0, RC_STORE_READONLY, &err) || rc_store_reader_begin(st, &rd, &err) ||
        rc_store_get_list(rd, list, &l, &err))
        die("no such list");
    if (rc_mail_parse(&m, fd, &err))
        die("refused");
    uint64_t epoch = rc_mail_envelope(m)->epoch;
    if (rc_store_get_epoch(rd, l.list_id, epoch, &e, &err))
        die("refused: the post names an epoch this list does not have");
    if (e.grace_until && e.grace_until < now) {
        rc_error_set(&err, RC_E_POLICY, "epoch %llu of %s expired; the current one is %llu",
                     (unsigned long long)epoch, l.address, (unsigned long long)l.current_epoch);
        die("refused");
    }
    if (rc_mail_check_post(m, l.address, epoch, e.statement.A, now, 7 * 86400, 3600, &err))
        die("refused");
    if (rc_store_recrypt_entries(rd, svc, l.list_id, epoch, UINT64_MAX, UINT64_MAX, &entries, &n, &err))
        die("cannot read the device entries");
    /* As the milter: the body first (its stanzas' hash), then the header
     * with the service signature (a version 2 statement) and, for a post
     * of an older epoch, the current list key. --unsigned leaves the
     * signature out: a copy as anybody could write it, for the readers'
     * tests. */
    FILE *body = tmpfile();
    uint8_t h[32];
    if (!body || rc_mail_write_recrypted_body_h(m, entries, n, !no_table, fd_sink, body,
                                                &n_written, h, &err))
        die("recryption failed");
    if (e.statement.version == RC_STATEMENT_V2 && !unsigned_copy) {
        uint8_t *seed = rc_secret_alloc(RC_SVC_SEED_BYTES), sig[64];
        char b64[RC_SVC_SIG_TEXT];
        if (!seed || rc_store_service_seed(rd, svc, l.list_id, epoch, seed, &err) ||
            rc_svc_sign(sig, seed, rc_mail_envelope(m), rc_mail_date(m), h, "", &err))
            die("cannot sign the copy");
        rc_secret_free(seed);
        rc_svc_sig_encode(b64, sig);
        printf(RC_HDR_SERVICE_SIG ": %.50s\n %s\n", b64, b64 + 50);
    }
    if (epoch != l.current_epoch) {
        rc_store_epoch cur;
        char key[RC_KEYSTR_MAX];
        if (rc_store_get_epoch(rd, l.list_id, l.current_epoch, &cur, &err) ||
            rc_statement_encode(key, sizeof key, &cur.statement, &err))
            die("no current epoch");
        printf(RC_HDR_LIST_KEY_CURRENT ": %s\n", key);
    }
    write_list_key(&e.statement);
    if (rc_mail_write_header(m, fd_sink, stdout, &err))
        die("recryption failed");
    fflush(stdout);
    rewind(body);
    char cbuf[65536];
    size_t got;
    while ((got = fread(cbuf, 1, sizeof cbuf, body)) > 0)
        fwrite(cbuf, 1, got, stdout);
    fclose(body);
    fprintf(stderr, "rc-harness: %zu stanzas for %zu device entries\n", n_written, n);
    rc_secret_free(entries);
    rc_secret_free(svc);
    rc_mail_free(m);
    rc_store_reader_end(rd);
    rc_store_close(st);
    close(fd);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* store-schema DB [N]: print meta/schema of the LMDB store DB; with N,
 * make DB the store a build of schema N would have written: for 1, the
 * replay cache's time index "delivered-at" is dropped (the only change
 * from 1 to 2); any other N only sets meta/schema (an unknown version). */
static int store_schema(const char *db, const char *set)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, at;
    MDB_val k = {6, "schema"}, v;
    int mrc;
    if ((mrc = mdb_env_create(&env)) || (mrc = mdb_env_set_maxdbs(env, 16)) ||
        (mrc = mdb_env_open(env, db, MDB_NOTLS, 0640)) ||
        (mrc = mdb_txn_begin(env, NULL, 0, &txn)) ||
        (mrc = mdb_dbi_open(txn, "meta", 0, &meta)) || (mrc = mdb_get(txn, meta, &k, &v))) {
        fprintf(stderr, "rc-harness: store-schema %s: %s\n", db, mdb_strerror(mrc));
        return 1;
    }
    if (!set) {
        const uint8_t *b = v.mv_data;
        printf("%u\n", v.mv_size == 4 ? (unsigned)b[0] << 24 | (unsigned)b[1] << 16 |
                                             (unsigned)b[2] << 8 | b[3]
                                       : 0u);
        mdb_txn_abort(txn);
        mdb_env_close(env);
        return 0;
    }
    unsigned long n = strtoul(set, NULL, 10);
    uint8_t nb[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    MDB_val nv = {4, nb};
    mrc = 0;
    if (n == 1 && (mrc = mdb_dbi_open(txn, "delivered-at", 0, &at)) == 0)
        mrc = mdb_drop(txn, at, 1);
    if (mrc == MDB_NOTFOUND)
        mrc = 0;
    if (mrc == 0)
        mrc = mdb_put(txn, meta, &k, &nv, 0);
    if (mrc == 0)
        mrc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    mdb_env_close(env);
    if (mrc) {
        fprintf(stderr, "rc-harness: store-schema %s %s: %s\n", db, set, mdb_strerror(mrc));
        return 1;
    }
    return 0;
}

static int text_sink(void *ctx, const uint8_t *p, size_t n)
{
    return fwrite(p, 1, n, (FILE *)ctx) == n ? 0 : -1;
}

/* request-resign OWNERKEY [--created T] [--not-after T] [--v1] < armored >
 * armored: re-date every request and sign it again with the owner key, as
 * an owner with a wrong clock (or a modified tool) would; --v1 writes the
 * version-1 binary form (no not_after), as 0.2 did. */
static int request_resign(int argc, char **argv)
{
    char s[RC_KEYSTR_MAX];
    static char text[1 << 22];
    rc_owner_secret *owner = rc_secret_alloc(sizeof *owner);
    if (!owner || rc_keyfile_read(argv[2], s, sizeof s, &err) ||
        rc_owner_secret_decode(owner, s, &err))
        die("cannot load the owner key");
    size_t len = fread(text, 1, sizeof text - 1, stdin);
    rc_request *reqs;
    size_t n;
    if (rc_request_read_armored(text, len, &reqs, &n, &err))
        die("cannot read the requests");
    int v1 = 0;
    for (size_t i = 0; i < n; i++) {
        for (int a = 3; a < argc; a++) {
            if (strcmp(argv[a], "--created") == 0 && a + 1 < argc)
                reqs[i].created_at = strtoull(argv[++a], NULL, 10);
            else if (strcmp(argv[a], "--not-after") == 0 && a + 1 < argc)
                reqs[i].not_after = strtoull(argv[++a], NULL, 10);
            else if (strcmp(argv[a], "--v1") == 0)
                v1 = 1;
            else
                die("request-resign: unknown option");
        }
        if (rc_request_sign(&reqs[i], owner, &err))
            die("cannot sign");
        if (!v1) {
            if (rc_request_armor(&reqs[i], text_sink, stdout, &err))
                die("cannot write");
            continue;
        }
        uint8_t *enc, *msg;
        size_t elen;
        if (rc_request_encode(&reqs[i], &enc, &elen, &err))
            die("cannot encode");
        /* Drop not_after (after version, type, service_pk, str8 list,
         * signer_pk, counter, created_at) and the signature. */
        size_t at = 1 + 1 + 32 + 1 + enc[34] + 32 + 8 + 8, blen = elen - 64 - 8;
        memmove(enc + at, enc + at + 8, elen - at - 8);
        enc[0] = 1;
        msg = malloc(16 + blen + 64);
        memset(msg, 0, 16);
        memcpy(msg, "recrypt/request", 15);
        memcpy(msg + 16, enc, blen);
        crypto_sign_detached(enc + blen, NULL, msg, 16 + blen, owner->sign_sk);
        free(msg);
        char line[100];
        puts("-----BEGIN RECRYPT REQUEST-----\nRequest: version 1\n");
        for (size_t off = 0; off < blen + 64; off += 57) {
            sodium_bin2base64(line, sizeof line, enc + off, blen + 64 - off < 57 ? blen + 64 - off : 57,
                              sodium_base64_VARIANT_ORIGINAL);
            puts(line);
        }
        puts("-----END RECRYPT REQUEST-----");
        free(enc);
    }
    for (size_t i = 0; i < n; i++)
        rc_request_free(&reqs[i]);
    free(reqs);
    rc_secret_free(owner);
    return fflush(stdout) == 0 ? 0 : 1;
}

static void usage(void)
{
    fputs("usage: rc-harness list-create DIR ADDRESS [--not-after UNIX]\n"
          "       rc-harness list-rotate DIR\n"
          "       rc-harness list-key DIR [EPOCH]\n"
          "       rc-harness signer DIR\n"
          "       rc-harness enrol DIR MEMBER DEVICEKEY [--at UNIX] [--bad-cert]\n"
          "       rc-harness recrypt DIR [--no-table] [--now UNIX]\n"
          "                  [--entries-from DIR2 [--entries-epoch N]] < sealed > delivered\n"
          "       rc-harness recrypt-store DB LIST [--no-table] [--unsigned] < sealed > delivered\n"
          "       rc-harness store-schema DB [N]\n"
          "       rc-harness request-resign OWNERKEY [--created T] [--not-after T] [--v1]\n"
          "                  < armored > armored\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    if (rc_init(&err))
        die("init");
    const char *cmd = argv[1], *dir = argv[2];
    uint64_t now = (uint64_t)time(NULL);

    if (strcmp(cmd, "list-create") == 0 && argc >= 4) {
        uint64_t not_after = 0;
        if (argc == 6 && strcmp(argv[4], "--not-after") == 0)
            not_after = strtoull(argv[5], NULL, 10);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            die(dir);
        new_epoch(dir, argv[3], 1, NULL, not_after);
        load_statement(dir, 1, &(rc_statement){0});
        char p[4096];
        snprintf(p, sizeof p, "cat '%s/epoch-1/listkey'", dir);
        return system(p) == 0 ? 0 : 1;
    }
    if (strcmp(cmd, "list-rotate") == 0) {
        unsigned long long e = current_epoch(dir);
        rc_list_secret *ls = rc_secret_alloc(sizeof *ls);
        load_list(dir, e, ls);
        new_epoch(dir, ls->address, e + 1, ls->sign_sk, 0);
        rc_secret_free(ls);
        return 0;
    }
    if (strcmp(cmd, "list-key") == 0) {
        unsigned long long e = argc > 3 ? strtoull(argv[3], NULL, 10) : current_epoch(dir);
        rc_statement st;
        char s[RC_KEYSTR_MAX];
        load_statement(dir, e, &st);
        rc_statement_encode(s, sizeof s, &st, &err);
        puts(s);
        return 0;
    }
    if (strcmp(cmd, "signer") == 0) {
        rc_statement st;
        char fp[RC_UDF_MAX];
        load_statement(dir, current_epoch(dir), &st);
        rc_key_fingerprint(fp, sizeof fp, "list-signer", st.signer_pk, 32, &err);
        puts(fp);
        return 0;
    }
    if (strcmp(cmd, "enrol") == 0 && argc >= 5) {
        uint64_t at = now - 3600;
        int bad_cert = 0; /* the certificate in W signed by a stranger's key */
        for (int i = 5; i < argc; i++) {
            if (strcmp(argv[i], "--at") == 0 && i + 1 < argc)
                at = strtoull(argv[++i], NULL, 10);
            else if (strcmp(argv[i], "--bad-cert") == 0)
                bad_cert = 1;
            else
                usage();
        }
        unsigned long long e = current_epoch(dir);
        rc_list_secret *ls = rc_secret_alloc(sizeof *ls);
        rc_device_public dev;
        rc_device_entry ent;
        char p[4096], rb[64], wb[2048];
        load_list(dir, e, ls);
        if (bad_cert) /* same list, epoch, a and A: only the certifying key differs */
            crypto_sign_keypair(ls->sign_pk, ls->sign_sk);
        if (rc_device_public_decode(&dev, argv[4], &err) ||
            rc_entry_create(&ent, ls, &dev, argv[3], at, &err) ||
            rc_entry_check(ent.r, ent.K, ls->A, &err))
            die("cannot enrol the device");
        b64(rb, sizeof rb, ent.r, 32);
        b64(wb, sizeof wb, ent.W, ent.W_len);
        snprintf(p, sizeof p, "%s/epoch-%llu/entries", dir, e);
        FILE *f = fopen(p, "a");
        if (!f || fprintf(f, "%s %s %s %llu\n", argv[3], rb, wb, (unsigned long long)at) < 0 ||
            fclose(f) != 0)
            die(p);
        sodium_memzero(&ent, sizeof ent);
        rc_secret_free(ls);
        return 0;
    }
    if (strcmp(cmd, "request-resign") == 0)
        return request_resign(argc, argv);
    if (strcmp(cmd, "store-schema") == 0)
        return store_schema(dir, argc > 3 ? argv[3] : NULL);
    if (strcmp(cmd, "recrypt-store") == 0 && argc >= 4)
    {
        int no_table = 0, unsigned_copy = 0;
        for (int i = 4; i < argc; i++) {
            if (strcmp(argv[i], "--no-table") == 0)
                no_table = 1;
            else if (strcmp(argv[i], "--unsigned") == 0)
                unsigned_copy = 1;
            else
                usage();
        }
        return recrypt_store(dir, argv[3], no_table, unsigned_copy, now);
    }
    if (strcmp(cmd, "recrypt") == 0) {
        int use_table = 1;
        const char *edir = dir;
        unsigned long long eepoch = 0;
        for (int i = 3; i < argc; i++) {
            if (strcmp(argv[i], "--no-table") == 0)
                use_table = 0;
            else if (strcmp(argv[i], "--now") == 0 && i + 1 < argc)
                now = strtoull(argv[++i], NULL, 10);
            else if (strcmp(argv[i], "--entries-from") == 0 && i + 1 < argc)
                edir = argv[++i];
            else if (strcmp(argv[i], "--entries-epoch") == 0 && i + 1 < argc)
                eepoch = strtoull(argv[++i], NULL, 10);
            else
                usage();
        }
        int fd = spool();
        rc_mail *m;
        rc_statement st;
        rc_device_entry *entries;
        size_t n_written = 0;
        if (rc_mail_parse(&m, fd, &err))
            die("refused");
        /* The service checks the post against the epoch it names. */
        unsigned long long e = rc_mail_envelope(m)->epoch;
        char p[4096];
        snprintf(p, sizeof p, "%s/epoch-%llu/listkey", dir, e);
        if (access(p, R_OK) != 0)
            die("the post names an epoch this list does not have");
        load_statement(dir, e, &st);
        if (rc_mail_check_post(m, st.address, e, st.A, now, 7 * 86400, 3600, &err))
            die("refused");
        size_t n = load_entries(edir, eepoch ? eepoch : e, &entries);
        write_list_key(&st);
        if (rc_mail_write_header(m, fd_sink, stdout, &err) ||
            rc_mail_write_recrypted_body(m, entries, n, use_table, fd_sink, stdout, &n_written,
                                         &err))
            die("recryption failed");
        fprintf(stderr, "rc-harness: %zu stanzas for %zu device entries\n", n_written, n);
        free(entries);
        rc_mail_free(m);
        close(fd);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    usage();
    return 2;
}
