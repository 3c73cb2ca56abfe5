/*
 * test_smtp.c - the fan-out's SMTP client (src/milter/smtp.c) against a
 * fake server: a thread on 127.0.0.1 (port 0), [::1] or a unix socket that
 * plays a script (send this, read a line, read the data through ".", close)
 * and records every byte it receives. Each test asserts the exact bytes
 * the server got and the client's exact results.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <recrypt/stream.h> /* rc_sink_fn */
#include "smtp.h"

/* ---- the fake server ---- */

typedef struct {
    char op; /* S send arg, L read a line, D read data through ".", R read atoi(arg) bytes,
              * C close now, H hold: read nothing more until the client closes, then close;
              * after the last step: read until the client closes */
    const char *arg;
} step;
#define SEND(s) {'S', (s)}
#define LINE {'L', NULL}
#define DATA {'D', NULL}
#define READ(n) {'R', #n}
#define CLOSE {'C', NULL}
#define HOLD {'H', NULL}
#define END {0, NULL}

/* A greeting and a multi-line EHLO reply; a message accepted; QUIT. */
#define GREET                                                                                      \
    SEND("220 fake.test ESMTP\r\n"), LINE,                                                         \
        SEND("250-fake.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n")
#define ACCEPT(id)                                                                                 \
    LINE, SEND("250 2.1.0 Ok\r\n"), LINE, SEND("250 2.1.5 Ok\r\n"), LINE,                          \
        SEND("354 End data with <CR><LF>.<CR><LF>\r\n"), DATA,                                     \
        SEND("250 2.0.0 Ok: queued as " id "\r\n")
#define BYE LINE, SEND("221 2.0.0 Bye\r\n")

#define T_EHLO "EHLO client.test\r\n"
#define T_QUIT "QUIT\r\n"
#define HELO_NAME "client.test"

enum { TCP4, TCP6, UNIX };

typedef struct {
    int lfd;
    char target[160];
    char dir[64], path[128];
    const step *script;
    pthread_t th;
    char *got; /* everything received, NUL-terminated */
    size_t len, cap, used;
    char error[200]; /* a server-side failure: "" if none */
} fake;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Receive more into f->got: bytes received, 0 at EOF, -1 on error or when
 * the client sends nothing for 5 s (then f->error says so). */
static ssize_t recv_more(fake *f, int fd, const char *waiting_for)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1) {
        snprintf(f->error, sizeof f->error, "server: nothing received waiting for %s",
                 waiting_for);
        return -1;
    }
    if (f->cap - f->len < 65536) {
        f->cap = f->cap * 2 + 65536;
        f->got = realloc(f->got, f->cap + 1);
        if (!f->got)
            abort();
    }
    ssize_t n = recv(fd, f->got + f->len, f->cap - f->len, 0);
    if (n > 0)
        f->len += (size_t)n;
    f->got[f->len] = '\0';
    return n;
}

static void *serve(void *arg)
{
    fake *f = arg;
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1) {
        snprintf(f->error, sizeof f->error, "server: no connection");
        return NULL;
    }
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) {
        snprintf(f->error, sizeof f->error, "server: accept: %s", strerror(errno));
        return NULL;
    }
    for (const step *s = f->script; s->op; s++) {
        switch (s->op) {
        case 'S':
            /* The client may have gone (a reply too long for it): ignore errors. */
            for (size_t off = 0, n = strlen(s->arg); off < n;) {
                ssize_t k = send(fd, s->arg + off, n - off, MSG_NOSIGNAL);
                if (k <= 0)
                    break;
                off += (size_t)k;
            }
            break;
        case 'L':
            for (;;) {
                char *nl = memchr(f->got + f->used, '\n', f->len - f->used);
                if (nl) {
                    f->used = (size_t)(nl - f->got) + 1;
                    break;
                }
                if (recv_more(f, fd, "a command line") <= 0)
                    goto out;
            }
            break;
        case 'D': /* the LF before the data is the one ending "DATA\r\n" */
            for (;;) {
                char *end = memmem(f->got + f->used - 1, f->len - f->used + 1, "\n.\r\n", 4);
                if (end) {
                    f->used = (size_t)(end - f->got) + 4;
                    break;
                }
                if (recv_more(f, fd, "the data") <= 0)
                    goto out;
            }
            break;
        case 'R':
            while (f->len - f->used < (size_t)atoi(s->arg))
                if (recv_more(f, fd, "data bytes") <= 0)
                    goto out;
            f->used += (size_t)atoi(s->arg);
            break;
        case 'C':
            close(fd);
            return NULL;
        case 'H': {
            struct pollfd h = {.fd = fd, .events = POLLRDHUP};
            if (poll(&h, 1, 5000) != 1)
                snprintf(f->error, sizeof f->error, "server: the client did not close");
            goto out;
        }
        }
    }
    while (recv_more(f, fd, "the client to close") > 0)
        ;
out:
    close(fd);
    return NULL;
}

/* Start a fake server playing script; NULL if kind is unavailable (IPv6). */
static fake *fake_start(int kind, const step *script)
{
    fake *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->script = script;
    f->cap = 65536;
    f->got = calloc(1, f->cap + 1);
    assert_non_null(f->got);
    if (kind == UNIX) {
        strcpy(f->dir, "/tmp/test_smtp.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof f->path, "%s/smtp.sock", f->dir);
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        strcpy(sun.sun_path, f->path);
        f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_true(f->lfd >= 0);
        assert_int_equal(bind(f->lfd, (struct sockaddr *)&sun, sizeof sun), 0);
        snprintf(f->target, sizeof f->target, "unix:%s", f->path);
    } else if (kind == TCP4) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof sin;
        f->lfd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(f->lfd >= 0);
        assert_int_equal(bind(f->lfd, (struct sockaddr *)&sin, sizeof sin), 0);
        assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sin, &sl), 0);
        snprintf(f->target, sizeof f->target, "127.0.0.1:%u", ntohs(sin.sin_port));
    } else {
        struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        socklen_t sl = sizeof sin6;
        f->lfd = socket(AF_INET6, SOCK_STREAM, 0);
        if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sin6, sizeof sin6) != 0) {
            if (f->lfd >= 0)
                close(f->lfd);
            free(f->got);
            free(f);
            return NULL;
        }
        assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sin6, &sl), 0);
        snprintf(f->target, sizeof f->target, "[::1]:%u", ntohs(sin6.sin6_port));
    }
    assert_int_equal(listen(f->lfd, 4), 0);
    assert_int_equal(pthread_create(&f->th, NULL, serve, f), 0);
    return f;
}

