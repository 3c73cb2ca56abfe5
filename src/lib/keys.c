/*
 * keys.c - key generation, the one-line key strings, addresses and list ids,
 * and key files (0600, refused when group- or world-accessible).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ctype.h>
#include "internal.h"

#define KEYSTR_PREFIX "recrypt1."
#define KEYSTR_CHECK_BYTES 4
#define KEYSTR_PAYLOAD_MAX 2496 /* >= RC_STATEMENT_MAX (2490) */

void *rc_secret_alloc(size_t size)
{
    void *p = sodium_malloc(size);
    if (p) {
        sodium_memzero(p, size);
    }
    return p;
}

void rc_secret_free(void *p)
{
    sodium_free(p); /* wipes; NULL is a no-op */
}

int rc_device_generate(rc_device_secret *out, rc_error *err)
{
    (void)err;
    crypto_box_keypair(out->pub.wrap_pk, out->wrap_sk);
    crypto_sign_keypair(out->pub.sign_pk, out->sign_sk);
    return 0;
}

int rc_service_generate(rc_service_secret *out, rc_error *err)
{
    (void)err;
    crypto_box_keypair(out->pub.pk, out->sk);
    return 0;
}

int rc_owner_generate(rc_owner_secret *out, rc_error *err)
{
    (void)err;
    crypto_sign_keypair(out->pub.sign_pk, out->sign_sk);
    crypto_box_keypair(out->pub.box_pk, out->box_sk);
    return 0;
}

int rc_list_generate(rc_list_secret *out, const char *address, uint64_t epoch,
                     const uint8_t *sign_sk_or_null, rc_error *err)
{
    int rc = rc_address_canonical(out->address, address, err);
    if (rc)
        return rc;
    out->epoch = epoch;
    rc_scalar_random_nonzero(out->a);
    if (crypto_scalarmult_ristretto255_base(out->A, out->a) != 0)
        return rc_error_set(err, RC_E_INTERNAL, "list key generation failed");
    if (sign_sk_or_null) {
        memcpy(out->sign_sk, sign_sk_or_null, RC_SIGN_SK_BYTES);
        crypto_sign_ed25519_sk_to_pk(out->sign_pk, out->sign_sk);
    } else {
        crypto_sign_keypair(out->sign_pk, out->sign_sk);
    }
    return 0;
}

int rc_address_canonical(char *out, const char *in, rc_error *err)
{
    size_t n = strlen(in);
    if (n < 3 || n > RC_ADDR_MAX)
        return rc_error_set(err, RC_E_INVALID, "address '%.80s' has a bad length", in);
    const char *at = strchr(in, '@');
    if (!at || at == in || at[1] == '\0' || strchr(at + 1, '@'))
        return rc_error_set(err, RC_E_INVALID,
                            "'%.80s' is not an address of the form local@domain", in);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= 0x20 || c >= 0x7f || strchr("<>()[]\\,;:\"/", c))
            return rc_error_set(err, RC_E_INVALID,
                                "address '%.80s' contains a character not allowed here", in);
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    const char *dom = strchr(out, '@') + 1;
    if (dom[0] == '.' || dom[strlen(dom) - 1] == '.' || strstr(dom, ".."))
        return rc_error_set(err, RC_E_INVALID, "address '%.80s' has a malformed domain", in);
    return 0;
}

int rc_list_id(uint8_t id[RC_ID_BYTES], const char *address, rc_error *err)
{
    char canon[RC_ADDR_MAX + 1];
    uint8_t buf[1 + RC_ADDR_MAX];
    int rc = rc_address_canonical(canon, address, err);
    if (rc)
        return rc;
    size_t n = strlen(canon);
    buf[0] = RC_FORMAT_VERSION;
    memcpy(buf + 1, canon, n);
    rc_hash(id, RC_ID_BYTES, RC_L_LIST_ID, buf, n + 1);
    return 0;
}

static void keystr_check(uint8_t check[KEYSTR_CHECK_BYTES], const char *type,
                         const uint8_t *payload, size_t len)
{
    crypto_generichash_blake2b_state st;
    uint8_t h[32];
    rc_hash_init(&st, sizeof h, RC_L_KEYSTR);
    crypto_generichash_blake2b_update(&st, (const uint8_t *)KEYSTR_PREFIX, strlen(KEYSTR_PREFIX));
    crypto_generichash_blake2b_update(&st, (const uint8_t *)type, strlen(type));
    crypto_generichash_blake2b_update(&st, (const uint8_t *)".", 1);
    crypto_generichash_blake2b_update(&st, payload, len);
    crypto_generichash_blake2b_final(&st, h, sizeof h);
    memcpy(check, h, KEYSTR_CHECK_BYTES);
}

