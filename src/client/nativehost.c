/*
 * nativehost.c - see nativehost.h and docs/NATIVE-HOST.md.
 *
 * JSON is parsed and written with Jansson: requests come from the add-on
 * but are still input, and a well-kept parser (duplicate keys rejected,
 * UTF-8 checked, depth limited) is better than one of our own. For the
 * same reason `compose` has GMime write the messages it builds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <gmime/gmime.h>
#include <jansson.h>
#include <sodium.h>
#include <recrypt/recrypt.h>
#include "keystore.h"
#include "nativehost.h"
#include "open.h"
#include "seal.h"
#include "spool.h"

enum { H_FREE = 0, H_UPLOAD, H_PLAIN, H_DATA };

typedef struct {
    int kind;
    int fd;
    uint64_t size;
} nh_handle_t;

struct nh_host {
    keystore ks;
    uint64_t message_max;
    nh_handle_t handles[NH_HANDLES];
};

/* ---- handles ----------------------------------------------------------- */

static int handle_new(nh_host *h, int kind, rc_error *err)
{
    for (int i = 0; i < NH_HANDLES; i++) {
        if (h->handles[i].kind != H_FREE)
            continue;
        int fd = spool_tmpfile(err);
        if (fd < 0)
            return -1;
        h->handles[i] = (nh_handle_t){.kind = kind, .fd = fd, .size = 0};
        return i;
    }
    rc_error_set(err, RC_E_INVALID, "too many open handles (%d): close some", NH_HANDLES);
    return -1;
}

static void handle_close(nh_host *h, int i)
{
    if (i < 0 || i >= NH_HANDLES || h->handles[i].kind == H_FREE)
        return;
    close(h->handles[i].fd); /* unlinked at creation: the data is gone */
    h->handles[i] = (nh_handle_t){0};
}

/* A sink appending to a handle, refusing to grow past message_max. */
typedef struct {
    nh_host *h;
    int i;
} handle_sink_ctx;

static int handle_sink(void *vctx, const uint8_t *p, size_t n)
{
    handle_sink_ctx *c = vctx;
    nh_handle_t *hd = &c->h->handles[c->i];
    if (hd->size + n > c->h->message_max)
        return -1;
    if (rc_fd_sink(&hd->fd, p, n) != 0) {
        (void)!ftruncate(hd->fd, (off_t)hd->size); /* no half chunk */
        lseek(hd->fd, 0, SEEK_END);
        return -1;
    }
    hd->size += n;
    return 0;
}

/* ---- JSON helpers --------------------------------------------------------- */

/* A JSON string from bytes that may not be UTF-8: invalid sequences (a
 * NUL among them) become U+FFFD; the loop drops any NUL left. */
static json_t *jstr(const char *s, size_t len)
{
    if (!s)
        return json_null();
    char *valid = g_utf8_make_valid(s, (gssize)len);
    size_t o = 0, vl = strlen(valid);
    for (size_t i = 0; i < vl; i++)
        if (valid[i])
            valid[o++] = valid[i];
    json_t *j = json_stringn(valid, o);
    g_free(valid);
    return j ? j : json_null();
}

static json_t *jcstr(const char *s)
{
    return s ? jstr(s, strlen(s)) : json_null();
}

static const char *code_name(int code)
{
    switch (code) {
    case RC_E_FORMAT:
    case RC_E_VERSION: return "malformed-message";
    case RC_E_CRYPTO:
    case RC_E_AUTH: return "tampered";
    case RC_E_SIGNATURE: return "bad-signature";
    case RC_E_NOT_FOR_US: return "not-for-this-device";
    case RC_E_POLICY:
    case RC_E_PERMISSION: return "refused";
    case RC_E_IO: return "io";
    case RC_E_NOT_FOUND: return "not-found";
    case RC_E_INVALID: return "invalid";
    case RC_E_NOMEM: return "out-of-memory";
    default: return "internal";
    }
}

static json_t *error_obj(const char *code, const char *msg)
{
    return json_pack("{s:s, s:o}", "code", code, "message", jcstr(msg));
}

static char *respond(json_t *id, json_t *result, json_t *error)
{
    json_t *r = json_object();
    json_object_set(r, "id", id ? id : json_null());
    json_object_set_new(r, "ok", json_boolean(error == NULL));
    if (error)
        json_object_set_new(r, "error", error);
    else
        json_object_set_new(r, "result", result ? result : json_object());
    if (error && result)
        json_decref(result);
    char *out = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    if (out && strlen(out) > NH_FRAME_MAX - 64) { /* never more than a frame */
        sodium_memzero(out, strlen(out));
        free(out);
        json_t *e = json_pack("{s:O?, s:b, s:{s:s, s:s}}", "id", id, "ok", 0, "error", "code",
                              "too-large", "message",
                              "the response would exceed the native messaging frame limit");
        out = json_dumps(e, JSON_COMPACT);
        json_decref(e);
    }
    return out;
}

static char *fail_rc(json_t *id, const rc_error *err)
{
    return respond(id, NULL, error_obj(code_name(err->code),
                                       err->msg[0] ? err->msg : rc_strerror(err->code)));
}

/* A refusal because the list is not pinned: "not-pinned", with the list
 * and the fingerprint its key is signed by, for the add-on to show (the
 * user compares it with the owner's, then "pin"). */
static char *fail_unpinned(json_t *id, const rc_error *err, const char *list, const char *fp)
{
    return respond(id, NULL,
                   json_pack("{s:s, s:o, s:o, s:o}", "code", "not-pinned", "message",
                             jcstr(err->msg[0] ? err->msg : rc_strerror(err->code)), "list",
                             jcstr(list), "signer", jcstr(fp)));
}