/* Wait for the server to finish its script and see the client close. */
static void fake_join(fake *f)
{
    if (f->lfd < 0)
        return;
    assert_int_equal(pthread_join(f->th, NULL), 0);
    close(f->lfd);
    f->lfd = -1;
    if (f->path[0]) {
        unlink(f->path);
        rmdir(f->dir);
    }
}

/* Join the server, check it got exactly want (and had no trouble), free. */
static void fake_finish(fake *f, const char *want)
{
    fake_join(f);
    if (f->error[0])
        fail_msg("%s (received so far: \"%s\")", f->error, f->got);
    assert_string_equal(f->got, want);
    free(f->got);
    free(f);
}

/* ---- client helpers ---- */

static smtp_client *open_ok(const fake *f)
{
    smtp_client *c = NULL;
    char why[256];
    int rc = smtp_open(&c, f->target, HELO_NAME, 5, why, sizeof why);
    if (rc != SMTP_OK)
        fail_msg("smtp_open %s: %d %s", f->target, rc, why);
    assert_non_null(c);
    assert_true(smtp_usable(c));
    return c;
}

static void send_ok(smtp_client *c, const char *from, const char *to, const char *body,
                    const char *want_reply)
{
    char reply[256];
    assert_int_equal(smtp_begin(c, from, to, reply, sizeof reply), SMTP_OK);
    assert_string_equal(reply, "354 End data with <CR><LF>.<CR><LF>");
    assert_int_equal(smtp_write(c, body, strlen(body)), 0);
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_OK);
    assert_string_equal(reply, want_reply);
    assert_string_equal(smtp_last_reply(c), want_reply);
}

static int has_crlf(const char *s)
{
    return strchr(s, '\r') || strchr(s, '\n');
}

/* ---- tests ---- */

/* Three messages on one connection, the last with the null sender. */
static void test_three_messages(void **state)
{
    (void)state;
    const step script[] = {GREET,        ACCEPT("AAA111"), ACCEPT("BBB222"),
                           ACCEPT("CCC333"), BYE,          END};
    fake *f = fake_start(TCP4, script);
    smtp_client *c = open_ok(f);
    assert_string_equal(smtp_last_reply(c), "250 fake.test PIPELINING SIZE 10240000 8BITMIME");
    char id[32];
    assert_int_equal(smtp_queue_id(c, id, sizeof id), -1); /* no queue id in an EHLO reply */

    send_ok(c, "list-bounces@example.org", "alice@example.org", "Subject: 1\n\none\n",
            "250 2.0.0 Ok: queued as AAA111");
    assert_int_equal(smtp_queue_id(c, id, sizeof id), 0);
    assert_string_equal(id, "AAA111");
    assert_int_equal(smtp_queue_id(c, id, 6), -1); /* does not fit */
    send_ok(c, "list-bounces@example.org", "bob@example.net", "Subject: 2\r\n\r\ntwo\r\n",
            "250 2.0.0 Ok: queued as BBB222");
    assert_int_equal(smtp_queue_id(c, id, sizeof id), 0);
    assert_string_equal(id, "BBB222");
    send_ok(c, "", "carol@example.com", "Subject: 3\n\nthree\n", "250 2.0.0 Ok: queued as CCC333");
    assert_int_equal(smtp_queue_id(c, id, sizeof id), 0);
    assert_string_equal(id, "CCC333");
    assert_true(smtp_usable(c));
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<list-bounces@example.org>\r\n"
                          "RCPT TO:<alice@example.org>\r\n"
                          "DATA\r\n"
                          "Subject: 1\r\n\r\none\r\n.\r\n"
                          "MAIL FROM:<list-bounces@example.org>\r\n"
                          "RCPT TO:<bob@example.net>\r\n"
                          "DATA\r\n"
                          "Subject: 2\r\n\r\ntwo\r\n.\r\n"
                          "MAIL FROM:<>\r\n"
                          "RCPT TO:<carol@example.com>\r\n"
                          "DATA\r\n"
                          "Subject: 3\r\n\r\nthree\r\n.\r\n" T_QUIT);
}

static void write_pieces(smtp_client *c, const char *const *pieces)
{
    for (; *pieces; pieces++)
        assert_int_equal(smtp_write(c, *pieces, strlen(*pieces)), 0);
}

/* Line ends and dot-stuffing, across piece boundaries. */
static void test_data_transparency(void **state)
{
    (void)state;
    const step script[] = {GREET, ACCEPT("A1"), ACCEPT("A2"), ACCEPT("A3"), ACCEPT("A4"), BYE, END};
    fake *f = fake_start(TCP4, script);
    smtp_client *c = open_ok(f);
    char reply[256];

    /* 1: every case in one message. */
    const char *const m1[] = {".\n",        /* a lone dot */
                              "..x\n",      /* a line starting with two dots */
                              "a.b\n. c\n", /* a dot inside a line; a dot then a space */
                              "line\n",     "", /* an empty piece */
                              ".",          "y\n",  /* a line's leading dot alone in a piece */
                              "b\r",        "\nc\n", /* CR | LF */
                              "bare\rcr\n", /* a bare CR */
                              "x\r",        "\r\n", /* CR | CRLF: two line ends */
                              "\r",         ".z\n", /* CR | a line starting with a dot */
                              "lf\n",       "end", /* no final newline */
                              NULL};
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    write_pieces(c, m1);
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_OK);

    /* 2: no data at all; 3: data that is a dot without a newline. */
    send_ok(c, "s@example.org", "r@example.org", "", "250 2.0.0 Ok: queued as A2");
    send_ok(c, "s@example.org", "r@example.org", "a\n.", "250 2.0.0 Ok: queued as A3");

    /* 4: through the sink, as rc_sink_fn; pieces that split CRLF and ".". */
    rc_sink_fn sink = smtp_sink;
    const char *m4 = "one\r\n.two\r\n\r\n..\r\nend\r\n";
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    for (size_t i = 0; m4[i]; i++)
        assert_int_equal(sink(c, (const uint8_t *)m4 + i, 1), 0);
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_OK);
    assert_string_equal(reply, "250 2.0.0 Ok: queued as A4");

    smtp_close(c);
    const char *head = "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n";
    char want[2048];
    snprintf(want, sizeof want,
             "%s%s"
             "..\r\n"
             "...x\r\n"
             "a.b\r\n.. c\r\n"
             "line\r\n"
             "..y\r\n"
             "b\r\nc\r\n"
             "bare\r\ncr\r\n"
             "x\r\n\r\n"
             "\r\n..z\r\n"
             "lf\r\n"
             "end\r\n"
             ".\r\n"
             "%s.\r\n"
             "%sa\r\n..\r\n.\r\n"
             "%sone\r\n..two\r\n\r\n...\r\nend\r\n.\r\n" T_QUIT,
             T_EHLO, head, head, head, head);
    fake_finish(f, want);
}

