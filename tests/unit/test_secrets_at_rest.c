/*
 * test_secrets_at_rest.c - the client's secrets at rest (issue 13, item 4):
 * the passphrase lock shared by the owner's list secrets and the device key
 * (src/common/passlock.c), the device key in the keystore, and the staging
 * files' fallback when there are no memory files (src/client/spool.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>
#include <recrypt/recrypt.h>
#include "keystore.h"
#include "passlock.h"
#include "spool.h"
#include "test_util.h"

/* Stands in for libc's memfd_create (static linking): off, the client
 * falls back to O_TMPFILE. */
static int memfd_off;
int memfd_create(const char *name, unsigned int flags);
int memfd_create(const char *name, unsigned int flags)
{
    if (memfd_off) {
        errno = ENOSYS;
        return -1;
    }
    return (int)syscall(SYS_memfd_create, name, flags);
}

static char T[512];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(T, sizeof T, "%s/secrets.XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(T) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", T);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* ---- passlock ---- */

static void test_passlock_roundtrip_and_refusals(void **state)
{
    (void)state;
    rc_device_secret dev;
    rc_error err;
    char plain[RC_KEYSTR_MAX], locked[2 * RC_KEYSTR_MAX], out[RC_KEYSTR_MAX];
    assert_int_equal(rc_device_generate(&dev, &err), 0);
    assert_int_equal(rc_device_secret_encode(plain, sizeof plain, &dev, &err), 0);
    assert_int_equal(passlock_lock(locked, sizeof locked, "device-secret", plain, "pw one", &err),
                     0);
    assert_true(passlock_is_locked(locked, "device-secret"));
    assert_false(passlock_is_locked(plain, "device-secret"));
    assert_false(passlock_is_locked(locked, "list-secret"));
    assert_null(strstr(locked, plain + strlen("recrypt1.device-secret.")));
    /* Fresh salt and nonce: the same secret locks differently each time. */
    char again[2 * RC_KEYSTR_MAX];
    assert_int_equal(passlock_lock(again, sizeof again, "device-secret", plain, "pw one", &err),
                     0);
    assert_string_not_equal(again, locked);
    assert_int_equal(passlock_unlock(out, sizeof out, "device-secret", locked, "pw one",
                                     "the device key", &err),
                     0);
    assert_string_equal(out, plain);
    ASSERT_REFUSED(passlock_unlock(out, sizeof out, "device-secret", locked, "pw two",
                                   "the device key", &err),
                   RC_E_AUTH, &err);
    assert_string_equal(err.msg, "wrong passphrase for the device key");
    /* Another type's string is not taken for this one. */
    ASSERT_REFUSED(passlock_unlock(out, sizeof out, "list-secret", locked, "pw one",
                                   "the list secret", &err),
                   RC_E_FORMAT, &err);
    /* An empty passphrase never locks. */
    ASSERT_REFUSED(passlock_lock(again, sizeof again, "device-secret", plain, "", &err),
                   RC_E_INVALID, &err);
    sodium_memzero(&dev, sizeof dev);
}

/* Re-encode a locked string's payload after `edit` (the checksum is
 * recomputed, as an attacker who can write the file would). */
static void relock(char *locked, size_t len, void (*edit)(uint8_t *p, size_t n))
{
    uint8_t p[2048];
    size_t n = 0;
    rc_error err;
    assert_int_equal(rc_keystr_decode(locked, "device-secret-locked", p, sizeof p, &n, &err), 0);
    edit(p, n);
    assert_int_equal(rc_keystr_encode(locked, len, "device-secret-locked", p, n, &err), 0);
}

static void huge_memlimit(uint8_t *p, size_t n)
{
    (void)n;
    p[4] = 0, p[5] = 0, p[6] = 0x10, p[7] = 0; /* 4096 MiB */
}

static void zero_ops(uint8_t *p, size_t n)
{
    (void)n;
    p[0] = p[1] = p[2] = p[3] = 0;
}

static void flip_box(uint8_t *p, size_t n)
{
    p[n - 1] ^= 1;
}

