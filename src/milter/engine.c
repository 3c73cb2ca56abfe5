/*
 * engine.c - recrypt-milter's own implementation of the Sendmail milter
 * protocol (version 6, the MTA side being Postfix or Sendmail), in place of
 * libmilter's.
 *
 * It offers the part of the libmilter API that recrypt-milter uses, under
 * libmilter's names and with its semantics, declared by
 * <libmilter/mfapi.h> (whose constants are the protocol's): milter.c and
 * main.c are written as any libmilter milter is, and only the engine under
 * them differs. Why: Debian builds libmilter with its pool of workers, in
 * which every burst of commands from the MTA goes from a controller thread
 * that polls all connections to a worker thread and back through a pipe,
 * and workers are started and ended as the load changes. For mail that
 * names no list (almost all mail through an MX) that hand-over was most
 * of what the milter cost the machine (bench/README.md, ordinary-bench).
 * Here each MTA connection is served by one thread from command to reply,
 * and one read(2) takes as many commands as have arrived.
 *
 * Owns: the listening socket, one thread per MTA connection (its buffers,
 * the macros the MTA sent, the reply set by smfi_setreply), the stop flag.
 * The callbacks (milter.c) own their private data (smfi_setpriv).
 *
 * The protocol, as Postfix's milter8.c and libmilter speak it: every packet
 * is a 4-byte length in network order (of what follows), a command byte and
 * its data; strings are NUL-terminated. The MTA sends commands (SMFIC_*),
 * the milter answers the ones that want an answer (SMFIR_*), and during end
 * of message sends its changes (headers, recipients, sender, body) before
 * the final answer.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <libmilter/mfapi.h>
#include <libmilter/mfdef.h>
#include "config.h"
#include "log.h"

/* libmilter's limits: an SMTP reply line, the lines of a multi-line reply,
 * the idle time allowed between two commands (its default, 7210 s). */
#define REPLY_LINE_MAX 980
#define REPLY_LINES_MAX 32
#define COMMAND_TIMEOUT_S 7210
/* A packet larger than this ends the connection (the MTA's body chunks are
 * at most MILTER_CHUNK_SIZE; nothing else comes near). */
#define PACKET_MAX (1024 * 1024)
/* How long smfi_main waits, after smfi_stop, for connections in the middle
 * of a callback to finish. */
#define STOP_GRACE_S 20

#define N_STAGES (SMFIM_LAST + 1)
/* The protocol steps after which libmilter, not the MTA, can skip a reply
 * (it answers "continue" itself when the MTA cannot do without one). */
#define NR_STEPS                                                                                  \
    (SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_DATA |             \
     SMFIP_NR_UNKN | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY)

struct smfi_str {
    int fd;
    void *priv;
    /* negotiated */
    unsigned long mta_actions, mta_steps, actions, steps;
    char *symlist[N_STAGES]; /* smfi_setsymlist, during negotiation */
    int negotiating;
    /* macros: per stage, the packet's data (name\0value\0...) */
    char *macros[N_STAGES];
    size_t macros_len[N_STAGES];
    char *reply; /* smfi_setreply / smfi_setmlreply, for the next answer */
    int in_eom;     /* changes may be sent */
    int in_message; /* from MAIL to the end of message or abort (atomic: smfi_main reads it) */
    /* input buffer */
    unsigned char *buf;
    size_t cap, start, end;
    /* the list of live connections (smfi_stop wakes them) */
    struct smfi_str *prev, *next;
};

static struct {
    struct smfiDesc desc;
    int registered;
    char *conn;
    int listen_fd;
    volatile sig_atomic_t stop;
    pthread_mutex_t lock; /* the connection list and counts */
    pthread_cond_t idle;  /* a connection ended */
    SMFICTX *live;
    int n_live;
} E = {.listen_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER};

/* ---- the wire ---- */

static int write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                log_msg(LOG_LEVEL_WARNING, NULL, "the MTA took no data for %d s: connection closed",
                        COMMAND_TIMEOUT_S);
            return -1;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* One packet: command byte cmd and len bytes of data. */
static int send_packet(SMFICTX *ctx, char cmd, const void *data, size_t len)
{
    if (len > PACKET_MAX)
        return -1;
    unsigned char head[5];
    uint32_t n = htonl((uint32_t)(len + 1));
    memcpy(head, &n, 4);
    head[4] = (unsigned char)cmd;
    struct iovec iov[2] = {{head, 5}, {(void *)data, len}};
    return write_all(ctx->fd, iov, len ? 2 : 1);
}

/* A packet of NUL-terminated strings (NULL ends the list). */
static int send_strings(SMFICTX *ctx, char cmd, const char *first, ...)
{
    size_t len = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *))
        len += strlen(s) + 1;
    va_end(ap);
    char *data = malloc(len ? len : 1), *p = data;
    if (!data)
        return -1;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) {
        size_t l = strlen(s) + 1;
        memcpy(p, s, l);
        p += l;
    }
    va_end(ap);
    int rc = send_packet(ctx, cmd, data, len);
    free(data);
    return rc;
}

