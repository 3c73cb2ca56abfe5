/*
 * test_keys.c - key generation, key strings (round trips for every type,
 * corruption, versions, white space), key files (mode 0600, refusal of
 * group/world-accessible files and symlinks) and address canonicalisation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "test_util.h"

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---------------------------------------------------------------- generation */

static void test_generate_device(void **state)
{
    (void)state;
    rc_device_secret *a = rc_secret_alloc(sizeof *a), *b = rc_secret_alloc(sizeof *b);
    uint8_t pk[32];
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(rc_device_generate(a, NULL), RC_OK);
    assert_int_equal(rc_device_generate(b, NULL), RC_OK);
    crypto_scalarmult_base(pk, a->wrap_sk);
    assert_memory_equal(pk, a->pub.wrap_pk, 32);
    crypto_sign_ed25519_sk_to_pk(pk, a->sign_sk);
    assert_memory_equal(pk, a->pub.sign_pk, 32);
    assert_memory_not_equal(a->wrap_sk, b->wrap_sk, 32);
    assert_memory_not_equal(a->sign_sk, b->sign_sk, 64);
    rc_secret_free(a);
    rc_secret_free(b);
}

static void test_generate_service_owner(void **state)
{
    (void)state;
    rc_service_secret *s = rc_secret_alloc(sizeof *s);
    rc_owner_secret *o = rc_secret_alloc(sizeof *o);
    uint8_t pk[32];
    assert_int_equal(rc_service_generate(s, NULL), RC_OK);
    crypto_scalarmult_base(pk, s->sk);
    assert_memory_equal(pk, s->pub.pk, 32);
    assert_false(sodium_is_zero(s->sk, 32));
    assert_int_equal(rc_owner_generate(o, NULL), RC_OK);
    crypto_scalarmult_base(pk, o->box_sk);
    assert_memory_equal(pk, o->pub.box_pk, 32);
    crypto_sign_ed25519_sk_to_pk(pk, o->sign_sk);
    assert_memory_equal(pk, o->pub.sign_pk, 32);
    rc_secret_free(s);
    rc_secret_free(o);
}

static void test_generate_list(void **state)
{
    (void)state;
    rc_list_secret *l = rc_secret_alloc(sizeof *l), *l2 = rc_secret_alloc(sizeof *l2);
    uint8_t A[32], pk[32];
    rc_error err;
    assert_int_equal(rc_list_generate(l, "Team@Example.ORG", 7, NULL, &err), RC_OK);
    assert_string_equal(l->address, "team@example.org");
    assert_int_equal(l->epoch, 7);
    assert_true(rc_scalar_is_canonical_nonzero(l->a));
    assert_int_equal(crypto_scalarmult_ristretto255_base(A, l->a), 0);
    assert_memory_equal(A, l->A, 32);
    crypto_sign_ed25519_sk_to_pk(pk, l->sign_sk);
    assert_memory_equal(pk, l->sign_pk, 32);
    /* A new epoch with the same list signing key: new a, same signer. */
    assert_int_equal(rc_list_generate(l2, "team@example.org", 8, l->sign_sk, &err), RC_OK);
    assert_int_equal(l2->epoch, 8);
    assert_memory_equal(l2->sign_pk, l->sign_pk, 32);
    assert_memory_equal(l2->sign_sk, l->sign_sk, 64);
    assert_memory_not_equal(l2->a, l->a, 32);
    assert_memory_not_equal(l2->A, l->A, 32);
    /* A fresh list: another signer. */
    assert_int_equal(rc_list_generate(l2, "team@example.org", 1, NULL, &err), RC_OK);
    assert_memory_not_equal(l2->sign_pk, l->sign_pk, 32);
    ASSERT_REFUSED(rc_list_generate(l2, "not an address", 1, NULL, &err), RC_E_INVALID, &err);
    rc_secret_free(l);
    rc_secret_free(l2);
}

/* ---------------------------------------------------------------- round trips */