/* A message larger than the output buffer, written in odd-sized pieces: the
 * buffer's flushes must not disturb stuffing or line ends. */
static void test_large_message(void **state)
{
    (void)state;
    const step script[] = {GREET, ACCEPT("BIG"), BYE, END};
    enum { LINES = 3000, LINE_LEN = 100 };
    char *in = malloc(LINES * LINE_LEN + 1);
    char *want = malloc(LINES * (LINE_LEN + 2) + 512);
    assert_non_null(in);
    assert_non_null(want);
    size_t wl = (size_t)sprintf(
        want, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n");
    for (int i = 0; i < LINES; i++) {
        char *l = in + (size_t)i * LINE_LEN;
        memset(l, 'a' + i % 26, LINE_LEN - 1);
        l[0] = i % 3 == 0 ? '.' : 'L';
        l[LINE_LEN - 1] = '\n';
        if (l[0] == '.')
            want[wl++] = '.';
        memcpy(want + wl, l, LINE_LEN - 1);
        wl += LINE_LEN - 1;
        want[wl++] = '\r';
        want[wl++] = '\n';
    }
    strcpy(want + wl, ".\r\n" T_QUIT);

    fake *f = fake_start(TCP4, script);
    smtp_client *c = open_ok(f);
    char reply[256];
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    size_t total = (size_t)LINES * LINE_LEN;
    for (size_t off = 0; off < total; off += 777)
        assert_int_equal(smtp_write(c, in + off, total - off < 777 ? total - off : 777), 0);
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_OK);
    assert_string_equal(reply, "250 2.0.0 Ok: queued as BIG");
    smtp_close(c);
    fake_finish(f, want);
    free(in);
    free(want);
}

/* Multi-line greeting and EHLO reply; a reply without text is valid. */
static void test_multiline_replies(void **state)
{
    (void)state;
    const step script[] = {SEND("220-fake.test ESMTP\r\n220-second line\r\n220 third\r\n"),
                           LINE,
                           SEND("250-fake.test\r\n250-SIZE\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME"
                                "\r\n250-DSN\r\n250 SMTPUTF8\r\n"),
                           LINE,
                           SEND("250-2.1.0 sender\r\n250-2.1.0 is\r\n250 2.1.0 fine\r\n"),
                           LINE,
                           SEND("250\r\n"), /* no text */
                           LINE,
                           SEND("354-go\r\n354 on\r\n"),
                           DATA,
                           SEND("250-2.0.0 Ok\n250 2.0.0 queued as Q1\n"), /* bare LF line ends */
                           BYE,
                           END};
    fake *f = fake_start(TCP4, script);
    smtp_client *c = open_ok(f);
    assert_string_equal(smtp_last_reply(c),
                        "250 fake.test SIZE ENHANCEDSTATUSCODES 8BITMIME DSN SMTPUTF8");
    char reply[256];
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    assert_string_equal(reply, "354 go on");
    assert_int_equal(smtp_write(c, "x\n", 2), 0);
    char small[8]; /* the reply is truncated to its buffer */
    assert_int_equal(smtp_end(c, small, sizeof small), SMTP_OK);
    assert_string_equal(small, "250 2.0");
    assert_string_equal(smtp_last_reply(c), "250 2.0.0 Ok 2.0.0 queued as Q1");
    char id[16];
    assert_int_equal(smtp_queue_id(c, id, sizeof id), 0);
    assert_string_equal(id, "Q1");
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n"
                          "x\r\n.\r\n" T_QUIT);
}

/* EHLO refused with 502: HELO; HELO refused too: SMTP_PERMFAIL. */
static void test_helo_fallback(void **state)
{
    (void)state;
    const step s1[] = {SEND("220 old.test SMTP\r\n"),
                       LINE,
                       SEND("502 5.5.2 Error: command not recognized\r\n"),
                       LINE,
                       SEND("250 old.test\r\n"),
                       ACCEPT("H1"),
                       BYE,
                       END};
    fake *f = fake_start(TCP4, s1);
    smtp_client *c = open_ok(f);
    assert_string_equal(smtp_last_reply(c), "250 old.test");
    send_ok(c, "s@example.org", "r@example.org", "hi\n", "250 2.0.0 Ok: queued as H1");
    smtp_close(c);
    fake_finish(f, T_EHLO "HELO client.test\r\nMAIL FROM:<s@example.org>\r\n"
                          "RCPT TO:<r@example.org>\r\nDATA\r\nhi\r\n.\r\n" T_QUIT);

    const step s2[] = {SEND("220 old.test SMTP\r\n"),
                       LINE,
                       SEND("500 5.5.1 no\r\n"),
                       LINE,
                       SEND("550 5.7.1 go away\r\n"),
                       BYE,
                       END};
    f = fake_start(TCP4, s2);
    char why[256];
    c = (smtp_client *)1;
    assert_int_equal(smtp_open(&c, f->target, HELO_NAME, 5, why, sizeof why), SMTP_PERMFAIL);
    assert_null(c);
    char want[512];
    snprintf(want, sizeof want, "%s: refused at HELO: 550 5.7.1 go away", f->target);
    assert_string_equal(why, want);
    fake_finish(f, T_EHLO "HELO client.test\r\n" T_QUIT);
}

