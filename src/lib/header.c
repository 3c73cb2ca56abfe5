/*
 * header.c - see header.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <ctype.h>
#include "header.h"

static const char *find_end(const char *b, size_t len, size_t *body)
{
    /* The block ends at the first empty line (LF or CRLF). */
    for (size_t i = 0; i < len; i++) {
        if (i == 0 || b[i - 1] == '\n') {
            if (b[i] == '\n') {
                *body = i + 1;
                return b + i;
            }
            if (b[i] == '\r' && i + 1 < len && b[i + 1] == '\n') {
                *body = i + 2;
                return b + i;
            }
        }
    }
    return NULL;
}

int rc_header_read(rc_header *h, int fd, rc_error *err)
{
    memset(h, 0, sizeof *h);
    size_t cap = 65536, len = 0, body = 0;
    char *b = malloc(cap + 1);
    if (!b)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    if (lseek(fd, 0, SEEK_SET) != 0) {
        free(b);
        return rc_error_set(err, RC_E_IO, "message file is not seekable");
    }
    const char *end = NULL;
    for (;;) {
        if (len == cap) {
            if (cap >= RC_HEADER_MAX) {
                free(b);
                return rc_error_set(err, RC_E_FORMAT, "message header is larger than %d bytes",
                                    RC_HEADER_MAX);
            }
            cap *= 2;
            char *nb = realloc(b, cap + 1);
            if (!nb) {
                free(b);
                return rc_error_set(err, RC_E_NOMEM, "out of memory");
            }
            b = nb;
        }
        ssize_t n = read(fd, b + len, cap - len);
        if (n < 0) {
            free(b);
            return rc_error_set(err, RC_E_IO, "cannot read the message");
        }
        len += (size_t)n;
        if ((end = find_end(b, len, &body)) != NULL)
            break;
        if (n == 0) { /* header only, no body */
            end = b + len;
            body = len;
            break;
        }
    }
    size_t hlen = (size_t)(end - b);
    b[hlen] = '\0';
    h->block = b;
    h->body_offset = (off_t)body;
    const char *nl = memchr(b, '\n', hlen);
    h->eol = (nl && nl > b && nl[-1] == '\r') ? "\r\n" : "\n";
    if (nl == NULL && body > hlen)
        h->eol = (body - hlen == 2) ? "\r\n" : "\n";

    size_t p = 0;
    if (hlen >= 5 && strncmp(b, "From ", 5) == 0) { /* mbox separator */
        const char *e = memchr(b, '\n', hlen);
        p = e ? (size_t)(e - b) + 1 : hlen;
    }
    size_t fcap = 32, line = 1;
    h->f = malloc(fcap * sizeof *h->f);
    if (!h->f) {
        rc_header_free(h);
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    }
    while (p < hlen) {
        const char *start = b + p;
        if (*start == ' ' || *start == '\t') {
            rc_header_free(h);
            return rc_error_set(err, RC_E_FORMAT,
                                "header line %zu is a continuation with no field before it", line);
        }
        const char *colon = NULL;
        size_t q = p;
        while (q < hlen && b[q] != '\n' && b[q] != ':')
            q++;
        if (q < hlen && b[q] == ':')
            colon = b + q;
        size_t name_len = colon ? (size_t)(colon - start) : 0;
        int name_ok = name_len > 0;
        for (size_t i = 0; i < name_len; i++)
            if ((unsigned char)start[i] <= 32 || (unsigned char)start[i] >= 127)
                name_ok = 0;
        if (!name_ok) {
            /* Say what is wrong in the two cases mail programs meet (and
             * repair nothing: what is sealed is what the sender wrote). */
            int bom = p == 0 && hlen >= 3 && (unsigned char)b[0] == 0xEF &&
                      (unsigned char)b[1] == 0xBB && (unsigned char)b[2] == 0xBF;
            rc_header_free(h); /* frees b */
            if (bom)
                return rc_error_set(err, RC_E_FORMAT,
                                    "the message starts with a byte-order mark (EF BB BF): "
                                    "mail has none; save it without one");
            if (line > 1)
                return rc_error_set(err, RC_E_FORMAT,
                                    "header line %zu is not a header field: it has no "
                                    "'Name:' and does not start with a space or tab, so it "
                                    "cannot continue the line before it (a header line broken "
                                    "without folding white space)",
                                    line);
            return rc_error_set(err, RC_E_FORMAT, "header line %zu is not a header field", line);
        }
        /* The field runs until a line that does not start with WSP. */
        q = p;
        for (;;) {
            const char *e = memchr(b + q, '\n', hlen - q);
            q = e ? (size_t)(e - b) + 1 : hlen;
            line++;
            if (q >= hlen || (b[q] != ' ' && b[q] != '\t'))
                break;
        }
        if (h->n == fcap) {
            fcap *= 2;
            rc_hfield *nf = realloc(h->f, fcap * sizeof *nf);
            if (!nf) {
                rc_header_free(h);
                return rc_error_set(err, RC_E_NOMEM, "out of memory");
            }
            h->f = nf;
        }
        h->f[h->n].text = start;
        h->f[h->n].len = q - p;
        h->f[h->n].name_len = name_len;
        h->n++;
        p = q;
    }
    return 0;
}

void rc_header_free(rc_header *h)
{
    free(h->block);
    free(h->f);
    memset(h, 0, sizeof *h);
}

int rc_hfield_is(const rc_hfield *f, const char *name)
{
    return strlen(name) == f->name_len && strncasecmp(f->text, name, f->name_len) == 0;
}

char *rc_hfield_value(const rc_hfield *f)
{
    char *v = malloc(f->len + 1);
    if (!v)
        return NULL;
    size_t o = 0;
    for (size_t i = f->name_len + 1; i < f->len; i++) {
        char c = f->text[i];
        if (c == '\r' || c == '\n')
            continue; /* unfold: drop the line break, keep the WSP after it */
        v[o++] = c;
    }
    v[o] = '\0';
    size_t s = 0;
    while (v[s] == ' ' || v[s] == '\t')
        s++;
    while (o > s && (v[o - 1] == ' ' || v[o - 1] == '\t'))
        v[--o] = '\0';
    memmove(v, v + s, o - s + 1);
    return v;
}

const rc_hfield *rc_header_get(const rc_header *h, const char *name, size_t *count)
{
    const rc_hfield *first = NULL;
    size_t c = 0;
    for (size_t i = 0; i < h->n; i++)
        if (rc_hfield_is(&h->f[i], name)) {
            if (!first)
                first = &h->f[i];
            c++;
        }
    if (count)
        *count = c;
    return first;
}
