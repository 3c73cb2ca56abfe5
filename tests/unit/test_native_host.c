/*
 * test_native_host.c - the Thunderbird add-on's native messaging host
 * (src/client/nativehost.c), driven in-process through nh_handle() and
 * nh_serve(): every operation, malformed and oversize requests, truncated
 * frames, and a tampered post (nothing decrypted comes back).
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
#include <unistd.h>
#include <fcntl.h>
#include <cmocka.h>
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

static void sh(const char *fmt, ...)
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
    sh("cd %s && '%s' list-create list list@example.org >list.key && "
       "RECRYPT_HOME=%s/dev '%s' keygen >dev.pub 2>/dev/null && "
       "'%s' enrol list alice@example.org \"$(cat dev.pub)\" --at $(( $(date +%%s) - 200000 )) && "
       "RECRYPT_HOME=%s/dev '%s' seal --to \"$('%s' list-key list)\" <m.eml >s.eml 2>/dev/null && "
       "'%s' recrypt list <s.eml >d.eml 2>/dev/null",
       T, harness, T, recrypt, harness, T, recrypt, harness, harness);
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

static json_t *callf(nh_host *h, const char *fmt, ...)
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

static void test_seal(void **state)
{
    (void)state;
    nh_host *h = host(0);
    char *m = b64(plain_post, plain_len);
    json_t *r = callf(h, "{\"op\":\"seal\",\"to\":\"list@example.org\",\"message\":\"%s\"}", m);
    json_t *res = result(r);
    assert_true(json_is_true(json_object_get(res, "signed"))); /* the device holds its cert */
    assert_int_equal(json_integer_value(json_object_get(res, "epoch")), 1);
    size_t n;
    uint8_t *sealed = read_all(h, json_integer_value(json_object_get(res, "handle")), NH_CHUNK_MAX,
                               &n);
    assert_non_null(strstr((char *)sealed, "multipart/encrypted"));
    assert_null(strstr((char *)sealed, "nhbody"));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello),          cmocka_unit_test(test_open_read_part),
        cmocka_unit_test(test_upload_chunks),  cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_lists_import),   cmocka_unit_test(test_seal),
        cmocka_unit_test(test_malformed),      cmocka_unit_test(test_limits),
        cmocka_unit_test(test_framing),        cmocka_unit_test(test_open_fits_a_frame),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