/* 5xx at RCPT, MAIL and DATA: SMTP_PERMFAIL, RSET, the next message goes. */
static void test_permfail_then_next(void **state)
{
    (void)state;
    const step script[] = {
        GREET,
        LINE, SEND("250 2.1.0 Ok\r\n"), LINE,
        SEND("550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown\r\n"),
        LINE, SEND("250 2.0.0 Ok\r\n"), /* RSET */
        ACCEPT("P1"),
        LINE, SEND("553 5.7.1 <s@example.org>: Sender address rejected\r\n"),
        LINE, SEND("250 2.0.0 Ok\r\n"), /* RSET */
        LINE, SEND("250 2.1.0 Ok\r\n"), LINE, SEND("250 2.1.5 Ok\r\n"),
        LINE, SEND("554 5.5.1 Error: no valid recipients\r\n"),
        LINE, SEND("250 2.0.0 Ok\r\n"), /* RSET */
        ACCEPT("P2"),
        BYE, END};
    fake *f = fake_start(TCP4, script);
    smtp_client *c = open_ok(f);
    char reply[256];
    assert_int_equal(smtp_begin(c, "s@example.org", "nobody@example.org", reply, sizeof reply),
                     SMTP_PERMFAIL);
    assert_string_equal(reply,
                        "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown");
    assert_string_equal(smtp_last_reply(c), reply); /* not RSET's reply */
    assert_true(smtp_usable(c));
    send_ok(c, "s@example.org", "r@example.org", "x\n", "250 2.0.0 Ok: queued as P1");

    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_PERMFAIL);
    assert_string_equal(reply, "553 5.7.1 <s@example.org>: Sender address rejected");
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_PERMFAIL);
    assert_string_equal(reply, "554 5.5.1 Error: no valid recipients");
    assert_true(smtp_usable(c));
    send_ok(c, "s@example.org", "r@example.org", "y\n", "250 2.0.0 Ok: queued as P2");
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<nobody@example.org>\r\nRSET\r\n"
                          "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n"
                          "x\r\n.\r\n"
                          "MAIL FROM:<s@example.org>\r\nRSET\r\n"
                          "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n"
                          "RSET\r\n"
                          "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n"
                          "y\r\n.\r\n" T_QUIT);
}

/* 4xx at MAIL: SMTP_TEMPFAIL, RSET, still usable. */
static void test_tempfail_at_mail(void **state)
{
    (void)state;
    const step script[] = {GREET,
                           LINE,
                           SEND("451 4.3.0 Error: queue file write error\r\n"),
                           LINE,
                           SEND("250 2.0.0 Ok\r\n"),
                           ACCEPT("T1"),
                           BYE,
                           END};
    fake *f = fake_start(TCP4, script);
    smtp_client *c = open_ok(f);
    char reply[256];
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_TEMPFAIL);
    assert_string_equal(reply, "451 4.3.0 Error: queue file write error");
    assert_true(smtp_usable(c));
    send_ok(c, "s@example.org", "r@example.org", "z\n", "250 2.0.0 Ok: queued as T1");
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRSET\r\n"
                          "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n"
                          "z\r\n.\r\n" T_QUIT);

    /* RSET refused: the refusal is still reported, the connection dropped. */
    const step s2[] = {GREET, LINE, SEND("452 4.3.1 Insufficient system storage\r\n"), LINE,
                       SEND("500 5.5.1 no\r\n"), END};
    f = fake_start(TCP4, s2);
    c = open_ok(f);
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_TEMPFAIL);
    assert_string_equal(reply, "452 4.3.1 Insufficient system storage");
    assert_false(smtp_usable(c));
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_TEMPFAIL);
    char want[512];
    snprintf(want, sizeof want, "connection unusable: %s: RSET refused: 500 5.5.1 no", f->target);
    assert_string_equal(reply, want);
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRSET\r\n");
}

#define DATA_TO(reply)                                                                             \
    LINE, SEND("250 2.1.0 Ok\r\n"), LINE, SEND("250 2.1.5 Ok\r\n"), LINE,                          \
        SEND("354 End data with <CR><LF>.<CR><LF>\r\n"), DATA, SEND(reply)

/* 4xx and 5xx after the final ".": no RSET needed, the next message goes. */
static void test_refused_at_end(void **state)
{
    (void)state;
    const step script[] = {GREET,
                           DATA_TO("451 4.7.1 Try again later\r\n"),
                           DATA_TO("554 5.7.1 Message rejected\r\n"),
                           ACCEPT("E3"),
                           BYE,
                           END};
    fake *f = fake_start(TCP4, script);
    smtp_client *c = open_ok(f);
    char reply[256];
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    assert_int_equal(smtp_write(c, "1\n", 2), 0);
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_TEMPFAIL);
    assert_string_equal(reply, "451 4.7.1 Try again later");
    char id[16];
    assert_int_equal(smtp_queue_id(c, id, sizeof id), -1);
    assert_true(smtp_usable(c));
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    assert_int_equal(smtp_write(c, "2\n", 2), 0);
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_PERMFAIL);
    assert_string_equal(reply, "554 5.7.1 Message rejected");
    assert_true(smtp_usable(c));
    send_ok(c, "s@example.org", "r@example.org", "3\n", "250 2.0.0 Ok: queued as E3");
    smtp_close(c);
    const char *h = "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n";
    char want[1024];
    snprintf(want, sizeof want, T_EHLO "%s1\r\n.\r\n%s2\r\n.\r\n%s3\r\n.\r\n" T_QUIT, h, h, h);
    fake_finish(f, want);
}

/* 421 in the middle: the client is broken, every later call fails at once
 * and sends nothing (no RSET, no QUIT). */
static void test_421(void **state)
{
    (void)state;
    const step s1[] = {GREET,
                       LINE,
                       SEND("250 2.1.0 Ok\r\n"),
                       LINE,
                       SEND("421 4.3.2 Service shutting down\r\n"),
                       CLOSE,
                       END};
    fake *f = fake_start(TCP4, s1);
    smtp_client *c = open_ok(f);
    char reply[256];
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_TEMPFAIL);
    assert_string_equal(reply, "421 4.3.2 Service shutting down");
    assert_false(smtp_usable(c));
    long long t0 = now_ms();
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_TEMPFAIL);
    assert_non_null(strstr(reply, "connection unusable: "));
    assert_non_null(strstr(reply, "421"));
    assert_int_equal(smtp_write(c, "x", 1), SMTP_TEMPFAIL);
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_TEMPFAIL);
    assert_non_null(strstr(reply, "connection unusable: "));
    assert_true(now_ms() - t0 < 100);
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\n");

    /* 421 in reply to the final ".". */
    const step s2[] = {GREET, DATA_TO("421 4.4.2 fake.test Error: timeout exceeded\r\n"), CLOSE,
                       END};
    f = fake_start(TCP4, s2);
    c = open_ok(f);
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    assert_int_equal(smtp_write(c, "x", 1), 0);
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_TEMPFAIL);
    assert_string_equal(reply, "421 4.4.2 fake.test Error: timeout exceeded");
    assert_false(smtp_usable(c));
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_TEMPFAIL);
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n"
                          "x\r\n.\r\n");
}

/* The server goes away during DATA: SMTP_TEMPFAIL, and no SIGPIPE death
 * (the default action is restored so that a send without MSG_NOSIGNAL
 * would kill the test). */