static char *fail_proto(json_t *id, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static char *fail_proto(json_t *id, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return respond(id, NULL, error_obj(code, msg));
}

/* The handle named by req.key: its number; -1 when absent; -2 when no such
 * handle is open (bad-handle); -3 when not an integer (malformed-request). */
static int req_handle(nh_host *h, json_t *req, const char *key)
{
    json_t *v = json_object_get(req, key);
    if (!v)
        return -1;
    if (!json_is_integer(v))
        return -3;
    if (json_integer_value(v) < 0 || json_integer_value(v) >= NH_HANDLES ||
        h->handles[json_integer_value(v)].kind == H_FREE)
        return -2;
    return (int)json_integer_value(v);
}

/* The error response for req_handle's result r (< 0) when a handle is
 * required. */
static char *fail_handle(json_t *id, int r, const char *op)
{
    if (r == -2)
        return fail_proto(id, "bad-handle", "no such handle");
    return fail_proto(id, "malformed-request", "%s needs \"handle\", an integer", op);
}

/* An optional string operand: its value, NULL when absent; *bad when it
 * is present but not a string. */
static const char *opt_string(json_t *req, const char *key, int *bad)
{
    json_t *v = json_object_get(req, key);
    if (v && !json_is_string(v))
        *bad = 1;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Decode base64 (standard alphabet, padding optional) into handle i. */
static int append_base64(nh_host *h, int i, const char *b64, size_t len, rc_error *err)
{
    /* At most NH_CHUNK_MAX bytes: base64 of that is the longest text. */
    size_t max = len / 4 * 3 + 3, got = 0;
    if (len + 1 > sodium_base64_ENCODED_LEN(NH_CHUNK_MAX, sodium_base64_VARIANT_ORIGINAL))
        return rc_error_set(err, RC_E_INVALID, "a chunk holds at most %u bytes", NH_CHUNK_MAX);
    uint8_t *bin = malloc(max ? max : 1);
    if (!bin)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    if (sodium_base642bin(bin, max, b64, len, NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 &&
        sodium_base642bin(bin, max, b64, len, NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0) {
        free(bin);
        return rc_error_set(err, RC_E_INVALID, "data is not base64");
    }
    if (got > NH_CHUNK_MAX) {
        sodium_memzero(bin, max);
        free(bin);
        return rc_error_set(err, RC_E_INVALID, "a chunk holds at most %u bytes", NH_CHUNK_MAX);
    }
    handle_sink_ctx c = {h, i};
    int rc = 0;
    if (got && handle_sink(&c, bin, got) != 0)
        rc = h->handles[i].size + got > h->message_max
                 ? rc_error_set(err, RC_E_INVALID,
                                "the message exceeds the limit of %llu bytes",
                                (unsigned long long)h->message_max)
                 : rc_error_set(err, RC_E_IO, "cannot write the staging file");
    sodium_memzero(bin, max); /* may be a plaintext draft */
    free(bin);
    return rc;
}

/* The input message of an operation: req.handle (an upload), or
 * req.message (base64, small messages) staged in a new handle that the
 * caller closes (*tmp). Returns the handle or -1 (err set). */
static int input_handle(nh_host *h, json_t *req, int *tmp, rc_error *err, const char **proto)
{
    int i = req_handle(h, req, "handle");
    *tmp = -1;
    *proto = NULL;
    if (i == -2 || i == -3) {
        *proto = i == -2 ? "bad-handle" : "malformed-request";
        return rc_error_set(err, RC_E_INVALID, i == -2 ? "no such handle" : "\"handle\" is an integer"),
               -1;
    }
    if (i >= 0) {
        if (h->handles[i].kind != H_UPLOAD) {
            *proto = "bad-handle";
            return rc_error_set(err, RC_E_INVALID, "handle %d is not an upload", i), -1;
        }
        if (lseek(h->handles[i].fd, 0, SEEK_SET) != 0)
            return rc_error_set(err, RC_E_IO, "cannot rewind the staging file"), -1;
        return i;
    }
    json_t *m = json_object_get(req, "message");
    if (!json_is_string(m)) {
        *proto = "malformed-request";
        return rc_error_set(err, RC_E_INVALID, "give the message as \"handle\" or \"message\""),
               -1;
    }
    if ((i = handle_new(h, H_UPLOAD, err)) < 0)
        return -1;
    if (append_base64(h, i, json_string_value(m), json_string_length(m), err) != 0 ||
        lseek(h->handles[i].fd, 0, SEEK_SET) != 0) {
        handle_close(h, i);
        if (!err->code)
            rc_error_set(err, RC_E_IO, "cannot rewind the staging file");
        return -1;
    }
    *tmp = i;
    return i;
}

/* ---- the decrypted message's structure (GMime) ------------------------- */

static GMimeMessage *parse_handle(nh_host *h, int i)
{
    int fd = dup(h->handles[i].fd);
    if (fd < 0)
        return NULL;
    lseek(fd, 0, SEEK_SET);
    GMimeStream *fs = g_mime_stream_fs_new(fd); /* owns fd */
    GMimeParser *p = g_mime_parser_new_with_stream(fs);
    g_object_unref(fs);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
    g_object_unref(p);
    return m;
}

typedef struct {
    json_t *parts;
    int want;           /* the part index looked for, or -1 */
    GMimeObject *found;
    int index;
    size_t inline_budget;
} walk_ctx;

static gint64 decoded_size(GMimeObject *o)
{
    GMimeStream *null = g_mime_stream_null_new();
    gint64 n = -1;
    if (GMIME_IS_PART(o)) {
        GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(o));
        n = w ? g_mime_data_wrapper_write_to_stream(w, null) : 0;
    } else if (GMIME_IS_MESSAGE_PART(o)) {
        GMimeMessage *em = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        n = em ? g_mime_object_write_to_stream(GMIME_OBJECT(em), NULL, null) : 0;
    }
    g_object_unref(null);
    return n;
}

static void walk_part(GMimeObject *parent, GMimeObject *o, gpointer data)
{
    (void)parent;
    walk_ctx *w = data;
    if (GMIME_IS_MULTIPART(o))
        return; /* its children come on their own */
    int idx = w->index++;
    if (w->want >= 0) {
        if (idx == w->want)
            w->found = o;
        return;
    }
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    char *mt = ct ? g_mime_content_type_get_mime_type(ct) : g_strdup("text/plain");
    const char *name = GMIME_IS_PART(o) ? g_mime_part_get_filename(GMIME_PART(o)) : NULL;
    const char *disp = g_mime_object_get_disposition(o);
    const char *charset = ct ? g_mime_content_type_get_parameter(ct, "charset") : NULL;
    gint64 size = decoded_size(o);
    json_t *p = json_pack("{s:i, s:o, s:o, s:o, s:o, s:I}", "index", idx, "type", jcstr(mt),
                          "name", jcstr(name), "disposition", jcstr(disp), "charset",
                          jcstr(charset), "size", (json_int_t)size);
    /* Text parts come inline (as UTF-8), within a budget per message. */
    if (GMIME_IS_TEXT_PART(o) && size >= 0 && (size_t)size <= NH_TEXT_INLINE &&
        (size_t)size <= w->inline_budget) {
        char *text = g_mime_text_part_get_text(GMIME_TEXT_PART(o));
        if (text) {
            json_object_set_new(p, "text", jcstr(text));
            w->inline_budget -= (size_t)size;
            g_free(text);
        }
    }
    g_free(mt);
    json_array_append_new(w->parts, p);
}

static json_t *address_list(InternetAddressList *l)
{
    if (!l || internet_address_list_length(l) == 0)
        return json_null();
    char *s = internet_address_list_to_string(l, NULL, FALSE);
    json_t *j = jcstr(s);
    g_free(s);
    return j;
}

static json_t *describe(GMimeMessage *m)
{
    GMimeObject *o = GMIME_OBJECT(m);
    json_t *hdr = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "subject", jcstr(g_mime_message_get_subject(m)),
        "from", address_list(g_mime_message_get_from(m)), "to",
        address_list(g_mime_message_get_to(m)), "cc", address_list(g_mime_message_get_cc(m)),
        "date", jcstr(g_mime_object_get_header(o, "Date")), "message_id",
        jcstr(g_mime_message_get_message_id(m)), "in_reply_to",
        jcstr(g_mime_object_get_header(o, "In-Reply-To")), "references",
        jcstr(g_mime_object_get_header(o, "References")));
    return hdr;
}

/* ---- operations ----------------------------------------------------------- */

static char *op_hello(nh_host *h, json_t *id)
{
    rc_error err;
    char fp[RC_UDF_MAX] = "";
    rc_device_public pub; /* from device.pub: no passphrase needed */
    int have = keystore_device_exists(&h->ks) && keystore_device_public(&h->ks, &pub, &err) == 0;
    if (have)
        rc_key_fingerprint(fp, sizeof fp, RC_FP_DEVICE_SIGNER, pub.sign_pk, 32, NULL);
    return respond(id,
                   json_pack("{s:s, s:i, s:o, s:o, s:b, s:{s:i, s:i, s:I}}", "version",
                             RC_VERSION_STRING, "protocol", NH_PROTOCOL, "keystore", jcstr(h->ks.dir),
                             "device", have ? jcstr(fp) : json_null(), "device_locked",
                             keystore_device_is_protected(&h->ks), "limits", "frame",
                             (int)NH_FRAME_MAX, "chunk", (int)NH_CHUNK_MAX, "message",
                             (json_int_t)h->message_max),
                   NULL);
}

static int by_epoch_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The epochs whose list key the keystore holds for list, newest first (the
 * newest `max`): read off the directory, so a huge epoch number costs
 * nothing. Names are exactly "epoch-" DIGITS ".listkey" (no leading zero). */
static size_t list_epochs(const keystore *ks, const char *list, uint64_t *out, size_t max)
{
    char dir[PATH_MAX];
    size_t n = 0, cap = 0;
    uint64_t *all = NULL;
    if (keystore_path(dir, ks, "lists/%s", list) != 0)
        return 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        const char *p = e->d_name;
        if (strncmp(p, "epoch-", 6) != 0)
            continue;
        p += 6;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 19 || (p[0] == '0') || strcmp(p + digits, ".listkey") != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            uint64_t *na = realloc(all, cap * sizeof *na);
            if (!na)
                break;
            all = na;
        }
        all[n++] = strtoull(p, NULL, 10);
    }
    if (d)
        closedir(d);
    if (n)
        qsort(all, n, sizeof *all, by_epoch_desc);
    if (n > max)
        n = max;
    if (n)
        memcpy(out, all, n * sizeof *out);
    free(all);
    return n;
}