/* At least need bytes buffered from the MTA, with room for one byte more
 * after them (the data's terminating NUL): 0, or -1 at end of input, on
 * error or stop, or after COMMAND_TIMEOUT_S of silence (the socket's
 * receive timeout). */
static int fill(SMFICTX *ctx, size_t need)
{
    if (ctx->end - ctx->start >= need && ctx->start + need < ctx->cap)
        return 0;
    if (need + 1 > ctx->cap) {
        size_t cap = ctx->cap;
        while (cap < need + 1)
            cap *= 2;
        unsigned char *b = realloc(ctx->buf, cap);
        if (!b)
            return -1;
        ctx->buf = b;
        ctx->cap = cap;
    }
    if (ctx->start > 0) {
        memmove(ctx->buf, ctx->buf + ctx->start, ctx->end - ctx->start);
        ctx->end -= ctx->start;
        ctx->start = 0;
    }
    while (ctx->end < need) {
        ssize_t n = read(ctx->fd, ctx->buf + ctx->end, ctx->cap - ctx->end);
        if (n > 0) {
            ctx->end += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR && !E.stop)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            log_msg(LOG_LEVEL_WARNING, NULL, "the MTA sent nothing for %d s: connection closed",
                    COMMAND_TIMEOUT_S);
        return -1;
    }
    return 0;
}

/* ---- answers ---- */

static unsigned long step_bit(char cmd)
{
    switch (cmd) {
    case SMFIC_CONNECT: return SMFIP_NR_CONN;
    case SMFIC_HELO: return SMFIP_NR_HELO;
    case SMFIC_MAIL: return SMFIP_NR_MAIL;
    case SMFIC_RCPT: return SMFIP_NR_RCPT;
    case SMFIC_DATA: return SMFIP_NR_DATA;
    case SMFIC_UNKNOWN: return SMFIP_NR_UNKN;
    case SMFIC_HEADER: return SMFIP_NR_HDR;
    case SMFIC_EOH: return SMFIP_NR_EOH;
    case SMFIC_BODY: return SMFIP_NR_BODY;
    default: return 0;
    }
}

/* The answer to command cmd for callback result r, as libmilter gives it:
 * where the milter asked for no reply, none (a result other than
 * SMFIS_NOREPLY there is the milter's mistake, logged and dropped); where
 * the milter gives none but the MTA wants one, "continue". */
static int answer(SMFICTX *ctx, char cmd, sfsistat r)
{
    unsigned long bit = step_bit(cmd);
    if (bit && (ctx->steps & bit)) {
        if (r != SMFIS_NOREPLY)
            log_msg(LOG_LEVEL_ERROR, NULL,
                    "internal: a reply (%d) after '%c', for which none was negotiated", r, cmd);
        if (ctx->mta_steps & bit)
            return 0;
        r = SMFIS_CONTINUE; /* the MTA does not know "no reply" for this step */
    }
    int rc = 0;
    switch (r) {
    case SMFIS_NOREPLY:
        if (bit && !(ctx->mta_steps & bit))
            rc = send_packet(ctx, SMFIR_CONTINUE, NULL, 0);
        break;
    case SMFIS_CONTINUE: rc = send_packet(ctx, SMFIR_CONTINUE, NULL, 0); break;
    case SMFIS_ACCEPT: rc = send_packet(ctx, SMFIR_ACCEPT, NULL, 0); break;
    case SMFIS_DISCARD: rc = send_packet(ctx, SMFIR_DISCARD, NULL, 0); break;
    case SMFIS_SKIP: rc = send_packet(ctx, SMFIR_SKIP, NULL, 0); break;
    case SMFIS_REJECT:
    case SMFIS_TEMPFAIL:
        if (ctx->reply && ctx->reply[0] == (r == SMFIS_REJECT ? '5' : '4'))
            rc = send_packet(ctx, SMFIR_REPLYCODE, ctx->reply, strlen(ctx->reply) + 1);
        else
            rc = send_packet(ctx, r == SMFIS_REJECT ? SMFIR_REJECT : SMFIR_TEMPFAIL, NULL, 0);
        break;
    default:
        log_msg(LOG_LEVEL_ERROR, NULL, "internal: callback result %d after '%c': tempfail", r,
                cmd);
        rc = send_packet(ctx, SMFIR_TEMPFAIL, NULL, 0);
        break;
    }
    if (r == SMFIS_REJECT || r == SMFIS_TEMPFAIL) {
        free(ctx->reply);
        ctx->reply = NULL;
    }
    return rc;
}

/* ---- commands ---- */