static void server_gone_in_data(int kind)
{
    signal(SIGPIPE, SIG_DFL);
    const step script[] = {GREET,
                           LINE,
                           SEND("250 2.1.0 Ok\r\n"),
                           LINE,
                           SEND("250 2.1.5 Ok\r\n"),
                           LINE,
                           SEND("354 go ahead\r\n"),
                           CLOSE,
                           END};
    fake *f = fake_start(kind, script);
    smtp_client *c = open_ok(f);
    char reply[256];
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    fake_join(f); /* the server has closed its end */
    static char block[16384];
    memset(block, 'm', sizeof block);
    int rc = 0, i;
    for (i = 0; i < 256 && rc == 0; i++) /* 4 MiB at most */
        rc = smtp_write(c, block, sizeof block);
    assert_int_equal(rc, SMTP_TEMPFAIL);
    assert_true(i <= 16); /* the second buffer flush at the latest */
    assert_false(smtp_usable(c));
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_TEMPFAIL);
    assert_non_null(strstr(reply, "connection unusable: "));
    assert_non_null(strstr(reply, "connection lost sending the message"));
    assert_false(has_crlf(reply));
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n");
}

static void test_server_gone_in_data(void **state)
{
    (void)state;
    server_gone_in_data(TCP4);
    server_gone_in_data(UNIX);

    /* The server reads part of the message and closes before replying. */
    const step script[] = {GREET,   LINE,    SEND("250 2.1.0 Ok\r\n"),
                           LINE,    SEND("250 2.1.5 Ok\r\n"), LINE,
                           SEND("354 go ahead\r\n"), READ(5), CLOSE,
                           END};
    fake *f = fake_start(TCP4, script);
    smtp_client *c = open_ok(f);
    char reply[256];
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    assert_int_equal(smtp_write(c, "12345", 5), 0);
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_TEMPFAIL);
    assert_true(strstr(reply, "connection closed by the server") ||
                strstr(reply, "connection lost"));
    assert_false(smtp_usable(c));
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n"
                          "12345\r\n.\r\n");
}

/* A server that stops answering: SMTP_TEMPFAIL after the timeout (1 s). */
static void test_timeout(void **state)
{
    (void)state;
    const step s1[] = {SEND("220 fake.test ESMTP\r\n"), LINE, END}; /* EHLO never answered */
    fake *f = fake_start(TCP4, s1);
    smtp_client *c = (smtp_client *)1;
    char why[256];
    long long t0 = now_ms();
    assert_int_equal(smtp_open(&c, f->target, HELO_NAME, 1, why, sizeof why), SMTP_TEMPFAIL);
    long long took = now_ms() - t0;
    assert_null(c);
    assert_true(took >= 900 && took < 3000);
    char want[512];
    snprintf(want, sizeof want, "%s: timeout (1 s) waiting for the reply to EHLO", f->target);
    assert_string_equal(why, want);
    fake_finish(f, T_EHLO); /* no QUIT on a connection in doubt */

    /* No reply to the final ".": the message may have been queued. */
    const step s2[] = {GREET,
                       LINE,
                       SEND("250 2.1.0 Ok\r\n"),
                       LINE,
                       SEND("250 2.1.5 Ok\r\n"),
                       LINE,
                       SEND("354 go ahead\r\n"),
                       DATA,
                       END};
    f = fake_start(TCP4, s2);
    assert_int_equal(smtp_open(&c, f->target, HELO_NAME, 1, why, sizeof why), SMTP_OK);
    char reply[256];
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    assert_int_equal(smtp_write(c, "m\n", 2), 0);
    t0 = now_ms();
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_TEMPFAIL);
    took = now_ms() - t0;
    assert_true(took >= 900 && took < 3000);
    snprintf(want, sizeof want,
             "%s: timeout (1 s) waiting for the reply to the end of data (the message may or may "
             "not have been queued)",
             f->target);
    assert_string_equal(reply, want);
    assert_false(smtp_usable(c));
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n"
                          "m\r\n.\r\n");
}

/* A server that stops reading in the middle of a message: SMTP_TEMPFAIL
 * after the timeout (1 s) once the socket's buffers are full. */
static void test_write_timeout(void **state)
{
    (void)state;
    const step script[] = {GREET,
                           LINE,
                           SEND("250 2.1.0 Ok\r\n"),
                           LINE,
                           SEND("250 2.1.5 Ok\r\n"),
                           LINE,
                           SEND("354 go ahead\r\n"),
                           HOLD,
                           END};
    fake *f = fake_start(UNIX, script);
    smtp_client *c = NULL;
    char why[256];
    assert_int_equal(smtp_open(&c, f->target, HELO_NAME, 1, why, sizeof why), SMTP_OK);
    char reply[512];
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    static char block[65536];
    memset(block, 'w', sizeof block);
    long long t0 = now_ms();
    int rc = 0;
    for (int i = 0; i < 1024 && rc == 0; i++) /* 64 MiB at most */
        rc = smtp_write(c, block, sizeof block);
    long long took = now_ms() - t0;
    assert_int_equal(rc, SMTP_TEMPFAIL);
    assert_true(took >= 900 && took < 3000);
    assert_false(smtp_usable(c));
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_TEMPFAIL);
    char want[512];
    snprintf(want, sizeof want, "connection unusable: %s: timeout (1 s) sending the message",
             f->target);
    assert_string_equal(reply, want);
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n");
}

