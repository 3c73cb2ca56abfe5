/*
 * owner.c - see owner.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include "owner.h"
#include "passlock.h"

int owner_ks_open(owner_ks *ks, const char *home, rc_error *err)
{
    return keystore_open(ks, home, err);
}

int owner_key_create(const owner_ks *ks, rc_owner_secret *out, rc_error *err)
{
    char p[PATH_MAX], *s = rc_secret_alloc(RC_KEYSTR_MAX);
    int rc;
    if (!s)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    keystore_path(p, ks, "owner.key");
    if (access(p, F_OK) == 0)
        rc = rc_error_set(err, RC_E_EXISTS, "an owner key already exists in %s", ks->dir);
    else if ((rc = keystore_mkdirs(ks->dir, err)) == 0 && (rc = rc_owner_generate(out, err)) == 0 &&
             (rc = rc_owner_secret_encode(s, RC_KEYSTR_MAX, out, err)) == 0)
        rc = rc_keyfile_write(p, s, err);
    rc_secret_free(s);
    return rc;
}

int owner_key_load(const owner_ks *ks, rc_owner_secret *out, rc_error *err)
{
    char p[PATH_MAX], *s = rc_secret_alloc(RC_KEYSTR_MAX);
    int rc;
    if (!s)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    keystore_path(p, ks, "owner.key");
    if (access(p, F_OK) != 0)
        rc = rc_error_set(err, RC_E_NOT_FOUND, "no owner key in %s: run 'recryptctl init'",
                          ks->dir);
    else if ((rc = rc_keyfile_read(p, s, RC_KEYSTR_MAX, err)) == 0)
        rc = rc_owner_secret_decode(out, s, err);
    rc_secret_free(s);
    return rc;
}

int owner_list_exists(const owner_ks *ks, const char *list)
{
    char p[PATH_MAX];
    keystore_path(p, ks, "owned/%s/current", list);
    return access(p, F_OK) == 0;
}

int owner_list_prepare(const owner_ks *ks, const char *list, rc_error *err)
{
    char p[PATH_MAX];
    keystore_path(p, ks, "owned/%s", list);
    return keystore_mkdirs(p, err);
}

int owner_service_save(const owner_ks *ks, const char *list, const rc_service_public *svc,
                       rc_error *err)
{
    char p[PATH_MAX], s[RC_KEYSTR_MAX + 2];
    int rc = rc_service_public_encode(s, sizeof s - 1, svc, err);
    if (rc)
        return rc;
    strcat(s, "\n");
    keystore_path(p, ks, "owned/%s/service", list);
    return keystore_write_file(p, s, err);
}

int owner_service_load(const owner_ks *ks, const char *list, rc_service_public *svc,
                       rc_error *err)
{
    char p[PATH_MAX], s[RC_KEYSTR_MAX];
    keystore_path(p, ks, "owned/%s/service", list);
    if (keystore_read_file(p, s, sizeof s) != 0)
        return rc_error_set(err, RC_E_NOT_FOUND,
                            "this keystore does not manage list %s (no service key)", list);
    return rc_service_public_decode(svc, s, err);
}

static int read_u64(const owner_ks *ks, const char *list, const char *name, uint64_t *v,
                    rc_error *err)
{
    char p[PATH_MAX], s[64];
    keystore_path(p, ks, "owned/%s/%s", list, name);
    if (keystore_read_file(p, s, sizeof s) != 0)
        return rc_error_set(err, RC_E_NOT_FOUND, "this keystore does not manage list %s", list);
    *v = strtoull(s, NULL, 10);
    return 0;
}

static int write_u64(const owner_ks *ks, const char *list, const char *name, uint64_t v,
                     rc_error *err)
{
    char p[PATH_MAX], s[64];
    keystore_path(p, ks, "owned/%s/%s", list, name);
    snprintf(s, sizeof s, "%llu\n", (unsigned long long)v);
    return keystore_write_file(p, s, err);
}

int owner_next_counter(const owner_ks *ks, const char *list, uint64_t *counter, rc_error *err)
{
    uint64_t c = 0;
    char p[PATH_MAX];
    keystore_path(p, ks, "owned/%s/counter", list);
    if (access(p, F_OK) == 0 && read_u64(ks, list, "counter", &c, err) != 0)
        return err ? err->code : RC_E_IO;
    *counter = c + 1;
    return write_u64(ks, list, "counter", c + 1, err);
}

int owner_current_epoch(const owner_ks *ks, const char *list, uint64_t *epoch, rc_error *err)
{
    return read_u64(ks, list, "current", epoch, err);
}

int owner_set_current_epoch(const owner_ks *ks, const char *list, uint64_t epoch, rc_error *err)
{
    return write_u64(ks, list, "current", epoch, err);
}

int owner_is_protected(const owner_ks *ks, const char *list)
{
    char p[PATH_MAX];
    keystore_path(p, ks, "owned/%s/protected", list);
    return access(p, F_OK) == 0;
}

int owner_set_protected(const owner_ks *ks, const char *list, rc_error *err)
{
    char p[PATH_MAX];
    keystore_path(p, ks, "owned/%s/protected", list);
    return keystore_write_file(p, "list secrets are locked with a passphrase\n", err);
}

/* The passphrase scheme is shared with the device key (src/common/passlock.c):
 * from the file RECRYPT_PASSPHRASE_FILE names, else asked on the terminal. */