static void assert_prefix(const char *s, const char *type)
{
    char want[64];
    snprintf(want, sizeof want, "recrypt1.%s.", type);
    assert_memory_equal(s, want, strlen(want));
    assert_null(strchr(s + strlen(want), '.'));
    assert_true(strlen(s) < RC_KEYSTR_MAX);
}

static void test_roundtrip_device(void **state)
{
    (void)state;
    char s[RC_KEYSTR_MAX];
    rc_error err;
    rc_device_secret *d = rc_secret_alloc(sizeof *d), *d2 = rc_secret_alloc(sizeof *d2);
    rc_device_public p;
    assert_int_equal(rc_device_generate(d, NULL), RC_OK);

    assert_int_equal(rc_device_public_encode(s, sizeof s, &d->pub, &err), RC_OK);
    assert_prefix(s, RC_KT_DEVICE);
    memset(&p, 0, sizeof p);
    assert_int_equal(rc_device_public_decode(&p, s, &err), RC_OK);
    assert_memory_equal(&p, &d->pub, sizeof p);

    assert_int_equal(rc_device_secret_encode(s, sizeof s, d, &err), RC_OK);
    assert_prefix(s, RC_KT_DEVICE_SECRET);
    assert_int_equal(rc_device_secret_decode(d2, s, &err), RC_OK);
    assert_memory_equal(d2->wrap_sk, d->wrap_sk, 32);
    assert_memory_equal(d2->sign_sk, d->sign_sk, 64);
    assert_memory_equal(&d2->pub, &d->pub, sizeof d->pub);
    /* A secret string is not a public one and vice versa. */
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);
    assert_int_equal(rc_device_public_encode(s, sizeof s, &d->pub, &err), RC_OK);
    ASSERT_REFUSED(rc_device_secret_decode(d2, s, &err), RC_E_FORMAT, &err);
    /* Buffer too small for the string. */
    ASSERT_REFUSED(rc_device_public_encode(s, 40, &d->pub, &err), RC_E_INVALID, &err);
    rc_secret_free(d);
    rc_secret_free(d2);
}

static void test_roundtrip_service(void **state)
{
    (void)state;
    char s[RC_KEYSTR_MAX];
    rc_error err;
    rc_service_secret *k = rc_secret_alloc(sizeof *k), *k2 = rc_secret_alloc(sizeof *k2);
    rc_service_public p;
    assert_int_equal(rc_service_generate(k, NULL), RC_OK);
    assert_int_equal(rc_service_public_encode(s, sizeof s, &k->pub, &err), RC_OK);
    assert_prefix(s, RC_KT_SERVICE);
    assert_int_equal(rc_service_public_decode(&p, s, &err), RC_OK);
    assert_memory_equal(p.pk, k->pub.pk, 32);
    assert_int_equal(rc_service_secret_encode(s, sizeof s, k, &err), RC_OK);
    assert_prefix(s, RC_KT_SERVICE_SECRET);
    assert_int_equal(rc_service_secret_decode(k2, s, &err), RC_OK);
    assert_memory_equal(k2->sk, k->sk, 32);
    assert_memory_equal(k2->pub.pk, k->pub.pk, 32);
    ASSERT_REFUSED(rc_service_public_decode(&p, s, &err), RC_E_FORMAT, &err);
    rc_secret_free(k);
    rc_secret_free(k2);
}