static int macro_stage(char cmd)
{
    switch (cmd) {
    case SMFIC_CONNECT: return SMFIM_CONNECT;
    case SMFIC_HELO: return SMFIM_HELO;
    case SMFIC_MAIL: return SMFIM_ENVFROM;
    case SMFIC_RCPT: return SMFIM_ENVRCPT;
    case SMFIC_DATA: return SMFIM_DATA;
    case SMFIC_BODYEOB: return SMFIM_EOM;
    case SMFIC_EOH: return SMFIM_EOH;
    default: return -1;
    }
}

static void clear_macros(SMFICTX *ctx, int from)
{
    for (int i = from; i < N_STAGES; i++) {
        free(ctx->macros[i]);
        ctx->macros[i] = NULL;
        ctx->macros_len[i] = 0;
    }
}

/* Entering the stage of command cmd: the macros of the stages that come
 * after it are a previous message's (libmilter does the same). In time
 * the stages go connect, HELO, MAIL, RCPT, DATA, end of header, end of
 * message; their slots are SMFIM_*, where EOH (6) comes after EOM (5). */
static void enter_stage(SMFICTX *ctx, char cmd)
{
    int st = macro_stage(cmd);
    if (st == SMFIM_EOH) {
        free(ctx->macros[SMFIM_EOM]);
        ctx->macros[SMFIM_EOM] = NULL;
        ctx->macros_len[SMFIM_EOM] = 0;
    } else if (st >= 0 && st < SMFIM_EOM) {
        clear_macros(ctx, st + 1);
    }
}

/* NUL-separated strings in data[0..len) into a NULL-ended vector (the
 * pointers into data); NULL when data does not end with a NUL. */
static char **split_strings(char *data, size_t len, size_t *count)
{
    if (len == 0 || data[len - 1] != '\0')
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += data[i] == '\0';
    char **v = calloc(n + 1, sizeof *v);
    if (!v)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i += strlen(data + i) + 1)
        v[k++] = data + i;
    *count = k;
    return v;
}

static int negotiate(SMFICTX *ctx, const unsigned char *d, size_t len)
{
    uint32_t v[3];
    if (len < 12)
        return -1;
    memcpy(v, d, 12);
    unsigned long version = ntohl(v[0]);
    ctx->mta_actions = ntohl(v[1]) ? ntohl(v[1]) : SMFI_V1_ACTS;
    ctx->mta_steps = ntohl(v[2]) ? ntohl(v[2]) : SMFI_V1_PROT;
    if (version < 2) {
        log_msg(LOG_LEVEL_ERROR, NULL, "the MTA speaks milter protocol version %lu: too old",
                version);
        return -1;
    }
    unsigned long actions = E.desc.xxfi_flags, steps = 0;
    if (E.desc.xxfi_negotiate) {
        unsigned long a = ctx->mta_actions, s = 0, f2 = 0, f3 = 0;
        ctx->negotiating = 1;
        sfsistat r = E.desc.xxfi_negotiate(ctx, ctx->mta_actions, ctx->mta_steps | NR_STEPS, 0,
                                           0, &a, &s, &f2, &f3);
        ctx->negotiating = 0;
        if (r == SMFIS_REJECT)
            return -1;
        if (r == SMFIS_CONTINUE) {
            actions = a;
            steps = s;
        }
    }
    if ((actions & ctx->mta_actions) != actions) {
        log_msg(LOG_LEVEL_ERROR, NULL,
                "the MTA does not offer the actions the milter needs (0x%lx of 0x%lx)",
                ctx->mta_actions, actions);
        return -1;
    }
    if ((steps & ~NR_STEPS & ctx->mta_steps) != (steps & ~NR_STEPS)) {
        log_msg(LOG_LEVEL_ERROR, NULL,
                "the MTA does not offer the protocol steps the milter asks for (0x%lx of 0x%lx)",
                ctx->mta_steps, steps);
        return -1;
    }
    ctx->actions = actions;
    ctx->steps = steps;
    /* The reply: version, actions, steps (without the "no reply" steps the
     * MTA does not know: those this engine answers itself), macro lists. */
    size_t n = 12;
    for (int i = 0; i < N_STAGES; i++)
        if (ctx->symlist[i])
            n += 4 + strlen(ctx->symlist[i]) + 1;
    unsigned char *out = malloc(n);
    if (!out)
        return -1;
    uint32_t w[3] = {htonl(version < SMFI_PROT_VERSION ? (uint32_t)version : SMFI_PROT_VERSION),
                     htonl((uint32_t)actions),
                     htonl((uint32_t)(steps & ~(NR_STEPS & ~ctx->mta_steps)))};
    memcpy(out, w, 12);
    size_t o = 12;
    for (int i = 0; i < N_STAGES; i++) {
        if (!ctx->symlist[i])
            continue;
        uint32_t idx = htonl((uint32_t)i);
        memcpy(out + o, &idx, 4);
        size_t l = strlen(ctx->symlist[i]) + 1;
        memcpy(out + o + 4, ctx->symlist[i], l);
        o += 4 + l;
    }
    int rc = send_packet(ctx, SMFIC_OPTNEG, out, n);
    free(out);
    return rc;
}