static char *op_lists(nh_host *h, json_t *id)
{
    char dir[PATH_MAX + 8];
    snprintf(dir, sizeof dir, "%s/lists", h->ks.dir);
    json_t *lists = json_array();
    DIR *d = opendir(dir);
    struct dirent *e;
    uint64_t now = (uint64_t)time(NULL);
    while (d && (e = readdir(d)) != NULL) {
        rc_pin pin;
        rc_error err;
        char fp[RC_UDF_MAX], path[PATH_MAX], line[RC_KEYSTR_MAX * 2];
        if (e->d_name[0] == '.' || strlen(e->d_name) > RC_ADDR_MAX)
            continue;
        int pstate = keystore_pin_state(&h->ks, e->d_name, fp, &err);
        uint64_t since = keystore_pin_since(&h->ks, e->d_name);
        if (pstate == KS_PIN_FINGERPRINT) /* pinned by fingerprint, no list key yet */
            json_array_append_new(
                lists, json_pack("{s:o, s:s, s:o, s:I, s:[]}", "address", jcstr(e->d_name),
                                 "signer", fp, "pinned",
                                 since ? json_integer((json_int_t)since) : json_null(),
                                 "highest_epoch", (json_int_t)0, "epochs"));
        if (pstate != KS_PIN_KEY || keystore_pin_load(&h->ks, e->d_name, &pin, &err) != 1)
            continue;
        json_t *epochs = json_array();
        uint64_t eps[256];
        size_t n_eps = list_epochs(&h->ks, e->d_name, eps, 256);
        for (size_t k = 0; k < n_eps; k++) {
            uint64_t ep = eps[k];
            rc_statement st;
            rc_cert cert;
            if (keystore_path(path, &h->ks, "lists/%s/epoch-%llu.listkey", e->d_name,
                              (unsigned long long)ep) == 0 &&
                keystore_read_file(path, line, sizeof line) == 0 &&
                rc_statement_decode(&st, line, NULL) == 0) {
                const char *state = st.not_after && st.not_after < now ? "expired"
                                    : st.not_before > now              ? "not-yet-valid"
                                    : ep == pin.highest_epoch          ? "current"
                                                                       : "older";
                json_array_append_new(
                    epochs, json_pack("{s:I, s:I, s:o, s:s, s:b}", "epoch", (json_int_t)ep,
                                      "valid_from", (json_int_t)st.not_before, "valid_until",
                                      st.not_after ? json_integer((json_int_t)st.not_after)
                                                   : json_null(),
                                      "state", state, "certificate",
                                      keystore_cert_load(&h->ks, e->d_name, ep, &cert)));
            }
        }
        json_array_append_new(lists, json_pack("{s:o, s:s, s:o, s:I, s:o}", "address",
                                               jcstr(e->d_name), "signer", fp, "pinned",
                                               since ? json_integer((json_int_t)since)
                                                     : json_null(),
                                               "highest_epoch", (json_int_t)pin.highest_epoch,
                                               "epochs", epochs));
    }
    if (d)
        closedir(d);
    return respond(id, json_pack("{s:o}", "lists", lists), NULL);
}

static char *op_upload(nh_host *h, json_t *id, json_t *req)
{
    rc_error err;
    rc_error_clear(&err);
    json_t *data = json_object_get(req, "data");
    if (!json_is_string(data))
        return fail_proto(id, "malformed-request", "upload needs \"data\" (base64)");
    int i = req_handle(h, req, "handle"), fresh = 0;
    if (i < -1)
        return fail_handle(id, i, "upload");
    if (i >= 0 && h->handles[i].kind != H_UPLOAD)
        return fail_proto(id, "bad-handle", "handle %d is not an upload", i);
    if (i < 0) {
        if ((i = handle_new(h, H_UPLOAD, &err)) < 0)
            return fail_rc(id, &err);
        fresh = 1;
    }
    if (lseek(h->handles[i].fd, 0, SEEK_END) < 0 ||
        append_base64(h, i, json_string_value(data), json_string_length(data), &err) != 0) {
        if (!err.code)
            rc_error_set(&err, RC_E_IO, "cannot write the staging file");
        if (fresh)
            handle_close(h, i);
        return err.code == RC_E_INVALID && strstr(err.msg, "exceeds")
                   ? fail_proto(id, "too-large", "%s", err.msg)
                   : fail_rc(id, &err);
    }
    return respond(id, json_pack("{s:i, s:I}", "handle", i, "size", (json_int_t)h->handles[i].size),
                   NULL);
}