static void test_roundtrip_owner(void **state)
{
    (void)state;
    char s[RC_KEYSTR_MAX];
    rc_error err;
    rc_owner_secret *k = rc_secret_alloc(sizeof *k), *k2 = rc_secret_alloc(sizeof *k2);
    rc_owner_public p;
    assert_int_equal(rc_owner_generate(k, NULL), RC_OK);
    assert_int_equal(rc_owner_public_encode(s, sizeof s, &k->pub, &err), RC_OK);
    assert_prefix(s, RC_KT_OWNER);
    assert_int_equal(rc_owner_public_decode(&p, s, &err), RC_OK);
    assert_memory_equal(&p, &k->pub, sizeof p);
    assert_int_equal(rc_owner_secret_encode(s, sizeof s, k, &err), RC_OK);
    assert_prefix(s, RC_KT_OWNER_SECRET);
    assert_int_equal(rc_owner_secret_decode(k2, s, &err), RC_OK);
    assert_memory_equal(k2->box_sk, k->box_sk, 32);
    assert_memory_equal(k2->sign_sk, k->sign_sk, 64);
    assert_memory_equal(&k2->pub, &k->pub, sizeof k->pub);
    /* An owner string is not a device string even though both hold 64 bytes. */
    rc_device_secret *d = rc_secret_alloc(sizeof *d);
    ASSERT_REFUSED(rc_device_secret_decode(d, s, &err), RC_E_FORMAT, &err);
    rc_secret_free(d);
    rc_secret_free(k);
    rc_secret_free(k2);
}

static void test_roundtrip_list_secret(void **state)
{
    (void)state;
    char s[RC_KEYSTR_MAX];
    rc_error err;
    rc_list_secret *l = rc_secret_alloc(sizeof *l), *l2 = rc_secret_alloc(sizeof *l2);
    assert_int_equal(rc_list_generate(l, "list@example.org", 0x0102030405060708ull, NULL, &err),
                     RC_OK);
    assert_int_equal(rc_list_secret_encode(s, sizeof s, l, &err), RC_OK);
    assert_prefix(s, RC_KT_LIST_SECRET);
    assert_int_equal(rc_list_secret_decode(l2, s, &err), RC_OK);
    assert_string_equal(l2->address, l->address);
    assert_int_equal(l2->epoch, l->epoch);
    assert_memory_equal(l2->a, l->a, 32);
    assert_memory_equal(l2->A, l->A, 32);
    assert_memory_equal(l2->sign_sk, l->sign_sk, 64);
    assert_memory_equal(l2->sign_pk, l->sign_pk, 32);
    rc_secret_free(l);
    rc_secret_free(l2);
}

/* A list secret string with a valid checksum but a bad scalar or version. */
static void test_list_secret_bad_payload(void **state)
{
    (void)state;
    char s[RC_KEYSTR_MAX];
    uint8_t b[128];
    rc_error err;
    rc_list_secret *l = rc_secret_alloc(sizeof *l);
    const char *addr = "list@example.org";
    size_t n = 0;
    b[n++] = 1;
    b[n++] = (uint8_t)strlen(addr);
    memcpy(b + n, addr, strlen(addr));
    n += strlen(addr);
    memset(b + n, 0, 8);
    b[n + 7] = 1;
    n += 8;
    size_t a_off = n;
    memcpy(b + n, L_BYTES, 32); /* a = L: not canonical */
    n += 32;
    randombytes_buf(b + n, 32);
    n += 32;
    assert_int_equal(rc_keystr_encode(s, sizeof s, RC_KT_LIST_SECRET, b, n, &err), RC_OK);
    ASSERT_REFUSED(rc_list_secret_decode(l, s, &err), RC_E_CRYPTO, &err);
    memset(b + a_off, 0, 32); /* a = 0 */
    assert_int_equal(rc_keystr_encode(s, sizeof s, RC_KT_LIST_SECRET, b, n, &err), RC_OK);
    ASSERT_REFUSED(rc_list_secret_decode(l, s, &err), RC_E_CRYPTO, &err);
    b[a_off] = 5; /* a = 5: fine */
    assert_int_equal(rc_keystr_encode(s, sizeof s, RC_KT_LIST_SECRET, b, n, &err), RC_OK);
    assert_int_equal(rc_list_secret_decode(l, s, &err), RC_OK);
    assert_int_equal(l->epoch, 1);
    b[0] = 2; /* version 2 */
    assert_int_equal(rc_keystr_encode(s, sizeof s, RC_KT_LIST_SECRET, b, n, &err), RC_OK);
    ASSERT_REFUSED(rc_list_secret_decode(l, s, &err), RC_E_VERSION, &err);
    b[0] = 1; /* one byte short */
    assert_int_equal(rc_keystr_encode(s, sizeof s, RC_KT_LIST_SECRET, b, n - 1, &err), RC_OK);
    ASSERT_REFUSED(rc_list_secret_decode(l, s, &err), RC_E_FORMAT, &err);
    rc_secret_free(l);
}

