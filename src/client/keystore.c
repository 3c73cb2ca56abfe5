/*
 * keystore.c - see keystore.h. Every file is written through a private
 * temporary file and renamed into place (keystore_write_file in
 * src/common/keydir.c, rc_keyfile_write for keys), so a crash never leaves
 * half a key.
 */
#include <time.h>
#include <errno.h>
#include <sodium.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "keystore.h"
#include "passlock.h"

int keystore_prepare(const keystore *ks, rc_error *err)
{
    char p[PATH_MAX];
    keystore_path(p, ks, "lists");
    int rc = keystore_mkdirs(p, err);
    if (rc == 0)
        chmod(ks->dir, 0700);
    return rc;
}

static int list_dir(char *out, const keystore *ks, const char *list, rc_error *err)
{
    if (keystore_path(out, ks, "lists/%s", list) != 0)
        return rc_error_set(err, RC_E_INVALID, "path too long");
    return keystore_mkdirs(out, err);
}

int keystore_device_exists(const keystore *ks)
{
    char p[PATH_MAX];
    keystore_path(p, ks, "device.key");
    return access(p, F_OK) == 0;
}

/* ---- the device key, plain or locked with a passphrase (FORMAT.md §13.1) ---- */

static int no_terminal;

void keystore_set_no_terminal(int on)
{
    no_terminal = on;
}

/* The unlocked key of a locked device.key, kept for this process (the
 * native host opens many messages; Argon2id costs ~0.1 s and 64 MiB each
 * time), in guarded memory, valid while the file is the same. */
static rc_device_secret *cached;
static struct stat cached_sb;

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void cache_drop(void)
{
    rc_secret_free(cached);
    cached = NULL;
}

int keystore_device_is_protected(const keystore *ks)
{
    char p[PATH_MAX], head[64];
    keystore_path(p, ks, "device.key");
    if (keystore_read_file(p, head, sizeof head) != 0)
        return 0;
    int locked = passlock_is_locked(head, RC_KT_DEVICE_SECRET);
    sodium_memzero(head, sizeof head); /* the start of a plain key string */
    return locked;
}

int keystore_device_ask(char *pass, int creating, rc_error *err)
{
    passlock_ask_opts o = {creating ? "New device key passphrase: " : "Device key passphrase: ",
                           creating ? "a new passphrase is needed" : "the device key is locked "
                                                                     "with a passphrase",
                           creating, no_terminal};
    return passlock_ask(pass, &o, err);
}

int keystore_device_store(const keystore *ks, const rc_device_secret *dev, const char *pass,
                          rc_error *err)
{
    char p[PATH_MAX], pubp[PATH_MAX], pub[RC_KEYSTR_MAX + 2];
    char *s = rc_secret_alloc(RC_KEYSTR_MAX), *l = rc_secret_alloc(2 * RC_KEYSTR_MAX);
    int rc = (!s || !l) ? rc_error_set(err, RC_E_NOMEM, "out of memory")
                        : rc_device_secret_encode(s, RC_KEYSTR_MAX, dev, err);
    if (rc == 0 && pass)
        rc = passlock_lock(l, 2 * RC_KEYSTR_MAX, RC_KT_DEVICE_SECRET, s, pass, err);
    keystore_path(p, ks, "device.key");
    keystore_path(pubp, ks, "device.pub");
    /* The public half in the clear, so that `pubkey` and the native host's
     * hello need no passphrase; written first, the key last. */
    if (rc == 0 && (rc = rc_device_public_encode(pub, sizeof pub - 1, &dev->pub, err)) == 0) {
        strcat(pub, "\n");
        rc = keystore_write_file(pubp, pub, err);
    }
    if (rc == 0)
        rc = rc_keyfile_write(p, pass ? l : s, err);
    rc_secret_free(s);
    rc_secret_free(l);
    cache_drop();
    return rc;
}

int keystore_device_save(const keystore *ks, const rc_device_secret *dev, rc_error *err)
{
    return keystore_device_store(ks, dev, NULL, err);
}

