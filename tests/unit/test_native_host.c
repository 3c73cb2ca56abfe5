/*
 * test_native_host.c - the Thunderbird add-on's native messaging host
 * (src/client/nativehost.c), driven in-process through nh_handle() and
 * nh_serve(): every operation, malformed and oversize requests, truncated
 * frames, and a tampered post (nothing decrypted comes back); compose's
 * messages are parsed back with GMime, and one goes the whole way through
 * seal, the list and open.
 *
 * The fixtures are made with the real binaries (CTest passes RECRYPT and
 * RC_HARNESS): a list, this device enrolled, a MIME post with an
 * attachment sealed with `recrypt seal` and recrypted by the harness (the
 * same library calls the milter makes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <cmocka.h>
#include <gmime/gmime.h>
#include <jansson.h>
#include <sodium.h>
#include <recrypt/recrypt.h>
#include "nativehost.h"

static char T[256];
static char *delivered, *tampered, *plain_post, *escaped_post;
static size_t delivered_len, tampered_len, plain_len, escaped_len;
static uint8_t attachment[1500];

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

static char *b64(const void *p, size_t n)
{
    size_t l = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *s = malloc(l);
    sodium_bin2base64(s, l, p, n, sodium_base64_VARIANT_ORIGINAL);
    return s;
}

static uint8_t *unb64(const char *s, size_t *n)
{
    size_t max = strlen(s) / 4 * 3 + 3;
    uint8_t *b = malloc(max);
    assert_int_equal(sodium_base642bin(b, max, s, strlen(s), NULL, n, NULL,
                                       sodium_base64_VARIANT_ORIGINAL),
                     0);
    return b;
}

__attribute__((format(printf, 1, 2))) static void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    (void)state;
    const char *recrypt = getenv("RECRYPT"), *harness = getenv("RC_HARNESS");
    if (!recrypt || !harness) {
        fprintf(stderr, "RECRYPT and RC_HARNESS must name the binaries\n");
        return -1;
    }
    rc_error err;
    if (rc_init(&err) != 0)
        return -1;
    snprintf(T, sizeof T, "%s/nh.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(T))
        return -1;
    randombytes_buf(attachment, sizeof attachment);
    char *att = b64(attachment, sizeof attachment);
    char path[512];
    snprintf(path, sizeof path, "%s/m.eml", T);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "From: alice@example.org\nTo: list@example.org\n"
            "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_nhmark?=\nDate: Wed, 02 Dec 2026 10:00:00 +0000\n"
            "Message-ID: <nh1@example.org>\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=\"bb\"\n\n--bb\n"
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
            "bodym=C3=A4rker nhbody\n--bb\nContent-Type: application/octet-stream\n"
            "Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"a.bin\"\n\n"
            "%s\n--bb--\n",
            att);
    fclose(f);
    free(att);
    /* dev pins the list (as the owner's enrolment hands it the
     * fingerprint); dev2 is enrolled too but pins nothing (test_pin). */
    sh("cd %s && '%s' list-create list list@example.org >list.key && "
       "'%s' signer list >list.fp && "
       "RECRYPT_HOME=%s/dev '%s' keygen >dev.pub 2>/dev/null && "
       "RECRYPT_HOME=%s/dev2 '%s' keygen >dev2.pub 2>/dev/null && "
       "'%s' enrol list alice@example.org \"$(cat dev.pub)\" --at $(( $(date +%%s) - 200000 )) && "
       "'%s' enrol list bob@example.org \"$(cat dev2.pub)\" --at $(( $(date +%%s) - 200000 )) && "
       "RECRYPT_HOME=%s/dev '%s' list pin list@example.org \"$(cat list.fp)\" >/dev/null && "
       "RECRYPT_HOME=%s/dev '%s' seal --to \"$('%s' list-key list)\" <m.eml >s.eml 2>/dev/null && "
       "'%s' recrypt list <s.eml >d.eml 2>/dev/null",
       T, harness, harness, T, recrypt, T, recrypt, harness, harness, T, recrypt, T, recrypt,
       harness, harness);
    /* A post whose text escapes to far more JSON than its size: 240,000
     * control characters (\u0001 each), and a small text beside it. */
    sh("cd %s && { printf 'From: alice@example.org\\nTo: list@example.org\\nSubject: esc\\n"
       "Date: Wed, 02 Dec 2026 10:00:01 +0000\\nMessage-ID: <nh2@example.org>\\nMIME-Version: 1.0\\n"
       "Content-Type: multipart/mixed; boundary=cc\\n\\n--cc\\nContent-Type: text/plain\\n\\n'; "
       "head -c 240000 /dev/zero | tr '\\000' '\\001'; "
       "printf '\\n--cc\\nContent-Type: text/plain\\n\\nnhsmall\\n--cc--\\n'; } >e.eml && "
       "RECRYPT_HOME=%s/dev '%s' seal --to \"$('%s' list-key list)\" <e.eml >se.eml 2>/dev/null && "
       "'%s' recrypt list <se.eml >de.eml 2>/dev/null",
       T, T, recrypt, harness, harness);
    snprintf(path, sizeof path, "%s/de.eml", T);
    escaped_post = slurp(path, &escaped_len);
    snprintf(path, sizeof path, "%s/d.eml", T);
    delivered = slurp(path, &delivered_len);
    snprintf(path, sizeof path, "%s/m.eml", T);
    plain_post = slurp(path, &plain_len);
    /* tampered: one character of the ciphertext changed */
    tampered = malloc(delivered_len + 1);
    memcpy(tampered, delivered, delivered_len + 1);
    tampered_len = delivered_len;
    char *p = strstr(tampered, "filename=\"message.rcx\"");
    assert_non_null(p);
    p = strstr(p, "\n\n");
    assert_non_null(p);
    p += 40;
    *p = *p == 'A' ? 'B' : 'A';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", T);
    if (system(cmd) != 0)
        return -1;
    free(delivered);
    free(escaped_post);
    free(tampered);
    free(plain_post);
    return 0;
}

static nh_host *host(uint64_t max)
{
    char home[512];
    snprintf(home, sizeof home, "%s/dev", T);
    nh_host *h = NULL;
    assert_int_equal(nh_host_new(&h, home, max), 0);
    return h;
}

/* Send a request, get the parsed response (owned by the caller). */
static json_t *call(nh_host *h, const char *req)
{
    char *out = nh_handle(h, req, strlen(req));
    assert_non_null(out);
    json_error_t e;
    json_t *r = json_loads(out, 0, &e);
    assert_non_null(r);
    free(out);
    return r;
}

__attribute__((format(printf, 2, 3))) static json_t *callf(nh_host *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *req = malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(req, (size_t)n + 1, fmt, ap);
    va_end(ap);
    json_t *r = call(h, req);
    free(req);
    return r;
}

static const char *err_code(json_t *r)
{
    assert_true(json_is_false(json_object_get(r, "ok")));
    assert_null(json_object_get(r, "result"));
    return json_string_value(json_object_get(json_object_get(r, "error"), "code"));
}

static json_t *result(json_t *r)
{
    if (!json_is_true(json_object_get(r, "ok")))
        fail_msg("error: %s", json_dumps(r, 0));
    return json_object_get(r, "result");
}

/* The whole content of handle hd, read in chunks of `chunk`. */
static uint8_t *read_all(nh_host *h, json_int_t hd, size_t chunk, size_t *len)
{
    uint8_t *all = NULL;
    size_t n = 0;
    for (int i = 0; i < 100000; i++) {
        json_t *r = callf(h, "{\"id\":9,\"op\":\"read\",\"handle\":%lld,\"offset\":%zu,\"length\":%zu}",
                          (long long)hd, n, chunk);
        json_t *res = result(r);
        size_t got;
        uint8_t *b = unb64(json_string_value(json_object_get(res, "data")), &got);
        all = realloc(all, n + got + 1);
        memcpy(all + n, b, got);
        n += got;
        free(b);
        int eof = json_is_true(json_object_get(res, "eof"));
        json_decref(r);
        if (eof)
            break;
    }
    all[n] = 0;
    *len = n;
    return all;
}