/* The payload length must be exactly the type's. */
static void test_wrong_payload_length(void **state)
{
    (void)state;
    char s[RC_KEYSTR_MAX];
    uint8_t b[65] = {0};
    rc_error err;
    rc_device_public p;
    rc_service_public sp;
    assert_int_equal(rc_keystr_encode(s, sizeof s, RC_KT_DEVICE, b, 63, &err), RC_OK);
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);
    assert_int_equal(rc_keystr_encode(s, sizeof s, RC_KT_DEVICE, b, 65, &err), RC_OK);
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);
    assert_int_equal(rc_keystr_encode(s, sizeof s, RC_KT_SERVICE, b, 0, &err), RC_OK);
    ASSERT_REFUSED(rc_service_public_decode(&sp, s, &err), RC_E_FORMAT, &err);
    assert_int_equal(rc_keystr_encode(s, sizeof s, RC_KT_SERVICE, b, 32, &err), RC_OK);
    assert_int_equal(rc_service_public_decode(&sp, s, &err), RC_OK);
}

/* ---------------------------------------------------------------- corruption */

/* out = a ‖ b (asserting it fits). */
static void join(char *out, size_t cap, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    assert_true(la + lb < cap);
    memcpy(out, a, la);
    memcpy(out + la, b, lb + 1);
}

static char b64_other(char c)
{
    const char *p = strchr(B64URL, c);
    assert_non_null(p);
    return B64URL[((p - B64URL) + 17) % 64];
}