static char *op_read(nh_host *h, json_t *id, json_t *req)
{
    int i = req_handle(h, req, "handle");
    if (i < 0)
        return fail_handle(id, i, "read");
    json_t *jo = json_object_get(req, "offset"), *jl = json_object_get(req, "length");
    json_int_t off = jo ? (json_is_integer(jo) ? json_integer_value(jo) : -1) : 0;
    json_int_t len = jl ? (json_is_integer(jl) ? json_integer_value(jl) : -1) : NH_CHUNK_MAX;
    if (off < 0 || len < 0)
        return fail_proto(id, "malformed-request", "offset and length are integers >= 0");
    if (len > (json_int_t)NH_CHUNK_MAX)
        len = NH_CHUNK_MAX;
    nh_handle_t *hd = &h->handles[i];
    if ((uint64_t)off > hd->size)
        off = (json_int_t)hd->size;
    if ((uint64_t)(off + len) > hd->size)
        len = (json_int_t)(hd->size - (uint64_t)off);
    uint8_t *buf = malloc((size_t)len + 1);
    char *b64 = malloc(sodium_base64_ENCODED_LEN((size_t)len, sodium_base64_VARIANT_ORIGINAL));
    ssize_t got = buf ? pread(hd->fd, buf, (size_t)len, off) : -1;
    if (!buf || !b64 || got != (ssize_t)len) {
        free(buf);
        free(b64);
        return fail_proto(id, "io", "cannot read handle %d", i);
    }
    sodium_bin2base64(b64, sodium_base64_ENCODED_LEN((size_t)len, sodium_base64_VARIANT_ORIGINAL),
                      buf, (size_t)len, sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(buf, (size_t)len);
    free(buf);
    char *out = respond(id,
                        json_pack("{s:s, s:I, s:b}", "data", b64, "offset", off, "eof",
                                  (uint64_t)(off + len) >= hd->size),
                        NULL);
    sodium_memzero(b64, strlen(b64));
    free(b64);
    return out;
}

static char *op_close(nh_host *h, json_t *id, json_t *req)
{
    int i = req_handle(h, req, "handle");
    if (i < 0)
        return fail_handle(id, i, "close");
    handle_close(h, i);
    return respond(id, NULL, NULL);
}

static json_t *verdict_obj(const client_open_info *info)
{
    /* FORMAT.md §9.6: a copy that did not come through the list is never
     * "signed"; a version-1 list key cannot tell, and says so. */
    if (info->path == RC_PATH_DIRECT)
        return json_pack("{s:s, s:o, s:I, s:s}", "kind", "direct", "list", jcstr(info->list),
                         "epoch", (json_int_t)info->epoch, "path", "direct");
    json_t *v;
    if (info->is_signed)
        v = json_pack("{s:s, s:o, s:o, s:o, s:I}", "kind", "signed", "member",
                      jcstr(info->member), "device", jcstr(info->device_fp), "list",
                      jcstr(info->list), "epoch", (json_int_t)info->epoch);
    else
        v = json_pack("{s:s, s:o, s:I}", "kind", "unsigned", "list", jcstr(info->list), "epoch",
                      (json_int_t)info->epoch);
    json_object_set_new(v, "path",
                        json_string(info->path == RC_PATH_UNVERIFIED ? "unverified" : "list"));
    return v;
}

static char *op_open(nh_host *h, json_t *id, json_t *req)
{
    rc_error err;
    rc_error_clear(&err);
    const char *proto;
    int tmp, in = input_handle(h, req, &tmp, &err, &proto);
    if (in < 0)
        return proto ? fail_proto(id, proto, "%s", err.msg) : fail_rc(id, &err);
    int out = handle_new(h, H_PLAIN, &err);
    if (out < 0) {
        handle_close(h, tmp);
        return fail_rc(id, &err);
    }
    int bad = 0;
    const char *signer = opt_string(req, "signer", &bad);
    if (bad) {
        handle_close(h, tmp);
        handle_close(h, out);
        return fail_proto(id, "malformed-request", "\"signer\" is a fingerprint (a string)");
    }
    json_t *ad = json_object_get(req, "allow_direct");
    if (ad && !json_is_boolean(ad)) {
        handle_close(h, tmp);
        handle_close(h, out);
        return fail_proto(id, "malformed-request", "\"allow_direct\" is true or false");
    }
    client_open_info info;
    handle_sink_ctx c = {h, out};
    int rc = client_open_ex(&h->ks, h->handles[in].fd, NULL, signer,
                            ad && json_is_true(ad) ? CLIENT_OPEN_ALLOW_DIRECT : 0u, handle_sink,
                            &c, &info, &err);
    handle_close(h, tmp);
    if (rc) {
        handle_close(h, out); /* whatever reached it goes, unread */
        if (!err.code)
            rc_error_set(&err, RC_E_INTERNAL, "cannot open the message");
        if (info.unpinned) /* the add-on asks the user to compare and pin */
            return fail_unpinned(id, &err, info.list, info.signer_fp);
        json_t *e = error_obj(code_name(err.code), err.msg[0] ? err.msg : rc_strerror(err.code));
        return respond(id, NULL, e);
    }
    GMimeMessage *m = parse_handle(h, out);
    if (!m) {
        handle_close(h, out);
        return fail_proto(id, "malformed-message", "the decrypted message does not parse");
    }
    walk_ctx w = {.parts = json_array(), .want = -1, .inline_budget = 600u * 1024u};
    g_mime_message_foreach(m, walk_part, &w);
    json_t *res = json_pack("{s:i, s:I, s:o, s:b, s:b, s:o, s:o, s:o}", "handle", out, "size",
                            (json_int_t)h->handles[out].size, "verdict", verdict_obj(&info),
                            "duplicate", info.duplicate, "first_use", info.first_use, "signer",
                            jcstr(info.signer_fp), "headers", describe(m), "parts", w.parts);
    g_object_unref(m);
    /* The response must fit a frame. When JSON escaping makes it too long,
     * inline texts are left out, the largest first: each text's escaped
     * length is measured once, so that this stays linear. */
    char *probe = json_dumps(res, JSON_COMPACT);
    size_t need = probe ? strlen(probe) : SIZE_MAX;
    if (probe) {
        sodium_memzero(probe, need);
        free(probe);
    }
    if (need > NH_FRAME_MAX - 1024) {
        json_t *parts = json_object_get(res, "parts"), *p;
        size_t n = json_array_size(parts), i_part, *cost = calloc(n ? n : 1, sizeof *cost);
        if (!cost) {
            json_decref(res);
            handle_close(h, out);
            return fail_proto(id, "out-of-memory", "out of memory");
        }
        json_array_foreach(parts, i_part, p) {
            json_t *t = json_object_get(p, "text");
            char *e = t ? json_dumps(t, JSON_ENCODE_ANY) : NULL;
            cost[i_part] = e ? strlen(e) + 8 : 0; /* ,"text": and the value */
            if (e) {
                sodium_memzero(e, strlen(e));
                free(e);
            }
        }
        while (need > NH_FRAME_MAX - 1024) {
            size_t big = n;
            for (size_t k = 0; k < n; k++)
                if (cost[k] && (big == n || cost[k] > cost[big]))
                    big = k;
            if (big == n)
                break; /* no text left to drop */
            json_object_del(json_array_get(parts, big), "text");
            need -= need > cost[big] ? cost[big] : need;
            cost[big] = 0;
        }
        free(cost);
        /* Measure again: what is sent must fit. */
        probe = json_dumps(res, JSON_COMPACT);
        need = probe ? strlen(probe) : SIZE_MAX;
        if (probe) {
            sodium_memzero(probe, need);
            free(probe);
        }
        if (need > NH_FRAME_MAX - 1024) {
            json_decref(res);
            handle_close(h, out);
            return fail_proto(id, "too-large",
                              "the message's description (header fields and parts) does not fit "
                              "a response");
        }
    }
    return respond(id, res, NULL);
}

static char *op_part(nh_host *h, json_t *id, json_t *req)
{
    rc_error err;
    rc_error_clear(&err);
    int i = req_handle(h, req, "handle");
    json_t *ji = json_object_get(req, "index");
    if (i < 0)
        return fail_handle(id, i, "part");
    if (h->handles[i].kind != H_PLAIN)
        return fail_proto(id, "bad-handle", "handle %d is not an opened message", i);
    if (!json_is_integer(ji) || json_integer_value(ji) < 0 || json_integer_value(ji) > 100000)
        return fail_proto(id, "malformed-request", "part needs \"index\"");
    GMimeMessage *m = parse_handle(h, i);
    if (!m)
        return fail_proto(id, "malformed-message", "the decrypted message does not parse");
    walk_ctx w = {.want = (int)json_integer_value(ji)};
    g_mime_message_foreach(m, walk_part, &w);
    if (!w.found) {
        g_object_unref(m);
        return fail_proto(id, "not-found", "the message has no part %d", w.want);
    }
    int out = handle_new(h, H_DATA, &err);
    if (out < 0) {
        g_object_unref(m);
        return fail_rc(id, &err);
    }
    int fd = dup(h->handles[out].fd);
    GMimeStream *fs = fd >= 0 ? g_mime_stream_fs_new(fd) : NULL;
    gint64 n = -1;
    if (fs && GMIME_IS_PART(w.found)) {
        GMimeDataWrapper *dw = g_mime_part_get_content(GMIME_PART(w.found));
        n = dw ? g_mime_data_wrapper_write_to_stream(dw, fs) : 0;
    } else if (fs && GMIME_IS_MESSAGE_PART(w.found)) {
        GMimeMessage *em = g_mime_message_part_get_message(GMIME_MESSAGE_PART(w.found));
        n = em ? g_mime_object_write_to_stream(GMIME_OBJECT(em), NULL, fs) : 0;
    }
    if (fs) {
        g_mime_stream_flush(fs);
        g_object_unref(fs);
    }
    g_object_unref(m);
    if (n < 0 || (uint64_t)n > h->message_max) {
        handle_close(h, out);
        return fail_proto(id, "io", "cannot decode part %d", w.want);
    }
    h->handles[out].size = (uint64_t)n;
    return respond(id, json_pack("{s:i, s:I}", "handle", out, "size", (json_int_t)n), NULL);
}

static char *op_seal(nh_host *h, json_t *id, json_t *req)
{
    rc_error err;
    rc_error_clear(&err);
    json_t *to = json_object_get(req, "to"), *ns = json_object_get(req, "no_sign");
    if (!json_is_string(to) || !strchr(json_string_value(to), '@') ||
        strchr(json_string_value(to), '/') || client_is_key_line(json_string_value(to)))
        return fail_proto(id, "malformed-request", "seal needs \"to\": the list's address");
    if (ns && !json_is_boolean(ns))
        return fail_proto(id, "malformed-request", "\"no_sign\" is true or false");
    const char *proto;
    int tmp, in = input_handle(h, req, &tmp, &err, &proto);
    if (in < 0)
        return proto ? fail_proto(id, proto, "%s", err.msg) : fail_rc(id, &err);
    int out = handle_new(h, H_DATA, &err);
    if (out < 0) {
        handle_close(h, tmp);
        return fail_rc(id, &err);
    }
    rc_statement st;
    rc_cert cert;
    int first = 0, no_sign = ns && json_is_true(ns);
    handle_sink_ctx c = {h, out};
    int rc = client_seal(&h->ks, json_string_value(to), NULL, no_sign, h->handles[in].fd,
                         handle_sink, &c, &st, &first, &err);
    handle_close(h, tmp);
    if (rc) {
        handle_close(h, out);
        return fail_rc(id, &err);
    }
    /* The Message-ID as the sealed message carries it (the inner one, or
     * the one sealing added), for the mail program's sender. */
    rc_mail *sm = NULL;
    if (rc_mail_parse(&sm, h->handles[out].fd, &err) != 0) {
        handle_close(h, out);
        return fail_rc(id, &err);
    }
    char *mid = g_strdup_printf("<%s>", rc_mail_message_id(sm));
    rc_mail_free(sm);
    char fp[RC_UDF_MAX];
    rc_key_fingerprint(fp, sizeof fp, "list-signer", st.signer_pk, 32, NULL);
    int is_signed = !no_sign && keystore_cert_load(&h->ks, st.address, st.epoch, &cert);
    char *resp =
        respond(id,
                json_pack("{s:i, s:I, s:o, s:I, s:b, s:s, s:b, s:o}", "handle", out, "size",
                          (json_int_t)h->handles[out].size, "list", jcstr(st.address), "epoch",
                          (json_int_t)st.epoch, "signed", is_signed, "signer", fp, "first_use",
                          first, "message_id", jcstr(mid)),
                NULL);
    g_free(mid);
    return resp;
}

static char *op_import(nh_host *h, json_t *id, json_t *req)
{
    rc_error err;
    rc_error_clear(&err);
    rc_statement st;
    json_t *key = json_object_get(req, "key");
    int rc, first = 0, bad = 0;
    const char *signer = opt_string(req, "signer", &bad);
    if (bad || (key && !json_is_string(key)))
        return fail_proto(id, "malformed-request", "\"key\" and \"signer\" are strings");
    if (key) {
        char line[RC_KEYSTR_MAX * 2];
        if (json_string_length(key) >= sizeof line)
            return fail_proto(id, "malformed-message", "the key line is too long for a list key");
        snprintf(line, sizeof line, "%s", json_string_value(key));
        char *k = line + strspn(line, " \t\r\n");
        k[strcspn(k, " \t\r\n")] = '\0';
        rc = rc_statement_decode(&st, k, &err);
    } else {
        const char *proto;
        int tmp, in = input_handle(h, req, &tmp, &err, &proto);
        if (in < 0)
            return proto ? fail_proto(id, proto, "%s", err.msg) : fail_rc(id, &err);
        rc_mail *m = NULL;
        rc = rc_mail_parse(&m, h->handles[in].fd, &err);
        if (rc == 0)
            rc = rc_mail_list_key(m) ? rc_statement_decode(&st, rc_mail_list_key(m), &err)
                                     : rc_error_set(&err, RC_E_FORMAT,
                                                    "the message carries no %s header",
                                                    RC_HDR_LIST_KEY);
        rc_mail_free(m);
        handle_close(h, tmp);
    }
    if (rc)
        return fail_rc(id, &err);
    if ((rc = keystore_trust(&h->ks, &st, signer, (uint64_t)time(NULL), 1, &first, &err))) {
        if (!signer && keystore_pin_state(&h->ks, st.address, NULL, NULL) == KS_PIN_NONE) {
            char fp[RC_UDF_MAX];
            rc_key_fingerprint(fp, sizeof fp, "list-signer", st.signer_pk, 32, NULL);
            return fail_unpinned(id, &err, st.address, fp);
        }
        return fail_rc(id, &err);
    }
    if ((rc = keystore_prepare(&h->ks, &err)) || (rc = keystore_remember(&h->ks, &st, &err)))
        return fail_rc(id, &err);
    char fp[RC_UDF_MAX];
    rc_key_fingerprint(fp, sizeof fp, "list-signer", st.signer_pk, 32, NULL);
    return respond(id,
                   json_pack("{s:o, s:I, s:s, s:b}", "list", jcstr(st.address), "epoch",
                             (json_int_t)st.epoch, "signer", fp, "first_use", first),
                   NULL);
}

/* pin: the explicit first pin (issue 13), after the user compared the
 * fingerprint with the list owner's: {"list", "signer", "replace"?}. */
static char *op_pin(nh_host *h, json_t *id, json_t *req)
{
    rc_error err;
    rc_error_clear(&err);
    int bad = 0, changed = 0;
    const char *list = opt_string(req, "list", &bad), *signer = opt_string(req, "signer", &bad);
    json_t *replace = json_object_get(req, "replace");
    char addr[RC_ADDR_MAX + 1], fp[RC_UDF_MAX];
    if (bad || !list || !signer || (replace && !json_is_boolean(replace)))
        return fail_proto(id, "malformed-request",
                          "pin needs \"list\" and \"signer\" (strings), \"replace\" is a boolean");
    if (rc_address_canonical(addr, list, NULL) != 0)
        return fail_proto(id, "invalid", "\"%.64s\" is not a list address", list);
    if (keystore_fp_canonical(fp, signer, &err) ||
        keystore_pin_fingerprint(&h->ks, addr, fp, replace && json_is_true(replace), &changed,
                                 &err))
        return fail_rc(id, &err);
    return respond(id, json_pack("{s:o, s:s, s:b}", "list", jcstr(addr), "signer", fp, "changed",
                                 changed),
                   NULL);
}

/* ---- compose --------------------------------------------------------------- */

/* Why a compose request failed: a protocol error code and a sentence. */
typedef struct {
    const char *code;
    char msg[400];
} nh_why;

static int why(nh_why *w, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int why(nh_why *w, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->msg, sizeof w->msg, fmt, ap);
    va_end(ap);
    w->code = code;
    return -1;
}

/* A member that may be absent: NULL when absent or null. */
static json_t *member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* Text for a header field: a string of at most max octets with no CR or
 * LF, which would let the add-on's text start a header field of its own. */
static int header_text(json_t *v, const char *field, size_t max, const char **out, nh_why *w)
{
    if (!json_is_string(v))
        return why(w, "malformed-request", "\"%s\" is a string", field);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > max)
        return why(w, "malformed-request", "\"%s\" is longer than %zu bytes", field, max);
    if (memchr(s, '\r', n) || memchr(s, '\n', n))
        return why(w, "malformed-request", "\"%s\" holds a line break", field);
    *out = s;
    return 0;
}

