/*
 * smtp.c - the SMTP client of split delivery's fan-out (see smtp.h): one
 * connection to the local MTA, one transaction per member copy, no
 * pipelining. Non-blocking socket, every wait bounded by poll; a connection
 * in doubt is dropped rather than guessed at.
 */
#define _GNU_SOURCE /* SOCK_NONBLOCK, SOCK_CLOEXEC, MSG_NOSIGNAL, explicit_bzero */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "smtp.h"

#define LAST_MAX 1024   /* smtp_last_reply's text */
#define REASON_MAX 512  /* why the client broke */
#define PEER_MAX 300    /* the target, for messages */
#define TARGET_MAX 1024 /* longer targets are refused */

struct smtp_client {
    int fd;
    int timeout_ms;
    int broken;    /* unusable: every call fails at once with reason */
    int in_data;   /* between 354 and the final "." */
    int at_bol;    /* data: the next byte starts a line */
    int prev_cr;   /* data: the last byte was CR (its CRLF is already out) */
    char peer[PEER_MAX];
    char reason[REASON_MAX];
    char last[LAST_MAX];
    size_t in_off, in_len;
    size_t out_len;
    unsigned char in[SMTP_REPLY_MAX];
    unsigned char out[SMTP_OUT_BUFFER];
};

/* ---- strings ---- */

/* A reply or reason made printable: control characters become spaces,
 * bytes beyond ASCII '?'. */
static char printable(unsigned char b)
{
    if (b < 0x20)
        return ' ';
    if (b > 0x7e)
        return '?';
    return (char)b;
}

/* Copy src to dst (cap bytes), one printable line, truncated. */
static void put(char *dst, size_t cap, const char *src)
{
    if (!dst || cap == 0)
        return;
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++)
        dst[i] = printable((unsigned char)src[i]);
    dst[i] = '\0';
}