static void test_corrupted_strings(void **state)
{
    (void)state;
    char good[RC_KEYSTR_MAX], s[RC_KEYSTR_MAX + 32];
    rc_error err;
    rc_device_secret *d = rc_secret_alloc(sizeof *d);
    rc_device_public p;
    assert_int_equal(rc_device_generate(d, NULL), RC_OK);
    assert_int_equal(rc_device_public_encode(good, sizeof good, &d->pub, &err), RC_OK);
    size_t n = strlen(good);
    size_t head = strlen("recrypt1.device.");
    assert_int_equal(n, head + 91); /* 68 bytes: 91 base64url characters */

    /* One character changed inside the payload, at many positions. */
    for (size_t i = head; i < n; i++) {
        strcpy(s, good);
        s[i] = b64_other(s[i]);
        ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);
    }
    /* One character changed in the type word or the magic. */
    strcpy(s, good);
    s[9] = 'D'; /* Device */
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);
    strcpy(s, good);
    s[14] = 'f'; /* devicf */
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);
    strcpy(s, good);
    s[0] = 'R';
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);
    strcpy(s, good);
    s[3] = 'x';
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);
    /* A character not in the alphabet. */
    strcpy(s, good);
    s[head + 10] = '+';
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);
    strcpy(s, good);
    s[head + 10] = '=';
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);

    /* Truncated: last char, last 4 chars, payload gone, type gone. */
    static const size_t cut[] = {1, 2, 3, 4, 5, 8, 50, 91, 92, 98};
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        strcpy(s, good);
        s[n - cut[i]] = '\0';
        ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);
    }
    /* One character too many. */
    strcpy(s, good);
    strcat(s, "A");
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);

    /* Non-canonical final character: 68 bytes leave 2 unused bits in the
     * last character; setting one keeps the decoded bytes (and so the
     * checksum) the same. */
    strcpy(s, good);
    const char *pos = strchr(B64URL, s[n - 1]);
    assert_non_null(pos);
    assert_int_equal((pos - B64URL) & 3, 0);
    s[n - 1] = B64URL[(pos - B64URL) | 1];
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);
    s[n - 1] = B64URL[(pos - B64URL) | 2];
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_FORMAT, &err);

    /* Wrong type word with a valid checksum for that type. */
    char svc[RC_KEYSTR_MAX];
    rc_service_public sp;
    memcpy(sp.pk, d->pub.wrap_pk, 32);
    assert_int_equal(rc_service_public_encode(svc, sizeof svc, &sp, &err), RC_OK);
    ASSERT_REFUSED(rc_device_public_decode(&p, svc, &err), RC_E_FORMAT, &err);
    assert_non_null(strstr(err.msg, "service"));
    /* The type word is under the checksum: renaming it does not help. */
    assert_int_equal(rc_keystr_encode(s, sizeof s, RC_KT_DEVICE, d->pub.wrap_pk, 32, &err),
                     RC_OK);
    char renamed[RC_KEYSTR_MAX + 32];
    join(renamed, sizeof renamed, "recrypt1.service.", svc + strlen("recrypt1.service."));
    assert_int_equal(rc_service_public_decode(&sp, renamed, &err), RC_OK);
    join(renamed, sizeof renamed, "recrypt1.service.", s + strlen("recrypt1.device."));
    ASSERT_REFUSED(rc_service_public_decode(&sp, renamed, &err), RC_E_FORMAT, &err);

    /* Versions. */
    strcpy(s, good);
    s[7] = '2';
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_VERSION, &err);
    join(s, sizeof s, "recrypt0.", good + strlen("recrypt1."));
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_VERSION, &err);
    join(s, sizeof s, "recrypt12.", good + strlen("recrypt1."));
    ASSERT_REFUSED(rc_device_public_decode(&p, s, &err), RC_E_VERSION, &err);

    /* Garbage. */
    static const char *garbage[] = {"", " ", "recrypt", "recrypt1.", "recrypt1.device",
                                    "recrypt1.device.", "recrypt1..", "hello world",
                                    "-----BEGIN PGP PUBLIC KEY BLOCK-----", "\xff\xfe\x01"};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
        ASSERT_REFUSED(rc_device_public_decode(&p, garbage[i], &err), RC_E_FORMAT, &err);
    /* Far too long. */
    char *big = malloc(4000);
    assert_non_null(big);
    memset(big, 'A', 3999);
    big[3999] = '\0';
    memcpy(big, "recrypt1.device.", head);
    ASSERT_REFUSED(rc_device_public_decode(&p, big, &err), RC_E_FORMAT, &err);
    free(big);

    /* Still fine after all that. */
    assert_int_equal(rc_device_public_decode(&p, good, &err), RC_OK);
    assert_memory_equal(&p, &d->pub, sizeof p);
    rc_secret_free(d);
}

/* Corruption of a secret string: each character of the payload. */
static void test_corrupted_secret_string(void **state)
{
    (void)state;
    char good[RC_KEYSTR_MAX], s[RC_KEYSTR_MAX];
    rc_error err;
    rc_list_secret *l = rc_secret_alloc(sizeof *l), *l2 = rc_secret_alloc(sizeof *l2);
    assert_int_equal(rc_list_generate(l, "x@example.org", 3, NULL, &err), RC_OK);
    assert_int_equal(rc_list_secret_encode(good, sizeof good, l, &err), RC_OK);
    size_t head = strlen("recrypt1.list-secret.");
    for (size_t i = head; i < strlen(good); i += 3) {
        strcpy(s, good);
        s[i] = b64_other(s[i]);
        ASSERT_REFUSED(rc_list_secret_decode(l2, s, &err), RC_E_FORMAT, &err);
    }
    rc_secret_free(l);
    rc_secret_free(l2);
}

