/* floor-milter: the cheapest milter the protocol allows for mail that
 * names no list, as the yardstick of bench/ordinary-bench.sh.
 *
 * It speaks the Sendmail milter protocol (version 6) itself, without
 * libmilter: one thread per MTA connection, reads buffered (one read(2)
 * for as many commands as have arrived), and the answers recrypt-milter
 * gives ordinary mail, after the same negotiation (no HELO or unknown
 * commands; no reply to connect, MAIL, header fields, end of header; the
 * queue ID macro only): continue at RCPT, accept at DATA. It keeps no
 * state, reads no store and logs nothing. Whatever ordinary mail still
 * costs with it in recrypt-milter's place is the cost of the MTA's milter
 * client and of the two round trips, which no milter can avoid; the bench
 * reports recrypt-milter against it and against no milter.
 *
 *   floor-milter inet:PORT@127.0.0.1 | unix:PATH
 *
 * A benchmark tool, not part of the product: it is not installed, and it
 * would answer a list post as ordinary mail. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* libmilter/mfdef.h's values, written out: this tool does not use libmilter. */
enum {
    SMFIP_NOHELO = 0x2,
    SMFIP_NR_HDR = 0x80,
    SMFIP_NOUNKNOWN = 0x100,
    SMFIP_NR_CONN = 0x1000,
    SMFIP_NR_MAIL = 0x4000,
    SMFIP_NR_EOH = 0x40000,
    SMFIF_SETSYMLIST = 0x100,
    SMFIM_CONNECT = 0,
    SMFIM_EOH = 6,
};

typedef struct {
    int fd;
    size_t start, end;
    unsigned char buf[128 * 1024]; /* a body chunk is at most 64 KiB */
} session;

/* At least `need` bytes buffered: 0, or -1 at end of input or error. */
static int fill(session *s, size_t need)
{
    if (s->end - s->start >= need)
        return 0;
    if (need > sizeof s->buf)
        return -1;
    memmove(s->buf, s->buf + s->start, s->end - s->start);
    s->end -= s->start;
    s->start = 0;
    while (s->end < need) {
        ssize_t n = read(s->fd, s->buf + s->end, sizeof s->buf - s->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        s->end += (size_t)n;
    }
    return 0;
}

static int answer(int fd, char code, const unsigned char *data, uint32_t len)
{
    unsigned char out[5 + 256];
    uint32_t n = htonl(len + 1);
    if (len > sizeof out - 5)
        return -1;
    memcpy(out, &n, 4);
    out[4] = (unsigned char)code;
    if (len)
        memcpy(out + 5, data, len);
    return write(fd, out, 5 + len) == (ssize_t)(5 + len) ? 0 : -1;
}

static void put32(unsigned char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

/* The reply to the MTA's option negotiation: version 6, no actions but
 * the macro list, recrypt-milter's steps (masked by what is offered), and
 * "i" for each macro stage. */
static int negotiate(session *s, const unsigned char *arg, uint32_t len)
{
    unsigned char out[12 + 7 * (4 + 2)];
    uint32_t actions = 0, steps = 0, offered_actions, offered_steps;
    if (len < 12)
        return -1;
    memcpy(&offered_actions, arg + 4, 4);
    memcpy(&offered_steps, arg + 8, 4);
    offered_actions = ntohl(offered_actions);
    offered_steps = ntohl(offered_steps);
    steps = (SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_HDR |
             SMFIP_NR_EOH) &
            offered_steps;
    size_t n = 12;
    if (offered_actions & SMFIF_SETSYMLIST) {
        actions |= SMFIF_SETSYMLIST;
        for (uint32_t stage = SMFIM_CONNECT; stage <= SMFIM_EOH; stage++) {
            put32(out + n, stage);
            out[n + 4] = 'i';
            out[n + 5] = '\0';
            n += 6;
        }
    }
    put32(out, 6);
    put32(out + 4, actions);
    put32(out + 8, steps);
    return answer(s->fd, 'O', out, (uint32_t)n);
}

static void *serve(void *arg)
{
    session *s = arg;
    for (;;) {
        uint32_t len;
        if (fill(s, 4))
            break;
        memcpy(&len, s->buf + s->start, 4);
        len = ntohl(len);
        if (len < 1 || len > sizeof s->buf - 4 || fill(s, 4 + (size_t)len))
            break;
        char cmd = (char)s->buf[s->start + 4];
        const unsigned char *data = s->buf + s->start + 5;
        s->start += 4 + (size_t)len;
        int rc = 0;
        switch (cmd) {
        case 'O': rc = negotiate(s, data, len - 1); break;
        case 'R': rc = answer(s->fd, 'c', NULL, 0); break; /* RCPT: continue */
        case 'T': rc = answer(s->fd, 'a', NULL, 0); break; /* DATA: accept */
        case 'B':                                          /* body chunk, */
        case 'E': rc = answer(s->fd, 'a', NULL, 0); break; /* end of message */
        case 'Q': rc = -1; break;                          /* quit */
        default: break; /* macros, connect, MAIL, headers, abort: no reply */
        }
        if (rc)
            break;
    }
    close(s->fd);
    free(s);
    return NULL;
}

static int listen_on(const char *spec)
{
    int fd;
    if (strncmp(spec, "inet:", 5) == 0) {
        char *end;
        long port = strtol(spec + 5, &end, 10);
        if (port < 1 || port > 65535 || strcmp(end, "@127.0.0.1") != 0)
            return -1;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int one = 1;
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
            bind(fd, (struct sockaddr *)&sa, sizeof sa))
            return -1;
    } else if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un su = {.sun_family = AF_UNIX};
        if (strlen(spec + 5) >= sizeof su.sun_path)
            return -1;
        memcpy(su.sun_path, spec + 5, strlen(spec + 5) + 1);
        (void)unlink(su.sun_path);
        umask(0); /* the bench runs it as root; the MTA's user must connect */
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&su, sizeof su))
            return -1;
    } else {
        return -1;
    }
    return listen(fd, 128) ? -1 : fd;
}

int main(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr, "usage: floor-milter inet:PORT@127.0.0.1 | unix:PATH\n"
                        "the cheapest milter for ordinary mail (bench/ordinary-bench.sh's yardstick)\n");
        return argc == 2 ? 0 : 64;
    }
    signal(SIGPIPE, SIG_IGN);
    int ls = listen_on(argv[1]);
    if (ls < 0) {
        fprintf(stderr, "floor-milter: cannot listen on %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("floor-milter: accept");
            return 1;
        }
        session *s = malloc(sizeof *s);
        pthread_t t;
        if (!s) {
            close(fd);
            continue;
        }
        s->fd = fd;
        s->start = s->end = 0;
        if (pthread_create(&t, NULL, serve, s)) {
            close(fd);
            free(s);
            continue;
        }
        pthread_detach(t);
    }
}