/* The connect command: host\0, family, port (network order), address\0. */
static sfsistat do_connect(SMFICTX *ctx, char *d, size_t len)
{
    if (!E.desc.xxfi_connect)
        return SMFIS_CONTINUE;
    size_t hl = strnlen(d, len);
    if (hl >= len)
        return SMFIS_TEMPFAIL;
    char *host = d, family = hl + 1 < len ? d[hl + 1] : SMFIA_UNKNOWN;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr *sa = NULL;
    if (family != SMFIA_UNKNOWN && hl + 4 < len && d[len - 1] == '\0') {
        uint16_t port;
        memcpy(&port, d + hl + 2, 2);
        const char *addr = d + hl + 4;
        if (family == SMFIA_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            in->sin_family = AF_INET;
            in->sin_port = port;
            if (inet_pton(AF_INET, addr, &in->sin_addr) == 1)
                sa = (struct sockaddr *)in;
        } else if (family == SMFIA_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            in6->sin6_family = AF_INET6;
            in6->sin6_port = port;
            if (strncmp(addr, "IPv6:", 5) == 0)
                addr += 5;
            if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1)
                sa = (struct sockaddr *)in6;
        } else if (family == SMFIA_UNIX) {
            struct sockaddr_un *un = (struct sockaddr_un *)&ss;
            un->sun_family = AF_UNIX;
            snprintf(un->sun_path, sizeof un->sun_path, "%s", addr);
            sa = (struct sockaddr *)un;
        }
    }
    return E.desc.xxfi_connect(ctx, host, sa);
}

/* One command (its data NUL-terminated one byte past len, in the buffer):
 * 0 to go on, 1 at the end of the connection, -1 on a protocol error. */
static int command(SMFICTX *ctx, char cmd, char *d, size_t len)
{
    sfsistat r = SMFIS_CONTINUE;
    char **argv = NULL;
    size_t argc = 0;
    const struct smfiDesc *f = &E.desc;
    switch (cmd) {
    case SMFIC_OPTNEG: return negotiate(ctx, (unsigned char *)d, len);
    case SMFIC_MACRO: {
        int st = len > 0 ? macro_stage(d[0]) : -1;
        if (st >= 0) {
            free(ctx->macros[st]);
            ctx->macros[st] = NULL;
            ctx->macros_len[st] = 0;
            if (len > 1 && (ctx->macros[st] = malloc(len - 1)) != NULL) {
                memcpy(ctx->macros[st], d + 1, len - 1);
                ctx->macros_len[st] = len - 1;
            }
        }
        return 0; /* never answered */
    }
    case SMFIC_CONNECT:
        enter_stage(ctx, cmd);
        r = do_connect(ctx, d, len);
        break;
    case SMFIC_HELO:
        enter_stage(ctx, cmd);
        if (f->xxfi_helo)
            r = f->xxfi_helo(ctx, d);
        break;
    case SMFIC_MAIL:
    case SMFIC_RCPT:
        enter_stage(ctx, cmd);
        if (!(argv = split_strings(d, len, &argc)) || argc == 0) {
            free(argv);
            return -1;
        }
        if (cmd == SMFIC_MAIL) {
            __atomic_store_n(&ctx->in_message, 1, __ATOMIC_SEQ_CST);
            if (f->xxfi_envfrom)
                r = f->xxfi_envfrom(ctx, argv);
        } else if (f->xxfi_envrcpt) {
            r = f->xxfi_envrcpt(ctx, argv);
        }
        free(argv);
        break;
    case SMFIC_DATA:
        enter_stage(ctx, cmd);
        if (f->xxfi_data)
            r = f->xxfi_data(ctx);
        break;
    case SMFIC_HEADER: {
        size_t nl = strnlen(d, len);
        if (nl + 1 >= len || d[len - 1] != '\0') {
            return -1;
        }
        if (f->xxfi_header)
            r = f->xxfi_header(ctx, d, d + nl + 1);
        break;
    }
    case SMFIC_EOH:
        enter_stage(ctx, cmd);
        if (f->xxfi_eoh)
            r = f->xxfi_eoh(ctx);
        break;
    case SMFIC_BODY:
        if (f->xxfi_body)
            r = f->xxfi_body(ctx, (unsigned char *)d, len);
        break;
    case SMFIC_BODYEOB:
        if (len > 0 && f->xxfi_body) {
            r = f->xxfi_body(ctx, (unsigned char *)d, len);
            if (r != SMFIS_CONTINUE && r != SMFIS_NOREPLY)
                break;
        }
        ctx->in_eom = 1;
        r = f->xxfi_eom ? f->xxfi_eom(ctx) : SMFIS_CONTINUE;
        ctx->in_eom = 0;
        __atomic_store_n(&ctx->in_message, 0, __ATOMIC_SEQ_CST);
        break;
    case SMFIC_ABORT:
        if (f->xxfi_abort)
            (void)f->xxfi_abort(ctx);
        __atomic_store_n(&ctx->in_message, 0, __ATOMIC_SEQ_CST);
        free(ctx->reply);
        ctx->reply = NULL;
        return 0; /* never answered */
    case SMFIC_UNKNOWN:
        if (f->xxfi_unknown)
            r = f->xxfi_unknown(ctx, d);
        break;
    case SMFIC_QUIT:
    case SMFIC_QUIT_NC:
        if (f->xxfi_close)
            (void)f->xxfi_close(ctx);
        clear_macros(ctx, 0);
        return cmd == SMFIC_QUIT ? 1 : 0;
    default:
        log_msg(LOG_LEVEL_ERROR, NULL, "the MTA sent an unknown milter command 0x%02x",
                (unsigned char)cmd);
        return -1;
    }
    if (cmd == SMFIC_BODYEOB && r == SMFIS_NOREPLY)
        r = SMFIS_CONTINUE; /* end of message always has an answer */
    return answer(ctx, cmd, r) ? -1 : 0;
}