/* White space and header folding anywhere in the string are ignored. */
static void test_whitespace_tolerated(void **state)
{
    (void)state;
    char good[RC_KEYSTR_MAX], s[RC_KEYSTR_MAX * 2];
    rc_error err;
    rc_device_secret *d = rc_secret_alloc(sizeof *d);
    rc_device_public p;
    assert_int_equal(rc_device_generate(d, NULL), RC_OK);
    assert_int_equal(rc_device_public_encode(good, sizeof good, &d->pub, &err), RC_OK);
    size_t n = strlen(good);

    /* Leading/trailing space and newlines. */
    join(s, sizeof s, "  \t", good);
    strcat(s, "\r\n");
    memset(&p, 0, sizeof p);
    assert_int_equal(rc_device_public_decode(&p, s, &err), RC_OK);
    assert_memory_equal(&p, &d->pub, sizeof p);

    /* Folded like a header field every 20 characters, and a space inside
     * the prefix. */
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && i % 20 == 0) {
            memcpy(s + o, "\r\n\t ", 4);
            o += 4;
        }
        if (i == 4)
            s[o++] = ' ';
        s[o++] = good[i];
    }
    s[o] = '\0';
    memset(&p, 0, sizeof p);
    assert_int_equal(rc_device_public_decode(&p, s, &err), RC_OK);
    assert_memory_equal(&p, &d->pub, sizeof p);

    /* LF-only folding inside the payload of a list statement string. */
    rc_list_secret *l = rc_secret_alloc(sizeof *l);
    rc_statement st, st2;
    assert_int_equal(rc_list_generate(l, "fold@example.org", 1, NULL, &err), RC_OK);
    assert_int_equal(rc_statement_sign(&st, l, 100, 0, &err), RC_OK);
    assert_int_equal(rc_statement_encode(good, sizeof good, &st, &err), RC_OK);
    n = strlen(good);
    o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && i % 60 == 0) {
            memcpy(s + o, "\n ", 2);
            o += 2;
        }
        s[o++] = good[i];
    }
    s[o] = '\0';
    assert_int_equal(rc_statement_decode(&st2, s, &err), RC_OK);
    assert_memory_equal(st2.A, st.A, 32);
    assert_memory_equal(st2.sig, st.sig, 64);
    rc_secret_free(l);
    rc_secret_free(d);
}

/* ---------------------------------------------------------------- key files */

static char tmpdir[512];

static int setup_tmpdir(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/rc-keys-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmpdir(void **state)
{
    (void)state;
    static const char *names[] = {"k1", "k2", "link", "old", "sub"};
    char p[600];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        if (unlink(p) != 0 && errno == EISDIR)
            rmdir(p);
        rmdir(p);
    }
    return rmdir(tmpdir) == 0 ? 0 : -1;
}

static void test_keyfile_write_read(void **state)
{
    (void)state;
    char path[600], s[RC_KEYSTR_MAX], back[RC_KEYSTR_MAX];
    struct stat sb;
    rc_error err;
    rc_device_secret *d = rc_secret_alloc(sizeof *d);
    assert_int_equal(rc_device_generate(d, NULL), RC_OK);
    assert_int_equal(rc_device_secret_encode(s, sizeof s, d, &err), RC_OK);
    snprintf(path, sizeof path, "%s/k1", tmpdir);
    mode_t old = umask(0);
    int rc = rc_keyfile_write(path, s, &err);
    umask(old);
    assert_int_equal(rc, RC_OK);
    assert_int_equal(lstat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(sb.st_size, (off_t)strlen(s) + 1);
    assert_int_equal(rc_keyfile_read(path, back, sizeof back, &err), RC_OK);
    assert_string_equal(back, s);
    rc_device_secret *d2 = rc_secret_alloc(sizeof *d2);
    assert_int_equal(rc_device_secret_decode(d2, back, &err), RC_OK);
    assert_memory_equal(d2->sign_sk, d->sign_sk, 64);
    rc_secret_free(d2);

    /* Replacing an existing, world-readable file gives a 0600 file. */
    snprintf(path, sizeof path, "%s/old", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("old\n", f);
    fclose(f);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(rc_keyfile_write(path, s, &err), RC_OK);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(rc_keyfile_read(path, back, sizeof back, &err), RC_OK);
    assert_string_equal(back, s);

    /* No temporary files left behind. */
    DIR *dir = opendir(tmpdir);
    assert_non_null(dir);
    int count = 0;
    for (struct dirent *de; (de = readdir(dir)) != NULL;)
        count++;
    closedir(dir);
    assert_int_equal(count, 4); /* . .. k1 old */
    rc_secret_free(d);
}

static void test_keyfile_permissions(void **state)
{
    (void)state;
    char path[600], back[RC_KEYSTR_MAX];
    rc_error err;
    snprintf(path, sizeof path, "%s/k2", tmpdir);
    assert_int_equal(rc_keyfile_write(path, "recrypt1.service.AAAA", &err), RC_OK);
    static const mode_t bad[] = {0640, 0604, 0644, 0660, 0606, 0601, 0610, 0666, 0700 | 0040};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(path, bad[i]), 0);
        memset(back, 0, sizeof back);
        ASSERT_REFUSED(rc_keyfile_read(path, back, sizeof back, &err), RC_E_PERMISSION, &err);
        assert_non_null(strstr(err.msg, path));
        assert_int_equal(back[0], '\0'); /* nothing read */
    }
    static const mode_t good[] = {0600, 0400, 0700};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(chmod(path, good[i]), 0);
        assert_int_equal(rc_keyfile_read(path, back, sizeof back, &err), RC_OK);
        assert_string_equal(back, "recrypt1.service.AAAA");
    }
    assert_int_equal(chmod(path, 0600), 0);
}