static void test_passlock_tampered_file(void **state)
{
    (void)state;
    rc_error err;
    char locked[2 * RC_KEYSTR_MAX], out[RC_KEYSTR_MAX];
    const char *plain = "recrypt1.device-secret.placeholder";
    static void (*const edits[])(uint8_t *, size_t) = {huge_memlimit, zero_ops, flip_box};
    static const int want[] = {RC_E_FORMAT, RC_E_FORMAT, RC_E_AUTH};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(passlock_lock(locked, sizeof locked, "device-secret", plain, "pw", &err),
                         0);
        relock(locked, sizeof locked, edits[i]);
        ASSERT_REFUSED(passlock_unlock(out, sizeof out, "device-secret", locked, "pw",
                                       "the device key", &err),
                       want[i], &err);
    }
    /* A changed character breaks the key string's checksum. */
    assert_int_equal(passlock_lock(locked, sizeof locked, "device-secret", plain, "pw", &err), 0);
    locked[strlen(locked) - 3] = locked[strlen(locked) - 3] == 'A' ? 'B' : 'A';
    assert_int_not_equal(passlock_unlock(out, sizeof out, "device-secret", locked, "pw",
                                         "the device key", &err),
                         0);
}

static void test_passlock_ask_file(void **state)
{
    (void)state;
    char path[PATH_MAX + 16], pass[PASSLOCK_MAX];
    rc_error err;
    passlock_ask_opts o = {"p: ", "the device key is locked", 0, 1};
    snprintf(path, sizeof path, "%s/pass", T);
    write_text(path, "first line\r\nsecond line\n");
    setenv("RECRYPT_PASSPHRASE_FILE", path, 1);
    assert_int_equal(passlock_ask(pass, &o, &err), 0);
    assert_string_equal(pass, "first line");
    write_text(path, "\nsecond line\n");
    ASSERT_REFUSED(passlock_ask(pass, &o, &err), RC_E_INVALID, &err);
    assert_string_equal(err.msg, "the passphrase is empty");
    snprintf(path, sizeof path, "%s/missing", T);
    setenv("RECRYPT_PASSPHRASE_FILE", path, 1);
    ASSERT_REFUSED(passlock_ask(pass, &o, &err), RC_E_IO, &err);
    /* No file and never the terminal (the native host). */
    unsetenv("RECRYPT_PASSPHRASE_FILE");
    ASSERT_REFUSED(passlock_ask(pass, &o, &err), RC_E_POLICY, &err);
    assert_non_null(strstr(err.msg, "the device key is locked and there is no terminal to ask "
                                    "on: set RECRYPT_PASSPHRASE_FILE"));
}

/* ---- the device key in the keystore ---- */

