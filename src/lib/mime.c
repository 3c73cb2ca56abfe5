/*
 * mime.c - recrypt mail as MIME (FORMAT.md "Outer message"): sealing an
 * RFC 5322 message, parsing the outer multipart/encrypted form strictly
 * (with GMime, from a seekable file so that memory stays flat), the
 * service's rewrite that adds stanzas to the control part, and opening.
 *
 * Every line this module writes ends with the line ending of the message it
 * read, so a CRLF message (as an MTA hands it over) stays CRLF.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>
#include <ctype.h>
#include <gmime/gmime.h>
#include "internal.h"
#include "header.h"

#define IO_BLOCK 65536
#define B64_LINE_BYTES 57 /* 76 characters per line */
#define CONTROL_MAX ((size_t)RC_MAX_STANZAS * 1200 + 4096)
#define CT_CONTROL RC_MIME_PROTOCOL
#define BOUNDARY_PREFIX "=_recrypt_"

struct rc_mail {
    rc_header hdr;
    GMimeMessage *msg;
    GMimeStream *ct_raw;    /* the data part's base64 content (a substream of the file) */
    GMimeStream *ct_decode; /* ct_raw through a base64 decoder */
    rc_envelope env;
    rc_stanza *stanzas;
    size_t n_stanzas;
    uint64_t date;
    char *message_id;
    char *list_key;
    char copy_id[RC_COPY_ID_LEN + 1]; /* "" when none or malformed */
    char *boundary;
    char *list_key_current;               /* Recrypt-List-Key-Current, or NULL */
    int svc_sig_state;                    /* 0 none, 1 well formed, -1 malformed */
    uint8_t svc_sig[RC_SIG_BYTES];        /* Recrypt-Service-Signature */
};

/* ---- small output helpers ---- */

/* Output goes through a buffer so that the sink sees large writes, not
 * one call per base64 line. */
#define OUT_BUF 16384
typedef struct {
    rc_sink_fn sink;
    void *ctx;
    const char *eol;
    int failed;
    size_t len;
    uint8_t buf[OUT_BUF];
} out_t;

static void out_init(out_t *o, rc_sink_fn sink, void *ctx, const char *eol)
{
    o->sink = sink;
    o->ctx = ctx;
    o->eol = eol;
    o->failed = 0;
    o->len = 0;
}

static int out_flush(out_t *o)
{
    if (!o->failed && o->len && o->sink(o->ctx, o->buf, o->len) != 0)
        o->failed = 1;
    o->len = 0;
    return o->failed ? -1 : 0;
}

static void out_bytes(out_t *o, const void *p, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n > OUT_BUF && out_flush(o) != 0)
        return;
    if (n >= OUT_BUF) {
        if (o->sink(o->ctx, p, n) != 0)
            o->failed = 1;
        return;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void out_str(out_t *o, const char *s)
{
    out_bytes(o, s, strlen(s));
}

static void out_line(out_t *o, const char *s)
{
    out_str(o, s);
    out_str(o, o->eol);
}

/* base64 in lines of 76 characters, streaming */
typedef struct {
    out_t *o;
    uint8_t in[B64_LINE_BYTES];
    size_t n;
} b64w_t;

static void b64w_flush(b64w_t *b)
{
    char line[80];
    if (b->n == 0)
        return;
    sodium_bin2base64(line, sizeof line, b->in, b->n, sodium_base64_VARIANT_ORIGINAL);
    out_line(b->o, line);
    b->n = 0;
}

static int b64w_sink(void *ctx, const uint8_t *p, size_t len)
{
    b64w_t *b = ctx;
    while (len) {
        size_t k = B64_LINE_BYTES - b->n;
        if (k > len)
            k = len;
        memcpy(b->in + b->n, p, k);
        b->n += k;
        p += k;
        len -= k;
        if (b->n == B64_LINE_BYTES)
            b64w_flush(b);
    }
    return b->o->failed ? -1 : 0;
}

/* "Name: value" with value base64url, folded at 76 columns. */
static void out_folded_b64(out_t *o, const char *name, const uint8_t *bin, size_t len)
{
    char *enc = malloc(sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING));
    if (!enc) {
        o->failed = 1;
        return;
    }
    rc_b64url_encode(enc, sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                     bin, len);
    size_t total = strlen(enc), pos = 0, room = 76 - strlen(name) - 2;
    out_str(o, name);
    out_str(o, ": ");
    while (pos < total) {
        size_t k = total - pos < room ? total - pos : room;
        out_bytes(o, enc + pos, k);
        out_str(o, o->eol);
        pos += k;
        if (pos < total)
            out_str(o, " ");
        room = 75;
    }
    if (total == 0)
        out_str(o, o->eol);
    free(enc);
}

static void out_control(out_t *o, const rc_envelope *env)
{
    char line[128];
    uint8_t proof[64];
    snprintf(line, sizeof line, "Version: %u", env->version);
    out_line(o, line);
    snprintf(line, sizeof line, "Suite: %u", env->suite);
    out_line(o, line);
    out_folded_b64(o, "List-Id", env->list_id, 32);
    snprintf(line, sizeof line, "Epoch: %llu", (unsigned long long)env->epoch);
    out_line(o, line);
    out_folded_b64(o, "Ephemeral-Key", env->E, 32);
    out_folded_b64(o, "Key-Commitment", env->KC, 32);
    memcpy(proof, env->U, 32);
    memcpy(proof + 32, env->z, 32);
    out_folded_b64(o, "Proof", proof, 64);
}

/* The text before the first boundary, for mail programs without recrypt. */
static void out_preamble(out_t *o)
{
    out_line(o, "This is an end-to-end encrypted message (recrypt). Your mail program needs");
    out_line(o, "the recrypt client to open it.");
    out_str(o, o->eol);
}

static void out_part_headers_control(out_t *o)
{
    out_line(o, "Content-Type: " CT_CONTROL);
    out_line(o, "Content-Transfer-Encoding: 7bit");
    out_line(o, "Content-Description: recrypt control data");
    out_str(o, o->eol);
}

static void out_part_headers_data(out_t *o)
{
    out_line(o, "Content-Type: application/octet-stream; name=\"message.rcx\"");
    out_line(o, "Content-Transfer-Encoding: base64");
    out_line(o, "Content-Disposition: inline; filename=\"message.rcx\"");
    out_str(o, o->eol);
}

/* ---- header helpers ---- */

/* Date: exactly one, in the grammar of FORMAT.md §9.3 (rc_date_parse). */
static int header_date(const rc_header *h, uint64_t *date, int *present, const char *what,
                       rc_error *err)
{
    size_t n;
    const rc_hfield *f = rc_header_get(h, "Date", &n);
    *present = n > 0;
    if (n == 0)
        return 0;
    if (n > 1)
        return rc_error_set(err, RC_E_FORMAT, "%s has %zu Date fields", what, n);
    char *v = rc_hfield_value(f);
    if (!v)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    rc_error why;
    int rc = rc_date_parse(v, date, &why);
    free(v);
    if (rc)
        return rc_error_set(err, RC_E_FORMAT, "%s has a Date that cannot be parsed: %s", what,
                            why.msg);
    return 0;
}

static int header_message_id(const rc_header *h, char **id, const char *what, rc_error *err)
{
    size_t n;
    const rc_hfield *f = rc_header_get(h, "Message-ID", &n);
    *id = NULL;
    if (n == 0)
        return 0;
    if (n > 1)
        return rc_error_set(err, RC_E_FORMAT, "%s has %zu Message-ID fields", what, n);
    char *v = rc_hfield_value(f);
    if (!v)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    rc_error why;
    int rc = rc_msgid_parse(v, id, &why);
    free(v);
    if (rc == RC_E_NOMEM)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    if (rc)
        return rc_error_set(err, RC_E_FORMAT, "%s has a malformed Message-ID: %s", what,
                            why.msg);
    return 0;
}