static void unlink_live(SMFICTX *ctx)
{
    pthread_mutex_lock(&E.lock);
    if (ctx->prev)
        ctx->prev->next = ctx->next;
    else
        E.live = ctx->next;
    if (ctx->next)
        ctx->next->prev = ctx->prev;
    E.n_live--;
    pthread_cond_broadcast(&E.idle);
    pthread_mutex_unlock(&E.lock);
}

static void *session(void *arg)
{
    SMFICTX *ctx = arg;
    int closed = 0;
    for (;;) {
        uint32_t len;
        if (fill(ctx, 4))
            break;
        memcpy(&len, ctx->buf + ctx->start, 4);
        len = ntohl(len);
        if (len < 1 || len > PACKET_MAX) {
            log_msg(LOG_LEVEL_ERROR, NULL, "the MTA sent a milter packet of %u bytes: closed",
                    len);
            break;
        }
        if (fill(ctx, 4 + (size_t)len))
            break;
        char cmd = (char)ctx->buf[ctx->start + 4];
        char *d = (char *)ctx->buf + ctx->start + 5;
        size_t dlen = len - 1;
        /* the byte after the packet (fill left room for it) is the next
         * packet's or free space: terminate the data for the callbacks,
         * then put the next packet's byte back */
        size_t after = ctx->start + 4 + (size_t)len;
        unsigned char saved = after < ctx->end ? ctx->buf[after] : 0;
        ctx->buf[after] = '\0';
        int rc = command(ctx, cmd, d, dlen);
        ctx->buf[after] = saved;
        ctx->start += 4 + (size_t)len;
        if (rc < 0)
            break;
        if (rc > 0) {
            closed = 1;
            break;
        }
        /* stopping: a connection ends once its message is done */
        if (E.stop && !__atomic_load_n(&ctx->in_message, __ATOMIC_SEQ_CST))
            break;
    }
    if (!closed) {
        /* The MTA went away (or sent what cannot be read): as libmilter,
         * abort a message in progress, then close. */
        if (__atomic_load_n(&ctx->in_message, __ATOMIC_SEQ_CST) && E.desc.xxfi_abort)
            (void)E.desc.xxfi_abort(ctx);
        if (E.desc.xxfi_close)
            (void)E.desc.xxfi_close(ctx);
    }
    unlink_live(ctx);
    close(ctx->fd);
    clear_macros(ctx, 0);
    for (int i = 0; i < N_STAGES; i++)
        free(ctx->symlist[i]);
    free(ctx->reply);
    free(ctx->buf);
    free(ctx);
    return NULL;
}

/* ---- the API (libmilter's, mfapi.h) ---- */

int smfi_register(struct smfiDesc desc)
{
    E.desc = desc;
    E.registered = 1;
    return MI_SUCCESS;
}

int smfi_setconn(char *conn)
{
    if (!conn || !*conn)
        return MI_FAILURE;
    free(E.conn);
    E.conn = strdup(conn);
    return E.conn ? MI_SUCCESS : MI_FAILURE;
}

/* inet:PORT[@HOST] / inet6:PORT[@HOST]: the address to bind. */
static int inet_listener(const char *spec, int family)
{
    char port[16], host[256] = "";
    const char *at = strchr(spec, '@');
    size_t pl = at ? (size_t)(at - spec) : strlen(spec);
    if (pl == 0 || pl >= sizeof port || (at && strlen(at + 1) >= sizeof host))
        return -1;
    memcpy(port, spec, pl);
    port[pl] = '\0';
    if (at)
        snprintf(host, sizeof host, "%s", at + 1);
    if (family == AF_INET6 && host[0] == '[') {
        size_t hl = strlen(host);
        if (host[hl - 1] == ']') {
            memmove(host, host + 1, hl - 2);
            host[hl - 2] = '\0';
        }
    }
    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host[0] ? host : NULL, port, &hints, &res) != 0 || !res)
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
                    bind(fd, res->ai_addr, res->ai_addrlen) != 0)) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