static void __attribute__((format(printf, 3, 4))) putf(char *dst, size_t cap, const char *fmt, ...)
{
    char tmp[REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put(dst, cap, tmp);
}

/* ---- clock and socket I/O ---- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events or deadline (ms) passes: 1 ready,
 * 0 timeout, -1 poll error (errno). Errors and hang-ups count as ready
 * (the next recv or send reports them). */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* The client is unusable from now on; the socket is closed at once so that
 * the server sees the end (and drops a message it was receiving). */
static int __attribute__((format(printf, 2, 3))) broke(smtp_client *c, const char *fmt, ...)
{
    if (!c->broken) {
        char tmp[REASON_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
        put(c->reason, sizeof c->reason, tmp);
        c->broken = 1;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->in_data = 0;
    c->out_len = 0;
    return SMTP_TEMPFAIL;
}

/* Send all n bytes within one timeout. */
static int send_all(smtp_client *c, const void *p, size_t n, const char *what)
{
    const unsigned char *b = p;
    long long deadline = now_ms() + c->timeout_ms;
    while (n) {
        ssize_t k = send(c->fd, b, n, MSG_NOSIGNAL);
        if (k > 0) {
            b += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait_fd(c->fd, POLLOUT, deadline);
            if (w == 0)
                return broke(c, "%s: timeout (%d s) sending %s", c->peer, c->timeout_ms / 1000,
                             what);
            if (w < 0)
                return broke(c, "%s: poll: %s", c->peer, strerror(errno));
            continue;
        }
        return broke(c, "%s: connection lost sending %s: %s", c->peer, what,
                     k < 0 ? strerror(errno) : "nothing written");
    }
    return SMTP_OK;
}

static int flush(smtp_client *c)
{
    if (c->out_len == 0)
        return SMTP_OK;
    int rc = send_all(c, c->out, c->out_len, "the message");
    c->out_len = 0;
    return rc;
}

/* ---- replies ---- */

static int digit(unsigned char b, char lo, char hi)
{
    return b >= lo && b <= hi;
}

/* Append text to the joined last reply, a space before it unless first. */
static void last_append(smtp_client *c, size_t *len, const unsigned char *p, size_t n)
{
    if (*len > 0 && *len + 1 < sizeof c->last)
        c->last[(*len)++] = ' ';
    for (size_t i = 0; i < n && *len + 1 < sizeof c->last; i++)
        c->last[(*len)++] = printable(p[i]);
    c->last[*len] = '\0';
}

/* Read one whole reply (all its lines) within one timeout. Returns its code
 * (200-599) with the text in c->last, or SMTP_TEMPFAIL with the client
 * broken. what names the command, for messages. */
static int read_reply(smtp_client *c, const char *what)
{
    long long deadline = now_ms() + c->timeout_ms;
    size_t used = 0; /* bytes of earlier lines of this reply */
    size_t last_len = 0;
    int code = 0;
    const char *doubt = strcmp(what, "the end of data") == 0
                            ? " (the message may or may not have been queued)"
                            : "";
    c->last[0] = '\0';
    for (;;) {
        /* One line, through LF. */
        unsigned char *line = c->in + c->in_off;
        size_t avail = c->in_len - c->in_off;
        unsigned char *lf = memchr(line, '\n', avail);
        if (!lf) {
            if (used + avail >= SMTP_REPLY_MAX)
                return broke(c, "%s: reply to %s longer than %d bytes", c->peer, what,
                             SMTP_REPLY_MAX);
            if (c->in_off > 0) {
                memmove(c->in, line, avail);
                c->in_off = 0;
                c->in_len = avail;
            }
            ssize_t k = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
            if (k > 0) {
                c->in_len += (size_t)k;
                continue;
            }
            if (k == 0)
                return broke(c, "%s: connection closed by the server waiting for the reply to %s%s",
                             c->peer, what, doubt);
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return broke(c, "%s: connection lost waiting for the reply to %s: %s%s", c->peer,
                             what, strerror(errno), doubt);
            int w = wait_fd(c->fd, POLLIN, deadline);
            if (w == 0)
                return broke(c, "%s: timeout (%d s) waiting for the reply to %s%s", c->peer,
                             c->timeout_ms / 1000, what, doubt);
            if (w < 0)
                return broke(c, "%s: poll: %s", c->peer, strerror(errno));
            continue;
        }
        size_t n = (size_t)(lf - line) + 1;
        used += n;
        if (used > SMTP_REPLY_MAX)
            return broke(c, "%s: reply to %s longer than %d bytes", c->peer, what, SMTP_REPLY_MAX);
        c->in_off += n;
        size_t len = n - 1; /* without LF, and without the CR before it */
        if (len > 0 && line[len - 1] == '\r')
            len--;

        /* "NNN text", "NNN-text" (more follows) or "NNN". */
        if (len < 3 || !digit(line[0], '2', '5') || !digit(line[1], '0', '5') ||
            !digit(line[2], '0', '9') || (len > 3 && line[3] != ' ' && line[3] != '-')) {
            char bad[80];
            size_t m = len < sizeof bad - 1 ? len : sizeof bad - 1;
            memcpy(bad, line, m);
            bad[m] = '\0';
            return broke(c, "%s: malformed reply to %s: \"%s\"", c->peer, what, bad);
        }
        int this_code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (code && this_code != code)
            return broke(c, "%s: reply to %s mixes codes %d and %d", c->peer, what, code,
                         this_code);
        if (!code) {
            code = this_code;
            last_append(c, &last_len, line, 3);
        }
        if (len > 4)
            last_append(c, &last_len, line + 4, len - 4);
        if (len > 3 && line[3] == '-')
            continue;
        break;
    }
    if (c->in_off < c->in_len)
        return broke(c, "%s: unexpected data after the reply to %s", c->peer, what);
    c->in_off = c->in_len = 0;
    return code;
}

/* Send one command line (CRLF added) and read the reply: its code, or
 * SMTP_TEMPFAIL with the client broken. */
static int command(smtp_client *c, const char *line, const char *what)
{
    char buf[SMTP_ADDRESS_MAX + 64];
    int n = snprintf(buf, sizeof buf, "%s\r\n", line);
    if (n < 0 || (size_t)n >= sizeof buf)
        return broke(c, "%s: command too long", what); /* not reached: callers check */
    int rc = send_all(c, buf, (size_t)n, what);
    return rc ? rc : read_reply(c, what);
}

/* The result for a reply code when want (2 or 3) was the expected class.
 * 421 and codes of no sense here break the client. */
static int classify(smtp_client *c, int code, int want, const char *what)
{
    if (code < 0)
        return SMTP_TEMPFAIL;
    if (code / 100 == want)
        return SMTP_OK;
    if (code == 421)
        return broke(c, "%s: service closing (421) after %s: %s", c->peer, what, c->last);
    if (code / 100 == 4)
        return SMTP_TEMPFAIL;
    if (code / 100 == 5)
        return SMTP_PERMFAIL;
    return broke(c, "%s: unexpected reply to %s: %s", c->peer, what, c->last);
}

/* The reply for the caller: the server's when it refused (4xx, 5xx),
 * else (local failure, protocol error) the reason the client broke. */
static void report(const smtp_client *c, int code, char *reply, size_t cap)
{
    put(reply, cap, code >= 400 || !c->broken ? c->last : c->reason);
}

/* ---- addresses and targets ---- */

/* NULL if address is acceptable in a path, else what is wrong with it. */
static const char *address_problem(const char *a, int empty_ok)
{
    if (!a)
        return "no address";
    if (!*a && !empty_ok)
        return "empty";
    size_t n = strlen(a);
    if (n > SMTP_ADDRESS_MAX)
        return "longer than 256 octets";
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)a[i];
        if (b == '\r' || b == '\n')
            return "contains a line break";
        if (b == ' ')
            return "contains a space";
        if (b < 0x20 || b == 0x7f)
            return "contains a control character";
        if (b == '<' || b == '>')
            return "contains an angle bracket";
    }
    return NULL;
}

typedef struct {
    int is_unix;
    int bracketed;
    char host[256];
    char port[6];
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
} target_t;

/* Parse target; 0, or -1 with why. */
static int parse_target(target_t *t, const char *target, char *why, size_t cap)
{
    static const char forms[] = "(want HOST:PORT, [IPv6]:PORT or unix:/path)";
    memset(t, 0, sizeof *t);
    if (!target || !*target) {
        putf(why, cap, "no SMTP target %s", forms);
        return -1;
    }
    if (strlen(target) > TARGET_MAX) {
        putf(why, cap, "SMTP target too long");
        return -1;
    }
    if (strncmp(target, "unix:", 5) == 0) {
        const char *path = target + 5;
        if (!*path) {
            putf(why, cap, "SMTP target \"%s\": no socket path after unix:", target);
            return -1;
        }
        if (strlen(path) >= sizeof t->path) {
            putf(why, cap, "SMTP target \"%s\": socket path longer than %zu bytes", target,
                 sizeof t->path - 1);
            return -1;
        }
        t->is_unix = 1;
        strcpy(t->path, path);
        return 0;
    }
    const char *host = target, *host_end, *port;
    if (target[0] == '[') {
        host = target + 1;
        host_end = strchr(host, ']');
        if (!host_end) {
            putf(why, cap, "SMTP target \"%s\": no ] after the IPv6 address %s", target, forms);
            return -1;
        }
        if (host_end[1] != ':') {
            putf(why, cap, "SMTP target \"%s\": no :PORT after [IPv6] %s", target, forms);
            return -1;
        }
        port = host_end + 2;
        t->bracketed = 1;
    } else {
        host_end = strchr(target, ':');
        if (!host_end) {
            putf(why, cap, "SMTP target \"%s\": no port %s", target, forms);
            return -1;
        }
        if (strchr(host_end + 1, ':')) {
            putf(why, cap, "SMTP target \"%s\": an IPv6 address must be in brackets %s", target,
                 forms);
            return -1;
        }
        port = host_end + 1;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof t->host) {
        putf(why, cap, "SMTP target \"%s\": %s host %s", target, hlen ? "too long a" : "no", forms);
        return -1;
    }
    for (size_t i = 0; i < hlen; i++) {
        unsigned char b = (unsigned char)host[i];
        if (b <= ' ' || b >= 0x7f || b == '/' || (b == ':' && !t->bracketed)) {
            putf(why, cap, "SMTP target \"%s\": bad character in the host", target);
            return -1;
        }
    }
    size_t plen = strspn(port, "0123456789");
    unsigned long pn = plen >= 1 && plen <= 5 && !port[plen] ? strtoul(port, NULL, 10) : 0;
    if (pn == 0 || pn > 65535) {
        putf(why, cap, "SMTP target \"%s\": port \"%s\" is not a number from 1 to 65535", target,
             port);
        return -1;
    }
    memcpy(t->host, host, hlen);
    snprintf(t->port, sizeof t->port, "%lu", pn);
    return 0;
}

/* A connected non-blocking socket for one address, or -1 with why. */
static int connect_one(int family, const struct sockaddr *sa, socklen_t salen, int timeout_ms,
                       const char *peer, char *why, size_t cap)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        putf(why, cap, "%s: socket: %s", peer, strerror(errno));
        return -1;
    }
    int rc = connect(fd, sa, salen);
    if (rc < 0 && (errno == EINPROGRESS || errno == EINTR)) { /* EINTR: it goes on */
        int w = wait_fd(fd, POLLOUT, now_ms() + timeout_ms);
        int err = 0;
        socklen_t elen = sizeof err;
        if (w == 0) {
            putf(why, cap, "%s: timeout (%d s) connecting", peer, timeout_ms / 1000);
            close(fd);
            return -1;
        }
        if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
            err = errno;
        if (err) {
            putf(why, cap, "%s: cannot connect: %s", peer, strerror(err));
            close(fd);
            return -1;
        }
        rc = 0;
    }
    if (rc < 0) {
        putf(why, cap, "%s: cannot connect: %s", peer,
             errno == EAGAIN ? "the server's listen queue is full" : strerror(errno));
        close(fd);
        return -1;
    }
    if (family != AF_UNIX) {
        int one = 1; /* commands and the last piece of data go out at once */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* Connect to t: the socket, or SMTP_TEMPFAIL/SMTP_PERMFAIL with why. */
static int connect_target(const target_t *t, const char *peer, int timeout_ms, int *fd, char *why,
                          size_t cap)
{
    if (t->is_unix) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        memcpy(sun.sun_path, t->path, strlen(t->path) + 1);
        *fd = connect_one(AF_UNIX, (struct sockaddr *)&sun, sizeof sun, timeout_ms, peer, why, cap);
        return *fd < 0 ? SMTP_TEMPFAIL : SMTP_OK;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                             .ai_family = t->bracketed ? AF_INET6 : AF_UNSPEC};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(t->host, t->port, &hints, &res);
    if (g && t->bracketed && g != EAI_MEMORY && g != EAI_SYSTEM) { /* no DNS here */
        putf(why, cap, "SMTP target \"%s\": \"%s\" is not an IPv6 address", peer, t->host);
        return SMTP_PERMFAIL;
    }
    if (g == EAI_NONAME) { /* not a literal: a name */
        hints.ai_flags = AI_NUMERICSERV;
        g = getaddrinfo(t->host, t->port, &hints, &res);
    }
    if (g) {
        putf(why, cap, "%s: cannot resolve %s: %s", peer, t->host,
             g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
        return SMTP_TEMPFAIL;
    }
    *fd = -1;
    for (struct addrinfo *ai = res; ai && *fd < 0; ai = ai->ai_next)
        *fd = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, timeout_ms, peer, why, cap);
    freeaddrinfo(res);
    return *fd < 0 ? SMTP_TEMPFAIL : SMTP_OK;
}