static const passlock_ask_opts LIST_PASS = {"List secret passphrase: ",
                                           "list secrets are locked", 0, 0};

static int lock_secret(char *out, size_t outlen, const char *plain, rc_error *err)
{
    char *pass = rc_secret_alloc(PASSLOCK_MAX);
    int rc = !pass ? rc_error_set(err, RC_E_NOMEM, "out of memory")
                   : passlock_ask(pass, &LIST_PASS, err);
    if (rc == 0)
        rc = passlock_lock(out, outlen, "list-secret", plain, pass, err);
    rc_secret_free(pass);
    return rc;
}

static int unlock_secret(char *out, size_t outlen, const char *locked, rc_error *err)
{
    char *pass = rc_secret_alloc(PASSLOCK_MAX);
    int rc = !pass ? rc_error_set(err, RC_E_NOMEM, "out of memory")
                   : passlock_ask(pass, &LIST_PASS, err);
    if (rc == 0)
        rc = passlock_unlock(out, outlen, "list-secret", locked, pass, "the list secret", err);
    rc_secret_free(pass);
    return rc;
}

int owner_secret_save(const owner_ks *ks, const rc_list_secret *ls, int protect, rc_error *err)
{
    char p[PATH_MAX];
    char *s = rc_secret_alloc(RC_KEYSTR_MAX), *l = rc_secret_alloc(2 * RC_KEYSTR_MAX);
    int rc = (!s || !l) ? rc_error_set(err, RC_E_NOMEM, "out of memory")
                        : rc_list_secret_encode(s, RC_KEYSTR_MAX, ls, err);
    if (rc == 0 && protect)
        rc = lock_secret(l, 2 * RC_KEYSTR_MAX, s, err);
    if (rc == 0) {
        keystore_path(p, ks, "owned/%s/epoch-%llu.secret", ls->address, (unsigned long long)ls->epoch);
        rc = rc_keyfile_write(p, protect ? l : s, err);
    }
    rc_secret_free(s);
    rc_secret_free(l);
    return rc;
}

int owner_secret_load(const owner_ks *ks, const char *list, uint64_t epoch, rc_list_secret *ls,
                      rc_error *err)
{
    char p[PATH_MAX];
    char *s = rc_secret_alloc(2 * RC_KEYSTR_MAX), *plain = rc_secret_alloc(RC_KEYSTR_MAX);
    int rc = (!s || !plain) ? rc_error_set(err, RC_E_NOMEM, "out of memory") : 0;
    keystore_path(p, ks, "owned/%s/epoch-%llu.secret", list, (unsigned long long)epoch);
    if (rc == 0 && access(p, F_OK) != 0)
        rc = rc_error_set(err, RC_E_NOT_FOUND,
                          "no list secret for %s epoch %llu in this keystore", list,
                          (unsigned long long)epoch);
    if (rc == 0)
        rc = rc_keyfile_read(p, s, 2 * RC_KEYSTR_MAX, err);
    if (rc == 0 && passlock_is_locked(s, "list-secret"))
        rc = unlock_secret(plain, RC_KEYSTR_MAX, s, err);
    else if (rc == 0)
        snprintf(plain, RC_KEYSTR_MAX, "%s", s);
    if (rc == 0)
        rc = rc_list_secret_decode(ls, plain, err);
    rc_secret_free(s);
    rc_secret_free(plain);
    return rc;
}

int owner_statement_save(const owner_ks *ks, const rc_statement *st, rc_error *err)
{
    char p[PATH_MAX], s[RC_KEYSTR_MAX + 2];
    int rc = rc_statement_encode(s, sizeof s - 1, st, err);
    if (rc)
        return rc;
    strcat(s, "\n");
    keystore_path(p, ks, "owned/%s/epoch-%llu.listkey", st->address, (unsigned long long)st->epoch);
    return keystore_write_file(p, s, err);
}