static void test_keyfile_symlink_and_others(void **state)
{
    (void)state;
    char path[600], link[600], back[RC_KEYSTR_MAX];
    rc_error err;
    snprintf(path, sizeof path, "%s/k2", tmpdir);
    snprintf(link, sizeof link, "%s/link", tmpdir);
    assert_int_equal(rc_keyfile_write(path, "recrypt1.service.BBBB", &err), RC_OK);
    assert_int_equal(rc_keyfile_read(path, back, sizeof back, &err), RC_OK);
    unlink(link);
    assert_int_equal(symlink("k2", link), 0);
    /* The target is a fine 0600 key file; the link itself is refused. */
    memset(back, 0, sizeof back);
    ASSERT_REFUSED(rc_keyfile_read(link, back, sizeof back, &err), RC_E_IO, &err);
    assert_int_equal(back[0], '\0');
    assert_int_equal(unlink(link), 0);
    /* Missing file. */
    snprintf(link, sizeof link, "%s/missing", tmpdir);
    ASSERT_REFUSED(rc_keyfile_read(link, back, sizeof back, &err), RC_E_IO, &err);
    /* A directory is not a key file. */
    snprintf(link, sizeof link, "%s/sub", tmpdir);
    assert_int_equal(mkdir(link, 0700), 0);
    ASSERT_REFUSED(rc_keyfile_read(link, back, sizeof back, &err), RC_E_IO, &err);
    assert_int_equal(rmdir(link), 0);
    /* Writing into a directory that does not exist. */
    snprintf(link, sizeof link, "%s/nodir/k", tmpdir);
    ASSERT_REFUSED(rc_keyfile_write(link, "x", &err), RC_E_IO, &err);
}

/* ---------------------------------------------------------------- addresses */