/* Replies that break the protocol: SMTP_TEMPFAIL, connection dropped. */
static void test_malformed_replies(void **state)
{
    (void)state;
    /* 70 KiB: in 1 KiB continuation lines, and as one line. */
    char *many = malloc(71 * 1024 + 64), *one = malloc(71 * 1024 + 64);
    assert_non_null(many);
    assert_non_null(one);
    many[0] = '\0';
    for (int i = 0; i < 70; i++) {
        char line[1025];
        memset(line, 'k', sizeof line - 1);
        line[sizeof line - 1] = '\0';
        memcpy(line, "250-", 4);
        memcpy(line + 1022, "\r\n", 2);
        strcat(many, line);
    }
    strcat(many, "250 end\r\n");
    memset(one, 'k', 70 * 1024);
    memcpy(one, "250 ", 4);
    strcpy(one + 70 * 1024, "\r\n");

    static const struct {
        const char *reply, *why;
    } cases[] = {
        {"25 ok\r\n", "malformed reply to EHLO: \"25 ok\""},
        {"abc\r\n", "malformed reply to EHLO: \"abc\""},
        {"2500 ok\r\n", "malformed reply to EHLO: \"2500 ok\""},
        {"250x\r\n", "malformed reply to EHLO: \"250x\""},
        {"\r\n", "malformed reply to EHLO: \"\""},
        {"650 ok\r\n", "malformed reply to EHLO: \"650 ok\""},
        {"199 ok\r\n", "malformed reply to EHLO: \"199 ok\""},
        {"260 ok\r\n", "malformed reply to EHLO: \"260 ok\""},
        {"250-a\r\n251 b\r\n", "reply to EHLO mixes codes 250 and 251"},
        {"250 ok\r\n250 more\r\n", "unexpected data after the reply to EHLO"},
        {"250-half", "connection closed by the server waiting for the reply to EHLO"},
        {NULL, "reply to EHLO longer than 65536 bytes"},
        {NULL, "reply to EHLO longer than 65536 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *r = cases[i].reply ? cases[i].reply : i == 11 ? many : one;
        step script[] = {SEND("220 fake.test ESMTP\r\n"), LINE, SEND(r), END, END};
        if (strcmp(r, "250-half") == 0) /* and the server closes */
            script[3] = (step)CLOSE;
        fake *f = fake_start(TCP4, script);
        smtp_client *c = (smtp_client *)1;
        char why[256], want[512];
        assert_int_equal(smtp_open(&c, f->target, HELO_NAME, 5, why, sizeof why), SMTP_TEMPFAIL);
        assert_null(c);
        snprintf(want, sizeof want, "%s: %s", f->target, cases[i].why);
        assert_string_equal(why, want);
        fake_finish(f, T_EHLO); /* dropped without QUIT */
    }
    free(many);
    free(one);

    /* A reply with control characters is sanitized; bytes above 0x7e too. */
    const step s2[] = {SEND("220 fake.test ESMTP\r\n"), LINE,
                       SEND("550 5.7.1 bad\x1b[31m\tthing\x80\r\n"), LINE,
                       SEND("550 5.7.1 no\r\n"), BYE, END};
    fake *f = fake_start(TCP4, s2);
    smtp_client *c = NULL;
    char why[256], want[512];
    assert_int_equal(smtp_open(&c, f->target, HELO_NAME, 5, why, sizeof why), SMTP_PERMFAIL);
    snprintf(want, sizeof want, "%s: refused at HELO: 550 5.7.1 no", f->target);
    assert_string_equal(why, want);
    fake_finish(f, T_EHLO "HELO client.test\r\n" T_QUIT);

    const step s3[] = {GREET, LINE, SEND("550 5.1.0 a\x1b]0;b\r\n"), LINE,
                       SEND("250 2.0.0 Ok\r\n"), BYE, END};
    f = fake_start(TCP4, s3);
    c = open_ok(f);
    char reply[256];
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_PERMFAIL);
    assert_string_equal(reply, "550 5.1.0 a ]0;b");
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRSET\r\n" T_QUIT);

    /* 250 to DATA makes no sense: protocol error. */
    const step s4[] = {GREET,
                       LINE,
                       SEND("250 2.1.0 Ok\r\n"),
                       LINE,
                       SEND("250 2.1.5 Ok\r\n"),
                       LINE,
                       SEND("250 2.0.0 Ok\r\n"),
                       END};
    f = fake_start(TCP4, s4);
    c = open_ok(f);
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_TEMPFAIL);
    snprintf(want, sizeof want, "%s: unexpected reply to DATA: 250 2.0.0 Ok", f->target);
    assert_string_equal(reply, want);
    assert_false(smtp_usable(c));
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n");
}

/* Addresses that would break the command line: refused before anything is
 * sent; the connection stays usable. */
static void test_refused_addresses(void **state)
{
    (void)state;
    const step script[] = {GREET, ACCEPT("OK1"), BYE, END};
    fake *f = fake_start(TCP4, script);
    smtp_client *c = open_ok(f);
    char long_addr[300];
    memset(long_addr, 'a', sizeof long_addr - 1);
    long_addr[sizeof long_addr - 1] = '\0';
    long_addr[200] = '@';
    static const struct {
        const char *from, *to, *why;
    } cases[] = {
        {"s@example.org", "a b@example.org",
         "refused recipient address \"a b@example.org\": contains a space"},
        {"s@example.org", "a<b@example.org",
         "refused recipient address \"a<b@example.org\": contains an angle bracket"},
        {"s@example.org", "<r@example.org>",
         "refused recipient address \"<r@example.org>\": contains an angle bracket"},
        {"s@example.org", "r@example.org>\r\nRCPT TO:<evil@example.org",
         "refused recipient address \"r@example.org>  RCPT TO:<evil@example.org\": contains an "
         "angle bracket"},
        {"s@example.org", "r@example.org\r\nRSET",
         "refused recipient address \"r@example.org  RSET\": contains a line break"},
        {"s@example.org", "r@ex\nample.org",
         "refused recipient address \"r@ex ample.org\": contains a line break"},
        {"s@example.org", "r@ex\tample.org",
         "refused recipient address \"r@ex ample.org\": contains a control character"},
        {"s@example.org", "", "refused recipient address \"\": empty"},
        {"s@exa mple.org", "r@example.org",
         "refused sender address \"s@exa mple.org\": contains a space"},
        {"s@example.org>", "r@example.org",
         "refused sender address \"s@example.org>\": contains an angle bracket"},
        {"s\r@example.org", "r@example.org",
         "refused sender address \"s @example.org\": contains a line break"},
    };
    char reply[512];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(smtp_begin(c, cases[i].from, cases[i].to, reply, sizeof reply),
                         SMTP_PERMFAIL);
        assert_string_equal(reply, cases[i].why);
    }
    assert_int_equal(smtp_begin(c, "s@example.org", long_addr, reply, sizeof reply),
                     SMTP_PERMFAIL);
    assert_non_null(strstr(reply, "longer than 256 octets"));
    assert_int_equal(smtp_begin(c, NULL, "r@example.org", reply, sizeof reply), SMTP_PERMFAIL);
    assert_true(smtp_usable(c));
    send_ok(c, "s@example.org", "r@example.org", "ok\n", "250 2.0.0 Ok: queued as OK1");
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n"
                          "ok\r\n.\r\n" T_QUIT);

    /* A bad HELO name is refused before connecting (nothing listens there). */
    char why[256];
    smtp_client *none = (smtp_client *)1;
    assert_int_equal(smtp_open(&none, "127.0.0.1:9", "bad name", 5, why, sizeof why),
                     SMTP_PERMFAIL);
    assert_null(none);
    assert_string_equal(why, "bad HELO name: contains a space");
    assert_int_equal(smtp_open(&none, "127.0.0.1:9", "", 5, why, sizeof why), SMTP_PERMFAIL);
    assert_string_equal(why, "bad HELO name: empty");
    assert_int_equal(smtp_open(&none, "127.0.0.1:9", "h\r\nMAIL", 5, why, sizeof why),
                     SMTP_PERMFAIL);
    assert_string_equal(why, "bad HELO name: contains a line break");
    assert_int_equal(smtp_open(&none, "127.0.0.1:9", "h", 0, why, sizeof why), SMTP_PERMFAIL);
    assert_string_equal(why, "bad SMTP timeout 0 s (want 1 to 86400)");
}