static void test_hello(void **state)
{
    (void)state;
    nh_host *h = host(0);
    json_t *r = call(h, "{\"id\":1,\"op\":\"hello\"}");
    json_t *res = result(r);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(res, "version")), RC_VERSION_STRING);
    assert_int_equal(json_integer_value(json_object_get(res, "protocol")), NH_PROTOCOL);
    assert_non_null(strstr(json_string_value(json_object_get(res, "device")), "-"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "limits"), "chunk")),
                     NH_CHUNK_MAX);
    json_decref(r);
    nh_host_free(h);
}

/* Open the delivered post inline; then everything that hangs off it. */
static void test_open_read_part(void **state)
{
    (void)state;
    nh_host *h = host(0);
    char *m = b64(delivered, delivered_len);
    json_t *r = callf(h, "{\"id\":\"x\",\"op\":\"open\",\"message\":\"%s\"}", m);
    free(m);
    json_t *res = result(r);
    assert_string_equal(json_string_value(json_object_get(r, "id")), "x");
    json_t *v = json_object_get(res, "verdict");
    assert_string_equal(json_string_value(json_object_get(v, "kind")), "unsigned");
    assert_string_equal(json_string_value(json_object_get(v, "list")), "list@example.org");
    assert_int_equal(json_integer_value(json_object_get(v, "epoch")), 1);
    /* the fixture's list key is of version 1 (rc-harness): no service key */
    assert_string_equal(json_string_value(json_object_get(v, "path")), "unverified");
    json_t *hd = json_object_get(res, "headers");
    assert_string_equal(json_string_value(json_object_get(hd, "subject")), "Grüße nhmark");
    assert_string_equal(json_string_value(json_object_get(hd, "message_id")), "nh1@example.org");
    json_t *parts = json_object_get(res, "parts");
    assert_int_equal(json_array_size(parts), 2);
    json_t *p0 = json_array_get(parts, 0), *p1 = json_array_get(parts, 1);
    assert_string_equal(json_string_value(json_object_get(p0, "type")), "text/plain");
    assert_string_equal(json_string_value(json_object_get(p0, "text")), "bodymärker nhbody");
    assert_string_equal(json_string_value(json_object_get(p1, "name")), "a.bin");
    assert_string_equal(json_string_value(json_object_get(p1, "disposition")), "attachment");
    assert_int_equal(json_integer_value(json_object_get(p1, "size")), sizeof attachment);
    assert_null(json_object_get(p1, "text"));

    /* The decrypted message itself, in small chunks. */
    json_int_t plain = json_integer_value(json_object_get(res, "handle"));
    size_t n;
    uint8_t *all = read_all(h, plain, 100, &n);
    assert_int_equal(n, json_integer_value(json_object_get(res, "size")));
    assert_memory_equal(all, "Recrypt-Verdict: unsigned; list=list@example.org; epoch=1", 57);
    assert_non_null(strstr((char *)all, "nhbody"));
    free(all);

    /* The attachment, byte for byte. */
    json_t *pr = callf(h, "{\"id\":2,\"op\":\"part\",\"handle\":%lld,\"index\":1}", (long long)plain);
    json_int_t ah = json_integer_value(json_object_get(result(pr), "handle"));
    assert_int_equal(json_integer_value(json_object_get(result(pr), "size")), sizeof attachment);
    uint8_t *a = read_all(h, ah, NH_CHUNK_MAX, &n);
    assert_int_equal(n, sizeof attachment);
    assert_memory_equal(a, attachment, sizeof attachment);
    free(a);
    json_decref(pr);

    json_t *e = callf(h, "{\"id\":3,\"op\":\"part\",\"handle\":%lld,\"index\":7}", (long long)plain);
    assert_string_equal(err_code(e), "not-found");
    json_decref(e);
    e = callf(h, "{\"id\":3,\"op\":\"part\",\"handle\":%lld,\"index\":0}", (long long)ah);
    assert_string_equal(err_code(e), "bad-handle"); /* not an opened message */
    json_decref(e);

    /* close: the handle is gone */
    json_decref(callf(h, "{\"id\":4,\"op\":\"close\",\"handle\":%lld}", (long long)ah));
    e = callf(h, "{\"id\":5,\"op\":\"read\",\"handle\":%lld}", (long long)ah);
    assert_string_equal(err_code(e), "bad-handle");
    json_decref(e);
    json_decref(r);
    nh_host_free(h);
}

/* The delivered post with a Recrypt-Copy field in front (split delivery's
 * mark of one fan-out run), base64 for an open request. */
static char *with_copy(const char *copy)
{
    const char *eol = memchr(delivered, '\n', delivered_len);
    int crlf = eol && eol > (const char *)delivered && eol[-1] == '\r';
    char field[64];
    int n = snprintf(field, sizeof field, "Recrypt-Copy: %s%s", copy, crlf ? "\r\n" : "\n");
    uint8_t *m = malloc(delivered_len + (size_t)n);
    assert_non_null(m);
    memcpy(m, field, (size_t)n);
    memcpy(m + n, delivered, delivered_len);
    char *b = b64(m, delivered_len + (size_t)n);
    free(m);
    return b;
}

static json_int_t open_copy(nh_host *h, const char *copy, int *duplicate)
{
    char *m = with_copy(copy);
    json_t *r = callf(h, "{\"id\":1,\"op\":\"open\",\"message\":\"%s\"}", m);
    free(m);
    json_t *res = result(r);
    json_t *d = json_object_get(res, "duplicate");
    assert_true(json_is_boolean(d));
    *duplicate = json_is_true(d);
    json_int_t hd = json_integer_value(json_object_get(res, "handle"));
    json_decref(r);
    return hd;
}

/* A second copy of a post (another Recrypt-Copy) is marked, in the JSON
 * and in the opened message's verdict line; the first copy opened again is
 * not. */
static void test_open_duplicate(void **state)
{
    (void)state;
    nh_host *h = host(0);
    int dup = -1;
    size_t n;
    json_int_t hd = open_copy(h, "AAAAAAAAAAAAAAAAAAAAAA", &dup);
    assert_int_equal(dup, 0);
    uint8_t *all = read_all(h, hd, NH_CHUNK_MAX, &n);
    /* a version 1 statement: no service key, so the path is not verified */
    assert_memory_equal(all, "Recrypt-Verdict: unsigned; list=list@example.org; epoch=1; path=unverified", 74);
    assert_true(all[74] == '\n' || all[74] == '\r');
    free(all);
    hd = open_copy(h, "BBBBBBBBBBBBBBBBBBBBBB", &dup);
    assert_int_equal(dup, 1);
    all = read_all(h, hd, NH_CHUNK_MAX, &n);
    assert_memory_equal(all,
                        "Recrypt-Verdict: unsigned; list=list@example.org; epoch=1; path=unverified; "
                        "duplicate",
                        85);
    assert_true(all[85] == '\n' || (all[85] == '\r' && all[86] == '\n'));
    free(all);
    hd = open_copy(h, "AAAAAAAAAAAAAAAAAAAAAA", &dup);
    assert_int_equal(dup, 0);
    /* A malformed mark (not 22 base64url characters) is no mark. */
    hd = open_copy(h, "BBBBBBBBBBBBBBBBBBBBB!", &dup);
    assert_int_equal(dup, 0);
    (void)hd;
    nh_host_free(h);
}

/* The same post in three uploaded chunks, opened by handle. */
static void test_upload_chunks(void **state)
{
    (void)state;
    nh_host *h = host(0);
    size_t third = delivered_len / 3;
    json_int_t hd = -1;
    for (int i = 0; i < 3; i++) {
        size_t off = i * third, len = i == 2 ? delivered_len - off : third;
        char *c = b64(delivered + off, len);
        json_t *r = hd < 0 ? callf(h, "{\"op\":\"upload\",\"data\":\"%s\"}", c)
                           : callf(h, "{\"op\":\"upload\",\"handle\":%lld,\"data\":\"%s\"}",
                                   (long long)hd, c);
        free(c);
        hd = json_integer_value(json_object_get(result(r), "handle"));
        assert_int_equal(json_integer_value(json_object_get(result(r), "size")), off + len);
        json_decref(r);
    }
    json_t *r = callf(h, "{\"op\":\"open\",\"handle\":%lld}", (long long)hd);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(result(r), "headers"), "subject")),
        "Grüße nhmark");
    json_decref(r);
    nh_host_free(h);
}