/* ---- the API ---- */

/* Best-effort QUIT with a short timeout; the socket stays for the caller. */
static void quit(smtp_client *c)
{
    if (c->fd < 0 || c->broken || c->in_data)
        return;
    if (c->timeout_ms > SMTP_QUIT_TIMEOUT * 1000)
        c->timeout_ms = SMTP_QUIT_TIMEOUT * 1000;
    (void)command(c, "QUIT", "QUIT");
}

static void destroy(smtp_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    explicit_bzero(c->out, sizeof c->out); /* a member's copy of a post */
    free(c);
}

int smtp_open(smtp_client **out, const char *target, const char *helo, int timeout_s, char *why,
              size_t why_cap)
{
    put(why, why_cap, "");
    if (!out) {
        put(why, why_cap, "smtp_open: no result pointer");
        return SMTP_PERMFAIL;
    }
    *out = NULL;
    target_t t;
    if (parse_target(&t, target, why, why_cap))
        return SMTP_PERMFAIL;
    const char *hp = address_problem(helo, 0);
    if (hp || strchr(helo, '@')) {
        putf(why, why_cap, "bad HELO name: %s", hp ? hp : "contains @");
        return SMTP_PERMFAIL;
    }
    if (timeout_s < 1 || timeout_s > 86400) {
        putf(why, why_cap, "bad SMTP timeout %d s (want 1 to 86400)", timeout_s);
        return SMTP_PERMFAIL;
    }

    smtp_client *c = calloc(1, sizeof *c);
    if (!c) {
        put(why, why_cap, "out of memory");
        return SMTP_TEMPFAIL;
    }
    c->timeout_ms = timeout_s * 1000;
    put(c->peer, sizeof c->peer, target);
    int rc = connect_target(&t, c->peer, c->timeout_ms, &c->fd, why, why_cap);
    if (rc) {
        free(c);
        return rc;
    }

    const char *stage = "the greeting";
    int code = read_reply(c, stage);
    rc = classify(c, code, 2, stage);
    if (rc == SMTP_OK && code != 220)
        rc = broke(c, "%s: unexpected greeting: %s", c->peer, c->last);
    char cmd[SMTP_ADDRESS_MAX + 16];
    if (rc == SMTP_OK) {
        snprintf(cmd, sizeof cmd, "EHLO %s", helo);
        code = command(c, cmd, stage = "EHLO");
        rc = classify(c, code, 2, stage);
    }
    if (rc == SMTP_PERMFAIL && strcmp(stage, "EHLO") == 0) {
        snprintf(cmd, sizeof cmd, "HELO %s", helo);
        code = command(c, cmd, stage = "HELO");
        rc = classify(c, code, 2, stage);
    }
    if (rc != SMTP_OK) {
        if (c->broken)
            put(why, why_cap, c->reason);
        else
            putf(why, why_cap, "%s: refused at %s: %s", c->peer, stage, c->last);
        quit(c);
        destroy(c);
        return rc;
    }
    *out = c;
    return SMTP_OK;
}