/* unix: targets, with Sendmail's form of queue id. */
static void test_unix_target(void **state)
{
    (void)state;
    const step script[] = {
        SEND("220 fake.test ESMTP Sendmail\r\n"), LINE, SEND("250-fake.test Hello\r\n250 HELP\r\n"),
        LINE, SEND("250 2.1.0 <s@example.org>... Sender ok\r\n"),
        LINE, SEND("250 2.1.5 <r@example.org>... Recipient ok\r\n"),
        LINE, SEND("354 Enter mail, end with \".\" on a line by itself\r\n"), DATA,
        SEND("250 2.0.0 5AB1Cdef012345 Message accepted for delivery\r\n"),
        LINE, SEND("221 2.0.0 fake.test closing connection\r\n"), END};
    fake *f = fake_start(UNIX, script);
    smtp_client *c = open_ok(f);
    char reply[256];
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    assert_string_equal(reply, "354 Enter mail, end with \".\" on a line by itself");
    assert_int_equal(smtp_write(c, ".\n", 2), 0);
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_OK);
    assert_string_equal(reply, "250 2.0.0 5AB1Cdef012345 Message accepted for delivery");
    char id[32];
    assert_int_equal(smtp_queue_id(c, id, sizeof id), 0);
    assert_string_equal(id, "5AB1Cdef012345");
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n"
                          "..\r\n.\r\n" T_QUIT);
}

/* Names and IPv6 literals. */
static void test_names_and_ipv6(void **state)
{
    (void)state;
    const step script[] = {GREET, BYE, END};
    /* A name: the server listens on localhost's last address, so that when
     * the name has several, the ones before (nothing listens there) are
     * tried first and refuse. */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
    assert_int_equal(getaddrinfo("localhost", "25", &hints, &res), 0);
    int n = 0;
    for (ai = res; ai->ai_next; ai = ai->ai_next)
        n++;
    int last_family = ai->ai_family;
    freeaddrinfo(res);
    if (n == 0)
        print_message("localhost has one address: trying the next one is not tested\n");
    fake *f = fake_start(last_family == AF_INET6 ? TCP6 : TCP4, script);
    assert_non_null(f);
    char target[64];
    snprintf(target, sizeof target, "localhost:%s", strrchr(f->target, ':') + 1);
    smtp_client *c = NULL;
    char why[256];
    assert_int_equal(smtp_open(&c, target, HELO_NAME, 5, why, sizeof why), SMTP_OK);
    smtp_close(c);
    fake_finish(f, T_EHLO T_QUIT);

    f = fake_start(TCP6, script);
    if (!f) {
        print_message("no IPv6 loopback: [::1] not tested\n");
        return;
    }
    c = open_ok(f);
    smtp_close(c);
    fake_finish(f, T_EHLO T_QUIT);
}

/* Greetings: 554 is SMTP_PERMFAIL (and QUIT is sent), 421 SMTP_TEMPFAIL. */
static void test_greetings(void **state)
{
    (void)state;
    const step s1[] = {SEND("554 5.3.2 fake.test No SMTP service here\r\n"), BYE, END};
    fake *f = fake_start(TCP4, s1);
    smtp_client *c = (smtp_client *)1;
    char why[256], want[512];
    assert_int_equal(smtp_open(&c, f->target, HELO_NAME, 5, why, sizeof why), SMTP_PERMFAIL);
    assert_null(c);
    snprintf(want, sizeof want,
             "%s: refused at the greeting: 554 5.3.2 fake.test No SMTP service here", f->target);
    assert_string_equal(why, want);
    fake_finish(f, T_QUIT);

    const step s2[] = {SEND("421 4.3.2 busy\r\n"), CLOSE, END};
    f = fake_start(UNIX, s2);
    assert_int_equal(smtp_open(&c, f->target, HELO_NAME, 5, why, sizeof why), SMTP_TEMPFAIL);
    snprintf(want, sizeof want, "%s: service closing (421) after the greeting: 421 4.3.2 busy",
             f->target);
    assert_string_equal(why, want);
    fake_finish(f, "");

    const step s3[] = {SEND("250 hello\r\n"), END};
    f = fake_start(TCP4, s3);
    assert_int_equal(smtp_open(&c, f->target, HELO_NAME, 5, why, sizeof why), SMTP_TEMPFAIL);
    snprintf(want, sizeof want, "%s: unexpected greeting: 250 hello", f->target);
    assert_string_equal(why, want);
    fake_finish(f, "");
}