int smfi_opensocket(bool rmsocket)
{
    if (!E.conn)
        return MI_FAILURE;
    if (E.listen_fd >= 0)
        return MI_SUCCESS;
    const char *c = E.conn;
    int fd = -1;
    if (strncmp(c, "inet:", 5) == 0) {
        fd = inet_listener(c + 5, AF_INET);
    } else if (strncmp(c, "inet6:", 6) == 0) {
        fd = inet_listener(c + 6, AF_INET6);
    } else {
        const char *path = strncmp(c, "unix:", 5) == 0    ? c + 5
                           : strncmp(c, "local:", 6) == 0 ? c + 6
                           : c[0] == '/'                  ? c
                                                          : NULL;
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        if (!path || strlen(path) >= sizeof un.sun_path)
            return MI_FAILURE;
        memcpy(un.sun_path, path, strlen(path) + 1);
        if (rmsocket)
            (void)unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && bind(fd, (struct sockaddr *)&un, sizeof un) != 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        log_msg(LOG_LEVEL_ERROR, NULL, "cannot listen on %s: %s", E.conn, strerror(errno));
        return MI_FAILURE;
    }
    if (listen(fd, SOMAXCONN) != 0) {
        log_msg(LOG_LEVEL_ERROR, NULL, "cannot listen on %s: %s", E.conn, strerror(errno));
        close(fd);
        return MI_FAILURE;
    }
    E.listen_fd = fd;
    return MI_SUCCESS;
}

int smfi_stop(void)
{
    E.stop = 1;
    if (E.listen_fd >= 0)
        (void)shutdown(E.listen_fd, SHUT_RDWR); /* ends accept(2) */
    return MI_SUCCESS;
}

/* SIGHUP ends smfi_main, as with libmilter. The handler does only what is
 * async-signal-safe: the flag and shutdown(2). */
static volatile sig_atomic_t got_hup;
static void on_hup(int sig)
{
    (void)sig;
    got_hup = 1;
    E.stop = 1;
    if (E.listen_fd >= 0)
        (void)shutdown(E.listen_fd, SHUT_RDWR);
}