/* The one mailbox that v ("a@b" or "Name <a@b>") names: a new reference,
 * or NULL (w says why, naming the field). GMime's parser is lenient, so
 * anything that does not come out as exactly one mailbox with a local
 * part and a domain is refused. */
static InternetAddress *one_mailbox(json_t *v, const char *field, nh_why *w)
{
    const char *s = NULL;
    if (header_text(v, field, NH_FIELD_MAX, &s, w) != 0)
        return NULL;
    InternetAddressList *l = internet_address_list_parse(NULL, s);
    InternetAddress *a =
        l && internet_address_list_length(l) == 1 ? internet_address_list_get_address(l, 0) : NULL;
    const char *addr = a && INTERNET_ADDRESS_IS_MAILBOX(a)
                           ? internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a))
                           : NULL;
    const char *at = addr ? strrchr(addr, '@') : NULL;
    if (!at || at == addr || !at[1]) {
        if (l)
            g_object_unref(l);
        why(w, "malformed-request", "\"%s\" is not one address: \"%.100s\"", field, s);
        return NULL;
    }
    g_object_ref(a);
    g_object_unref(l);
    internet_address_set_charset(a, "utf-8"); /* a name outside ASCII: UTF-8, not Latin-1 */
    return a;
}

/* "to" or "cc": a list of addresses, added to the message's field. */
static int add_recipients(GMimeMessage *m, json_t *req, const char *key, GMimeAddressType type,
                          size_t *count, nh_why *w)
{
    json_t *list = member(req, key), *v;
    size_t i;
    if (!list)
        return 0;
    if (!json_is_array(list))
        return why(w, "malformed-request", "\"%s\" is a list of addresses", key);
    json_array_foreach(list, i, v) {
        char field[32];
        snprintf(field, sizeof field, "%s[%zu]", key, i);
        if (++*count > NH_RECIPIENTS_MAX)
            return why(w, "malformed-request", "a post has at most %d recipients",
                       NH_RECIPIENTS_MAX);
        InternetAddress *a = one_mailbox(v, field, w);
        if (!a)
            return -1;
        internet_address_list_add(g_mime_message_get_addresses(m, type), a);
        g_object_unref(a);
    }
    return 0;
}