static void test_device_key_locked(void **state)
{
    (void)state;
    keystore ks;
    rc_error err;
    rc_device_secret dev, got;
    rc_device_public pub;
    char home[PATH_MAX], path[PATH_MAX + 32], passfile[PATH_MAX + 16];
    struct stat sb;
    snprintf(home, sizeof home, "%s/home", T);
    snprintf(passfile, sizeof passfile, "%s/devpass", T);
    write_text(passfile, "device pass\n");
    setenv("RECRYPT_PASSPHRASE_FILE", passfile, 1);
    keystore_set_no_terminal(1);
    assert_int_equal(keystore_open(&ks, home, &err), 0);
    assert_int_equal(keystore_prepare(&ks, &err), 0);
    assert_int_equal(rc_device_generate(&dev, &err), 0);
    assert_int_equal(keystore_device_store(&ks, &dev, "device pass", &err), 0);
    assert_true(keystore_device_is_protected(&ks));
    snprintf(path, sizeof path, "%s/device.key", home);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(keystore_device_load(&ks, &got, &err), 0);
    assert_memory_equal(&got, &dev, sizeof dev);
    /* The public half without the passphrase. */
    unsetenv("RECRYPT_PASSPHRASE_FILE");
    assert_int_equal(keystore_device_public(&ks, &pub, &err), 0);
    assert_memory_equal(&pub, &dev.pub, sizeof pub);
    /* Cached for this process while the file stays the same ... */
    assert_int_equal(keystore_device_load(&ks, &got, &err), 0);
    /* ... and not once it is rewritten: the passphrase is needed again. */
    assert_int_equal(keystore_device_store(&ks, &dev, "device pass", &err), 0);
    ASSERT_REFUSED(keystore_device_load(&ks, &got, &err), RC_E_POLICY, &err);
    write_text(passfile, "not it\n");
    setenv("RECRYPT_PASSPHRASE_FILE", passfile, 1);
    ASSERT_REFUSED(keystore_device_load(&ks, &got, &err), RC_E_PERMISSION, &err);
    assert_non_null(strstr(err.msg, "wrong passphrase for the device key"));
    /* Group-readable: refused before any passphrase. */
    write_text(passfile, "device pass\n");
    assert_int_equal(chmod(path, 0640), 0);
    ASSERT_REFUSED(keystore_device_load(&ks, &got, &err), RC_E_PERMISSION, &err);
    assert_non_null(strstr(err.msg, "accessible by group or others"));
    assert_int_equal(chmod(path, 0600), 0);
    /* Back in the clear. */
    assert_int_equal(keystore_device_save(&ks, &dev, &err), 0);
    assert_false(keystore_device_is_protected(&ks));
    unsetenv("RECRYPT_PASSPHRASE_FILE");
    assert_int_equal(keystore_device_load(&ks, &got, &err), 0);
    assert_memory_equal(&got, &dev, sizeof dev);
    /* A stale device.pub (another key's) is not believed for a key in the
     * clear. */
    rc_device_secret other;
    char line[RC_KEYSTR_MAX + 2];
    assert_int_equal(rc_device_generate(&other, &err), 0);
    assert_int_equal(rc_device_public_encode(line, sizeof line - 1, &other.pub, &err), 0);
    strcat(line, "\n");
    snprintf(path, sizeof path, "%s/device.pub", home);
    write_text(path, line);
    assert_int_equal(keystore_device_public(&ks, &pub, &err), 0);
    assert_memory_equal(&pub, &dev.pub, sizeof pub);
    sodium_memzero(&other, sizeof other);
    sodium_memzero(&dev, sizeof dev);
    sodium_memzero(&got, sizeof got);
}

/* ---- staging without memory files ---- */

static void test_spool_fallback(void **state)
{
    (void)state;
    rc_error err;
    char run[1024], dir[PATH_MAX], link[64], target[PATH_MAX];
    struct stat sb;
    snprintf(run, sizeof run, "%s/run", T);
    assert_int_equal(mkdir(run, 0700), 0);
    setenv("XDG_RUNTIME_DIR", run, 1);
    /* With memory files: a memfd. */
    int fd = spool_tmpfile(&err);
    assert_true(fd >= 0);
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_non_null(strstr(target, "/memfd:recrypt-stage"));
    close(fd);
    /* Without: O_TMPFILE in $XDG_RUNTIME_DIR/recrypt, 0700, no name. */
    memfd_off = 1;
    fd = spool_tmpfile(&err);
    assert_true(fd >= 0);
    snprintf(dir, sizeof dir, "%s/recrypt", run);
    assert_int_equal(lstat(dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(fstat(fd, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_nlink, 0); /* no name anywhere */
    assert_int_equal(write(fd, "secret", 6), 6);
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", dir);
    assert_int_equal(system(cmd), 0);
    close(fd);
    /* A directory others can enter is refused. */
    assert_int_equal(chmod(dir, 0755), 0);
    rc_error_clear(&err);
    assert_int_equal(spool_tmpfile(&err), -1);
    assert_int_equal(err.code, RC_E_PERMISSION);
    assert_non_null(strstr(err.msg, "must be your own directory with mode 0700"));
    assert_int_equal(chmod(dir, 0700), 0);
    /* Without a runtime directory: <keystore>/tmp. */
    unsetenv("XDG_RUNTIME_DIR");
    char home[1024];
    snprintf(home, sizeof home, "%s/ks", T);
    setenv("RECRYPT_HOME", home, 1);
    fd = spool_tmpfile(&err);
    assert_true(fd >= 0);
    close(fd);
    snprintf(dir, sizeof dir, "%s/tmp", home);
    assert_int_equal(lstat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    memfd_off = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passlock_roundtrip_and_refusals),
        cmocka_unit_test(test_passlock_tampered_file),
        cmocka_unit_test(test_passlock_ask_file),
        cmocka_unit_test(test_device_key_locked),
        cmocka_unit_test(test_spool_fallback),
    };
    if (rc_init(NULL) != 0)
        return 1;
    return cmocka_run_group_tests(tests, setup, teardown);
}