static void test_tampered(void **state)
{
    (void)state;
    nh_host *h = host(0);
    char *m = b64(tampered, tampered_len);
    char *out = NULL;
    size_t reqlen = strlen(m) + 64;
    char *req = malloc(reqlen);
    snprintf(req, reqlen, "{\"op\":\"open\",\"message\":\"%s\"}", m);
    out = nh_handle(h, req, strlen(req));
    assert_null(strstr(out, "nhbody"));
    assert_null(strstr(out, "nhmark"));
    json_t *r = json_loads(out, 0, NULL);
    const char *code = err_code(r);
    assert_true(!strcmp(code, "tampered") || !strcmp(code, "malformed-message"));
    json_decref(r);
    free(out);
    /* Nothing was left behind: every handle is free again. */
    for (int i = 0; i < NH_HANDLES; i++) {
        json_t *e = callf(h, "{\"op\":\"read\",\"handle\":%d}", i);
        assert_string_equal(err_code(e), "bad-handle");
        json_decref(e);
    }
    free(req);
    free(m);
    nh_host_free(h);
}

static void test_lists_import(void **state)
{
    (void)state;
    nh_host *h = host(0);
    json_t *r = call(h, "{\"op\":\"lists\"}");
    json_t *lists = json_object_get(result(r), "lists");
    assert_int_equal(json_array_size(lists), 1);
    json_t *l = json_array_get(lists, 0);
    assert_string_equal(json_string_value(json_object_get(l, "address")), "list@example.org");
    json_t *ep = json_array_get(json_object_get(l, "epochs"), 0);
    assert_string_equal(json_string_value(json_object_get(ep, "state")), "current");
    assert_true(json_is_true(json_object_get(ep, "certificate")));
    char signer[64];
    snprintf(signer, sizeof signer, "%s", json_string_value(json_object_get(l, "signer")));
    json_decref(r);

    char path[512];
    size_t n;
    snprintf(path, sizeof path, "%s/list.key", T);
    char *key = slurp(path, &n);
    key[strcspn(key, "\n")] = 0;
    r = callf(h, "{\"op\":\"import\",\"key\":\"%s\"}", key);
    assert_string_equal(json_string_value(json_object_get(result(r), "signer")), signer);
    assert_true(json_is_false(json_object_get(result(r), "first_use")));
    json_decref(r);
    free(key);
    char *m = b64(delivered, delivered_len);
    r = callf(h, "{\"op\":\"import\",\"message\":\"%s\"}", m);
    assert_int_equal(json_integer_value(json_object_get(result(r), "epoch")), 1);
    json_decref(r);
    free(m);
    r = call(h, "{\"op\":\"import\",\"key\":\"recrypt1.listkey.AAAA\"}");
    assert_string_equal(err_code(r), "malformed-message");
    json_decref(r);
    nh_host_free(h);
}

/* Issue 13: a message never pins. On a device that has not pinned the
 * list, open refuses with "not-pinned", naming the list and the
 * fingerprint its key is signed by, and keeps nothing; "pin" (after the
 * user compared the fingerprint with the owner's) pins it; then it opens. */
static void test_pin(void **state)
{
    (void)state;
    char home[512], path[512], fp[64];
    size_t n;
    snprintf(home, sizeof home, "%s/dev2", T);
    snprintf(path, sizeof path, "%s/list.fp", T);
    char *want = slurp(path, &n);
    want[strcspn(want, "\n")] = 0;
    nh_host *h = NULL;
    assert_int_equal(nh_host_new(&h, home, 0), 0);
    char *m = b64(delivered, delivered_len);

    json_t *r = callf(h, "{\"op\":\"open\",\"message\":\"%s\"}", m);
    assert_string_equal(err_code(r), "not-pinned");
    json_t *e = json_object_get(r, "error");
    assert_string_equal(json_string_value(json_object_get(e, "list")), "list@example.org");
    assert_string_equal(json_string_value(json_object_get(e, "signer")), want);
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")),
                           "list@example.org is not pinned on this device"));
    assert_null(json_object_get(r, "result"));
    json_decref(r);
    snprintf(path, sizeof path, "%s/dev2/lists/list@example.org/pin", T);
    assert_int_not_equal(access(path, F_OK), 0); /* nothing pinned */
    r = call(h, "{\"op\":\"lists\"}");
    assert_int_equal(json_array_size(json_object_get(result(r), "lists")), 0);
    json_decref(r);
    /* import of the list key: refused the same way, nothing pinned */
    r = callf(h, "{\"op\":\"import\",\"message\":\"%s\"}", m);
    assert_string_equal(err_code(r), "not-pinned");
    json_decref(r);
    assert_int_not_equal(access(path, F_OK), 0);

    /* malformed pin requests */
    r = call(h, "{\"op\":\"pin\",\"list\":\"list@example.org\"}");
    assert_string_equal(err_code(r), "malformed-request");
    json_decref(r);
    r = call(h, "{\"op\":\"pin\",\"list\":\"list@example.org\",\"signer\":\"MAAA-BBBB\"}");
    assert_string_equal(err_code(r), "invalid");
    json_decref(r);
    r = callf(h, "{\"op\":\"pin\",\"list\":\"no address\",\"signer\":\"%s\"}", want);
    assert_string_equal(err_code(r), "invalid");
    json_decref(r);
    assert_int_not_equal(access(path, F_OK), 0);

    /* the pin, in lower case: canonical in the answer */
    snprintf(fp, sizeof fp, "%s", want);
    for (char *c = fp; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    r = callf(h, "{\"op\":\"pin\",\"list\":\"List@Example.org\",\"signer\":\"%s\"}", fp);
    assert_string_equal(json_string_value(json_object_get(result(r), "list")), "list@example.org");
    assert_string_equal(json_string_value(json_object_get(result(r), "signer")), want);
    assert_true(json_is_true(json_object_get(result(r), "changed")));
    json_decref(r);
    r = call(h, "{\"op\":\"lists\"}");
    json_t *l = json_array_get(json_object_get(result(r), "lists"), 0);
    assert_string_equal(json_string_value(json_object_get(l, "signer")), want);
    assert_int_equal(json_array_size(json_object_get(l, "epochs")), 0);
    json_decref(r);
    r = callf(h, "{\"op\":\"pin\",\"list\":\"list@example.org\",\"signer\":\"%s\"}", want);
    assert_true(json_is_false(json_object_get(result(r), "changed")));
    json_decref(r);
    /* another fingerprint: refused, the pin stays */
    r = call(h, "{\"op\":\"pin\",\"list\":\"list@example.org\","
                "\"signer\":\"MAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA\"}");
    assert_string_equal(err_code(r), "refused");
    json_decref(r);

    r = callf(h, "{\"op\":\"open\",\"message\":\"%s\"}", m);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_true(json_is_true(json_object_get(result(r), "first_use")));
    assert_string_equal(json_string_value(json_object_get(result(r), "signer")), want);
    json_decref(r);
    free(m);
    free(want);
    nh_host_free(h);
}