int rc_keystr_encode(char *out, size_t outlen, const char *type, const uint8_t *payload,
                     size_t len, rc_error *err)
{
    uint8_t buf[KEYSTR_PAYLOAD_MAX + KEYSTR_CHECK_BYTES];
    if (len > KEYSTR_PAYLOAD_MAX)
        return rc_error_set(err, RC_E_INVALID, "key payload too long");
    size_t head = strlen(KEYSTR_PREFIX) + strlen(type) + 1;
    if (outlen < head + sodium_base64_ENCODED_LEN(len + KEYSTR_CHECK_BYTES,
                                                  sodium_base64_VARIANT_URLSAFE_NO_PADDING))
        return rc_error_set(err, RC_E_INVALID, "key string buffer too small");
    memcpy(buf, payload, len);
    keystr_check(buf + len, type, payload, len);
    snprintf(out, outlen, "%s%s.", KEYSTR_PREFIX, type);
    rc_b64url_encode(out + head, outlen - head, buf, len + KEYSTR_CHECK_BYTES);
    sodium_memzero(buf, sizeof buf);
    return 0;
}

int rc_keystr_decode(const char *str, const char *type, uint8_t *payload, size_t maxlen,
                     size_t *len, rc_error *err)
{
    /* Both buffers may hold a secret key: every exit wipes them. */
    char s[RC_KEYSTR_MAX];
    uint8_t buf[KEYSTR_PAYLOAD_MAX + KEYSTR_CHECK_BYTES];
    size_t n = 0, blen = 0;
    int rc = 0;
    /* Drop all white space: strings may arrive folded in a header field. */
    for (const char *p = str; *p && rc == 0; p++) {
        if (isspace((unsigned char)*p))
            continue;
        if (n + 1 >= sizeof s)
            rc = rc_error_set(err, RC_E_FORMAT, "key string too long");
        else
            s[n++] = *p;
    }
    s[n] = '\0';
    if (rc)
        goto out;
    if (strncmp(s, "recrypt", 7) != 0 || !strchr(s, '.')) {
        rc = rc_error_set(err, RC_E_FORMAT,
                          "not a recrypt key string (expected 'recrypt1.%s.…')", type);
        goto out;
    }
    if (strncmp(s, KEYSTR_PREFIX, strlen(KEYSTR_PREFIX)) != 0) {
        rc = rc_error_set(err, RC_E_VERSION,
                          "key string version '%.*s' is not supported (this build reads "
                          "recrypt1)",
                          (int)(strchr(s, '.') - s), s);
        goto out;
    }
    char *t = s + strlen(KEYSTR_PREFIX);
    char *dot = strchr(t, '.');
    if (!dot) {
        rc = rc_error_set(err, RC_E_FORMAT, "key string has no type word");
        goto out;
    }
    *dot = '\0';
    if (strcmp(t, type) != 0) {
        rc = rc_error_set(err, RC_E_FORMAT, "this is a '%.40s' key string, expected '%s'", t,
                          type);
        goto out;
    }
    const char *b64 = dot + 1;
    if (rc_b64url_decode(buf, sizeof buf, &blen, b64, strlen(b64)) != 0 ||
        blen < KEYSTR_CHECK_BYTES) {
        rc = rc_error_set(err, RC_E_FORMAT, "%s key string is corrupted (bad base64url)", type);
        goto out;
    }
    uint8_t check[KEYSTR_CHECK_BYTES];
    size_t plen = blen - KEYSTR_CHECK_BYTES;
    keystr_check(check, type, buf, plen);
    if (sodium_memcmp(check, buf + plen, KEYSTR_CHECK_BYTES) != 0)
        rc = rc_error_set(err, RC_E_FORMAT,
                          "%s key string is corrupted (checksum mismatch): copy it again", type);
    else if (plen > maxlen)
        rc = rc_error_set(err, RC_E_FORMAT, "%s key string has a payload too long", type);
    else {
        memcpy(payload, buf, plen);
        *len = plen;
    }
out:
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(s, sizeof s);
    return rc;
}