int keystore_device_load(const keystore *ks, rc_device_secret *dev, rc_error *err)
{
    char p[PATH_MAX], *s = rc_secret_alloc(2 * RC_KEYSTR_MAX),
                      *plain = rc_secret_alloc(RC_KEYSTR_MAX), *pass = NULL;
    struct stat sb;
    int rc = (!s || !plain) ? rc_error_set(err, RC_E_NOMEM, "out of memory") : 0;
    keystore_path(p, ks, "device.key");
    if (rc == 0 && stat(p, &sb) != 0)
        rc = rc_error_set(err, RC_E_IO, "this device has no key yet (%s): run 'recrypt keygen'",
                          p);
    else if (rc == 0)
        rc = rc_keyfile_read(p, s, 2 * RC_KEYSTR_MAX, err);
    if (rc == 0 && passlock_is_locked(s, RC_KT_DEVICE_SECRET)) {
        if (cached && same_file(&sb, &cached_sb)) {
            *dev = *cached;
            goto out;
        }
        pass = rc_secret_alloc(PASSLOCK_MAX);
        rc = !pass ? rc_error_set(err, RC_E_NOMEM, "out of memory")
                   : keystore_device_ask(pass, 0, err);
        if (rc == 0)
            rc = passlock_unlock(plain, RC_KEYSTR_MAX, RC_KT_DEVICE_SECRET, s, pass,
                                 "the device key", err);
        if (rc == RC_E_AUTH) /* a wrong passphrase is a refusal, not tampered input */
            rc = rc_error_set(err, RC_E_PERMISSION, "wrong passphrase for the device key (%s)",
                              p);
        if (rc == 0 && (rc = rc_device_secret_decode(dev, plain, err)) == 0) {
            cache_drop();
            if ((cached = rc_secret_alloc(sizeof *cached)) != NULL) {
                *cached = *dev;
                cached_sb = sb;
            }
        }
    } else if (rc == 0) {
        rc = rc_device_secret_decode(dev, s, err);
    }
out:
    rc_secret_free(s);
    rc_secret_free(plain);
    rc_secret_free(pass);
    return rc;
}

int keystore_device_public(const keystore *ks, rc_device_public *pub, rc_error *err)
{
    char p[PATH_MAX], line[RC_KEYSTR_MAX];
    keystore_path(p, ks, "device.pub");
    /* Only for a locked key: a key in the clear is the truth (an older
     * recrypt's keygen --force may have replaced it, leaving device.pub). */
    if (keystore_device_is_protected(ks) && keystore_read_file(p, line, sizeof line) == 0 &&
        rc_device_public_decode(pub, line, NULL) == 0)
        return 0;
    rc_device_secret *dev = rc_secret_alloc(sizeof *dev);
    int rc = dev ? keystore_device_load(ks, dev, err)
                 : rc_error_set(err, RC_E_NOMEM, "out of memory");
    if (rc == 0)
        *pub = dev->pub;
    rc_secret_free(dev);
    return rc;
}