/* RSET after a refusal, at once, so that the next smtp_begin starts on a
 * clean session; any reply but 2xx breaks the client. */
static void reset(smtp_client *c)
{
    char saved[LAST_MAX];
    memcpy(saved, c->last, sizeof saved); /* the caller reports the refusal, not RSET's reply */
    int code = command(c, "RSET", "RSET");
    if (code >= 0 && code / 100 != 2)
        broke(c, "%s: RSET refused: %s", c->peer, c->last);
    memcpy(c->last, saved, sizeof saved);
}

int smtp_begin(smtp_client *c, const char *sender, const char *rcpt, char *reply, size_t cap)
{
    put(reply, cap, "");
    if (!c) {
        put(reply, cap, "no SMTP connection");
        return SMTP_TEMPFAIL;
    }
    if (c->in_data)
        broke(c,
              "%s: a message was abandoned before its end; connection dropped so that it is "
              "not delivered",
              c->peer);
    if (c->broken) {
        putf(reply, cap, "connection unusable: %s", c->reason);
        return SMTP_TEMPFAIL;
    }
    const char *p;
    if ((p = address_problem(sender, 1))) {
        putf(reply, cap, "refused sender address \"%.300s\": %s", sender ? sender : "", p);
        return SMTP_PERMFAIL;
    }
    if ((p = address_problem(rcpt, 0))) {
        putf(reply, cap, "refused recipient address \"%.300s\": %s", rcpt ? rcpt : "", p);
        return SMTP_PERMFAIL;
    }

    char cmd[SMTP_ADDRESS_MAX + 16];
    static const char *const what[] = {"MAIL FROM", "RCPT TO", "DATA"};
    for (int i = 0; i < 3; i++) {
        if (i == 0)
            snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>", sender);
        else if (i == 1)
            snprintf(cmd, sizeof cmd, "RCPT TO:<%s>", rcpt);
        else
            snprintf(cmd, sizeof cmd, "DATA");
        int code = command(c, cmd, what[i]);
        int rc = classify(c, code, i == 2 ? 3 : 2, what[i]);
        if (rc == SMTP_OK && i == 2 && code != 354)
            rc = broke(c, "%s: unexpected reply to DATA: %s", c->peer, c->last);
        if (rc != SMTP_OK) {
            report(c, code, reply, cap);
            if (!c->broken)
                reset(c);
            return rc;
        }
    }
    c->in_data = 1;
    c->at_bol = 1;
    c->prev_cr = 0;
    c->out_len = 0;
    put(reply, cap, c->last);
    return SMTP_OK;
}