/* One msg-id of s[0..n), with or without its angle brackets, appended to
 * out as "<id>". An id is printable ASCII without space or brackets, with
 * an '@' inside (RFC 5322 section 3.6.4, leniently). */
static int append_msgid(GString *out, const char *s, size_t n)
{
    if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
        s++, n -= 2;
    const char *at = memchr(s, '@', n);
    if (!at || at == s || at == s + n - 1)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '<' || s[i] == '>')
            return -1;
    g_string_append_printf(out, "%s<%.*s>", out->len ? " " : "", (int)n, s);
    return 0;
}

/* "in_reply_to" (one msg-id) or "references" (several, separated by white
 * space) as a header value of "<id>"s; *out NULL when absent, null or
 * empty. */
static int msgids(json_t *req, const char *key, size_t max, int many, GString **out, nh_why *w)
{
    json_t *v = member(req, key);
    const char *s = NULL;
    *out = NULL;
    if (!v)
        return 0;
    if (header_text(v, key, max, &s, w) != 0)
        return -1;
    GString *g = g_string_new(NULL);
    size_t k = 0;
    for (const char *p = s;;) {
        p += strspn(p, " \t");
        if (!*p)
            break;
        /* "<a@b><c@d>" happens too: an id in brackets ends at its '>' */
        size_t n =
            *p == '<' && strchr(p, '>') ? (size_t)(strchr(p, '>') - p) + 1 : strcspn(p, " \t");
        if ((++k > 1 && !many) || n > NH_FIELD_MAX || append_msgid(g, p, n) != 0) {
            g_string_free(g, TRUE);
            return why(w, "malformed-request", "\"%s\" is not %s: \"%.100s\"", key,
                       many ? "a list of message ids" : "a message id", s);
        }
        p += n;
    }
    if (g->len)
        *out = g;
    else
        g_string_free(g, TRUE);
    return 0;
}

/* A copy of s[0..n) that the host wipes when done (the draft's text);
 * line breaks become LF, or CRLF when crlf. *maxline: the longest line. */
static GByteArray *draft_bytes(GPtrArray *wipe, const char *s, size_t n, int crlf, size_t *maxline)
{
    GByteArray *b = g_byte_array_sized_new((guint)(n + n / 8 + 16));
    *maxline = 0;
    for (size_t i = 0; i < n;) {
        size_t line = strcspn(s + i, "\r\n"); /* s is a JSON string: NUL-terminated */
        if (i + line > n)
            line = n - i;
        g_byte_array_append(b, (const guint8 *)s + i, (guint)line);
        if (line > *maxline)
            *maxline = line;
        i += line;
        if (i < n) {
            i += s[i] == '\r' && i + 1 < n && s[i + 1] == '\n' ? 2 : 1;
            g_byte_array_append(b, (const guint8 *)"\r\n" + !crlf, crlf ? 2 : 1);
        }
    }
    g_ptr_array_add(wipe, b);
    return b;
}

static void set_content(GMimePart *part, GMimeStream *s)
{
    GMimeDataWrapper *dw = g_mime_data_wrapper_new_with_stream(s, GMIME_CONTENT_ENCODING_DEFAULT);
    g_mime_part_set_content(part, dw);
    g_object_unref(dw);
    g_object_unref(s);
}

static GMimeStream *draft_stream(GByteArray *b)
{
    GMimeStream *s = g_mime_stream_mem_new_with_byte_array(b);
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(s), FALSE); /* wiped and freed by us */
    return s;
}

/* A text/SUBTYPE; charset=utf-8 part, in the encoding GMime finds 7-bit
 * safe for it. GMime writes LF as CRLF, except inside base64, so base64
 * text is given in its canonical CRLF form (RFC 2045 section 6.8). */
static GMimeObject *text_part(const char *subtype, json_t *v, GPtrArray *wipe)
{
    size_t maxline;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    GMimeTextPart *tp = g_mime_text_part_new_with_subtype(subtype);
    GMimePart *part = GMIME_PART(tp);
    g_mime_text_part_set_charset(tp, "utf-8");
    set_content(part, draft_stream(draft_bytes(wipe, s, n, 0, &maxline)));
    g_mime_object_encode(GMIME_OBJECT(part), GMIME_ENCODING_CONSTRAINT_7BIT);
    GMimeContentEncoding enc = g_mime_part_get_content_encoding(part);
    if (enc == GMIME_CONTENT_ENCODING_BASE64)
        set_content(part, draft_stream(draft_bytes(wipe, s, n, 1, &maxline)));
    else if (enc != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE && maxline > NH_FIELD_MAX)
        /* GMime does not measure a last line without a line break */
        g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
    return GMIME_OBJECT(part);
}

/* "type" of an attachment: "type/subtype" (RFC 6838 names), lower-cased
 * into out; anything else is application/octet-stream. */
static void media_type(const char *t, char *out, size_t outlen)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                             "!#$&-^_.+";
    size_t a = t ? strspn(t, ok) : 0, b = a && t[a] == '/' ? strspn(t + a + 1, ok) : 0;
    if (!a || a > 127 || !b || b > 127 || t[a + 1 + b]) {
        snprintf(out, outlen, "application/octet-stream");
        return;
    }
    snprintf(out, outlen, "%s", t);
    for (char *p = out; *p; p++)
        *p = (char)g_ascii_tolower(*p);
}