/* Lowercased address of the single mailbox in a From field, or NULL. */
static char *from_address(const rc_header *h)
{
    size_t n;
    const rc_hfield *f = rc_header_get(h, "From", &n);
    if (n != 1)
        return NULL;
    char *v = rc_hfield_value(f), *res = NULL;
    InternetAddressList *l = v ? internet_address_list_parse(NULL, v) : NULL;
    free(v);
    if (l && internet_address_list_length(l) == 1) {
        InternetAddress *a = internet_address_list_get_address(l, 0);
        if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
            const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
            if (addr && (res = strdup(addr)))
                for (char *p = res; *p; p++)
                    *p = (char)tolower((unsigned char)*p);
        }
    }
    if (l)
        g_object_unref(l);
    return res;
}

static int add_address(char ***out, size_t *n, size_t *cap, const char *addr)
{
    char *low = strdup(addr);
    if (!low)
        return -1;
    for (char *p = low; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*out)[i], low) == 0) {
            free(low);
            return 0;
        }
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 8;
        char **na = realloc(*out, nc * sizeof *na);
        if (!na) {
            free(low);
            return -1;
        }
        *out = na;
        *cap = nc;
    }
    (*out)[(*n)++] = low;
    return 0;
}

static int add_list(char ***out, size_t *n, size_t *cap, InternetAddressList *l)
{
    for (int i = 0; l && i < internet_address_list_length(l); i++) {
        InternetAddress *a = internet_address_list_get_address(l, i);
        if (INTERNET_ADDRESS_IS_GROUP(a)) {
            if (add_list(out, n, cap,
                         internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a))) != 0)
                return -1;
        } else if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
            const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
            if (addr && *addr && add_address(out, n, cap, addr) != 0)
                return -1;
        }
    }
    return 0;
}

void rc_mail_addresses_free(char **a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(a[i]);
    free(a);
}