int smfi_main(void)
{
    if (!E.registered || (E.listen_fd < 0 && smfi_opensocket(0) != MI_SUCCESS))
        return MI_FAILURE;
    struct sigaction sa = {.sa_handler = on_hup};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int failures = 0;
    while (!E.stop) {
        int fd = accept4(E.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (E.stop)
                break;
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            log_msg(LOG_LEVEL_ERROR, NULL, "accept on %s: %s", E.conn, strerror(errno));
            if (++failures > 100)
                break;
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        failures = 0;
        /* libmilter's timeout for the MTA's next command and for a reply
         * to go out: a read or write then fails with EAGAIN */
        struct timeval tv = {COMMAND_TIMEOUT_S, 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        SMFICTX *ctx = calloc(1, sizeof *ctx);
        if (ctx) {
            ctx->fd = fd;
            ctx->cap = 16 * 1024;
            ctx->buf = malloc(ctx->cap);
        }
        if (!ctx || !ctx->buf) {
            log_msg(LOG_LEVEL_ERROR, NULL, "out of memory for a new MTA connection");
            if (ctx)
                free(ctx);
            close(fd);
            continue;
        }
        pthread_mutex_lock(&E.lock);
        ctx->next = E.live;
        if (E.live)
            E.live->prev = ctx;
        E.live = ctx;
        E.n_live++;
        pthread_mutex_unlock(&E.lock);
        pthread_t t;
        if (pthread_create(&t, &attr, session, ctx) != 0) {
            log_msg(LOG_LEVEL_ERROR, NULL, "cannot start a thread for an MTA connection");
            unlink_live(ctx);
            close(fd);
            free(ctx->buf);
            free(ctx);
        }
    }
    pthread_attr_destroy(&attr);
    if (got_hup)
        log_msg(LOG_LEVEL_NOTICE, NULL, "stopping on signal %d", SIGHUP);
    if (E.listen_fd >= 0) {
        close(E.listen_fd);
        E.listen_fd = -1;
    }
    /* Wake every connection waiting for the MTA between messages (its read
     * ends); one in the middle of a message goes on to its end (the loop
     * in session() ends it then). Wait for them, a while: the MTA defers
     * what is left when the process ends. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += STOP_GRACE_S;
    pthread_mutex_lock(&E.lock);
    for (SMFICTX *c = E.live; c; c = c->next)
        if (!__atomic_load_n(&c->in_message, __ATOMIC_SEQ_CST))
            (void)shutdown(c->fd, SHUT_RD);
    while (E.n_live > 0)
        if (pthread_cond_timedwait(&E.idle, &E.lock, &until) == ETIMEDOUT)
            break;
    int left = E.n_live;
    for (SMFICTX *c = E.live; c; c = c->next)
        (void)shutdown(c->fd, SHUT_RDWR); /* what is left: the MTA defers it */
    pthread_mutex_unlock(&E.lock);
    if (left)
        log_msg(LOG_LEVEL_WARNING, NULL, "%d MTA connection(s) still busy after %d s", left,
                STOP_GRACE_S);
    return failures > 100 ? MI_FAILURE : MI_SUCCESS;
}

void *smfi_getpriv(SMFICTX *ctx)
{
    return ctx ? ctx->priv : NULL;
}

int smfi_setpriv(SMFICTX *ctx, void *priv)
{
    if (!ctx)
        return MI_FAILURE;
    ctx->priv = priv;
    return MI_SUCCESS;
}

/* A macro's value: "i" and "{i}" are the same name. The latest stage that
 * has it wins. */
char *smfi_getsymval(SMFICTX *ctx, char *name)
{
    if (!ctx || !name || !*name)
        return NULL;
    char bare[128];
    size_t nl = strlen(name);
    if (name[0] == '{' && nl > 2 && name[nl - 1] == '}' && nl - 2 < sizeof bare) {
        memcpy(bare, name + 1, nl - 2);
        bare[nl - 2] = '\0';
    } else if (nl < sizeof bare) {
        memcpy(bare, name, nl + 1);
    } else {
        return NULL;
    }
    size_t bl = strlen(bare);
    for (int st = N_STAGES - 1; st >= 0; st--) {
        char *p = ctx->macros[st], *end = p + ctx->macros_len[st];
        while (p && p < end) {
            char *n = p, *v = n + strnlen(n, (size_t)(end - n)) + 1;
            if (v >= end)
                break;
            size_t l = strlen(n);
            if ((l == bl && memcmp(n, bare, bl) == 0) ||
                (l == bl + 2 && n[0] == '{' && n[l - 1] == '}' && memcmp(n + 1, bare, bl) == 0))
                return v;
            p = v + strnlen(v, (size_t)(end - v)) + 1;
        }
    }
    return NULL;
}

static int code_ok(const char *rcode)
{
    return rcode && strlen(rcode) == 3 && (rcode[0] == '4' || rcode[0] == '5') &&
           rcode[1] >= '0' && rcode[1] <= '9' && rcode[2] >= '0' && rcode[2] <= '9';
}

/* "C.D.D": class as the code's, subject and detail 1 to 3 digits. */
static int xcode_ok(const char *rcode, const char *x)
{
    if (!x)
        return 1;
    if (x[0] != rcode[0] || x[1] != '.')
        return 0;
    const char *p = x + 2;
    for (int part = 0; part < 2; part++) {
        int n = 0;
        while (*p >= '0' && *p <= '9' && n < 4)
            p++, n++;
        if (n < 1 || n > 3)
            return 0;
        if (part == 0 && *p++ != '.')
            return 0;
    }
    return *p == '\0';
}

int smfi_setreply(SMFICTX *ctx, char *rcode, char *xcode, char *message)
{
    if (!ctx || !code_ok(rcode) || !xcode_ok(rcode, xcode) ||
        (message && (strpbrk(message, "\r\n") || strlen(message) > REPLY_LINE_MAX)))
        return MI_FAILURE;
    size_t len = 4 + (xcode ? strlen(xcode) + 1 : 0) + (message ? strlen(message) : 0) + 1;
    char *r = malloc(len);
    if (!r)
        return MI_FAILURE;
    snprintf(r, len, "%s %s%s%s", rcode, xcode ? xcode : "", xcode && message ? " " : "",
             message ? message : "");
    free(ctx->reply);
    ctx->reply = r;
    return MI_SUCCESS;
}

int smfi_setmlreply(SMFICTX *ctx, const char *rcode, const char *xcode, ...)
{
    if (!ctx || !code_ok(rcode) || !xcode_ok(rcode, xcode))
        return MI_FAILURE;
    const char *xc = xcode ? xcode : rcode[0] == '4' ? "4.0.0" : "5.0.0";
    const char *lines[REPLY_LINES_MAX];
    int n = 0;
    size_t len = 0;
    va_list ap;
    va_start(ap, xcode);
    for (const char *l = va_arg(ap, const char *); l; l = va_arg(ap, const char *)) {
        if (n == REPLY_LINES_MAX || strpbrk(l, "\r\n") || strlen(l) > REPLY_LINE_MAX) {
            va_end(ap);
            return MI_FAILURE;
        }
        lines[n++] = l;
        len += 3 + 1 + strlen(xc) + 1 + strlen(l) + 2;
    }
    va_end(ap);
    if (n == 0)
        return MI_FAILURE;
    char *r = malloc(len + 1), *p = r;
    if (!r)
        return MI_FAILURE;
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s%c%s %s%s", rcode, i + 1 < n ? '-' : ' ', xc, lines[i],
                     i + 1 < n ? "\r\n" : "");
    free(ctx->reply);
    ctx->reply = r;
    return MI_SUCCESS;
}

int smfi_setsymlist(SMFICTX *ctx, int where, char *macros)
{
    if (!ctx || !ctx->negotiating || !macros || where < SMFIM_FIRST || where > SMFIM_LAST ||
        ctx->symlist[where])
        return MI_FAILURE;
    return (ctx->symlist[where] = strdup(macros)) ? MI_SUCCESS : MI_FAILURE;
}

/* A change: only at end of message, and only one negotiated. */
static int may_change(SMFICTX *ctx, unsigned long action)
{
    return ctx && ctx->in_eom && (ctx->actions & action);
}

int smfi_addheader(SMFICTX *ctx, char *headerf, char *headerv)
{
    if (!may_change(ctx, SMFIF_ADDHDRS) || !headerf || !*headerf || !headerv)
        return MI_FAILURE;
    return send_strings(ctx, SMFIR_ADDHEADER, headerf, headerv, (char *)NULL) ? MI_FAILURE
                                                                               : MI_SUCCESS;
}

/* A header change with an index: idx (network order), name\0, value\0. */
static int send_indexed(SMFICTX *ctx, char cmd, int idx, const char *name, const char *value)
{
    size_t fl = strlen(name) + 1, vl = strlen(value) + 1;
    char *d = malloc(4 + fl + vl);
    if (!d)
        return MI_FAILURE;
    uint32_t i = htonl((uint32_t)idx);
    memcpy(d, &i, 4);
    memcpy(d + 4, name, fl);
    memcpy(d + 4 + fl, value, vl);
    int rc = send_packet(ctx, cmd, d, 4 + fl + vl);
    free(d);
    return rc ? MI_FAILURE : MI_SUCCESS;
}

int smfi_insheader(SMFICTX *ctx, int idx, char *headerf, char *headerv)
{
    if (!may_change(ctx, SMFIF_ADDHDRS) || !headerf || !*headerf || !headerv || idx < 0)
        return MI_FAILURE;
    return send_indexed(ctx, SMFIR_INSHEADER, idx, headerf, headerv);
}

/* headerv NULL deletes the idx-th field of that name (an empty value on
 * the wire). */
int smfi_chgheader(SMFICTX *ctx, char *headerf, int idx, char *headerv)
{
    if (!may_change(ctx, SMFIF_CHGHDRS) || !headerf || !*headerf || idx < 0)
        return MI_FAILURE;
    return send_indexed(ctx, SMFIR_CHGHEADER, idx, headerf, headerv ? headerv : "");
}

int smfi_addrcpt(SMFICTX *ctx, char *rcpt)
{
    if (!may_change(ctx, SMFIF_ADDRCPT) || !rcpt || !*rcpt)
        return MI_FAILURE;
    return send_strings(ctx, SMFIR_ADDRCPT, rcpt, (char *)NULL) ? MI_FAILURE : MI_SUCCESS;
}

int smfi_delrcpt(SMFICTX *ctx, char *rcpt)
{
    if (!may_change(ctx, SMFIF_DELRCPT) || !rcpt || !*rcpt)
        return MI_FAILURE;
    return send_strings(ctx, SMFIR_DELRCPT, rcpt, (char *)NULL) ? MI_FAILURE : MI_SUCCESS;
}

int smfi_chgfrom(SMFICTX *ctx, char *mail, char *args)
{
    if (!may_change(ctx, SMFIF_CHGFROM) || !mail || !*mail)
        return MI_FAILURE;
    return send_strings(ctx, SMFIR_CHGFROM, mail, args, (char *)NULL) ? MI_FAILURE : MI_SUCCESS;
}

int smfi_replacebody(SMFICTX *ctx, unsigned char *bodyp, int bodylen)
{
    if (!may_change(ctx, SMFIF_CHGBODY) || bodylen < 0 || (bodylen > 0 && !bodyp))
        return MI_FAILURE;
    for (int off = 0; off < bodylen; off += MILTER_CHUNK_SIZE) {
        int n = bodylen - off < MILTER_CHUNK_SIZE ? bodylen - off : MILTER_CHUNK_SIZE;
        if (send_packet(ctx, SMFIR_REPLBODY, bodyp + off, (size_t)n))
            return MI_FAILURE;
    }
    return MI_SUCCESS;
}

int smfi_progress(SMFICTX *ctx)
{
    if (!ctx || !ctx->in_eom)
        return MI_FAILURE;
    return send_packet(ctx, SMFIR_PROGRESS, NULL, 0) ? MI_FAILURE : MI_SUCCESS;
}