static void test_seal(void **state)
{
    (void)state;
    nh_host *h = host(0);
    char *m = b64(plain_post, plain_len);
    json_t *r = callf(h, "{\"op\":\"seal\",\"to\":\"list@example.org\",\"message\":\"%s\"}", m);
    json_t *res = result(r);
    assert_true(json_is_true(json_object_get(res, "signed"))); /* the device holds its cert */
    assert_int_equal(json_integer_value(json_object_get(res, "epoch")), 1);
    assert_string_equal(json_string_value(json_object_get(res, "message_id")), "<nh1@example.org>");
    size_t n;
    uint8_t *sealed = read_all(h, json_integer_value(json_object_get(res, "handle")), NH_CHUNK_MAX,
                               &n);
    assert_non_null(strstr((char *)sealed, "multipart/encrypted"));
    assert_non_null(strstr((char *)sealed, "\nMessage-ID: <nh1@example.org>\n"));
    assert_null(strstr((char *)sealed, "nhbody"));
    free(sealed);
    json_decref(r);
    /* a message without a Message-ID: sealing adds one, and tells it */
    static const char bare[] = "From: alice@example.org\nTo: list@example.org\nSubject: bare\n\n"
                               "nhbare\n";
    char *bm = b64(bare, sizeof bare - 1);
    r = callf(h, "{\"op\":\"seal\",\"to\":\"list@example.org\",\"message\":\"%s\"}", bm);
    free(bm);
    const char *mid = json_string_value(json_object_get(result(r), "message_id"));
    assert_non_null(mid);
    assert_true(mid[0] == '<' && strlen(mid) > 14 &&
                !strcmp(mid + strlen(mid) - 13, "@example.org>"));
    sealed =
        read_all(h, json_integer_value(json_object_get(result(r), "handle")), NH_CHUNK_MAX, &n);
    char want[128];
    snprintf(want, sizeof want, "Message-ID: %s\n", mid);
    assert_non_null(strstr((char *)sealed, want));
    free(sealed);
    json_decref(r);
    r = callf(h, "{\"op\":\"seal\",\"to\":\"nolist@example.org\",\"message\":\"%s\"}", m);
    assert_string_equal(err_code(r), "not-found");
    json_decref(r);
    r = callf(h, "{\"op\":\"seal\",\"message\":\"%s\"}", m);
    assert_string_equal(err_code(r), "malformed-request");
    json_decref(r);
    free(m);
    nh_host_free(h);
}

static void test_malformed(void **state)
{
    (void)state;
    nh_host *h = host(0);
    static const char *const bad[] = {"{", "[]", "{\"op\":1}", "{\"op\":\"hello\",\"op\":\"lists\"}",
                                      "", "\"hello\"", "{\"op\":\"hel\\u0000lo\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *r = call(h, bad[i]);
        const char *c = err_code(r);
        assert_true(!strcmp(c, "malformed-request") || !strcmp(c, "unknown-op"));
        json_decref(r);
    }
    json_t *r = call(h, "{\"op\":\"nope\",\"id\":7}");
    assert_string_equal(err_code(r), "unknown-op");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
    json_decref(r);
    /* the codes of docs/NATIVE-HOST.md: no such handle, or a mistyped or
     * missing operand */
    static const char *const handles[][2] = {
        {"{\"op\":\"read\",\"handle\":63}", "bad-handle"},
        {"{\"op\":\"read\",\"handle\":-1}", "bad-handle"},
        {"{\"op\":\"read\",\"handle\":99999999999}", "bad-handle"},
        {"{\"op\":\"open\",\"handle\":5}", "bad-handle"},
        {"{\"op\":\"part\",\"handle\":5,\"index\":0}", "bad-handle"},
        {"{\"op\":\"read\",\"handle\":\"0\"}", "malformed-request"},
        {"{\"op\":\"read\"}", "malformed-request"},
        {"{\"op\":\"close\"}", "malformed-request"},
        {"{\"op\":\"open\"}", "malformed-request"},
        {"{\"op\":\"open\",\"message\":\"\",\"signer\":7}", "malformed-request"},
        {"{\"op\":\"open\",\"message\":\"\",\"allow_direct\":\"yes\"}", "malformed-request"},
        {"{\"op\":\"import\",\"key\":7}", "malformed-request"},
        {"{\"op\":\"seal\",\"to\":\"/etc/passwd\",\"message\":\"\"}", "malformed-request"},
        {"{\"op\":\"seal\",\"to\":\"a@b/../x\",\"message\":\"\"}", "malformed-request"},
        {"{\"op\":\"seal\",\"to\":\"recrypt1.listkey.AAAA\",\"message\":\"\"}", "malformed-request"},
    };
    for (size_t i = 0; i < sizeof handles / sizeof *handles; i++) {
        r = call(h, handles[i][0]);
        const char *c = err_code(r);
        if (strcmp(c, handles[i][1]))
            fail_msg("%s: %s, expected %s", handles[i][0], c, handles[i][1]);
        json_decref(r);
    }
    r = call(h, "{\"op\":\"upload\",\"data\":\"not base64!\"}");
    assert_string_equal(err_code(r), "invalid");
    json_decref(r);
    nh_host_free(h);
}

static void test_limits(void **state)
{
    (void)state;
    /* a chunk of exactly NH_CHUNK_MAX bytes goes; one byte more does not */
    nh_host *h = host(0);
    size_t big = NH_CHUNK_MAX + 1;
    uint8_t *zeros = calloc(1, big);
    char *c = b64(zeros, NH_CHUNK_MAX);
    json_t *r = callf(h, "{\"op\":\"upload\",\"data\":\"%s\"}", c);
    assert_int_equal(json_integer_value(json_object_get(result(r), "size")), NH_CHUNK_MAX);
    json_decref(r);
    free(c);
    c = b64(zeros, big);
    r = callf(h, "{\"op\":\"upload\",\"data\":\"%s\"}", c);
    assert_string_equal(err_code(r), "invalid");
    json_decref(r);
    free(c);
    nh_host_free(h);
    /* a message larger than the host's limit: refused, the handle stays usable */
    h = host(1000);
    c = b64(zeros, 800);
    r = callf(h, "{\"op\":\"upload\",\"data\":\"%s\"}", c);
    json_int_t hd = json_integer_value(json_object_get(result(r), "handle"));
    json_decref(r);
    r = callf(h, "{\"op\":\"upload\",\"handle\":%lld,\"data\":\"%s\"}", (long long)hd, c);
    assert_string_equal(err_code(r), "too-large");
    json_decref(r);
    free(c);
    free(zeros);
    /* handles run out with a clear error */
    for (int i = 1; i < NH_HANDLES; i++)
        json_decref(call(h, "{\"op\":\"upload\",\"data\":\"\"}"));
    r = call(h, "{\"op\":\"upload\",\"data\":\"\"}");
    assert_string_equal(err_code(r), "invalid");
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(r, "error"),
                                                             "message")),
                           "too many open handles"));
    json_decref(r);
    nh_host_free(h);
}

/* Frames: a request, an oversize frame (answered and skipped), another
 * request; then a truncated frame ends the host with an error. */
static void frame(FILE *f, const void *p, uint32_t n)
{
    fwrite(&n, 4, 1, f);
    fwrite(p, 1, n, f);
}

static void test_framing(void **state)
{
    (void)state;
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/frames.in", T);
    snprintf(out, sizeof out, "%s/frames.out", T);
    FILE *f = fopen(in, "wb");
    frame(f, "{\"id\":1,\"op\":\"hello\"}", 21);
    uint32_t huge = NH_FRAME_MAX + 10;
    char *junk = calloc(1, huge);
    frame(f, junk, huge);
    free(junk);
    frame(f, "{\"id\":3,\"op\":\"lists\"}", 21);
    fclose(f);
    nh_host *h = host(0);
    int ifd = open(in, O_RDONLY), ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(nh_serve(h, ifd, ofd), 0);
    close(ifd);
    close(ofd);
    size_t n;
    char *got = slurp(out, &n);
    const char *p = got;
    const char *want[] = {"\"id\":1,\"ok\":true", "\"too-large\"", "\"id\":3,\"ok\":true"};
    for (int i = 0; i < 3; i++) {
        uint32_t len;
        assert_true((size_t)(p - got) + 4 <= n);
        memcpy(&len, p, 4);
        assert_true(len <= NH_FRAME_MAX);
        char *msg = strndup(p + 4, len);
        assert_non_null(strstr(msg, want[i]));
        free(msg);
        p += 4 + len;
    }
    assert_int_equal((size_t)(p - got), n);
    free(got);

    /* truncated: a length of 100 and 10 bytes */
    f = fopen(in, "wb");
    uint32_t l = 100;
    fwrite(&l, 4, 1, f);
    fwrite("{\"op\":\"hel", 1, 10, f);
    fclose(f);
    ifd = open(in, O_RDONLY);
    ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(nh_serve(h, ifd, ofd), 1);
    assert_int_equal(lseek(ofd, 0, SEEK_END), 0); /* nothing answered */
    close(ifd);
    close(ofd);
    /* a length header cut short */
    f = fopen(in, "wb");
    fwrite("\x05\x00", 1, 2, f);
    fclose(f);
    ifd = open(in, O_RDONLY);
    ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(nh_serve(h, ifd, ofd), 1);
    close(ifd);
    close(ofd);
    nh_host_free(h);
}