/* Malformed targets: SMTP_PERMFAIL with a clear reason, nothing tried. */
static void test_bad_targets(void **state)
{
    (void)state;
    static const struct {
        const char *target, *why;
    } cases[] = {
        {"", "no SMTP target (want HOST:PORT, [IPv6]:PORT or unix:/path)"},
        {"host", "SMTP target \"host\": no port (want HOST:PORT, [IPv6]:PORT or unix:/path)"},
        {"host:", "SMTP target \"host:\": port \"\" is not a number from 1 to 65535"},
        {"host:99999", "SMTP target \"host:99999\": port \"99999\" is not a number from 1 to 65535"},
        {"host:0", "SMTP target \"host:0\": port \"0\" is not a number from 1 to 65535"},
        {"host:25x", "SMTP target \"host:25x\": port \"25x\" is not a number from 1 to 65535"},
        {"host:-25", "SMTP target \"host:-25\": port \"-25\" is not a number from 1 to 65535"},
        {"host:000025x", "SMTP target \"host:000025x\": port \"000025x\" is not a number from 1 "
                         "to 65535"},
        {":25", "SMTP target \":25\": no host (want HOST:PORT, [IPv6]:PORT or unix:/path)"},
        {"[::1", "SMTP target \"[::1\": no ] after the IPv6 address (want HOST:PORT, [IPv6]:PORT "
                 "or unix:/path)"},
        {"[::1]", "SMTP target \"[::1]\": no :PORT after [IPv6] (want HOST:PORT, [IPv6]:PORT or "
                  "unix:/path)"},
        {"[::1]25", "SMTP target \"[::1]25\": no :PORT after [IPv6] (want HOST:PORT, [IPv6]:PORT "
                    "or unix:/path)"},
        {"[]:25", "SMTP target \"[]:25\": no host (want HOST:PORT, [IPv6]:PORT or unix:/path)"},
        {"::1:25", "SMTP target \"::1:25\": an IPv6 address must be in brackets (want "
                   "HOST:PORT, [IPv6]:PORT or unix:/path)"},
        {"[127.0.0.1]:25", "SMTP target \"[127.0.0.1]:25\": \"127.0.0.1\" is not an IPv6 address"},
        {"ho st:25", "SMTP target \"ho st:25\": bad character in the host"},
        {"unix:", "SMTP target \"unix:\": no socket path after unix:"},
    };
    char why[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        smtp_client *c = (smtp_client *)1;
        assert_int_equal(smtp_open(&c, cases[i].target, HELO_NAME, 5, why, sizeof why),
                         SMTP_PERMFAIL);
        assert_null(c);
        assert_string_equal(why, cases[i].why);
    }
    smtp_client *c = (smtp_client *)1;
    assert_int_equal(smtp_open(&c, NULL, HELO_NAME, 5, why, sizeof why), SMTP_PERMFAIL);
    assert_null(c);
    char longpath[200] = "unix:/";
    memset(longpath + 6, 'p', sizeof longpath - 7);
    longpath[sizeof longpath - 1] = '\0';
    assert_int_equal(smtp_open(&c, longpath, HELO_NAME, 5, why, sizeof why), SMTP_PERMFAIL);
    assert_non_null(strstr(why, "socket path longer than 107 bytes"));
    assert_false(has_crlf(why));

    /* A bad target in why is sanitized. */
    assert_int_equal(smtp_open(&c, "a\r\nb", HELO_NAME, 5, why, sizeof why), SMTP_PERMFAIL);
    assert_string_equal(why,
                        "SMTP target \"a  b\": no port (want HOST:PORT, [IPv6]:PORT or unix:/path)");
    /* why is truncated to its buffer. */
    char small[10];
    assert_int_equal(smtp_open(&c, "", HELO_NAME, 5, small, sizeof small), SMTP_PERMFAIL);
    assert_string_equal(small, "no SMTP t");

    /* Well-formed targets where nothing listens: SMTP_TEMPFAIL. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sin;
    assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &sl), 0);
    close(s); /* the port is now (almost certainly) free */
    char target[64], want[128];
    snprintf(target, sizeof target, "127.0.0.1:%u", ntohs(sin.sin_port));
    assert_int_equal(smtp_open(&c, target, HELO_NAME, 5, why, sizeof why), SMTP_TEMPFAIL);
    assert_null(c);
    snprintf(want, sizeof want, "%s: cannot connect: Connection refused", target);
    assert_string_equal(why, want);
    assert_int_equal(
        smtp_open(&c, "unix:/nonexistent/test_smtp.sock", HELO_NAME, 5, why, sizeof why),
        SMTP_TEMPFAIL);
    assert_string_equal(why,
                        "unix:/nonexistent/test_smtp.sock: cannot connect: No such file or directory");
}

/* Calls out of order. */
static void test_misuse(void **state)
{
    (void)state;
    char reply[256];
    smtp_close(NULL);
    assert_string_equal(smtp_last_reply(NULL), "");
    assert_false(smtp_usable(NULL));
    assert_int_equal(smtp_begin(NULL, "s", "r", reply, sizeof reply), SMTP_TEMPFAIL);
    assert_int_equal(smtp_write(NULL, "x", 1), SMTP_TEMPFAIL);
    assert_int_equal(smtp_end(NULL, reply, sizeof reply), SMTP_TEMPFAIL);
    assert_int_equal(smtp_open(NULL, "127.0.0.1:25", HELO_NAME, 5, reply, sizeof reply),
                     SMTP_PERMFAIL);

    /* write and end without begin: refused, nothing sent, still usable;
     * begin again before end: the half-sent message is abandoned by
     * dropping the connection (never a "." after it). */
    const step script[] = {GREET,
                           LINE,
                           SEND("250 2.1.0 Ok\r\n"),
                           LINE,
                           SEND("250 2.1.5 Ok\r\n"),
                           LINE,
                           SEND("354 go ahead\r\n"),
                           END};
    fake *f = fake_start(TCP4, script);
    smtp_client *c = open_ok(f);
    assert_int_equal(smtp_write(c, "x", 1), SMTP_TEMPFAIL);
    assert_int_equal(smtp_end(c, reply, sizeof reply), SMTP_TEMPFAIL);
    assert_string_equal(reply, "smtp_end: no message in progress");
    assert_true(smtp_usable(c));
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    assert_int_equal(smtp_write(c, "half a message\n", 15), 0);
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_TEMPFAIL);
    char want[512];
    snprintf(want, sizeof want,
             "connection unusable: %s: a message was abandoned before its end; connection dropped "
             "so that it is not delivered",
             f->target);
    assert_string_equal(reply, want);
    assert_false(smtp_usable(c));
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n");

    /* Closing in the middle of a message sends neither "." nor QUIT. */
    f = fake_start(UNIX, script);
    c = open_ok(f);
    assert_int_equal(smtp_begin(c, "s@example.org", "r@example.org", reply, sizeof reply),
                     SMTP_OK);
    assert_int_equal(smtp_write(c, "partial\n", 8), 0);
    assert_int_equal(smtp_write(c, NULL, 0), 0);
    assert_int_equal(smtp_write(c, NULL, 1), SMTP_TEMPFAIL);
    smtp_close(c);
    fake_finish(f, T_EHLO "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_messages),   cmocka_unit_test(test_data_transparency),
        cmocka_unit_test(test_large_message),    cmocka_unit_test(test_multiline_replies),
        cmocka_unit_test(test_helo_fallback),    cmocka_unit_test(test_permfail_then_next),
        cmocka_unit_test(test_tempfail_at_mail), cmocka_unit_test(test_refused_at_end),
        cmocka_unit_test(test_421),              cmocka_unit_test(test_server_gone_in_data),
        cmocka_unit_test(test_timeout),          cmocka_unit_test(test_write_timeout),          cmocka_unit_test(test_malformed_replies),
        cmocka_unit_test(test_refused_addresses), cmocka_unit_test(test_unix_target),
        cmocka_unit_test(test_names_and_ipv6),   cmocka_unit_test(test_greetings),
        cmocka_unit_test(test_bad_targets),      cmocka_unit_test(test_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