static void test_address_canonical(void **state)
{
    (void)state;
    char out[RC_ADDR_MAX + 1];
    rc_error err;
    assert_int_equal(rc_address_canonical(out, "Alice.Smith+Tag@Example.ORG", &err), RC_OK);
    assert_string_equal(out, "alice.smith+tag@example.org");
    assert_int_equal(rc_address_canonical(out, "a@b", &err), RC_OK);
    assert_string_equal(out, "a@b");
    assert_int_equal(rc_address_canonical(out, "x@localhost", &err), RC_OK);
    assert_string_equal(out, "x@localhost");

    /* Exactly RC_ADDR_MAX characters is fine, one more is not. */
    char big[RC_ADDR_MAX + 2];
    memset(big, 'a', sizeof big);
    big[0] = 'U';
    big[60] = '@';
    memcpy(big + RC_ADDR_MAX - 4, ".org", 4);
    big[RC_ADDR_MAX] = '\0';
    assert_int_equal(rc_address_canonical(out, big, &err), RC_OK);
    assert_int_equal(strlen(out), RC_ADDR_MAX);
    assert_int_equal(out[0], 'u');
    memset(big, 'a', sizeof big);
    big[60] = '@';
    memcpy(big + RC_ADDR_MAX + 1 - 4, ".org", 4);
    big[RC_ADDR_MAX + 1] = '\0';
    ASSERT_REFUSED(rc_address_canonical(out, big, &err), RC_E_INVALID, &err);

    static const char *bad[] = {
        "",                      /* empty */
        "alice.example.org",     /* no @ */
        "alice@@example.org",    /* two @ */
        "a@b@example.org",       /* two @ */
        "alice smith@example.org", /* space */
        " alice@example.org",    /* leading space */
        "alice@example.org ",    /* trailing space */
        "alice@exa mple.org",    /* space in domain */
        "alice\t@example.org",   /* tab */
        "@example.org",          /* empty local part */
        "alice@",                /* empty domain */
        "alice@.example.org",    /* bad domain */
        "alice@example..org",    /* bad domain */
        "alice@example.org.",    /* bad domain */
        "alice@.",               /* bad domain */
        "<alice@example.org>",   /* brackets */
        "Alice <alice@example.org>",
        "alice@exa,mple.org",
        "alice;x@example.org",
        "\"al\"@example.org",
        "al\\ice@example.org",
        "alice@[192.0.2.1]",
        "al\xc3\xa9@example.org", /* not ASCII */
        "al\x7f@example.org",     /* DEL */
        "al\n@example.org",
        "@",
        "a@",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc_error_clear(&err);
        int rc = rc_address_canonical(out, bad[i], &err);
        if (rc != RC_E_INVALID)
            fail_msg("address #%zu '%s' gave %d, expected RC_E_INVALID", i, bad[i], rc);
        assert_int_equal(err.code, RC_E_INVALID);
        assert_true(strlen(err.msg) > 0);
    }
}

static void test_list_id(void **state)
{
    (void)state;
    uint8_t a[32], b[32], c[32];
    rc_error err;
    assert_int_equal(rc_list_id(a, "Team@Example.org", &err), RC_OK);
    assert_int_equal(rc_list_id(b, "team@example.org", &err), RC_OK);
    assert_int_equal(rc_list_id(c, "team2@example.org", &err), RC_OK);
    assert_memory_equal(a, b, 32);
    assert_memory_not_equal(a, c, 32);
    ASSERT_REFUSED(rc_list_id(c, "team example.org", &err), RC_E_INVALID, &err);
}

static void test_secret_alloc(void **state)
{
    (void)state;
    uint8_t *p = rc_secret_alloc(100);
    assert_non_null(p);
    assert_true(sodium_is_zero(p, 100));
    memset(p, 0xaa, 100);
    rc_secret_free(p);
    rc_secret_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_device),
        cmocka_unit_test(test_generate_service_owner),
        cmocka_unit_test(test_generate_list),
        cmocka_unit_test(test_roundtrip_device),
        cmocka_unit_test(test_roundtrip_service),
        cmocka_unit_test(test_roundtrip_owner),
        cmocka_unit_test(test_roundtrip_list_secret),
        cmocka_unit_test(test_list_secret_bad_payload),
        cmocka_unit_test(test_wrong_payload_length),
        cmocka_unit_test(test_corrupted_strings),
        cmocka_unit_test(test_corrupted_secret_string),
        cmocka_unit_test(test_whitespace_tolerated),
        cmocka_unit_test(test_keyfile_write_read),
        cmocka_unit_test(test_keyfile_permissions),
        cmocka_unit_test(test_keyfile_symlink_and_others),
        cmocka_unit_test(test_address_canonical),
        cmocka_unit_test(test_list_id),
        cmocka_unit_test(test_secret_alloc),
    };
    if (rc_init(NULL) != 0)
        return 1;
    return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