int owner_statement_load(const owner_ks *ks, const char *list, uint64_t epoch, rc_statement *st,
                         char *line, size_t linelen, rc_error *err)
{
    char p[PATH_MAX];
    keystore_path(p, ks, "owned/%s/epoch-%llu.listkey", list, (unsigned long long)epoch);
    if (keystore_read_file(p, line, linelen) != 0)
        return rc_error_set(err, RC_E_NOT_FOUND, "no list key for %s epoch %llu", list,
                            (unsigned long long)epoch);
    line[strcspn(line, "\n")] = '\0';
    return rc_statement_decode(st, line, err);
}

int roster_add(roster *r, const char *member, uint8_t status, const rc_device_public *dev,
               rc_error *err)
{
    roster_entry *ne = realloc(r->e, (r->n + 1) * sizeof *ne);
    if (!ne)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    r->e = ne;
    roster_entry *e = &r->e[r->n];
    int rc = rc_address_canonical(e->member, member, err);
    if (rc)
        return rc;
    e->status = status;
    e->device = *dev;
    e->enrolled_at = 0;
    r->n++;
    return 0;
}

void roster_free(roster *r)
{
    free(r->e);
    r->e = NULL;
    r->n = 0;
}

/* "YYYY-MM-DDTHH:MM:SSZ" to unix seconds; 0 when it does not parse. */
static uint64_t parse_iso(const char *s)
{
    struct tm tm;
    char z = 0;
    memset(&tm, 0, sizeof tm);
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &z) != 7 || z != 'Z')
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t > 0 ? (uint64_t)t : 0;
}

int roster_add_line(roster *r, const char *line, rc_error *err)
{
    char member[RC_ADDR_MAX + 1], status[32], key[RC_KEYSTR_MAX], when[40] = "";
    rc_device_public dev;
    uint8_t st = 0;
    int n = sscanf(line, "%254s %31s %1023s %39s", member, status, key, when);
    if (n < 3)
        return rc_error_set(err, RC_E_FORMAT, "damaged roster line");
    for (uint8_t s = RC_STATUS_ACTIVE; s <= RC_STATUS_REVOKED; s++)
        if (strcmp(status, rc_status_name(s)) == 0)
            st = s;
    if (!st)
        return rc_error_set(err, RC_E_FORMAT, "damaged roster line (status '%.31s')", status);
    int rc = rc_device_public_decode(&dev, key, err);
    if (rc == 0 && (rc = roster_add(r, member, st, &dev, err)) == 0)
        r->e[r->n - 1].enrolled_at = n == 4 ? parse_iso(when) : 0;
    return rc;
}

int roster_format_line(char *out, size_t cap, const roster_entry *e)
{
    char key[RC_KEYSTR_MAX], when[40] = "";
    if (rc_device_public_encode(key, sizeof key, &e->device, NULL) != 0)
        return -1;
    if (e->enrolled_at) {
        struct tm tm;
        time_t t = (time_t)e->enrolled_at;
        when[0] = ' ';
        if (!gmtime_r(&t, &tm) || strftime(when + 1, sizeof when - 1, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
            when[0] = '\0';
    }
    int n = snprintf(out, cap, "%s %s %s%s", e->member, rc_status_name(e->status), key, when);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int roster_load(const owner_ks *ks, const char *list, roster *r, rc_error *err)
{
    char p[PATH_MAX], line[RC_KEYSTR_MAX + RC_ADDR_MAX + 96];
    memset(r, 0, sizeof *r);
    keystore_path(p, ks, "owned/%s/roster", list);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f))
        if ((rc = roster_add_line(r, line, err)) != 0) {
            char msg[RC_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
            rc = rc_error_set(err, rc, "roster %s is damaged: %s", p, msg);
        }
    fclose(f);
    if (rc)
        roster_free(r);
    return rc;
}

int roster_save(const owner_ks *ks, const char *list, const roster *r, rc_error *err)
{
    char p[PATH_MAX];
    size_t linecap = RC_KEYSTR_MAX + RC_ADDR_MAX + 64;
    size_t cap = r->n * (linecap + 1) + 1, len = 0;
    char *text = malloc(cap);
    if (!text)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    text[0] = '\0';
    for (size_t i = 0; i < r->n; i++) {
        if (roster_format_line(text + len, linecap, &r->e[i]) != 0) {
            free(text);
            return rc_error_set(err, RC_E_INTERNAL, "roster line does not encode");
        }
        len += strlen(text + len);
        text[len++] = '\n';
        text[len] = '\0';
    }
    keystore_path(p, ks, "owned/%s/roster", list);
    int rc = keystore_write_file(p, text, err);
    free(text);
    return rc;
}