/* Decode a fixed-length payload. */
static int keystr_fixed(const char *str, const char *type, uint8_t *payload, size_t want,
                        rc_error *err)
{
    size_t len = 0;
    int rc = rc_keystr_decode(str, type, payload, want, &len, err);
    if (rc)
        return rc;
    if (len != want)
        return rc_error_set(err, RC_E_FORMAT, "%s key has %zu bytes, expected %zu", type, len,
                            want);
    return 0;
}

int rc_device_public_encode(char *out, size_t outlen, const rc_device_public *k, rc_error *err)
{
    uint8_t b[64];
    memcpy(b, k->wrap_pk, 32);
    memcpy(b + 32, k->sign_pk, 32);
    return rc_keystr_encode(out, outlen, RC_KT_DEVICE, b, sizeof b, err);
}

int rc_device_public_decode(rc_device_public *k, const char *str, rc_error *err)
{
    uint8_t b[64];
    int rc = keystr_fixed(str, RC_KT_DEVICE, b, sizeof b, err);
    if (rc)
        return rc;
    memcpy(k->wrap_pk, b, 32);
    memcpy(k->sign_pk, b + 32, 32);
    return 0;
}

/* Secret pairs are stored as two 32-byte seeds; public halves are derived. */
static int encode_pair(char *out, size_t outlen, const char *type, const uint8_t *x25519_sk,
                       const uint8_t *ed25519_sk, rc_error *err)
{
    uint8_t b[64];
    memcpy(b, x25519_sk, 32);
    memcpy(b + 32, ed25519_sk, 32); /* the seed is the first half */
    int rc = rc_keystr_encode(out, outlen, type, b, sizeof b, err);
    sodium_memzero(b, sizeof b);
    return rc;
}

static int decode_pair(const char *str, const char *type, uint8_t *x_sk, uint8_t *x_pk,
                       uint8_t *ed_sk, uint8_t *ed_pk, rc_error *err)
{
    uint8_t b[64];
    int rc = keystr_fixed(str, type, b, sizeof b, err);
    if (rc == 0) {
        memcpy(x_sk, b, 32);
        crypto_scalarmult_base(x_pk, x_sk);
        crypto_sign_seed_keypair(ed_pk, ed_sk, b + 32);
    }
    sodium_memzero(b, sizeof b);
    return rc;
}

int rc_device_secret_encode(char *out, size_t outlen, const rc_device_secret *k, rc_error *err)
{
    return encode_pair(out, outlen, RC_KT_DEVICE_SECRET, k->wrap_sk, k->sign_sk, err);
}

int rc_device_secret_decode(rc_device_secret *k, const char *str, rc_error *err)
{
    return decode_pair(str, RC_KT_DEVICE_SECRET, k->wrap_sk, k->pub.wrap_pk, k->sign_sk,
                       k->pub.sign_pk, err);
}

int rc_owner_secret_encode(char *out, size_t outlen, const rc_owner_secret *k, rc_error *err)
{
    return encode_pair(out, outlen, RC_KT_OWNER_SECRET, k->box_sk, k->sign_sk, err);
}

int rc_owner_secret_decode(rc_owner_secret *k, const char *str, rc_error *err)
{
    return decode_pair(str, RC_KT_OWNER_SECRET, k->box_sk, k->pub.box_pk, k->sign_sk,
                       k->pub.sign_pk, err);
}

int rc_owner_public_encode(char *out, size_t outlen, const rc_owner_public *k, rc_error *err)
{
    uint8_t b[64];
    memcpy(b, k->sign_pk, 32);
    memcpy(b + 32, k->box_pk, 32);
    return rc_keystr_encode(out, outlen, RC_KT_OWNER, b, sizeof b, err);
}

int rc_owner_public_decode(rc_owner_public *k, const char *str, rc_error *err)
{
    uint8_t b[64];
    int rc = keystr_fixed(str, RC_KT_OWNER, b, sizeof b, err);
    if (rc)
        return rc;
    memcpy(k->sign_pk, b, 32);
    memcpy(k->box_pk, b + 32, 32);
    return 0;
}

int rc_service_public_encode(char *out, size_t outlen, const rc_service_public *k,
                             rc_error *err)
{
    return rc_keystr_encode(out, outlen, RC_KT_SERVICE, k->pk, 32, err);
}

int rc_service_public_decode(rc_service_public *k, const char *str, rc_error *err)
{
    return keystr_fixed(str, RC_KT_SERVICE, k->pk, 32, err);
}

int rc_service_secret_encode(char *out, size_t outlen, const rc_service_secret *k,
                             rc_error *err)
{
    return rc_keystr_encode(out, outlen, RC_KT_SERVICE_SECRET, k->sk, 32, err);
}

