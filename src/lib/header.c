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
    h->len = hlen;
    h->body_offset = (off_t)body;
    const char *nl = memchr(b, '\n', hlen);
    h->eol = (nl && nl > b && nl[-1] == '\r') ? "\r\n" : "\n";
    if (nl == NULL && body > hlen)
        h->eol = (body - hlen == 2) ? "\r\n" : "\n";

    size_t p = 0;
    if (hlen >= 5 && strncmp(b, "From ", 5) == 0) { /* mbox separator */
        const char *e = memchr(b, '\n', hlen);
        p = e ? (size_t)(e - b) + 1 : hlen;
        h->mbox_from = 1;
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

/* ---- the strict grammars of docs/FORMAT.md §9.3 ---- */

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static const char *skip_wsp(const char *p)
{
    while (is_wsp(*p))
        p++;
    return p;
}

/* n decimal digits exactly; -1 if not. */
static long digits(const char **pp, int n)
{
    long v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*pp)[i]))
            return -1;
        v = v * 10 + ((*pp)[i] - '0');
    }
    *pp += n;
    return v;
}

/* One of names (3 letters, case-insensitive): its index, or -1. */
static int name3(const char **pp, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strncasecmp(*pp, names[i], 3) == 0) {
            *pp += 3;
            return i;
        }
    return -1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

int rc_date_parse(const char *v, uint64_t *out, rc_error *err)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = skip_wsp(v), *q;
    int wday = -1;
    if (isalpha((unsigned char)*p)) {
        if ((wday = name3(&p, days, 7)) < 0 || *p != ',')
            return rc_error_set(err, RC_E_FORMAT, "the Date does not start with a day name "
                                                  "(Mon..Sun) and a comma, or a day number");
        p = skip_wsp(p + 1);
    }
    q = p;
    long day = digits(&q, 2);
    if (day < 0) {
        q = p;
        day = digits(&q, 1);
    }
    if (day < 1 || !is_wsp(*q))
        return rc_error_set(err, RC_E_FORMAT, "the Date has no day of the month (1 or 2 digits)");
    p = skip_wsp(q);
    int mon = name3(&p, months, 12);
    if (mon < 0 || !is_wsp(*p))
        return rc_error_set(err, RC_E_FORMAT, "the Date has no month name (Jan..Dec)");
    p = skip_wsp(p);
    long year = digits(&p, 4);
    if (year < 1970 || !is_wsp(*p))
        return rc_error_set(err, RC_E_FORMAT, "the Date has no 4-digit year from 1970");
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if ((unsigned long)day > mdays[mon] + (mon == 1 && leap))
        return rc_error_set(err, RC_E_FORMAT, "the Date names day %ld of a month that has fewer",
                            day);
    p = skip_wsp(p);
    long hh = digits(&p, 2), mm = -1, ss = 0;
    if (hh >= 0 && *p == ':') {
        p++;
        mm = digits(&p, 2);
    }
    if (mm >= 0 && *p == ':') {
        p++;
        ss = digits(&p, 2);
    }
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60 || !is_wsp(*p))
        return rc_error_set(err, RC_E_FORMAT, "the Date has no time of day hh:mm[:ss] "
                                              "(00:00 to 23:59:60)");
    p = skip_wsp(p);
    long zone = 0; /* minutes east of UTC */
    if (*p == '+' || *p == '-') {
        int neg = *p == '-';
        p++;
        long zh = digits(&p, 2), zm = zh >= 0 ? digits(&p, 2) : -1;
        if (zh < 0 || zh > 23 || zm < 0 || zm > 59)
            return rc_error_set(err, RC_E_FORMAT, "the Date's zone is not +hhmm or -hhmm");
        zone = (neg ? -1 : 1) * (zh * 60 + zm);
    } else if (strncasecmp(p, "GMT", 3) == 0 && !isalpha((unsigned char)p[3])) {
        p += 3;
    } else if (strncasecmp(p, "UT", 2) == 0 && !isalpha((unsigned char)p[2])) {
        p += 2;
    } else {
        return rc_error_set(err, RC_E_FORMAT,
                            "the Date's zone is not +hhmm, -hhmm, UT or GMT (names such as "
                            "EST are not accepted)");
    }
    if (is_wsp(*p) && skip_wsp(p)[0] == '(') { /* one trailing comment, not nested */
        p = skip_wsp(p) + 1;
        while (*p && *p != ')' && *p != '(' && *p != '\\' && (unsigned char)*p >= 32 &&
               (unsigned char)*p < 127)
            p++;
        if (*p != ')')
            return rc_error_set(err, RC_E_FORMAT, "the Date ends with a malformed comment");
        p++;
    }
    if (*skip_wsp(p))
        return rc_error_set(err, RC_E_FORMAT, "the Date has text after its zone");
    long long days_n = days_from_civil(year, (unsigned)mon + 1, (unsigned)day);
    if (wday >= 0 && (days_n + 4) % 7 != wday)
        return rc_error_set(err, RC_E_FORMAT, "the Date's day name is not the weekday of its date");
    long long t = days_n * 86400 + hh * 3600 + mm * 60 + ss - zone * 60;
    if (t < 0)
        return rc_error_set(err, RC_E_FORMAT, "the Date lies before 1970");
    *out = (uint64_t)t;
    return 0;
}

static int is_atext(char c)
{
    return isalnum((unsigned char)c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* dot-atom-text at p: its end, or NULL. */
static const char *dot_atom_text(const char *p)
{
    for (;;) {
        if (!is_atext(*p))
            return NULL;
        while (is_atext(*p))
            p++;
        if (*p != '.')
            return p;
        p++;
    }
}

int rc_msgid_parse(const char *v, char **id, rc_error *err)
{
    const char *p = skip_wsp(v), *e;
    *id = NULL;
    if (*p != '<')
        return rc_error_set(err, RC_E_FORMAT,
                            "the Message-ID does not start with '<' (it is \"<id-left@id-right>\", "
                            "nothing before it)");
    const char *start = ++p;
    if (!(e = dot_atom_text(p)) || *e != '@')
        return rc_error_set(err, RC_E_FORMAT,
                            "the Message-ID's left part (before '@') is not a dot-atom");
    p = e + 1;
    if (*p == '[') {
        for (p++; *p && *p != ']'; p++)
            if ((unsigned char)*p < 33 || (unsigned char)*p > 126 || *p == '[' || *p == '\\')
                return rc_error_set(err, RC_E_FORMAT,
                                    "the Message-ID's domain literal holds a byte it may not");
        if (*p != ']')
            return rc_error_set(err, RC_E_FORMAT, "the Message-ID's domain literal is not closed");
        e = p + 1;
    } else if (!(e = dot_atom_text(p))) {
        return rc_error_set(err, RC_E_FORMAT,
                            "the Message-ID's right part (after '@') is not a dot-atom or a "
                            "[literal]");
    }
    if (*e != '>')
        return rc_error_set(err, RC_E_FORMAT, "the Message-ID does not end with '>' after its id");
    if (*skip_wsp(e + 1))
        return rc_error_set(err, RC_E_FORMAT, "the Message-ID has text after its '>'");
    size_t n = (size_t)(e - start);
    if (n > RC_MSGID_MAX)
        return rc_error_set(err, RC_E_FORMAT,
                            "the Message-ID is %zu octets long, more than %d (one header line)",
                            n, RC_MSGID_MAX);
    if (!(*id = malloc(n + 1)))
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    memcpy(*id, start, n);
    (*id)[n] = '\0';
    return 0;
}