/* A response never passes the frame limit: texts that escape to too much
 * JSON are left for `part`, the others stay inline. */
static void test_open_fits_a_frame(void **state)
{
    (void)state;
    nh_host *h = host(0);
    char *m = b64(escaped_post, escaped_len);
    size_t reqlen = strlen(m) + 64;
    char *req = malloc(reqlen);
    snprintf(req, reqlen, "{\"op\":\"open\",\"message\":\"%s\"}", m);
    char *out = nh_handle(h, req, strlen(req));
    assert_true(strlen(out) <= NH_FRAME_MAX);
    json_t *r = json_loads(out, 0, NULL);
    json_t *parts = json_object_get(result(r), "parts");
    assert_int_equal(json_array_size(parts), 2);
    assert_null(json_object_get(json_array_get(parts, 0), "text"));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(parts, 0), "size")), 240000);
    assert_string_equal(json_string_value(json_object_get(json_array_get(parts, 1), "text")),
                        "nhsmall");
    json_decref(r);
    free(out);
    free(req);
    free(m);
    nh_host_free(h);
}

/* ---- compose ---------------------------------------------------------------- */

/* The message in handle hd, as text and parsed by GMime. */
static GMimeMessage *composed(nh_host *h, json_int_t hd, char **text)
{
    size_t n;
    *text = (char *)read_all(h, hd, NH_CHUNK_MAX, &n);
    assert_int_equal(strlen(*text), n);
    GMimeStream *s = g_mime_stream_mem_new_with_buffer(*text, n);
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
    g_object_unref(p);
    g_object_unref(s);
    assert_non_null(m);
    return m;
}

/* Every line ends with CRLF, and everything is 7-bit. */
static void assert_crlf_7bit(const char *t)
{
    for (const char *p = t; *p; p++) {
        assert_true((unsigned char)*p < 0x80);
        if (*p == '\n')
            assert_true(p > t && p[-1] == '\r');
        if (*p == '\r')
            assert_true(p[1] == '\n');
    }
}

/* s without its CRs (malloc'ed). */
static char *no_cr(const char *s)
{
    char *c = strdup(s), *o = c;
    for (const char *p = s; *p; p++)
        if (*p != '\r')
            *o++ = *p;
    *o = '\0';
    return c;
}

static void assert_text(GMimeObject *o, const char *type, const char *want)
{
    char *mt = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(o));
    assert_string_equal(mt, type);
    g_free(mt);
    assert_string_equal(g_mime_object_get_content_type_parameter(o, "charset"), "utf-8");
    assert_true(GMIME_IS_TEXT_PART(o));
    char *t = g_mime_text_part_get_text(GMIME_TEXT_PART(o)), *c = no_cr(t);
    assert_string_equal(c, want);
    free(c);
    g_free(t);
}

static void test_compose_plain(void **state)
{
    (void)state;
    nh_host *h = host(0);
    json_t *r = call(h, "{\"id\":1,\"op\":\"compose\",\"from\":\"Alice <alice@example.org>\","
                        "\"to\":[\"list@example.org\"],\"subject\":\"Hello list\","
                        "\"in_reply_to\":\"nh1@example.org\","
                        "\"references\":\"<nh0@example.org>  nh1@example.org\","
                        "\"text\":\"line one\\nline two\\r\\nFrom here\\n\"}");
    json_t *res = result(r);
    const char *mid = json_string_value(json_object_get(res, "message_id"));
    assert_non_null(mid);
    assert_int_equal(strlen(mid), 1 + 32 + strlen("@example.org>"));
    assert_true(mid[0] == '<' && strspn(mid + 1, "0123456789abcdef") == 32);
    assert_string_equal(mid + 33, "@example.org>");
    char *t;
    GMimeMessage *m = composed(h, json_integer_value(json_object_get(res, "handle")), &t);
    assert_int_equal(strlen(t), json_integer_value(json_object_get(res, "size")));
    assert_crlf_7bit(t);
    assert_memory_equal(t,
                        "From: Alice <alice@example.org>\r\nTo: list@example.org\r\n"
                        "Subject: Hello list\r\nDate: ",
                        strlen("From: Alice <alice@example.org>\r\nTo: list@example.org\r\n"
                               "Subject: Hello list\r\nDate: "));
    char want[128];
    snprintf(want, sizeof want, "\r\nMessage-ID: %s\r\n", mid);
    assert_non_null(strstr(t, want));
    assert_non_null(strstr(t, "\r\nIn-Reply-To: <nh1@example.org>\r\n"));
    assert_non_null(strstr(t, "\r\nReferences: <nh0@example.org> <nh1@example.org>\r\n"));
    assert_non_null(strstr(t, "\r\nMIME-Version: 1.0\r\n"));
    assert_null(strstr(strstr(t, "MIME-Version") + 1, "MIME-Version")); /* once */
    assert_null(strstr(t, "\r\nCc:"));
    assert_null(strstr(t, "Bcc"));
    /* the date is now */
    gint64 date = g_date_time_to_unix(g_mime_message_get_date(m));
    assert_true(labs((long)(date - time(NULL))) < 60);
    assert_text(g_mime_message_get_mime_part(m), "text/plain", "line one\nline two\nFrom here\n");
    g_object_unref(m);
    free(t);
    json_decref(r);
    nh_host_free(h);
}

static void test_compose_html(void **state)
{
    (void)state;
    nh_host *h = host(0);
    json_t *r = call(h, "{\"op\":\"compose\",\"from\":\"alice@example.org\",\"to\":[],"
                        "\"cc\":[\"list@example.org\",\"Bob <bob@example.org>\"],\"subject\":\"\","
                        "\"in_reply_to\":null,\"references\":null,\"text\":\"plain nhtext\","
                        "\"html\":\"<p>html nhtext</p>\"}");
    char *t;
    GMimeMessage *m = composed(h, json_integer_value(json_object_get(result(r), "handle")), &t);
    assert_crlf_7bit(t);
    assert_non_null(strstr(t, "\r\nCc: list@example.org, Bob <bob@example.org>\r\n"));
    assert_null(strstr(t, "\r\nTo:"));
    assert_null(strstr(t, "In-Reply-To"));
    assert_null(strstr(t, "References"));
    GMimeObject *body = g_mime_message_get_mime_part(m);
    assert_true(GMIME_IS_MULTIPART(body));
    assert_true(g_mime_content_type_is_type(g_mime_object_get_content_type(body), "multipart",
                                            "alternative"));
    assert_int_equal(g_mime_multipart_get_count(GMIME_MULTIPART(body)), 2);
    assert_text(g_mime_multipart_get_part(GMIME_MULTIPART(body), 0), "text/plain", "plain nhtext");
    assert_text(g_mime_multipart_get_part(GMIME_MULTIPART(body), 1), "text/html",
                "<p>html nhtext</p>");
    g_object_unref(m);
    free(t);
    json_decref(r);
    nh_host_free(h);
}

/* A data handle with the delivered post's attachment (the bytes of
 * `attachment`), from open and part; *plain: the opened message. */
static json_int_t data_handle(nh_host *h, json_int_t *plain)
{
    char *m = b64(delivered, delivered_len);
    json_t *r = callf(h, "{\"op\":\"open\",\"message\":\"%s\"}", m);
    free(m);
    json_int_t o = json_integer_value(json_object_get(result(r), "handle"));
    json_t *p = callf(h, "{\"op\":\"part\",\"handle\":%lld,\"index\":1}", (long long)o);
    if (plain)
        *plain = o;
    json_int_t d = json_integer_value(json_object_get(result(p), "handle"));
    json_decref(p);
    json_decref(r);
    return d;
}