/* attachments[k]: a part with the bytes of an upload or data handle,
 * base64, read from the handle's file when the message is written. */
static GMimeObject *attachment_part(nh_host *h, json_t *a, size_t k, uint64_t *total, nh_why *w)
{
    char field[40], type[256];
    const char *name = NULL;
    snprintf(field, sizeof field, "attachments[%zu].name", k);
    if (!json_is_object(a)) {
        why(w, "malformed-request", "attachments[%zu] is an object", k);
        return NULL;
    }
    int i = req_handle(h, a, "handle");
    if (i == -2 || (i >= 0 && h->handles[i].kind != H_UPLOAD && h->handles[i].kind != H_DATA)) {
        why(w, "bad-handle", "attachments[%zu]: %s", k,
            i == -2 ? "no such handle" : "the handle is not an upload or data");
        return NULL;
    }
    if (i < 0) {
        why(w, "malformed-request", "attachments[%zu] needs \"handle\", an integer", k);
        return NULL;
    }
    json_t *jt = member(a, "type");
    if (header_text(member(a, "name"), field, NH_FIELD_MAX, &name, w) != 0)
        return NULL;
    if (!*name) {
        why(w, "malformed-request", "\"%s\" is empty", field);
        return NULL;
    }
    if (jt && !json_is_string(jt)) {
        why(w, "malformed-request", "attachments[%zu].type is a string", k);
        return NULL;
    }
    *total += h->handles[i].size;
    if (*total > h->message_max) {
        why(w, "too-large", "the attachments exceed the limit of %llu bytes",
            (unsigned long long)h->message_max);
        return NULL;
    }
    int fd = dup(h->handles[i].fd);
    if (fd < 0) {
        why(w, "io", "cannot read handle %d", i);
        return NULL;
    }
    media_type(jt ? json_string_value(jt) : NULL, type, sizeof type);
    *strchr(type, '/') = '\0';
    GMimePart *part = g_mime_part_new_with_type(type, type + strlen(type) + 1);
    GMimeObject *o = GMIME_OBJECT(part);
    g_mime_object_set_disposition(o, GMIME_DISPOSITION_ATTACHMENT);
    g_mime_part_set_filename(part, name);
    /* RFC 2231 in UTF-8 for any name, not the Latin-1 GMime would pick */
    GMimeParam *p = g_mime_param_list_get_parameter(
        g_mime_content_disposition_get_parameters(g_mime_object_get_content_disposition(o)),
        "filename");
    if (p)
        g_mime_param_set_charset(p, "utf-8");
    if ((p = g_mime_param_list_get_parameter(
             g_mime_content_type_get_parameters(g_mime_object_get_content_type(o)), "name")))
        g_mime_param_set_charset(p, "utf-8");
    /* its own descriptor, bounded: the handle may still grow (upload) */
    set_content(part, g_mime_stream_fs_new_with_bounds(fd, 0, (gint64)h->handles[i].size));
    g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_BASE64);
    return o;
}

/* The message's parts: the text, text and html as multipart/alternative,
 * then the attachments (multipart/mixed). */
static GMimeObject *compose_body(nh_host *h, json_t *req, GPtrArray *wipe, nh_why *w)
{
    json_t *text = json_object_get(req, "text"), *html = member(req, "html");
    json_t *atts = member(req, "attachments"), *a;
    if (!json_is_string(text))
        return why(w, "malformed-request", "compose needs \"text\", a string"), NULL;
    if (html && !json_is_string(html))
        return why(w, "malformed-request", "\"html\" is a string"), NULL;
    if (json_string_length(text) > NH_TEXT_MAX || (html && json_string_length(html) > NH_TEXT_MAX))
        return why(w, "too-large", "\"text\" and \"html\" hold at most %u bytes each", NH_TEXT_MAX),
               NULL;
    if (atts && !json_is_array(atts))
        return why(w, "malformed-request", "\"attachments\" is a list"), NULL;
    if (json_array_size(atts) > NH_ATTACHMENTS_MAX)
        return why(w, "malformed-request", "a post has at most %d attachments", NH_ATTACHMENTS_MAX),
               NULL;
    GMimeObject *body = text_part("plain", text, wipe);
    if (html) {
        GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
        g_mime_multipart_add(alt, body);
        g_object_unref(body);
        body = text_part("html", html, wipe);
        g_mime_multipart_add(alt, body);
        g_object_unref(body);
        body = GMIME_OBJECT(alt);
    }
    if (!json_array_size(atts))
        return body;
    GMimeMultipart *mixed = g_mime_multipart_new_with_subtype("mixed");
    g_mime_multipart_add(mixed, body);
    g_object_unref(body);
    size_t k;
    uint64_t total = 0;
    json_array_foreach(atts, k, a) {
        GMimeObject *part = attachment_part(h, a, k, &total, w);
        if (!part) {
            g_object_unref(mixed);
            return NULL;
        }
        g_mime_multipart_add(mixed, part);
        g_object_unref(part);
    }
    return GMIME_OBJECT(mixed);
}

/* The message's header fields and body; mid: its Message-ID, "<...>". */
static int compose_message(nh_host *h, json_t *req, GMimeMessage *m, GPtrArray *wipe, char *mid,
                           size_t midlen, nh_why *w)
{
    GMimeObject *o = GMIME_OBJECT(m);
    const char *subject = "";
    size_t n_rcpt = 0;
    if (json_object_get(req, "bcc"))
        return why(w, "malformed-request", "a list post has no Bcc");
    if (!json_object_get(req, "from"))
        return why(w, "malformed-request", "compose needs \"from\"");
    InternetAddress *from = one_mailbox(json_object_get(req, "from"), "from", w);
    if (!from)
        return -1;
    /* the Message-ID's domain: the sender's, in ASCII (IDNA) */
    const char *idn = internet_address_mailbox_get_idn_addr(INTERNET_ADDRESS_MAILBOX(from));
    char dom[256];
    snprintf(dom, sizeof dom, "%s", idn && strrchr(idn, '@') ? strrchr(idn, '@') + 1 : "");
    for (char *p = dom; *p; p++)
        *p = (char)g_ascii_tolower(*p);
    if (!*dom || dom[strspn(dom, "abcdefghijklmnopqrstuvwxyz0123456789.-")])
        snprintf(dom, sizeof dom, "recrypt.invalid");
    internet_address_list_add(g_mime_message_get_from(m), from);
    g_object_unref(from);
    if (add_recipients(m, req, "to", GMIME_ADDRESS_TYPE_TO, &n_rcpt, w) != 0 ||
        add_recipients(m, req, "cc", GMIME_ADDRESS_TYPE_CC, &n_rcpt, w) != 0)
        return -1;
    if (n_rcpt == 0)
        return why(w, "malformed-request", "compose needs a recipient in \"to\" or \"cc\"");
    if (member(req, "subject") &&
        header_text(member(req, "subject"), "subject", NH_FIELD_MAX, &subject, w) != 0)
        return -1;
    GString *irt, *refs;
    if (msgids(req, "in_reply_to", NH_FIELD_MAX, 0, &irt, w) != 0)
        return -1;
    if (msgids(req, "references", NH_REFERENCES_MAX, 1, &refs, w) != 0) {
        if (irt)
            g_string_free(irt, TRUE);
        return -1;
    }
    g_mime_message_set_subject(m, subject, "utf-8");
    GDateTime *now = g_date_time_new_now_utc(); /* as recrypt seal dates: no time zone told */
    g_mime_message_set_date(m, now);
    g_date_time_unref(now);
    uint8_t rnd[16];
    char hex[33];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
    snprintf(mid, midlen, "<%s@%s>", hex, dom);
    g_mime_object_set_header(o, "Message-ID", mid, NULL);
    if (irt) {
        g_mime_object_set_header(o, "In-Reply-To", irt->str, NULL);
        g_string_free(irt, TRUE);
    }
    if (refs) {
        g_mime_object_set_header(o, "References", refs->str, NULL);
        g_string_free(refs, TRUE);
    }
    g_mime_object_set_header(o, "MIME-Version", "1.0", NULL);
    GMimeObject *body = compose_body(h, req, wipe, w);
    if (!body)
        return -1;
    g_mime_message_set_mime_part(m, body);
    g_object_unref(body);
    return 0;
}