int rc_service_secret_decode(rc_service_secret *k, const char *str, rc_error *err)
{
    int rc = keystr_fixed(str, RC_KT_SERVICE_SECRET, k->sk, 32, err);
    if (rc == 0)
        crypto_scalarmult_base(k->pub.pk, k->sk);
    return rc;
}

int rc_list_secret_encode(char *out, size_t outlen, const rc_list_secret *k, rc_error *err)
{
    uint8_t b[1 + 1 + RC_ADDR_MAX + 8 + 32 + 32];
    rc_wr w = {b, sizeof b, 0, 0};
    rc_wr_u8(&w, RC_FORMAT_VERSION);
    rc_wr_str8(&w, k->address);
    rc_wr_u64(&w, k->epoch);
    rc_wr_bytes(&w, k->a, 32);
    rc_wr_bytes(&w, k->sign_sk, 32);
    int rc = w.bad ? rc_error_set(err, RC_E_INVALID, "list secret does not encode")
                   : rc_keystr_encode(out, outlen, RC_KT_LIST_SECRET, b, w.len, err);
    sodium_memzero(b, sizeof b);
    return rc;
}

int rc_list_secret_decode(rc_list_secret *k, const char *str, rc_error *err)
{
    uint8_t b[1 + 1 + RC_ADDR_MAX + 8 + 32 + 32];
    size_t len = 0;
    int rc = rc_keystr_decode(str, RC_KT_LIST_SECRET, b, sizeof b, &len, err);
    if (rc)
        return rc;
    rc_rd r = {b, len, 0, 0};
    uint8_t seed[32];
    uint8_t version = rc_rd_u8(&r);
    rc_rd_str8(&r, k->address, RC_ADDR_MAX);
    k->epoch = rc_rd_u64(&r);
    rc_rd_copy(&r, k->a, 32);
    rc_rd_copy(&r, seed, 32);
    if (!rc_rd_done(&r))
        rc = rc_error_set(err, RC_E_FORMAT, "list secret is malformed");
    else if (version != RC_FORMAT_VERSION)
        rc = rc_error_set(err, RC_E_VERSION, "list secret version %u is not supported", version);
    else if (!rc_scalar_is_canonical_nonzero(k->a))
        rc = rc_error_set(err, RC_E_CRYPTO, "list secret scalar is not canonical");
    else {
        crypto_scalarmult_ristretto255_base(k->A, k->a);
        crypto_sign_seed_keypair(k->sign_pk, k->sign_sk, seed);
    }
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(b, sizeof b);
    return rc;
}

int rc_key_fingerprint(char *out, size_t outlen, const char *type, const uint8_t *pub,
                       size_t len, rc_error *err)
{
    char ct[64];
    snprintf(ct, sizeof ct, "application/vnd.recrypt.%s", type);
    return rc_udf(out, outlen, ct, pub, len, RC_UDF_DEFAULT_BITS, err);
}

int rc_keyfile_write(const char *path, const char *keystr, rc_error *err)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path) >= (int)sizeof tmp)
        return rc_error_set(err, RC_E_INVALID, "key file path too long");
    mode_t old = umask(077);
    int fd = mkstemp(tmp);
    umask(old);
    if (fd < 0)
        return rc_error_set(err, RC_E_IO, "cannot create %s: %s", tmp, strerror(errno));
    size_t n = strlen(keystr);
    int ok = fchmod(fd, 0600) == 0 && write(fd, keystr, n) == (ssize_t)n &&
             write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return rc_error_set(err, RC_E_IO, "cannot write key file %s: %s", path, strerror(e));
    }
    return 0;
}

int rc_keyfile_read(const char *path, char *out, size_t outlen, rc_error *err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return rc_error_set(err, RC_E_IO, "cannot open key file %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return rc_error_set(err, RC_E_IO, "key file %s is not a regular file", path);
    }
    if (sb.st_mode & 077) {
        close(fd);
        return rc_error_set(err, RC_E_PERMISSION,
                            "key file %s is accessible by group or others (mode %04o); "
                            "refusing it: run 'chmod 600 %s' if it was not exposed, else "
                            "replace the key",
                            path, (unsigned)(sb.st_mode & 07777), path);
    }
    ssize_t n = read(fd, out, outlen - 1);
    close(fd);
    if (n < 0)
        return rc_error_set(err, RC_E_IO, "cannot read key file %s: %s", path, strerror(errno));
    out[n] = '\0';
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = '\0';
    return 0;
}