static json_int_t upload(nh_host *h, const void *p, size_t n)
{
    char *c = b64(p, n);
    json_t *r = callf(h, "{\"op\":\"upload\",\"data\":\"%s\"}", c);
    free(c);
    json_int_t u = json_integer_value(json_object_get(result(r), "handle"));
    json_decref(r);
    return u;
}

static const char pdf[] = "%PDF-1.4 nhpdf\n\x01\x02\xff";

static void assert_attachment(GMimeObject *o, const char *type, const char *name, const void *p,
                              size_t n)
{
    assert_true(GMIME_IS_PART(o));
    char *mt = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(o));
    assert_string_equal(mt, type);
    g_free(mt);
    assert_string_equal(g_mime_object_get_disposition(o), "attachment");
    assert_string_equal(g_mime_part_get_filename(GMIME_PART(o)), name);
    assert_int_equal(g_mime_part_get_content_encoding(GMIME_PART(o)),
                     GMIME_CONTENT_ENCODING_BASE64);
    GMimeStream *mem = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(g_mime_part_get_content(GMIME_PART(o)), mem);
    GByteArray *b = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, p, n);
    g_object_unref(mem);
}

static void test_compose_attachments(void **state)
{
    (void)state;
    nh_host *h = host(0);
    json_int_t d = data_handle(h, NULL), u = upload(h, pdf, sizeof pdf), e = upload(h, "", 0);
    json_t *r =
        callf(h,
              "{\"op\":\"compose\",\"from\":\"alice@example.org\","
              "\"to\":[\"list@example.org\"],\"subject\":\"files\",\"text\":\"see\","
              "\"attachments\":[{\"handle\":%lld,\"name\":\"Bericht f\\u00fcr M\\u00e4rz.pdf\","
              "\"type\":\"Application/PDF\"},{\"handle\":%lld,\"name\":\"a.bin\","
              "\"type\":\"not a type\"},{\"handle\":%lld,\"name\":\"again.bin\"},"
              "{\"handle\":%lld,\"name\":\"empty\",\"type\":\"text/plain\"}]}",
              (long long)u, (long long)d, (long long)d, (long long)e);
    char *t;
    GMimeMessage *m = composed(h, json_integer_value(json_object_get(result(r), "handle")), &t);
    assert_crlf_7bit(t);
    /* RFC 2231, in UTF-8 */
    assert_non_null(strstr(t, "filename*=UTF-8''Bericht%20f%C3%BCr%20M%C3%A4rz.pdf"));
    GMimeObject *body = g_mime_message_get_mime_part(m);
    assert_true(
        g_mime_content_type_is_type(g_mime_object_get_content_type(body), "multipart", "mixed"));
    GMimeMultipart *mp = GMIME_MULTIPART(body);
    assert_int_equal(g_mime_multipart_get_count(mp), 5);
    assert_text(g_mime_multipart_get_part(mp, 0), "text/plain", "see");
    assert_attachment(g_mime_multipart_get_part(mp, 1), "application/pdf", "Bericht für März.pdf",
                      pdf, sizeof pdf);
    assert_attachment(g_mime_multipart_get_part(mp, 2), "application/octet-stream", "a.bin",
                      attachment, sizeof attachment);
    assert_attachment(g_mime_multipart_get_part(mp, 3), "application/octet-stream", "again.bin",
                      attachment, sizeof attachment);
    assert_attachment(g_mime_multipart_get_part(mp, 4), "text/plain", "empty", "", 0);
    g_object_unref(m);
    free(t);
    json_decref(r);
    /* compose leaves the attachments' handles open */
    size_t n;
    uint8_t *back = read_all(h, d, NH_CHUNK_MAX, &n);
    assert_int_equal(n, sizeof attachment);
    free(back);
    back = read_all(h, u, NH_CHUNK_MAX, &n);
    assert_int_equal(n, sizeof pdf);
    free(back);
    nh_host_free(h);
}

/* Header fields outside ASCII: encoded words (RFC 2047); the output is
 * 7-bit, and decodes to what was given. */
static void test_compose_non_ascii(void **state)
{
    (void)state;
    nh_host *h = host(0);
    json_t *r = call(
        h, "{\"op\":\"compose\",\"from\":\"J\\u00f6rg M\\u00fcller <joerg@example.org>\","
           "\"to\":[\"\\\"Liste, die\\\" <list@example.org>\"],"
           "\"subject\":\"Gr\\u00fc\\u00dfe aus K\\u00f6ln \\u2013 \\ud83d\\udce8\","
           "\"text\":\"\\u041f\\u0440\\u0438\\u0432\\u0435\\u0442\\n\\u043c\\u0438\\u0440\\n\"}");
    char *t;
    GMimeMessage *m = composed(h, json_integer_value(json_object_get(result(r), "handle")), &t);
    assert_crlf_7bit(t);
    assert_non_null(strstr(t, "\r\nSubject: =?"));
    assert_string_equal(g_mime_message_get_subject(m), "Grüße aus Köln – 📨");
    InternetAddress *f = internet_address_list_get_address(g_mime_message_get_from(m), 0);
    assert_string_equal(internet_address_get_name(f), "Jörg Müller");
    InternetAddress *to = internet_address_list_get_address(g_mime_message_get_to(m), 0);
    assert_string_equal(internet_address_get_name(to), "Liste, die");
    assert_string_equal(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(to)),
                        "list@example.org");
    /* Cyrillic goes base64, in canonical CRLF form */
    GMimeObject *body = g_mime_message_get_mime_part(m);
    assert_int_equal(g_mime_part_get_content_encoding(GMIME_PART(body)),
                     GMIME_CONTENT_ENCODING_BASE64);
    char *text = g_mime_text_part_get_text(GMIME_TEXT_PART(body));
    assert_string_equal(text, "Привет\r\nмир\r\n");
    g_free(text);
    g_object_unref(m);
    free(t);
    json_decref(r);
    /* a line longer than 998 octets, and no line break at the end: QP */
    char *longline = malloc(2002);
    memset(longline, 'x', 2000);
    longline[2000] = longline[2001] = '\0';
    r = callf(h,
              "{\"op\":\"compose\",\"from\":\"alice@example.org\",\"to\":[\"list@example.org\"],"
              "\"text\":\"%s\"}",
              longline);
    m = composed(h, json_integer_value(json_object_get(result(r), "handle")), &t);
    assert_crlf_7bit(t);
    for (char *p = t, *e; (e = strstr(p, "\r\n")) != NULL; p = e + 2)
        assert_true(e - p <= 998);
    body = g_mime_message_get_mime_part(m);
    assert_int_equal(g_mime_part_get_content_encoding(GMIME_PART(body)),
                     GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
    longline[2000] = '\n'; /* a body ends with a line break */
    assert_text(body, "text/plain", longline);
    free(longline);
    g_object_unref(m);
    free(t);
    json_decref(r);
    nh_host_free(h);
}

/* Compose, seal (signed, as this device's member), recrypt as the list
 * does, open: everything comes back; seal tells the composed Message-ID. */