/* Write m, lines ending in CRLF, into a new upload handle: its number, or
 * -1 (w says why). */
static int compose_write(nh_host *h, GMimeMessage *m, nh_why *w)
{
    rc_error err;
    rc_error_clear(&err);
    int out = handle_new(h, H_UPLOAD, &err);
    if (out < 0)
        return why(w, code_name(err.code), "%s", err.msg);
    /* Bounded one byte past the limit: a longer message stops there. The
     * stream writes straight to the file (its flush is an fsync, which an
     * unlinked file does not need). */
    int fd = dup(h->handles[out].fd);
    GMimeStream *fs =
        fd >= 0 ? g_mime_stream_fs_new_with_bounds(fd, 0, (gint64)h->message_max + 1) : NULL;
    GMimeFormatOptions *fo = g_mime_format_options_new();
    g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
    gint64 n = fs ? g_mime_object_write_to_stream(GMIME_OBJECT(m), fo, fs) : -1;
    g_mime_format_options_free(fo);
    if (fs)
        g_object_unref(fs);
    off_t size = lseek(h->handles[out].fd, 0, SEEK_END);
    if (size >= 0 && (uint64_t)size > h->message_max) {
        handle_close(h, out);
        return why(w, "too-large", "the message exceeds the limit of %llu bytes",
                   (unsigned long long)h->message_max);
    }
    if (n < 0 || size < 0) {
        handle_close(h, out);
        return why(w, "io", "cannot write the message");
    }
    h->handles[out].size = (uint64_t)size;
    return out;
}

static char *op_compose(nh_host *h, json_t *id, json_t *req)
{
    nh_why w = {0};
    char mid[300];
    GPtrArray *wipe = g_ptr_array_new();
    GMimeMessage *m = g_mime_message_new(FALSE);
    int out =
        compose_message(h, req, m, wipe, mid, sizeof mid, &w) == 0 ? compose_write(h, m, &w) : -1;
    g_object_unref(m);
    for (guint k = 0; k < wipe->len; k++) { /* the draft's text */
        GByteArray *b = g_ptr_array_index(wipe, k);
        sodium_memzero(b->data, b->len);
        g_byte_array_unref(b);
    }
    g_ptr_array_free(wipe, TRUE);
    if (out < 0)
        return fail_proto(id, w.code ? w.code : "internal", "%s", w.msg);
    return respond(id,
                   json_pack("{s:i, s:I, s:s}", "handle", out, "size",
                             (json_int_t)h->handles[out].size, "message_id", mid),
                   NULL);
}

/* ---- dispatch and framing ------------------------------------------------- */

char *nh_handle(nh_host *h, const char *reqtext, size_t len)
{
    json_error_t jerr;
    json_t *req = json_loadb(reqtext, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req)
        return fail_proto(NULL, "malformed-request", "not JSON: %s (at byte %d)", jerr.text,
                          jerr.position);
    json_t *id = json_object_get(req, "id");
    if (!json_is_object(req)) {
        json_decref(req);
        return fail_proto(NULL, "malformed-request", "a request is a JSON object");
    }
    if (id && !json_is_integer(id) && !json_is_string(id))
        id = NULL;
    json_t *opj = json_object_get(req, "op");
    const char *op = json_is_string(opj) ? json_string_value(opj) : NULL;
    char *out;
    if (!op)
        out = fail_proto(id, "malformed-request", "a request needs \"op\"");
    else if (!strcmp(op, "hello"))
        out = op_hello(h, id);
    else if (!strcmp(op, "lists"))
        out = op_lists(h, id);
    else if (!strcmp(op, "upload"))
        out = op_upload(h, id, req);
    else if (!strcmp(op, "read"))
        out = op_read(h, id, req);
    else if (!strcmp(op, "close"))
        out = op_close(h, id, req);
    else if (!strcmp(op, "open"))
        out = op_open(h, id, req);
    else if (!strcmp(op, "part"))
        out = op_part(h, id, req);
    else if (!strcmp(op, "seal"))
        out = op_seal(h, id, req);
    else if (!strcmp(op, "import"))
        out = op_import(h, id, req);
    else if (!strcmp(op, "pin"))
        out = op_pin(h, id, req);
    else if (!strcmp(op, "compose"))
        out = op_compose(h, id, req);
    else
        out = fail_proto(id, "unknown-op", "unknown op \"%.64s\"", op);
    json_decref(req);
    return out;
}

static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return got == 0 && r == 0 ? 0 : -1; /* 0: clean end before anything */
        got += (size_t)r;
    }
    return 1;
}

static int write_frame(int fd, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    return rc_fd_sink(&fd, (const uint8_t *)&n, 4) == 0 &&
                   rc_fd_sink(&fd, (const uint8_t *)s, n) == 0
               ? 0
               : -1;
}

int nh_serve(nh_host *h, int in_fd, int out_fd)
{
    char *buf = malloc(NH_FRAME_MAX);
    if (!buf)
        return 1;
    for (;;) {
        uint32_t n;
        int r = read_full(in_fd, &n, 4);
        if (r == 0) {
            free(buf);
            return 0;
        }
        if (r < 0)
            break;
        char *resp;
        if (n > NH_FRAME_MAX) { /* skip it, say why */
            uint32_t left = n;
            while (left) {
                uint32_t k = left > NH_FRAME_MAX ? NH_FRAME_MAX : left;
                if (read_full(in_fd, buf, k) != 1) {
                    free(buf);
                    return 1;
                }
                left -= k;
            }
            resp = fail_proto(NULL, "too-large",
                              "a request is at most %u bytes; send large messages in chunks "
                              "(op upload)",
                              NH_FRAME_MAX);
        } else {
            if (n && read_full(in_fd, buf, n) != 1)
                break;
            resp = nh_handle(h, buf, n);
            sodium_memzero(buf, n); /* may have held a plaintext draft */
        }
        int bad = !resp || write_frame(out_fd, resp) != 0;
        if (resp)
            sodium_memzero(resp, strlen(resp));
        free(resp);
        if (bad)
            break;
    }
    free(buf);
    return 1;
}

int nh_host_new(nh_host **out, const char *home, uint64_t message_max)
{
    rc_error err;
    nh_host *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    if (keystore_open(&h->ks, home, &err) != 0) {
        free(h);
        return -1;
    }
    h->message_max = message_max ? message_max : NH_MESSAGE_MAX_DEFAULT;
    /* Thunderbird owns the terminal, if any: a locked device key needs
     * $RECRYPT_PASSPHRASE_FILE, else ops answer "refused" saying so. */
    keystore_set_no_terminal(1);
    *out = h;
    return 0;
}

void nh_host_free(nh_host *h)
{
    if (!h)
        return;
    for (int i = 0; i < NH_HANDLES; i++)
        handle_close(h, i);
    free(h);
}