int smtp_write(smtp_client *c, const void *p, size_t n)
{
    if (!c || c->broken || !c->in_data || (!p && n))
        return SMTP_TEMPFAIL;
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (c->out_len + 2 > sizeof c->out && flush(c))
            return SMTP_TEMPFAIL;
        unsigned char x = b[i];
        if (c->prev_cr) {
            c->prev_cr = 0;
            if (x == '\n')
                continue; /* the LF of a CRLF: already sent */
        }
        if (x == '\r' || x == '\n') {
            c->out[c->out_len++] = '\r';
            c->out[c->out_len++] = '\n';
            c->at_bol = 1;
            c->prev_cr = x == '\r';
            continue;
        }
        if (c->at_bol && x == '.')
            c->out[c->out_len++] = '.';
        c->out[c->out_len++] = x;
        c->at_bol = 0;
    }
    return SMTP_OK;
}

int smtp_sink(void *c, const uint8_t *p, size_t n)
{
    return smtp_write(c, p, n);
}

int smtp_end(smtp_client *c, char *reply, size_t cap)
{
    put(reply, cap, "");
    if (!c) {
        put(reply, cap, "no SMTP connection");
        return SMTP_TEMPFAIL;
    }
    if (c->broken) {
        putf(reply, cap, "connection unusable: %s", c->reason);
        return SMTP_TEMPFAIL;
    }
    if (!c->in_data) {
        put(reply, cap, "smtp_end: no message in progress");
        return SMTP_TEMPFAIL;
    }
    if (c->out_len + 5 > sizeof c->out && flush(c)) {
        put(reply, cap, c->reason);
        return SMTP_TEMPFAIL;
    }
    if (!c->at_bol) {
        c->out[c->out_len++] = '\r';
        c->out[c->out_len++] = '\n';
    }
    memcpy(c->out + c->out_len, ".\r\n", 3);
    c->out_len += 3;
    if (flush(c)) {
        put(reply, cap, c->reason);
        return SMTP_TEMPFAIL;
    }
    c->in_data = 0;
    int code = read_reply(c, "the end of data"); /* any reply ends the transaction */
    int rc = classify(c, code, 2, "the end of data");
    report(c, code, reply, cap);
    return rc;
}