static void test_compose_seal_open(void **state)
{
    (void)state;
    nh_host *h = host(0);
    json_int_t d = data_handle(h, NULL), u = upload(h, pdf, sizeof pdf);
    json_t *c = callf(h,
                      "{\"op\":\"compose\",\"from\":\"Alice <alice@example.org>\","
                      "\"to\":[\"list@example.org\"],\"subject\":\"Gr\\u00fc\\u00dfe nhround\","
                      "\"in_reply_to\":\"<nh1@example.org>\",\"text\":\"round m\\u00e4rker\\n\","
                      "\"html\":\"<b>round</b>\",\"attachments\":[{\"handle\":%lld,"
                      "\"name\":\"Bericht f\\u00fcr M\\u00e4rz.pdf\",\"type\":\"application/pdf\"},"
                      "{\"handle\":%lld,\"name\":\"a.bin\"}]}",
                      (long long)u, (long long)d);
    json_t *cres = result(c);
    const char *mid = json_string_value(json_object_get(cres, "message_id"));
    json_t *s = callf(h, "{\"op\":\"seal\",\"to\":\"list@example.org\",\"handle\":%lld}",
                      (long long)json_integer_value(json_object_get(cres, "handle")));
    json_t *sres = result(s);
    assert_true(json_is_true(json_object_get(sres, "signed")));
    assert_string_equal(json_string_value(json_object_get(sres, "message_id")), mid);
    size_t n;
    char *sealed =
        (char *)read_all(h, json_integer_value(json_object_get(sres, "handle")), NH_CHUNK_MAX, &n);
    char want[128];
    snprintf(want, sizeof want, "\r\nMessage-ID: %s\r\n", mid);
    assert_non_null(strstr(sealed, want)); /* the outer header, CRLF as the inner */
    assert_null(strstr(sealed, "nhround"));
    char path[512];
    snprintf(path, sizeof path, "%s/c.eml", T);
    FILE *f = fopen(path, "wb");
    assert_int_equal(fwrite(sealed, 1, n, f), n);
    fclose(f);
    free(sealed);
    sh("cd %s && '%s' recrypt list <c.eml >cd.eml 2>/dev/null", T, getenv("RC_HARNESS"));
    snprintf(path, sizeof path, "%s/cd.eml", T);
    char *delivered_c = slurp(path, &n), *m = b64(delivered_c, n);
    free(delivered_c);
    json_t *o = callf(h, "{\"op\":\"open\",\"message\":\"%s\"}", m);
    free(m);
    json_t *ores = result(o), *hd = json_object_get(ores, "headers");
    json_t *v = json_object_get(ores, "verdict");
    assert_string_equal(json_string_value(json_object_get(v, "kind")), "signed");
    assert_string_equal(json_string_value(json_object_get(v, "member")), "alice@example.org");
    assert_string_equal(json_string_value(json_object_get(hd, "subject")), "Grüße nhround");
    assert_string_equal(json_string_value(json_object_get(hd, "from")),
                        "Alice <alice@example.org>");
    assert_string_equal(json_string_value(json_object_get(hd, "to")), "list@example.org");
    assert_string_equal(json_string_value(json_object_get(hd, "in_reply_to")), "<nh1@example.org>");
    assert_int_equal(strlen(json_string_value(json_object_get(hd, "message_id"))), strlen(mid) - 2);
    assert_memory_equal(json_string_value(json_object_get(hd, "message_id")), mid + 1,
                        strlen(mid) - 2);
    json_t *parts = json_object_get(ores, "parts");
    assert_int_equal(json_array_size(parts), 4);
    char *text = no_cr(json_string_value(json_object_get(json_array_get(parts, 0), "text")));
    assert_string_equal(text, "round märker\n");
    free(text);
    assert_string_equal(json_string_value(json_object_get(json_array_get(parts, 1), "type")),
                        "text/html");
    assert_string_equal(json_string_value(json_object_get(json_array_get(parts, 1), "text")),
                        "<b>round</b>");
    json_t *p2 = json_array_get(parts, 2), *p3 = json_array_get(parts, 3);
    assert_string_equal(json_string_value(json_object_get(p2, "name")), "Bericht für März.pdf");
    assert_string_equal(json_string_value(json_object_get(p2, "type")), "application/pdf");
    assert_string_equal(json_string_value(json_object_get(p3, "name")), "a.bin");
    assert_string_equal(json_string_value(json_object_get(p3, "disposition")), "attachment");
    for (int i = 2; i <= 3; i++) {
        json_t *pr = callf(h, "{\"op\":\"part\",\"handle\":%lld,\"index\":%d}",
                           (long long)json_integer_value(json_object_get(ores, "handle")), i);
        uint8_t *bytes = read_all(h, json_integer_value(json_object_get(result(pr), "handle")),
                                  NH_CHUNK_MAX, &n);
        assert_int_equal(n, i == 2 ? sizeof pdf : sizeof attachment);
        assert_memory_equal(bytes, i == 2 ? (const void *)pdf : (const void *)attachment, n);
        free(bytes);
        json_decref(pr);
    }
    json_decref(o);
    json_decref(s);
    json_decref(c);
    nh_host_free(h);
}

static void assert_all_handles_free(nh_host *h)
{
    for (int i = 0; i < NH_HANDLES; i++) {
        json_t *e = callf(h, "{\"op\":\"read\",\"handle\":%d}", i);
        assert_string_equal(err_code(e), "bad-handle");
        json_decref(e);
    }
}