int rc_address_list_parse(const char *text, char ***out, size_t *n, rc_error *err)
{
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    InternetAddressList *l = internet_address_list_parse(NULL, text);
    int rc = add_list(out, n, &cap, l) != 0 ? rc_error_set(err, RC_E_NOMEM, "out of memory") : 0;
    if (l)
        g_object_unref(l);
    if (rc) {
        rc_mail_addresses_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static const char *const recipient_fields[] = {"To",        "Cc",        "Bcc",
                                               "Resent-To", "Resent-Cc", "Resent-Bcc",
                                               "Apparently-To"};

int rc_mail_header_recipient_text(int in_fd, char **out, rc_error *err)
{
    rc_header h;
    int rc;
    size_t len = 0;
    *out = NULL;
    if (lseek(in_fd, 0, SEEK_SET) != 0)
        return rc_error_set(err, RC_E_IO, "cannot read the message");
    if ((rc = rc_header_read(&h, in_fd, err)))
        return rc;
    char *text = calloc(1, 1);
    for (size_t i = 0; text && i < h.n; i++)
        for (size_t k = 0; text && k < sizeof recipient_fields / sizeof *recipient_fields; k++) {
            if (!rc_hfield_is(&h.f[i], recipient_fields[k]))
                continue;
            char *v = rc_hfield_value(&h.f[i]);
            char *nt = v ? realloc(text, len + strlen(v) + 2) : NULL;
            if (!nt) {
                free(v);
                free(text);
                text = NULL;
                break;
            }
            text = nt;
            memcpy(text + len, v, strlen(v));
            len += strlen(v);
            text[len++] = '\n';
            text[len] = '\0';
            free(v);
        }
    rc_header_free(&h);
    lseek(in_fd, 0, SEEK_SET);
    if (!text)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    *out = text;
    return 0;
}

int rc_mail_header_recipients(int in_fd, char ***out, size_t *n, rc_error *err)
{
    rc_header h;
    size_t cap = 0;
    int rc;
    *out = NULL;
    *n = 0;
    if (lseek(in_fd, 0, SEEK_SET) != 0)
        return rc_error_set(err, RC_E_IO, "cannot read the message");
    if ((rc = rc_header_read(&h, in_fd, err)))
        return rc;
    /* Every field a sendmail -t takes recipients from (Resent-* instead,
     * when present, for some; Apparently-To for Sendmail 8): all of them,
     * so that a caller never misses one. */
    const char *const *names = recipient_fields;
    const size_t n_names = sizeof recipient_fields / sizeof recipient_fields[0];
    for (size_t i = 0; i < h.n && rc == 0; i++) {
        for (size_t k = 0; k < n_names && rc == 0; k++) {
            if (!rc_hfield_is(&h.f[i], names[k]))
                continue;
            char *v = rc_hfield_value(&h.f[i]);
            InternetAddressList *l = v ? internet_address_list_parse(NULL, v) : NULL;
            if (!v)
                rc = rc_error_set(err, RC_E_NOMEM, "out of memory");
            else if (!l && strspn(v, " \t") != strlen(v))
                rc = rc_error_set(err, RC_E_FORMAT, "the %s field does not parse as addresses",
                                  names[k]);
            else if (add_list(out, n, &cap, l) != 0)
                rc = rc_error_set(err, RC_E_NOMEM, "out of memory");
            if (l)
                g_object_unref(l);
            free(v);
        }
    }
    rc_header_free(&h);
    lseek(in_fd, 0, SEEK_SET);
    if (rc) {
        rc_mail_addresses_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* Copy fd from `from` to its end: into the sealer (whose output goes to b64)
 * when sealer is set, else straight to o. */
static int copy_fd_range(int fd, off_t from, out_t *o, rc_sealer *sealer, b64w_t *b64,
                         rc_error *err)
{
    uint8_t *buf = malloc(IO_BLOCK);
    if (!buf)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    if (lseek(fd, from, SEEK_SET) != from) {
        free(buf);
        return rc_error_set(err, RC_E_IO, "cannot seek in the message file");
    }
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, IO_BLOCK);
        if (n < 0) {
            rc = rc_error_set(err, RC_E_IO, "cannot read the message: %s", strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if (sealer)
            rc = rc_sealer_update(sealer, buf, (size_t)n, b64w_sink, b64, err);
        else
            out_bytes(o, buf, (size_t)n);
        if (rc)
            break;
        if (o->failed) {
            rc = rc_error_set(err, RC_E_IO, "cannot write the message");
            break;
        }
    }
    free(buf);
    return rc;
}

/* ---- sealing ---- */

static const char *const outer_fields[] = {"From",        "Sender",     "To",
                                           "Cc",          "Reply-To",   "Date",
                                           "Message-ID",  "In-Reply-To", "References"};

static int is_7bit(const rc_hfield *f)
{
    for (size_t i = 0; i < f->len; i++)
        if ((unsigned char)f->text[i] >= 0x80 || f->text[i] == '\0')
            return 0;
    return 1;
}

/* Copied to the outer header: the addressing and threading fields, if
 * 7-bit (readers refuse an outer header with 8-bit bytes or NUL; such a
 * field stays inside only). */
static int is_outer_field(const rc_hfield *f)
{
    for (size_t i = 0; i < sizeof outer_fields / sizeof *outer_fields; i++)
        if (rc_hfield_is(f, outer_fields[i]))
            return is_7bit(f);
    return 0;
}

typedef struct {
    b64w_t *b64;
    rc_sealer *s;
    rc_error *err;
    int rc;
} inner_t;

static void inner_str(inner_t *in, const char *p, size_t n)
{
    if (in->rc == 0)
        in->rc = rc_sealer_update(in->s, (const uint8_t *)p, n, b64w_sink, in->b64, in->err);
}

int rc_mail_seal(int in_fd, const rc_statement *st, const rc_device_secret *signer,
                 const rc_cert *cert, uint64_t now, rc_sink_fn sink, void *ctx, rc_error *err)
{
    return rc_mail_seal_flags(in_fd, st, signer, cert, now, 0, sink, ctx, err);
}

int rc_mail_seal_flags(int in_fd, const rc_statement *st, const rc_device_secret *signer,
                       const rc_cert *cert, uint64_t now, unsigned flags, rc_sink_fn sink,
                       void *ctx, rc_error *err)
{
    rc_header h;
    uint64_t date = now;
    int have_date = 0, rc;
    char *msgid = NULL, added_date[128] = "", added_mid[RC_ADDR_MAX + 96] = "";
    rc_sealer *s = NULL;

    if ((rc = rc_header_read(&h, in_fd, err)))
        return rc;
    if (h.n == 0) {
        rc_header_free(&h);
        return rc_error_set(err, RC_E_FORMAT, "input is not an RFC 5322 message (no header)");
    }
    if ((rc = header_date(&h, &date, &have_date, "the message", err)) ||
        (rc = header_message_id(&h, &msgid, "the message", err)))
        goto done;
    /* Readers refuse a signed post whose From is not the signer (section
     * 9.5 of FORMAT.md): never make one. */
    if (signer && cert && !(flags & RC_SEAL_ANY_FROM)) {
        char *from = from_address(&h);
        int same = from && strcmp(from, cert->address) == 0;
        if (!same)
            rc = rc_error_set(err, RC_E_POLICY,
                              "the message is From %s, but this device signs as %s: every "
                              "reader would refuse it. Send it From %s, or seal it unsigned",
                              from ? from : "no single address", cert->address, cert->address);
        free(from);
        if (rc)
            goto done;
    }
    /* The outer header needs exactly one From, 7-bit (FORMAT.md §9.3). */
    size_t n_from;
    const rc_hfield *from_f = rc_header_get(&h, "From", &n_from);
    if (n_from != 1 || !is_7bit(from_f)) {
        rc = rc_error_set(err, RC_E_FORMAT,
                          n_from == 0   ? "the message has no From field (RFC 5322 requires "
                                          "one, and the sealed message shows it)"
                          : n_from > 1 ? "the message has more than one From field"
                                        : "the From field holds 8-bit bytes or a NUL: the "
                                          "outer header is 7-bit; encode the name (RFC 2047), "
                                          "as mail programs do");
        goto done;
    }
    if (!have_date) {
        GDateTime *dt = g_date_time_new_from_unix_utc((gint64)now);
        char *fmt = dt ? g_mime_utils_header_format_date(dt) : NULL;
        if (dt)
            g_date_time_unref(dt);
        if (!fmt || rc_date_parse(fmt, &date, NULL) != 0) {
            g_free(fmt);
            rc = rc_error_set(err, RC_E_INTERNAL, "cannot format a Date");
            goto done;
        }
        snprintf(added_date, sizeof added_date, "Date: %s%s", fmt, h.eol);
        g_free(fmt);
    }
    if (!msgid) {
        uint8_t rnd[15];
        char hex[31], *from = from_address(&h);
        const char *dom = from && strchr(from, '@') ? strchr(from, '@') + 1 : "recrypt.invalid";
        randombytes_buf(rnd, sizeof rnd);
        sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
        snprintf(added_mid, sizeof added_mid, "Message-ID: <%s@%.200s>%s", hex, dom, h.eol);
        msgid = malloc(strlen(hex) + strlen(dom) + 2);
        if (msgid)
            sprintf(msgid, "%s@%s", hex, dom);
        free(from);
        if (!msgid) {
            rc = rc_error_set(err, RC_E_NOMEM, "out of memory");
            goto done;
        }
    }

    rc_envelope env;
    if ((rc = rc_sealer_new(&s, &env, st, date, msgid, signer, cert, err)))
        goto done;

    out_t o;
    out_init(&o, sink, ctx, h.eol);
    uint8_t rnd[12];
    char boundary[64], hex[25], line[160];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
    snprintf(boundary, sizeof boundary, BOUNDARY_PREFIX "%s", hex);

    /* Outer header: addressing and threading fields, the proven Date and
     * Message-ID, a neutral Subject; everything else stays inside. */
    out_str(&o, added_date);
    out_str(&o, added_mid);
    for (size_t i = 0; i < h.n; i++)
        if (is_outer_field(&h.f[i]))
            out_bytes(&o, h.f[i].text, h.f[i].len);
    out_line(&o, "Subject: " RC_SUBJECT_PLACEHOLDER);
    out_line(&o, "MIME-Version: 1.0");
    out_line(&o, "Content-Type: multipart/encrypted;");
    out_line(&o, " protocol=\"" RC_MIME_PROTOCOL "\";");
    snprintf(line, sizeof line, " boundary=\"%s\"", boundary);
    out_line(&o, line);
    out_str(&o, o.eol);
    out_preamble(&o);
    snprintf(line, sizeof line, "--%s", boundary);
    out_line(&o, line);
    out_part_headers_control(&o);
    out_control(&o, &env);
    out_str(&o, o.eol);
    out_line(&o, line);
    out_part_headers_data(&o);

    /* Inner message: added fields, the original header (less Bcc), body. */
    b64w_t b64 = {&o, {0}, 0};
    inner_t in = {&b64, s, err, 0};
    inner_str(&in, added_date, strlen(added_date));
    inner_str(&in, added_mid, strlen(added_mid));
    for (size_t i = 0; i < h.n; i++)
        if (!rc_hfield_is(&h.f[i], "Bcc"))
            inner_str(&in, h.f[i].text, h.f[i].len);
    inner_str(&in, h.eol, strlen(h.eol));
    if ((rc = in.rc))
        goto done;
    /* The body: from the file, after the header block. */
    if ((rc = copy_fd_range(in_fd, h.body_offset, &o, s, &b64, err)))
        goto done;
    if ((rc = rc_sealer_final(s, b64w_sink, &b64, err)))
        goto done;
    b64w_flush(&b64);
    snprintf(line, sizeof line, "--%s--", boundary);
    out_line(&o, line);
    if (out_flush(&o) != 0)
        rc = rc_error_set(err, RC_E_IO, "cannot write the sealed message");
done:
    rc_sealer_free(s);
    free(msgid);
    rc_header_free(&h);
    return rc;
}

/* ---- parsing ---- */

static int b64url_field(const char *v, uint8_t *out, size_t want, const char *name,
                        rc_error *err)
{
    size_t len = 0;
    if (rc_b64url_decode(out, want, &len, v, strlen(v)) != 0 || len != want)
        return rc_error_set(err, RC_E_FORMAT, "control field %s is malformed", name);
    return 0;
}

/* Remove all white space in place. */
static void squeeze(char *s)
{
    char *d = s;
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            *d++ = *s;
    *d = '\0';
}

static int parse_control(rc_mail *m, char *text, rc_error *err)
{
    enum { F_VERSION, F_SUITE, F_LIST_ID, F_EPOCH, F_E, F_KC, F_PROOF, F_N };
    static const char *names[F_N] = {"Version",       "Suite",          "List-Id", "Epoch",
                                     "Ephemeral-Key", "Key-Commitment", "Proof"};
    char *vals[F_N] = {0};
    size_t cap = 0;
    /* Unfold: a line starting with SP or TAB continues the previous one. */
    char *w = text;
    for (char *r = text; *r; r++) {
        if (*r == '\r')
            continue;
        if (*r == '\n' && (r[1] == ' ' || r[1] == '\t'))
            continue;
        *w++ = *r;
    }
    *w = '\0';
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':');
        if (!colon)
            return rc_error_set(err, RC_E_FORMAT, "control part has a line that is not a field");
        *colon = '\0';
        char *v = colon + 1;
        squeeze(v);
        if (strcmp(line, "Stanza") == 0) {
            if (m->n_stanzas == RC_MAX_STANZAS)
                return rc_error_set(err, RC_E_FORMAT, "message carries too many stanzas");
            if (m->n_stanzas == cap) {
                cap = cap ? cap * 2 : 16;
                rc_stanza *ns = realloc(m->stanzas, cap * sizeof *ns);
                if (!ns)
                    return rc_error_set(err, RC_E_NOMEM, "out of memory");
                m->stanzas = ns;
            }
            uint8_t b[RC_STANZA_MAX];
            size_t len;
            if (rc_b64url_decode(b, sizeof b, &len, v, strlen(v)) != 0)
                return rc_error_set(err, RC_E_FORMAT, "stanza %zu is not base64url",
                                    m->n_stanzas + 1);
            if ((rc = rc_stanza_from_bytes(&m->stanzas[m->n_stanzas], b, len, err)))
                return rc;
            m->n_stanzas++;
            continue;
        }
        int k = -1;
        for (int i = 0; i < F_N; i++)
            if (strcmp(line, names[i]) == 0)
                k = i;
        if (k < 0)
            return rc_error_set(err, RC_E_FORMAT, "control part has an unknown field '%.40s'",
                                line);
        if (vals[k])
            return rc_error_set(err, RC_E_FORMAT, "control field %s appears twice", names[k]);
        vals[k] = v;
    }
    if (!vals[F_VERSION])
        return rc_error_set(err, RC_E_FORMAT, "control part has no Version");
    if (strcmp(vals[F_VERSION], "1") != 0)
        return rc_error_set(err, RC_E_VERSION,
                            "message format version '%.20s' is not supported (this build reads "
                            "version 1)",
                            vals[F_VERSION]);
    for (int i = 0; i < F_N; i++)
        if (!vals[i])
            return rc_error_set(err, RC_E_FORMAT, "control part has no %s field", names[i]);
    if (strcmp(vals[F_SUITE], "1") != 0)
        return rc_error_set(err, RC_E_VERSION, "algorithm suite '%.20s' is not supported",
                            vals[F_SUITE]);
    char *end = NULL;
    errno = 0;
    unsigned long long epoch = strtoull(vals[F_EPOCH], &end, 10);
    if (errno || *end || !isdigit((unsigned char)vals[F_EPOCH][0]) ||
        (vals[F_EPOCH][0] == '0' && vals[F_EPOCH][1]))
        return rc_error_set(err, RC_E_FORMAT, "control field Epoch is malformed");
    uint8_t proof[64];
    m->env.version = 1;
    m->env.suite = 1;
    m->env.epoch = epoch;
    if ((rc = b64url_field(vals[F_LIST_ID], m->env.list_id, 32, "List-Id", err)) ||
        (rc = b64url_field(vals[F_E], m->env.E, 32, "Ephemeral-Key", err)) ||
        (rc = b64url_field(vals[F_KC], m->env.KC, 32, "Key-Commitment", err)) ||
        (rc = b64url_field(vals[F_PROOF], proof, 64, "Proof", err)))
        return rc;
    memcpy(m->env.U, proof, 32);
    memcpy(m->env.z, proof + 32, 32);
    return 0;
}

static int ci_contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    return 0;
}

/* The outer header block of a recrypt message (FORMAT.md §9.3): no mbox
 * line, 7-bit bytes other than NUL only, exactly one Content-Type and
 * MIME-Version (1.0), at most one From. Date and Message-ID: header_date,
 * header_message_id. */
static int outer_header_check(const rc_header *h, rc_error *err)
{
    if (h->mbox_from)
        return rc_error_set(err, RC_E_FORMAT,
                            "the message starts with an mbox 'From ' line: a recrypt message "
                            "starts with its first header field");
    for (size_t i = 0; i < h->n; i++)
        for (size_t k = 0; k < h->f[i].len; k++) {
            unsigned char c = (unsigned char)h->f[i].text[k];
            int nl = (int)(h->f[i].name_len < 60 ? h->f[i].name_len : 60);
            if (c == 0)
                return rc_error_set(err, RC_E_FORMAT,
                                    "the outer header field %.*s holds a NUL byte", nl,
                                    h->f[i].text);
            if (c >= 0x80)
                return rc_error_set(err, RC_E_FORMAT,
                                    "the outer header field %.*s holds an 8-bit byte (0x%02X): "
                                    "the outer header is 7-bit (RFC 2047 encoded words for "
                                    "other text)",
                                    nl, h->f[i].text, c);
        }
    static const char *const once[] = {"Content-Type", "MIME-Version"};
    for (size_t i = 0; i < 2; i++) {
        size_t n;
        rc_header_get(h, once[i], &n);
        if (n == 0)
            return rc_error_set(err, RC_E_FORMAT, "the message is not a recrypt message (no "
                                                  "%s field: no multipart/encrypted body)",
                                once[i]);
        if (n != 1)
            return rc_error_set(err, RC_E_FORMAT, "the outer message has %zu %s fields (exactly "
                                                  "one is allowed)",
                                n, once[i]);
    }
    size_t n;
    char *v = rc_hfield_value(rc_header_get(h, "MIME-Version", NULL));
    if (!v)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    int bad = strcmp(v, "1.0") != 0;
    free(v);
    if (bad)
        return rc_error_set(err, RC_E_FORMAT, "the outer MIME-Version is not 1.0");
    rc_header_get(h, "From", &n);
    if (n != 1)
        return rc_error_set(err, RC_E_FORMAT, "the outer message has %zu From fields (exactly "
                                              "one is required)",
                            n);
    return 0;
}

/* The protocol, literally (no RFC 2231 continuation, no comment in it):
 * what the gateway looks for to tell a sealed post. */
static int protocol_literal_check(const rc_header *h, rc_error *err)
{
    char *v = rc_hfield_value(rc_header_get(h, "Content-Type", NULL));
    if (!v)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    int bad = !ci_contains(v, "multipart/encrypted") || !ci_contains(v, RC_MIME_PROTOCOL);
    free(v);
    if (bad)
        return rc_error_set(err, RC_E_FORMAT,
                            "the outer Content-Type does not say multipart/encrypted and "
                            "protocol=\"" RC_MIME_PROTOCOL "\" as such (no RFC 2231 "
                            "continuations or comments in them)");
    return 0;
}

/* The closing boundary line "--B--" exists, and only line endings follow
 * it (a message cut short anywhere lacks it). */
static int close_delimiter_check(int fd, off_t from, const char *boundary, int *seen,
                                 rc_error *err)
{
    char close[200], line[200];
    size_t want = (size_t)snprintf(close, sizeof close, "--%s--", boundary), len = 0;
    *seen = 0; /* delimiter lines "--B" */
    int found = 0, toolong = 0;
    uint8_t *buf = malloc(IO_BLOCK);
    if (!buf)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    if (lseek(fd, from, SEEK_SET) != from) {
        free(buf);
        return rc_error_set(err, RC_E_IO, "cannot read the message file");
    }
    ssize_t got;
    int rc = 0;
    while (rc == 0 && (got = read(fd, buf, IO_BLOCK)) > 0) {
        for (ssize_t i = 0; i < got && rc == 0; i++) {
            char c = (char)buf[i];
            if (found) {
                if (c != '\r' && c != '\n')
                    rc = rc_error_set(err, RC_E_FORMAT,
                                      "the message has text after its closing boundary line");
                continue;
            }
            if (c == '\n') {
                if (len && line[len - 1] == '\r')
                    len--;
                found = !toolong && len == want && memcmp(line, close, want) == 0;
                *seen += !toolong && len == want - 2 && memcmp(line, close, want - 2) == 0;
                len = 0;
                toolong = 0;
            } else if (len < sizeof line) {
                line[len++] = c;
            } else {
                toolong = 1;
            }
        }
        if (got < 0)
            break;
    }
    if (rc == 0 && !found && !toolong && len == want && memcmp(line, close, want) == 0)
        found = 1; /* the last line, without a line ending */
    free(buf);
    if (rc)
        return rc;
    if (got < 0)
        return rc_error_set(err, RC_E_IO, "cannot read the message file");
    if (!found)
        return rc_error_set(err, RC_E_FORMAT,
                            "the message has no closing boundary line (--%.70s--): it is cut "
                            "short",
                            boundary);
    return 0;
}

static ssize_t stream_read(GMimeStream *s, char *buf, size_t len);

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* The data part (FORMAT.md §9.3, data-part): lines of 4 to 76 base64
 * characters (RFC 4648 §4), a multiple of 4 each, ending in CRLF or LF
 * (the last one may lack it); '=' padding only in the last group, with
 * zero pad bits; no empty line but at the end. Then the decoded length
 * must fit the chunk framing of §7.5. */
static int data_part_check(GMimeStream *raw, rc_error *err)
{
    char *buf = malloc(IO_BLOCK);
    if (!buf)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    uint64_t chars = 0, line_no = 1;
    size_t line_len = 0;
    int pads = 0, empty_seen = 0, cr = 0, last = 0, rc = 0;
    ssize_t got;
    g_mime_stream_reset(raw);
    while (rc == 0 && (got = stream_read(raw, buf, IO_BLOCK)) > 0) {
        for (ssize_t i = 0; i < got && rc == 0; i++) {
            char c = buf[i];
            if (cr && c != '\n') {
                rc = rc_error_set(err, RC_E_FORMAT, "the data part has a CR without LF (line "
                                                    "%llu)", (unsigned long long)line_no);
                break;
            }
            if (c == '\r') {
                cr = 1;
                continue;
            }
            if (c == '\n') {
                cr = 0;
                if (line_len == 0)
                    empty_seen = 1;
                else if (line_len % 4)
                    rc = rc_error_set(err, RC_E_FORMAT,
                                      "the data part's line %llu has %zu characters, not a "
                                      "multiple of 4",
                                      (unsigned long long)line_no, line_len);
                line_len = 0;
                line_no++;
                continue;
            }
            int v = b64_value(c);
            if (v < 0 && c != '=') {
                rc = rc_error_set(err, RC_E_FORMAT,
                                  "the data part holds a byte that is not base64 (0x%02X, line "
                                  "%llu)",
                                  (unsigned char)c, (unsigned long long)line_no);
                break;
            }
            if (empty_seen) {
                rc = rc_error_set(err, RC_E_FORMAT,
                                  "the data part has an empty line before line %llu",
                                  (unsigned long long)line_no);
                break;
            }
            if (++line_len > 76) {
                rc = rc_error_set(err, RC_E_FORMAT,
                                  "the data part's line %llu is longer than 76 characters",
                                  (unsigned long long)line_no);
                break;
            }
            if (c == '=') {
                if (++pads > 2 || chars % 4 < 2 || (pads == 2 && chars % 4 != 2))
                    rc = rc_error_set(err, RC_E_FORMAT,
                                      "the data part has '=' padding that is not at the end of "
                                      "its last group of 4");
                continue;
            }
            if (pads) {
                rc = rc_error_set(err, RC_E_FORMAT, "the data part has data after its '=' "
                                                    "padding (line %llu)",
                                  (unsigned long long)line_no);
                break;
            }
            chars++;
            last = v;
        }
    }
    free(buf);
    if (rc)
        return rc;
    if (got < 0)
        return rc_error_set(err, RC_E_IO, "cannot read the encrypted part");
    if (cr)
        return rc_error_set(err, RC_E_FORMAT, "the data part ends with a CR without LF");
    if (line_len % 4)
        return rc_error_set(err, RC_E_FORMAT, "the data part's last line has %zu characters, "
                                              "not a multiple of 4",
                            line_len);
    if ((pads == 1 && (last & 3)) || (pads == 2 && (last & 15)))
        return rc_error_set(err, RC_E_FORMAT, "the data part's last group has pad bits that are "
                                              "not zero (not canonical base64)");
    if (chars == 0)
        return rc_error_set(err, RC_E_FORMAT, "the data part is empty");
    uint64_t len = (chars + (uint64_t)pads) / 4 * 3 - (uint64_t)pads;
    const uint64_t full = RC_CHUNK_BYTES + RC_CHUNK_OVERHEAD, head = 24;
    uint64_t r = len > head ? (len - head) % full : 0;
    if (len <= head + RC_CHUNK_OVERHEAD || (r != 0 && r <= RC_CHUNK_OVERHEAD))
        return rc_error_set(err, RC_E_FORMAT,
                            "the data part decodes to %llu bytes, which is no sealed stream (24 "
                            "header bytes, chunks of 65553 bytes, a last chunk of 18 to 65553): "
                            "it is cut short or padded",
                            (unsigned long long)len);
    return 0;
}

static int is_type(GMimeObject *o, const char *type, const char *subtype)
{
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    return ct && g_mime_content_type_is_type(ct, type, subtype);
}

/* The gateway's Recrypt-Service-Signature and Recrypt-List-Key-Current
 * (FORMAT.md §9.2): at most one of each. A signature that is not 64 bytes
 * of canonical base64url (white space removed) counts as no valid one. */
static int parse_service_fields(rc_mail *m, rc_error *err)
{
    size_t n;
    const rc_hfield *f = rc_header_get(&m->hdr, RC_HDR_LIST_KEY_CURRENT, &n);
    if (n > 1)
        return rc_error_set(err, RC_E_FORMAT, "the message has %zu %s fields", n,
                            RC_HDR_LIST_KEY_CURRENT);
    if (f && !(m->list_key_current = rc_hfield_value(f)))
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    f = rc_header_get(&m->hdr, RC_HDR_SERVICE_SIG, &n);
    if (n > 1)
        return rc_error_set(err, RC_E_FORMAT, "the message has %zu %s fields", n,
                            RC_HDR_SERVICE_SIG);
    if (!f)
        return 0;
    char *v = rc_hfield_value(f);
    if (!v)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    size_t k = 0, len = 0;
    for (size_t i = 0; v[i]; i++)
        if (v[i] != ' ' && v[i] != '\t' && v[i] != '\r' && v[i] != '\n')
            v[k++] = v[i];
    v[k] = '\0';
    m->svc_sig_state = rc_b64url_decode(m->svc_sig, sizeof m->svc_sig, &len, v, k) == 0 &&
                               len == RC_SIG_BYTES
                           ? 1
                           : -1;
    free(v);
    return 0;
}

int rc_mail_parse(rc_mail **out, int fd, rc_error *err)
{
    int rc = 0;
    *out = NULL;
    rc_mail *m = calloc(1, sizeof *m);
    if (!m)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    if ((rc = rc_header_read(&m->hdr, fd, err)) || (rc = outer_header_check(&m->hdr, err)))
        goto fail;
    int have_date = 0;
    if ((rc = header_date(&m->hdr, &m->date, &have_date, "the outer message", err)) ||
        (rc = header_message_id(&m->hdr, &m->message_id, "the outer message", err)))
        goto fail;
    if (!have_date || !m->message_id) {
        rc = rc_error_set(err, RC_E_FORMAT, "the outer message lacks its Date or Message-ID");
        goto fail;
    }
    size_t nk;
    const rc_hfield *lk = rc_header_get(&m->hdr, RC_HDR_LIST_KEY, &nk);
    if (nk > 1) {
        rc = rc_error_set(err, RC_E_FORMAT, "the message has %zu %s fields", nk, RC_HDR_LIST_KEY);
        goto fail;
    }
    if (lk && !(m->list_key = rc_hfield_value(lk))) {
        rc = rc_error_set(err, RC_E_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = parse_service_fields(m, err)))
        goto fail;
    size_t nc;
    const rc_hfield *cf = rc_header_get(&m->hdr, RC_HDR_COPY, &nc);
    if (cf && nc == 1) {
        char *v = rc_hfield_value(cf);
        const char *p = v;
        while (p && (*p == ' ' || *p == '\t'))
            p++;
        size_t n = p ? strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
                     : 0;
        if (n == RC_COPY_ID_LEN && strspn(p + n, " \t\r\n") == strlen(p + n)) {
            memcpy(m->copy_id, p, n);
            m->copy_id[n] = '\0';
        }
        free(v);
    }

    int dfd = dup(fd);
    if (dfd < 0 || lseek(dfd, 0, SEEK_SET) != 0) {
        if (dfd >= 0)
            close(dfd);
        rc = rc_error_set(err, RC_E_IO, "cannot read the message file");
        goto fail;
    }
    GMimeStream *fs = g_mime_stream_fs_new(dfd);
    GMimeParser *p = g_mime_parser_new_with_stream(fs);
    g_object_unref(fs);
    g_mime_parser_set_format(p, GMIME_FORMAT_MESSAGE);
    m->msg = g_mime_parser_construct_message(p, NULL);
    g_object_unref(p);
    if (!m->msg) {
        rc = rc_error_set(err, RC_E_FORMAT, "the input is not a MIME message");
        goto fail;
    }
    GMimeObject *top = g_mime_message_get_mime_part(m->msg);
    if (!top || !is_type(top, "multipart", "encrypted") || !GMIME_IS_MULTIPART(top)) {
        rc = rc_error_set(err, RC_E_FORMAT,
                          top && GMIME_IS_MULTIPART(top)
                              ? "the message is not a recrypt message (its top-level part is not "
                                "multipart/encrypted; an encrypted part wrapped in other MIME "
                                "parts is refused)"
                              : "the message is not a recrypt message (no multipart/encrypted "
                                "body)");
        goto fail;
    }
    const char *proto = g_mime_object_get_content_type_parameter(top, "protocol");
    if (!proto || strcasecmp(proto, RC_MIME_PROTOCOL) != 0) {
        rc = rc_error_set(err, RC_E_FORMAT,
                          "multipart/encrypted with protocol '%.60s' is not a recrypt message",
                          proto ? proto : "(none)");
        goto fail;
    }
    if ((rc = protocol_literal_check(&m->hdr, err)))
        goto fail;
    GMimeMultipart *mp = GMIME_MULTIPART(top);
    const char *bnd = g_mime_multipart_get_boundary(mp);
    if (!bnd || !(m->boundary = strdup(bnd))) {
        rc = rc_error_set(err, RC_E_FORMAT, "multipart/encrypted without a boundary");
        goto fail;
    }
    /* Cut short anywhere after the header (parts missing too): say so. */
    int seen = 0, crc = close_delimiter_check(fd, m->hdr.body_offset, m->boundary, &seen, err);
    if (crc && (crc != RC_E_FORMAT || seen)) {
        rc = crc;
        goto fail;
    }
    if (g_mime_multipart_get_count(mp) != 2) {
        rc = rc_error_set(err, RC_E_FORMAT,
                          "a recrypt message has exactly 2 parts inside multipart/encrypted, this "
                          "one has %d",
                          g_mime_multipart_get_count(mp));
        goto fail;
    }
    if (crc) { /* no delimiter line at all: the count above says so */
        rc = crc;
        goto fail;
    }
    GMimeObject *c0 = g_mime_multipart_get_part(mp, 0), *c1 = g_mime_multipart_get_part(mp, 1);
    if (!GMIME_IS_PART(c0) || !is_type(c0, "application", "vnd.recrypt.control") ||
        !GMIME_IS_PART(c1) || !is_type(c1, "application", "octet-stream") ||
        g_mime_part_get_content_encoding(GMIME_PART(c1)) != GMIME_CONTENT_ENCODING_BASE64) {
        rc = rc_error_set(err, RC_E_FORMAT,
                          "the parts inside multipart/encrypted are not a recrypt control part and "
                          "a base64 application/octet-stream part");
        goto fail;
    }
    /* Control part: bounded, decoded into memory. */
    GMimeDataWrapper *dw = g_mime_part_get_content(GMIME_PART(c0));
    GMimeStream *raw0 = dw ? g_mime_data_wrapper_get_stream(dw) : NULL;
    gint64 clen = raw0 ? g_mime_stream_length(raw0) : -1;
    if (clen < 0 || (size_t)clen > CONTROL_MAX) {
        rc = rc_error_set(err, RC_E_FORMAT, "the control part is missing or too large");
        goto fail;
    }
    GMimeStream *mem = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(dw, mem);
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    char *text = ba->len ? malloc(ba->len + 1) : NULL;
    if (ba->len == 0) {
        rc = rc_error_set(err, RC_E_FORMAT, "the control part is empty");
    } else if (text) {
        memcpy(text, ba->data, ba->len);
        text[ba->len] = '\0';
        if (strlen(text) != ba->len)
            rc = rc_error_set(err, RC_E_FORMAT, "the control part contains a NUL byte");
        else
            rc = parse_control(m, text, err);
        free(text);
    } else {
        rc = rc_error_set(err, RC_E_NOMEM, "out of memory");
    }
    g_object_unref(mem);
    if (rc)
        goto fail;
    /* Data part: streamed through a base64 decoder on demand. */
    GMimeDataWrapper *dw1 = g_mime_part_get_content(GMIME_PART(c1));
    if (!dw1 || !(m->ct_raw = g_mime_data_wrapper_get_stream(dw1))) {
        rc = rc_error_set(err, RC_E_FORMAT, "the encrypted part has no content");
        goto fail;
    }
    g_object_ref(m->ct_raw);
    if ((rc = data_part_check(m->ct_raw, err)))
        goto fail;
    m->ct_decode = g_mime_stream_filter_new(m->ct_raw);
    GMimeFilter *dec = g_mime_filter_basic_new(GMIME_CONTENT_ENCODING_BASE64, FALSE);
    g_mime_stream_filter_add(GMIME_STREAM_FILTER(m->ct_decode), dec);
    g_object_unref(dec);
    *out = m;
    return 0;
fail:
    rc_mail_free(m);
    return rc ? rc : rc_error_set(err, RC_E_INTERNAL, "parse failed");
}

void rc_mail_free(rc_mail *m)
{
    if (!m)
        return;
    if (m->ct_decode)
        g_object_unref(m->ct_decode);
    if (m->ct_raw)
        g_object_unref(m->ct_raw);
    if (m->msg)
        g_object_unref(m->msg);
    rc_header_free(&m->hdr);
    free(m->stanzas);
    free(m->message_id);
    free(m->list_key);
    free(m->list_key_current);
    free(m->boundary);
    free(m);
}

const rc_envelope *rc_mail_envelope(const rc_mail *m)
{
    return &m->env;
}

size_t rc_mail_stanza_count(const rc_mail *m)
{
    return m->n_stanzas;
}

const rc_stanza *rc_mail_stanzas(const rc_mail *m)
{
    return m->stanzas;
}

uint64_t rc_mail_date(const rc_mail *m)
{
    return m->date;
}

const char *rc_mail_message_id(const rc_mail *m)
{
    return m->message_id;
}

const char *rc_mail_list_key(const rc_mail *m)
{
    return m->list_key;
}

const char *rc_mail_list_key_current(const rc_mail *m)
{
    return m->list_key_current;
}

const uint8_t *rc_mail_service_sig(const rc_mail *m)
{
    return m->svc_sig_state == 1 ? m->svc_sig : NULL;
}

const char *rc_mail_copy_id(const rc_mail *m)
{
    return m->copy_id[0] ? m->copy_id : NULL;
}

/* GMime streams answer -1 at the end of a bounded stream: 0 there. */
static ssize_t stream_read(GMimeStream *s, char *buf, size_t len)
{
    ssize_t n = g_mime_stream_read(s, buf, len);
    if (n < 0 && g_mime_stream_eos(s))
        return 0;
    return n;
}

/* ---- service side ---- */

int rc_mail_check_post(const rc_mail *m, const char *list_address, uint64_t epoch,
                       const uint8_t A[RC_POINT_BYTES], uint64_t now, uint64_t window,
                       uint64_t future_skew, rc_error *err)
{
    uint8_t id[32];
    int rc = rc_list_id(id, list_address, err);
    if (rc)
        return rc;
    if (memcmp(id, m->env.list_id, 32) != 0)
        return rc_error_set(err, RC_E_POLICY, "the message was sealed for another list than %s",
                            list_address);
    if (m->env.epoch != epoch)
        return rc_error_set(err, RC_E_POLICY, "the message was sealed for epoch %llu, not %llu",
                            (unsigned long long)m->env.epoch, (unsigned long long)epoch);
    if (m->n_stanzas)
        return rc_error_set(err, RC_E_POLICY, "the message already carries stanzas");
    if ((rc = rc_proof_verify(&m->env, A, m->date, m->message_id, err)))
        return rc;
    /* Differences, not sums: no overflow whatever the settings. */
    if (now > m->date && now - m->date > window)
        return rc_error_set(err, RC_E_POLICY, "the message's Date is older than the freshness "
                                              "window");
    if (m->date > now && m->date - now > future_skew)
        return rc_error_set(err, RC_E_POLICY, "the message's Date lies in the future");
    return 0;
}

int rc_mail_write_header(const rc_mail *m, rc_sink_fn sink, void *ctx, rc_error *err)
{
    out_t o;
    out_init(&o, sink, ctx, m->hdr.eol);
    for (size_t i = 0; i < m->hdr.n; i++)
        out_bytes(&o, m->hdr.f[i].text, m->hdr.f[i].len);
    out_str(&o, m->hdr.eol);
    return out_flush(&o) != 0 ? rc_error_set(err, RC_E_IO, "cannot write the header") : 0;
}

int rc_mail_write_recrypted_body(const rc_mail *m, const rc_device_entry *entries, size_t n,
                                 int use_table, rc_sink_fn sink, void *ctx, size_t *n_written,
                                 rc_error *err)
{
    return rc_mail_write_recrypted_body_h(m, entries, n, use_table, sink, ctx, n_written, NULL,
                                          err);
}

int rc_mail_write_recrypted_body_h(const rc_mail *m, const rc_device_entry *entries, size_t n,
                                   int use_table, rc_sink_fn sink, void *ctx, size_t *n_written,
                                   uint8_t stanza_hash[32], rc_error *err)
{
    rc_recryptor *rr = NULL;
    uint8_t (*R)[RC_POINT_BYTES] = NULL;
    if (n_written)
        *n_written = 0;
    int rc = rc_recryptor_new(&rr, m->env.E, use_table, err);
    if (rc)
        return rc;
    R = malloc((n ? n : 1) * sizeof *R);
    if (!R)
        rc = rc_error_set(err, RC_E_NOMEM, "out of memory");
    /* Entries that get no stanza are not computed either. */
    for (size_t i = 0; i < n && rc == 0; i++)
        if (entries[i].enrolled_at < m->date)
            rc = rc_recryptor_compute(rr, entries[i].r, R[i], err);
    if (rc == 0)
        rc = rc_mail_write_body_stanzas_h(m, entries, (const uint8_t(*)[RC_POINT_BYTES])R, n,
                                          sink, ctx, n_written, stanza_hash, err);
    free(R);
    rc_recryptor_free(rr);
    return rc;
}

int rc_mail_write_body_stanzas(const rc_mail *m, const rc_device_entry *entries,
                               const uint8_t (*R)[RC_POINT_BYTES], size_t n, rc_sink_fn sink,
                               void *ctx, size_t *n_written, rc_error *err)
{
    return rc_mail_write_body_stanzas_h(m, entries, R, n, sink, ctx, n_written, NULL, err);
}

int rc_mail_stanza_order(const rc_mail *m, const rc_device_entry *entries,
                         const uint8_t (*R)[RC_POINT_BYTES], size_t n, size_t *order, size_t *k_out,
                         uint8_t stanza_hash[32], rc_error *err)
{
    size_t k = 0;
    /* Only devices enrolled before the proven date get a stanza (docs/SCHEME.md). */
    for (size_t i = 0; i < n; i++)
        if (entries[i].enrolled_at < m->date)
            order[k++] = i;
    for (size_t i = k; i > 1; i--) { /* Fisher-Yates: stanzas in random order */
        size_t j = randombytes_uniform((uint32_t)i);
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    *k_out = k;
    if (!stanza_hash)
        return 0;
    crypto_generichash_blake2b_state hs;
    rc_hash_init(&hs, 32, RC_L_STANZAS);
    crypto_generichash_blake2b_update(&hs, (const uint8_t[]){1}, 1);
    for (size_t i = 0; i < k; i++) {
        rc_stanza s;
        uint8_t b[RC_STANZA_MAX];
        size_t len;
        const rc_device_entry *e = &entries[order[i]];
        if (e->W_len == 0 || e->W_len > RC_WRAP_MAX)
            return rc_error_set(err, RC_E_FORMAT, "W has a bad length");
        memcpy(s.R, R[order[i]], RC_POINT_BYTES);
        memcpy(s.W, e->W, e->W_len);
        s.W_len = e->W_len;
        int rc = rc_stanza_to_bytes(b, sizeof b, &len, &s, err);
        if (rc)
            return rc;
        rc_svc_stanza_hash_add(&hs, b, len);
    }
    crypto_generichash_blake2b_final(&hs, stanza_hash, 32);
    return 0;
}

int rc_mail_write_body_stanzas_h(const rc_mail *m, const rc_device_entry *entries,
                                 const uint8_t (*R)[RC_POINT_BYTES], size_t n, rc_sink_fn sink,
                                 void *ctx, size_t *n_written, uint8_t stanza_hash[32],
                                 rc_error *err)
{
    size_t k = 0;
    if (n_written)
        *n_written = 0;
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    int rc = rc_mail_stanza_order(m, entries, R, n, order, &k, stanza_hash, err);
    if (rc == 0)
        rc = rc_mail_write_body_order(m, entries, R, order, k, sink, ctx, n_written, err);
    free(order);
    return rc;
}

int rc_mail_write_body_order(const rc_mail *m, const rc_device_entry *entries,
                             const uint8_t (*R)[RC_POINT_BYTES], const size_t *order, size_t k,
                             rc_sink_fn sink, void *ctx, size_t *n_written, rc_error *err)
{
    int rc = 0;
    if (n_written)
        *n_written = 0;
    out_t o;
    out_init(&o, sink, ctx, m->hdr.eol);
    char line[200];
    out_preamble(&o); /* our own text, not the sender's: emit strictly */
    snprintf(line, sizeof line, "--%s", m->boundary);
    out_line(&o, line);
    out_part_headers_control(&o);
    out_control(&o, &m->env);
    for (size_t i = 0; i < k && rc == 0; i++) {
        rc_stanza s;
        uint8_t b[RC_STANZA_MAX];
        size_t len;
        const rc_device_entry *e = &entries[order[i]];
        if (e->W_len == 0 || e->W_len > RC_WRAP_MAX) {
            rc = rc_error_set(err, RC_E_FORMAT, "W has a bad length");
            break;
        }
        if (sodium_is_zero(R[order[i]], RC_POINT_BYTES)) { /* not computed */
            rc = rc_error_set(err, RC_E_CRYPTO, "R is the identity");
            break;
        }
        memcpy(s.R, R[order[i]], RC_POINT_BYTES);
        memcpy(s.W, e->W, e->W_len);
        s.W_len = e->W_len;
        if ((rc = rc_stanza_to_bytes(b, sizeof b, &len, &s, err)) == 0)
            out_folded_b64(&o, "Stanza", b, len);
    }
    if (rc == 0) {
        out_str(&o, o.eol);
        out_line(&o, line);
        out_part_headers_data(&o);
        /* The ciphertext as it came, its base64 lines (rc_mail_parse
         * checked them) each ended with the message's line ending: one
         * line ending in the whole message, whatever the part had. */
        char buf[IO_BLOCK];
        ssize_t got;
        size_t eols = 0;
        g_mime_stream_reset(m->ct_raw);
        while ((got = stream_read(m->ct_raw, buf, sizeof buf)) > 0)
            for (ssize_t i = 0, run = 0; i <= got; i++) {
                if (i < got && buf[i] != '\r' && buf[i] != '\n') {
                    if (run == 0)
                        for (; eols; eols--)
                            out_str(&o, o.eol);
                    run++;
                    continue;
                }
                out_bytes(&o, buf + i - run, (size_t)run);
                run = 0;
                if (i < got && buf[i] == '\n')
                    eols++;
            }
        if (got < 0)
            rc = rc_error_set(err, RC_E_IO, "cannot read the encrypted part");
        out_str(&o, o.eol); /* the last line's (trailing empty lines are dropped) */
        snprintf(line, sizeof line, "--%s--", m->boundary);
        out_line(&o, line);
        if (out_flush(&o) != 0 && rc == 0)
            rc = rc_error_set(err, RC_E_IO, "cannot write the recrypted message");
    }
    if (n_written)
        *n_written = rc == 0 ? k : 0;
    return rc;
}

/* ---- opening ---- */

int rc_mail_open(rc_mail *m, const rc_statement *st, const rc_device_secret *dev, int stage_fd,
                 rc_sink_fn sink, void *ctx, rc_open_result *res, rc_error *err)
{
    return rc_mail_open_ex(m, st, dev, NULL, stage_fd, sink, ctx, res, err);
}

/* Did this copy come through the list (FORMAT.md §9.5 step 6)? A version 1
 * statement names no service key: RC_PATH_UNVERIFIED. Else the copy's
 * service signature must verify over its own stanzas, for an inline copy
 * (recipient "") or a split copy for this device's member. */
static int copy_path(const rc_mail *m, const rc_statement *st, const char *member)
{
    uint8_t h[32];
    const uint8_t *sig = rc_mail_service_sig(m);
    if (st->version != RC_STATEMENT_V2)
        return RC_PATH_UNVERIFIED;
    if (!sig || rc_svc_stanza_hash(h, m->stanzas, m->n_stanzas, NULL) != 0)
        return RC_PATH_DIRECT;
    if (rc_svc_verify(sig, st->service_pk, &m->env, m->date, h, "", NULL) == 0 ||
        rc_svc_verify(sig, st->service_pk, &m->env, m->date, h, member, NULL) == 0)
        return RC_PATH_LIST;
    return RC_PATH_DIRECT;
}

/* A later statement of the list (higher epoch, not_before <= the post's
 * Date) that revokes the signing device: RC_E_SIGNATURE naming it. */
static int check_revoked(const rc_mail *m, const rc_statement *st, const rc_open_result *r,
                         const rc_open_options *opt, rc_error *err)
{
    for (size_t i = 0; opt && i < opt->n_later; i++) {
        const rc_statement *l = &opt->later[i];
        if (l->epoch <= st->epoch || strcmp(l->address, st->address) != 0 ||
            l->not_before > m->date || !rc_statement_revokes(l, r->cert.device_sign_pk))
            continue;
        char fp[RC_UDF_MAX];
        rc_key_fingerprint(fp, sizeof fp, RC_FP_DEVICE_SIGNER, r->cert.device_sign_pk, 32, NULL);
        return rc_error_set(err, RC_E_SIGNATURE,
                            "the message is signed by device %s of %s, which the list %s revoked "
                            "at epoch %llu (from %llu on), and it is dated after that: it is not "
                            "shown as signed by a member",
                            fp, r->cert.address, st->address, (unsigned long long)l->epoch,
                            (unsigned long long)l->not_before);
    }
    return 0;
}

int rc_mail_open_ex(rc_mail *m, const rc_statement *st, const rc_device_secret *dev,
                    const rc_open_options *opt, int stage_fd, rc_sink_fn sink, void *ctx,
                    rc_open_result *res, rc_error *err)
{
    rc_opener *op = NULL;
    rc_open_result r;
    rc_header ih = {0};
    int rc;
    memset(&r, 0, sizeof r);
    if ((rc = rc_opener_new(&op, &m->env, st, dev, m->stanzas, m->n_stanzas, m->date,
                            m->message_id, err)))
        return rc;
    if (ftruncate(stage_fd, 0) != 0 || lseek(stage_fd, 0, SEEK_SET) != 0) {
        rc_opener_free(op);
        return rc_error_set(err, RC_E_IO, "cannot use the staging file");
    }
    rc_opener_stage_into(op, stage_fd, NULL); /* the opener stages straight into it */
    uint8_t *buf = malloc(IO_BLOCK);
    if (!buf) {
        rc_opener_free(op);
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    }
    g_mime_stream_reset(m->ct_raw);
    g_mime_stream_reset(m->ct_decode);
    ssize_t got;
    while (rc == 0 && (got = stream_read(m->ct_decode, (char *)buf, IO_BLOCK)) > 0)
        rc = rc_opener_update(op, buf, (size_t)got, rc_fd_sink, &stage_fd, err);
    if (rc == 0 && got < 0)
        rc = rc_error_set(err, RC_E_IO, "cannot read the encrypted part");
    free(buf);
    if (rc == 0)
        rc = rc_opener_final(op, rc_fd_sink, &stage_fd, &r, err);
    rc_opener_free(op);
    if (rc)
        goto done;

    /* The inner message: its Date and Message-ID must be the proven ones,
     * and a signed message's From must be the certificate's address. */
    uint64_t idate = 0;
    int have_date = 0;
    char *imid = NULL;
    if ((rc = rc_header_read(&ih, stage_fd, err)) ||
        (rc = header_date(&ih, &idate, &have_date, "the inner message", err)) ||
        (rc = header_message_id(&ih, &imid, "the inner message", err)))
        goto done;
    if (!have_date || idate != m->date || !imid || strcmp(imid, m->message_id) != 0) {
        free(imid);
        rc = rc_error_set(err, RC_E_AUTH,
                          "the inner Date or Message-ID differs from the outer one");
        goto done;
    }
    free(imid);
    char verdict[RC_ADDR_MAX * 2 + 256], fp[RC_UDF_MAX];
    if (r.is_signed && (rc = check_revoked(m, st, &r, opt, err)))
        goto done;
    r.path = copy_path(m, st, r.share.cert.address);
    if (r.path == RC_PATH_DIRECT && !(opt && (opt->flags & RC_OPEN_ALLOW_DIRECT))) {
        rc = rc_error_set(err, RC_E_POLICY,
                          "this copy did not come through the list %s: it carries no valid "
                          "service signature over its stanzas (anyone who knows the list key "
                          "can write such a message to you)",
                          st->address);
        goto done;
    }
    const char *path = r.path == RC_PATH_UNVERIFIED ? "; path=unverified" : "";
    if (r.path == RC_PATH_DIRECT) {
        snprintf(verdict, sizeof verdict, RC_HDR_VERDICT ": direct; list=%s; epoch=%llu%s",
                 st->address, (unsigned long long)st->epoch, ih.eol);
    } else if (r.is_signed) {
        /* FORMAT §9.5 step 4: exactly one mailbox; a group (even of one
         * mailbox), several mailboxes or none are refused. */
        char *from = from_address(&ih);
        int same = from && strcmp(from, r.cert.address) == 0;
        if (!same) {
            rc = rc_error_set(err, RC_E_SIGNATURE,
                              "the message is signed by %s but its From is %s", r.cert.address,
                              from ? "another address"
                                   : "not exactly one mailbox (a group, several addresses or "
                                     "none)");
            free(from);
            goto done;
        }
        free(from);
        rc_key_fingerprint(fp, sizeof fp, RC_FP_DEVICE_SIGNER, r.cert.device_sign_pk, 32, NULL);
        snprintf(verdict, sizeof verdict,
                 RC_HDR_VERDICT ": signed; member=%s; device=%s; list=%s; epoch=%llu%s%s",
                 r.cert.address, fp, st->address, (unsigned long long)st->epoch, path, ih.eol);
    } else {
        snprintf(verdict, sizeof verdict, RC_HDR_VERDICT ": unsigned; list=%s; epoch=%llu%s%s",
                 st->address, (unsigned long long)st->epoch, path, ih.eol);
    }
    out_t o;
    out_init(&o, sink, ctx, ih.eol);
    out_str(&o, verdict);
    for (size_t i = 0; i < ih.n; i++)
        if (!rc_hfield_is(&ih.f[i], RC_HDR_VERDICT))
            out_bytes(&o, ih.f[i].text, ih.f[i].len);
    out_str(&o, ih.eol);
    if ((rc = copy_fd_range(stage_fd, ih.body_offset, &o, NULL, NULL, err)))
        goto done;
    if (out_flush(&o) != 0)
        rc = rc_error_set(err, RC_E_IO, "cannot write the opened message");
done:
    rc_header_free(&ih);
    if (res)
        *res = r;
    sodium_memzero(&r, sizeof r);
    return rc;
}