const char *smtp_last_reply(const smtp_client *c)
{
    return c ? c->last : "";
}

int smtp_queue_id(const smtp_client *c, char *out, size_t cap)
{
    if (!c || c->last[0] != '2' || !out || cap == 0)
        return -1;
    const char *id = NULL;
    const char *q = strstr(c->last, "queued as ");
    if (q) {
        id = q + 10;
    } else if (strstr(c->last, " Message accepted for delivery")) {
        /* Sendmail: "250 2.0.0 ID Message accepted for delivery" */
        id = c->last + 3;
        while (*id == ' ')
            id++;
        if (digit((unsigned char)id[0], '2', '5') && id[1] == '.') /* enhanced code */
            id = strchr(id, ' ');
        while (id && *id == ' ')
            id++;
    }
    if (!id)
        return -1;
    size_t n = 0;
    while ((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'A' && id[n] <= 'Z') ||
           (id[n] >= 'a' && id[n] <= 'z'))
        n++;
    if (n == 0 || n >= cap)
        return -1;
    memcpy(out, id, n);
    out[n] = '\0';
    return 0;
}

int smtp_usable(const smtp_client *c)
{
    return c && !c->broken && c->fd >= 0;
}

void smtp_close(smtp_client *c)
{
    if (!c)
        return;
    quit(c);
    destroy(c);
}