static void test_compose_malformed(void **state)
{
    (void)state;
    nh_host *h = host(0);
#define TO "\"to\":[\"list@example.org\"]"
#define FROM "\"from\":\"alice@example.org\""
    /* each: the request's members, the code, a word the message holds */
    static const char *const bad[][3] = {
        {TO ",\"text\":\"x\"", "malformed-request", "from"},
        {"\"from\":7," TO ",\"text\":\"x\"", "malformed-request", "from"},
        {"\"from\":\"garbage\"," TO ",\"text\":\"x\"", "malformed-request", "from"},
        {"\"from\":\"a@example.org, b@example.org\"," TO ",\"text\":\"x\"", "malformed-request",
         "from"},
        {"\"from\":\"Alice <alice@example.org>\\r\\nBcc: eve@example.org\"," TO ",\"text\":\"x\"",
         "malformed-request", "from"},
        {"\"from\":\"Group: a@example.org;\"," TO ",\"text\":\"x\"", "malformed-request", "from"},
        {FROM ",\"to\":[\"list@example.org\",\"not an address\"],\"text\":\"x\"",
         "malformed-request", "to[1]"},
        {FROM ",\"to\":\"list@example.org\",\"text\":\"x\"", "malformed-request", "to"},
        {FROM ",\"to\":[7],\"text\":\"x\"", "malformed-request", "to[0]"},
        {FROM ",\"cc\":[\"a@example.org, b@example.org\"],\"text\":\"x\"", "malformed-request",
         "cc[0]"},
        {FROM ",\"cc\":[\"x@example.org\\n\"],\"text\":\"x\"", "malformed-request", "cc[0]"},
        {FROM ",\"text\":\"x\"", "malformed-request", "recipient"},
        {FROM ",\"to\":[],\"cc\":[],\"text\":\"x\"", "malformed-request", "recipient"},
        {FROM "," TO ",\"bcc\":[],\"text\":\"x\"", "malformed-request", "Bcc"},
        {FROM "," TO ",\"bcc\":[\"eve@example.org\"],\"text\":\"x\"", "malformed-request", "Bcc"},
        {FROM "," TO ",\"subject\":\"Hi\\r\\nBcc: eve@example.org\",\"text\":\"x\"",
         "malformed-request", "subject"},
        {FROM "," TO ",\"subject\":\"Hi\\n\",\"text\":\"x\"", "malformed-request", "subject"},
        {FROM "," TO ",\"subject\":7,\"text\":\"x\"", "malformed-request", "subject"},
        {FROM "," TO ",\"in_reply_to\":\"no id\",\"text\":\"x\"", "malformed-request",
         "in_reply_to"},
        {FROM "," TO ",\"in_reply_to\":\"<a@b> <c@d>\",\"text\":\"x\"", "malformed-request",
         "in_reply_to"},
        {FROM "," TO ",\"in_reply_to\":\"<a@b\",\"text\":\"x\"", "malformed-request",
         "in_reply_to"},
        {FROM "," TO ",\"in_reply_to\":\"<a@b>\\r\\nBcc: e@f\",\"text\":\"x\"", "malformed-request",
         "in_reply_to"},
        {FROM "," TO ",\"references\":\"<a@b> junk\",\"text\":\"x\"", "malformed-request",
         "references"},
        {FROM "," TO ",\"references\":[\"<a@b>\"],\"text\":\"x\"", "malformed-request",
         "references"},
        {FROM "," TO, "malformed-request", "text"},
        {FROM "," TO ",\"text\":7", "malformed-request", "text"},
        {FROM "," TO ",\"text\":\"x\",\"html\":7", "malformed-request", "html"},
        {FROM "," TO ",\"text\":\"x\",\"attachments\":{}", "malformed-request", "attachments"},
        {FROM "," TO ",\"text\":\"x\",\"attachments\":[7]", "malformed-request", "attachments[0]"},
        {FROM "," TO ",\"text\":\"x\",\"attachments\":[{\"handle\":63,\"name\":\"a\"}]",
         "bad-handle", "attachments[0]"},
        {FROM "," TO ",\"text\":\"x\",\"attachments\":[{\"handle\":-1,\"name\":\"a\"}]",
         "bad-handle", "attachments[0]"},
        {FROM "," TO ",\"text\":\"x\",\"attachments\":[{\"handle\":\"0\",\"name\":\"a\"}]",
         "malformed-request", "attachments[0]"},
        {FROM "," TO ",\"text\":\"x\",\"attachments\":[{\"name\":\"a\"}]", "malformed-request",
         "attachments[0]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *r = callf(h, "{\"op\":\"compose\",%s}", bad[i][0]);
        const char *c = err_code(r),
                   *msg =
                       json_string_value(json_object_get(json_object_get(r, "error"), "message"));
        if (strcmp(c, bad[i][1]) || !strstr(msg, bad[i][2]))
            fail_msg("%s: %s (%s), expected %s naming %s", bad[i][0], c, msg, bad[i][1], bad[i][2]);
        json_decref(r);
    }
    assert_all_handles_free(h); /* nothing left behind */
    /* an attachment's name and type, given a real handle; an opened
     * message is not an attachment */
    json_int_t plain, u = upload(h, pdf, sizeof pdf);
    data_handle(h, &plain);
    static const char *const att[] = {"", ",\"name\":\"\"", ",\"name\":\"a\\r\\nX-Evil: 1\"",
                                      ",\"name\":\"a\",\"type\":7"};
    for (size_t i = 0; i < sizeof att / sizeof *att; i++) {
        json_t *r = callf(h,
                          "{\"op\":\"compose\"," FROM "," TO ",\"text\":\"x\","
                          "\"attachments\":[{\"handle\":%lld%s}]}",
                          (long long)u, att[i]);
        assert_string_equal(err_code(r), "malformed-request");
        json_decref(r);
    }
    json_t *r = callf(h,
                      "{\"op\":\"compose\"," FROM "," TO ",\"text\":\"x\",\"attachments\":"
                      "[{\"handle\":%lld,\"name\":\"a\"}]}",
                      (long long)plain);
    assert_string_equal(err_code(r), "bad-handle");
    json_decref(r);
#undef TO
#undef FROM
    nh_host_free(h);
}

static void test_compose_limits(void **state)
{
    (void)state;
    nh_host *h = host(0);
    /* text and html: at most NH_TEXT_MAX bytes */
    char *big = malloc(NH_TEXT_MAX + 2);
    memset(big, 'a', NH_TEXT_MAX + 1);
    big[NH_TEXT_MAX + 1] = '\0';
    json_t *r = callf(h,
                      "{\"op\":\"compose\",\"from\":\"alice@example.org\","
                      "\"to\":[\"list@example.org\"],\"text\":\"%s\"}",
                      big);
    assert_string_equal(err_code(r), "too-large");
    json_decref(r);
    r = callf(h,
              "{\"op\":\"compose\",\"from\":\"alice@example.org\","
              "\"to\":[\"list@example.org\"],\"text\":\"x\",\"html\":\"%s\"}",
              big);
    assert_string_equal(err_code(r), "too-large");
    json_decref(r);
    big[NH_TEXT_MAX] = '\0'; /* exactly the limit goes */
    r = callf(h,
              "{\"op\":\"compose\",\"from\":\"alice@example.org\","
              "\"to\":[\"list@example.org\"],\"text\":\"%s\"}",
              big);
    json_decref(callf(h, "{\"op\":\"close\",\"handle\":%lld}",
                      (long long)json_integer_value(json_object_get(result(r), "handle"))));
    json_decref(r);
    /* a subject and an address of at most 998 bytes */
    big[NH_FIELD_MAX + 1] = '\0';
    r = callf(h,
              "{\"op\":\"compose\",\"from\":\"alice@example.org\","
              "\"to\":[\"list@example.org\"],\"subject\":\"%s\",\"text\":\"x\"}",
              big);
    assert_string_equal(err_code(r), "malformed-request");
    json_decref(r);
    memcpy(big + NH_FIELD_MAX + 1 - 12, "@example.org", 12);
    r = callf(h,
              "{\"op\":\"compose\",\"from\":\"alice@example.org\","
              "\"to\":[\"%s\"],\"text\":\"x\"}",
              big);
    assert_string_equal(err_code(r), "malformed-request");
    json_decref(r);
    free(big);
    /* at most NH_RECIPIENTS_MAX recipients */
    GString *to = g_string_new(NULL);
    for (int i = 0; i < NH_RECIPIENTS_MAX; i++)
        g_string_append_printf(to, "%s\"r%d@example.org\"", i ? "," : "", i);
    r = callf(h,
              "{\"op\":\"compose\",\"from\":\"alice@example.org\",\"to\":[%s],"
              "\"text\":\"x\"}",
              to->str);
    json_decref(callf(h, "{\"op\":\"close\",\"handle\":%lld}",
                      (long long)json_integer_value(json_object_get(result(r), "handle"))));
    json_decref(r);
    r = callf(h,
              "{\"op\":\"compose\",\"from\":\"alice@example.org\",\"to\":[%s],"
              "\"cc\":[\"one@example.org\"],\"text\":\"x\"}",
              to->str);
    assert_string_equal(err_code(r), "malformed-request");
    json_decref(r);
    g_string_free(to, TRUE);
    assert_all_handles_free(h);
    nh_host_free(h);
    /* the whole message: at most the host's limit, and nothing is left */
    h = host(2000);
    r = call(h, "{\"op\":\"compose\",\"from\":\"alice@example.org\",\"to\":[\"list@example.org\"],"
                "\"text\":\"small\"}");
    json_int_t c = json_integer_value(json_object_get(result(r), "handle"));
    json_decref(r);
    char text[2100];
    memset(text, 'z', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    r = callf(h,
              "{\"op\":\"compose\",\"from\":\"alice@example.org\","
              "\"to\":[\"list@example.org\"],\"text\":\"%s\"}",
              text);
    assert_string_equal(err_code(r), "too-large");
    json_decref(r);
    json_int_t u = upload(h, text, 1500);
    r = callf(h,
              "{\"op\":\"compose\",\"from\":\"alice@example.org\","
              "\"to\":[\"list@example.org\"],\"text\":\"x\",\"attachments\":"
              "[{\"handle\":%lld,\"name\":\"z\"},{\"handle\":%lld,\"name\":\"z\"}]}",
              (long long)u, (long long)u);
    assert_string_equal(err_code(r), "too-large");
    json_decref(r);
    r = callf(h,
              "{\"op\":\"compose\",\"from\":\"alice@example.org\","
              "\"to\":[\"list@example.org\"],\"text\":\"x\",\"attachments\":"
              "[{\"handle\":%lld,\"name\":\"z\"}]}",
              (long long)u);
    assert_string_equal(err_code(r), "too-large"); /* 1500 bytes are 2000 in base64 */
    json_decref(r);
    json_decref(callf(h, "{\"op\":\"close\",\"handle\":%lld}", (long long)u));
    json_decref(callf(h, "{\"op\":\"close\",\"handle\":%lld}", (long long)c));
    assert_all_handles_free(h);
    nh_host_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello),          cmocka_unit_test(test_open_read_part),
        cmocka_unit_test(test_open_duplicate),
        cmocka_unit_test(test_upload_chunks),  cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_lists_import),   cmocka_unit_test(test_pin),   cmocka_unit_test(test_seal),
        cmocka_unit_test(test_malformed),      cmocka_unit_test(test_limits),
        cmocka_unit_test(test_framing),        cmocka_unit_test(test_open_fits_a_frame),
        cmocka_unit_test(test_compose_plain),  cmocka_unit_test(test_compose_html),
        cmocka_unit_test(test_compose_attachments),
        cmocka_unit_test(test_compose_non_ascii),
        cmocka_unit_test(test_compose_seal_open),
        cmocka_unit_test(test_compose_malformed),
        cmocka_unit_test(test_compose_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