int keystore_pin_load(const keystore *ks, const char *list, rc_pin *pin, rc_error *err)
{
    char p[PATH_MAX], text[512], b64[64];
    unsigned long long epoch;
    keystore_path(p, ks, "lists/%s/pin", list);
    if (keystore_read_file(p, text, sizeof text) != 0)
        return 0;
    size_t len = 0;
    if (sscanf(text, "signer %63s\nepoch %llu", b64, &epoch) != 2 ||
        sodium_base642bin(pin->signer_pk, 32, b64, strlen(b64), NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        len != 32)
        return rc_error_set(err, RC_E_FORMAT, "pin file %s is damaged", p);
    pin->highest_epoch = epoch;
    return 1;
}

uint64_t keystore_pin_since(const keystore *ks, const char *list)
{
    char p[PATH_MAX], text[512];
    unsigned long long since = 0;
    keystore_path(p, ks, "lists/%s/pin", list);
    if (keystore_read_file(p, text, sizeof text) != 0)
        return 0;
    const char *l = strstr(text, "\npinned ");
    if (!l || sscanf(l + 8, "%llu", &since) != 1)
        return 0;
    return since;
}

static int statement_known(const keystore *ks, const rc_statement *st)
{
    char p[PATH_MAX], text[RC_KEYSTR_MAX], mine[RC_KEYSTR_MAX];
    keystore_path(p, ks, "lists/%s/epoch-%llu.listkey", st->address, (unsigned long long)st->epoch);
    if (keystore_read_file(p, text, sizeof text) != 0 || rc_statement_encode(mine, sizeof mine, st, NULL))
        return 0;
    text[strcspn(text, "\n")] = '\0';
    return strcmp(text, mine) == 0;
}

static void normalise_fp(char *out, size_t outlen, const char *in)
{
    size_t o = 0;
    for (; *in && o + 1 < outlen; in++)
        if (*in != '-' && *in != ' ')
            out[o++] = (char)(*in >= 'a' && *in <= 'z' ? *in - 32 : *in);
    out[o] = '\0';
}

int keystore_trust(const keystore *ks, const rc_statement *st, const char *expected_fp,
                   uint64_t at, int for_opening, int *first_use, rc_error *err)
{
    rc_pin pin;
    int pinned = keystore_pin_load(ks, st->address, &pin, err);
    if (pinned < 0)
        return pinned;
    if (expected_fp) {
        char have[RC_UDF_MAX], a[RC_UDF_MAX], b[RC_UDF_MAX];
        rc_key_fingerprint(have, sizeof have, "list-signer", st->signer_pk, 32, NULL);
        normalise_fp(a, sizeof a, have);
        normalise_fp(b, sizeof b, expected_fp);
        /* The user may give a prefix of at least 100 bits (20 characters). */
        if (strlen(b) < 20 || strncmp(a, b, strlen(b)) != 0)
            return rc_error_set(err, RC_E_POLICY,
                                "the list key statement for %s is signed by %s, not by %s",
                                st->address, have, expected_fp);
    }
    *first_use = !pinned;
    return rc_statement_accept(st, pinned ? &pin : NULL, NULL,
                               for_opening && statement_known(ks, st), at, err);
}

int keystore_remember(const keystore *ks, const rc_statement *st, rc_error *err)
{
    char dir[PATH_MAX], p[PATH_MAX], text[RC_KEYSTR_MAX + 2], b64[64];
    rc_pin pin;
    int rc = list_dir(dir, ks, st->address, err);
    if (rc)
        return rc;
    int pinned = keystore_pin_load(ks, st->address, &pin, err);
    if (pinned < 0)
        return pinned;
    if (!pinned || st->epoch > pin.highest_epoch) {
        /* The pin's date stays the first pin's. */
        uint64_t since = pinned ? keystore_pin_since(ks, st->address) : (uint64_t)time(NULL);
        sodium_bin2base64(b64, sizeof b64, st->signer_pk, 32,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        if (since)
            snprintf(text, sizeof text, "signer %s\nepoch %llu\npinned %llu\n", b64,
                     (unsigned long long)st->epoch, (unsigned long long)since);
        else
            snprintf(text, sizeof text, "signer %s\nepoch %llu\n", b64,
                     (unsigned long long)st->epoch);
        keystore_path(p, ks, "lists/%s/pin", st->address);
        if ((rc = keystore_write_file(p, text, err)))
            return rc;
    }
    if (!statement_known(ks, st)) {
        if ((rc = rc_statement_encode(text, sizeof text - 1, st, err)))
            return rc;
        strcat(text, "\n");
        keystore_path(p, ks, "lists/%s/epoch-%llu.listkey", st->address, (unsigned long long)st->epoch);
        if ((rc = keystore_write_file(p, text, err)))
            return rc;
    }
    return 0;
}

int keystore_cert_save(const keystore *ks, const rc_cert *cert, const char *list, rc_error *err)
{
    char dir[PATH_MAX], p[PATH_MAX], text[2 * RC_CERT_MAX];
    uint8_t b[RC_CERT_MAX];
    size_t len;
    int rc = list_dir(dir, ks, list, err);
    if (rc || (rc = rc_cert_to_bytes(b, sizeof b, &len, cert, err)))
        return rc;
    sodium_bin2base64(text, sizeof text - 1, b, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    strcat(text, "\n");
    keystore_path(p, ks, "lists/%s/cert-%llu", list, (unsigned long long)cert->epoch);
    return keystore_write_file(p, text, err);
}

int keystore_cert_load(const keystore *ks, const char *list, uint64_t epoch, rc_cert *cert)
{
    char p[PATH_MAX], text[2 * RC_CERT_MAX];
    uint8_t b[RC_CERT_MAX];
    size_t len = 0;
    keystore_path(p, ks, "lists/%s/cert-%llu", list, (unsigned long long)epoch);
    if (keystore_read_file(p, text, sizeof text) != 0)
        return 0;
    text[strcspn(text, "\n")] = '\0';
    if (sodium_base642bin(b, sizeof b, text, strlen(text), NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        rc_cert_from_bytes(cert, b, len, NULL) != 0)
        return 0;
    return 1;
}

/* The "posts" file: one line per opened post, "<32 hex> <list>\n", the
 * hex a BLAKE2b-128 of "recrypt-post\0" and the Message-ID (without angle
 * brackets). Appended; when it passes POSTS_MAX bytes the older half is
 * dropped. */
#define POSTS_MAX (512 * 1024)

static void post_hash(char hex[33], const char *message_id)
{
    uint8_t h[16];
    crypto_generichash_state s;
    crypto_generichash_init(&s, NULL, 0, sizeof h);
    crypto_generichash_update(&s, (const uint8_t *)"recrypt-post", 13);
    crypto_generichash_update(&s, (const uint8_t *)message_id, strlen(message_id));
    crypto_generichash_final(&s, h, sizeof h);
    sodium_bin2hex(hex, 33, h, sizeof h);
}

int keystore_post_remember(const keystore *ks, const char *message_id, const char *list,
                           const char *copy, rc_error *err)
{
    char path[PATH_MAX], hex[33], line[RC_ADDR_MAX + 48 + RC_COPY_ID_LEN];
    struct stat sb;
    if (!message_id || !*message_id || keystore_path(path, ks, "posts") != 0)
        return 0;
    post_hash(hex, message_id);
    int n = snprintf(line, sizeof line, "%s %s%s%s\n", hex, list, copy ? " " : "",
                     copy ? copy : "");
    if (n < 0 || (size_t)n >= sizeof line)
        return 0;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || write(fd, line, (size_t)n) != n || fstat(fd, &sb) != 0) {
        if (fd >= 0)
            close(fd);
        return rc_error_set(err, RC_E_IO, "cannot write %s", path);
    }
    close(fd);
    if (sb.st_size <= POSTS_MAX)
        return 0;
    /* Keep the newer half, from a line start. */
    char *all = malloc((size_t)sb.st_size + 1);
    if (!all || keystore_read_file(path, all, (size_t)sb.st_size + 1) != 0) {
        free(all);
        return 0;
    }
    char *keep = strchr(all + strlen(all) / 2, '\n');
    int rc = keep ? keystore_write_file(path, keep + 1, err) : 0;
    free(all);
    return rc;
}

int keystore_post_lookup(const keystore *ks, const char *message_id, char *list_out,
                         size_t list_len, char copy_out[RC_COPY_ID_LEN + 1])
{
    char path[PATH_MAX], hex[33], line[RC_ADDR_MAX + 48 + RC_COPY_ID_LEN];
    if (!message_id || !*message_id || keystore_path(path, ks, "posts") != 0)
        return 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -1; /* unreadable: the caller fails closed */
    post_hash(hex, message_id);
    int found = 0, have_copy = 0;
    if (copy_out)
        copy_out[0] = '\0';
    /* The list from the first record; the copy from the first record that
     * has one (a post first opened from a copy without the field). */
    while ((!found || (copy_out && !have_copy)) && fgets(line, sizeof line, f)) {
        if (strncmp(line, hex, 32) != 0 || line[32] != ' ')
            continue;
        line[strcspn(line, "\n")] = '\0';
        char *copy = strchr(line + 33, ' ');
        if (copy)
            *copy++ = '\0';
        if (!found)
            snprintf(list_out, list_len, "%s", line + 33);
        if (copy_out && copy && strlen(copy) == RC_COPY_ID_LEN) {
            snprintf(copy_out, RC_COPY_ID_LEN + 1, "%s", copy);
            have_copy = 1;
        }
        found = 1;
    }
    if (ferror(f))
        found = -1;
    fclose(f);
    return found;
}
