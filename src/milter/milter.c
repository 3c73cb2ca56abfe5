/*
 * milter.c - recrypt-milter's milter callbacks, written to libmilter's API
 * (served by engine.c).
 *
 * Negotiation asks the MTA for the fewest round trips the protocol allows
 * (no HELO, no unknown commands, no replies to connect, header and
 * end-of-header events where the MTA offers that), and mail that names no
 * list leaves the milter at DATA with ACCEPT: its headers and body are
 * never sent here. Each transaction works with the configuration of its
 * MAIL command (a reload applies to the next message only).
 *
 * RCPT: a recipient that is a list in the store makes the transaction a
 * protected one; from then on (and for a list after ordinary recipients)
 * further recipients get 452 4.5.3, so one rewritten body never reaches
 * anyone it was not meant for. A local (non-SMTP) submission cannot have
 * a recipient refused (Postfix would hold the whole message), so there a
 * refusal at RCPT is kept and given at DATA for the whole message, which
 * the MTA bounces to its sender. Headers and body of a protected transaction
 * are spooled to a private file. At end of message the post is checked
 * (docs/SCHEME.md, recryption step 1; the decisions and their replies are
 * gateway.c's, which knows nothing of libmilter: this file applies its
 * verdict), recrypted for every active device
 * enrolled before its date, and the MTA is told to replace the body, the
 * recipients, the envelope sender and the list headers. Any internal error
 * is a tempfail: never a half-rewritten or plaintext delivery.
 *
 * The replay cache (docs/FORMAT.md §9): the milter cannot see whether the
 * MTA commits what it hands over, so a sealed post is recorded as pending
 * and gets one more recipient, its delivery receipt (receipt.h); only the
 * MTA's delivery of that receipt makes the post delivered. A delivered
 * post that comes again is accepted and discarded; a pending one is
 * processed again (a retry must go through), for its first attempt's
 * audience only, so a replay never reaches a device enrolled or a member
 * reinstated since.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include "fromrewrite.h"
#include "gateway.h"
#include "log.h"
#include "milter.h"
#include "receipt.h"

#define HDR_PROCESSED "Recrypt-Processed"
#define MAX_RCPT_LEN (RC_ADDR_MAX + 3)
#define BODY_CHUNK 65536
#define HDR_ORIGINAL_FROM "X-Original-From"
#define FROM_VALUE_MAX 4096 /* a longer From is rewritten from its address alone */

static daemon_ctx *D;

void milter_set_daemon(daemon_ctx *d)
{
    D = d;
}

#define COUNT(field) __atomic_add_fetch(&D->field, 1, __ATOMIC_RELAXED)

void milter_log_counters(void)
{
    log_msg(LOG_LEVEL_NOTICE, NULL,
            "counters: recrypted=%lu stanzas=%lu refused=%lu tempfail=%lu replays=%lu "
            "passed=%lu plaintext=%lu deferred-rcpt=%lu split=%lu",
            __atomic_load_n(&D->n_recrypted, __ATOMIC_RELAXED),
            __atomic_load_n(&D->n_stanzas, __ATOMIC_RELAXED),
            __atomic_load_n(&D->n_refused, __ATOMIC_RELAXED),
            __atomic_load_n(&D->n_tempfail, __ATOMIC_RELAXED),
            __atomic_load_n(&D->n_replays, __ATOMIC_RELAXED),
            __atomic_load_n(&D->n_passed, __ATOMIC_RELAXED),
            __atomic_load_n(&D->n_plaintext, __ATOMIC_RELAXED),
            __atomic_load_n(&D->n_deferred, __ATOMIC_RELAXED),
            __atomic_load_n(&D->n_split, __ATOMIC_RELAXED));
}

/* ---- state ---- */

typedef struct {
    int protected_list;            /* a protected list is the recipient */
    int n_rcpts;                   /* recipients accepted so far */
    char list[RC_ADDR_MAX + 1];    /* canonical list address */
    char list_rcpt[MAX_RCPT_LEN];  /* the recipient as given, for smfi_delrcpt */
    char sender[RC_ADDR_MAX + 1];  /* envelope sender, lowercased ("" = <>) */
    char from[RC_ADDR_MAX + 1];    /* From header address, lowercased */
    char marker[128];              /* Recrypt-Processed value, if any */
    int n_list_key, n_processed, n_list_id, n_list_post; /* header counts to remove */
    int n_svc_sig, n_key_current; /* Recrypt-Service-Signature, Recrypt-List-Key-Current */
    /* FromRewrite: the first From value as given, and the counts of From,
     * Reply-To and X-Original-From fields. */
    char from_value[FROM_VALUE_MAX];
    int from_long; /* the first From did not fit from_value */
    int n_from, n_reply_to, n_orig_from;
    int spool;                     /* -1 when none */
    int spool_failed;              /* a write failed where no reply could say so */
    uint64_t size;
    int too_big;
    char qid[64];
    /* A refusal at RCPT held for DATA (local submission): code "" = none. */
    char held_code[4], held_xcode[8], held_text[448];
    config cfg; /* the configuration at MAIL: a reload applies to the next message */
} msg_state;

typedef struct {
    msg_state m;
    unsigned long steps; /* protocol steps agreed with the MTA (SMFIP_*) */
    int local;           /* a local (non-SMTP) submission: Postfix's pickup via cleanup */
} conn_state;

static void msg_reset(msg_state *m)
{
    if (m->spool >= 0)
        close(m->spool);
    memset(m, 0, sizeof *m);
    m->spool = -1;
    snprintf(m->qid, sizeof m->qid, "NOQUEUE");
}

static conn_state *conn(SMFICTX *ctx)
{
    return smfi_getpriv(ctx);
}

/* The configuration now (for a new transaction). */
static void read_config(config *out)
{
    pthread_rwlock_rdlock(&D->lock);
    *out = D->cfg;
    pthread_rwlock_unlock(&D->lock);
}

static void set_qid(SMFICTX *ctx, msg_state *m)
{
    const char *q = smfi_getsymval(ctx, "i");
    if (q && *q)
        snprintf(m->qid, sizeof m->qid, "%s", q);
}

/* "<Addr@Dom>" or "Addr@Dom" -> canonical address; -1 if it is not one. */
static int address_of(const char *arg, char *out)
{
    char buf[RC_ADDR_MAX + 8];
    const char *p = arg;
    while (*p == ' ')
        p++;
    if (*p == '<')
        p++;
    size_t n = strcspn(p, ">");
    if (n == 0 || n > RC_ADDR_MAX)
        return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return rc_address_canonical(out, buf, NULL) == 0 ? 0 : -1;
}

/* An SMTP reply text: formatted, one line, and without '%' (the MTA would
 * take it for a format). */
static void reply_text(char *out, size_t cap, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void reply_text(char *out, size_t cap, const char *fmt, va_list ap)
{
    vsnprintf(out, cap, fmt, ap);
    for (char *p = out; *p; p++)
        if (*p == '%' || *p == '\r' || *p == '\n')
            *p = ' ';
}

static sfsistat reply(SMFICTX *ctx, msg_state *m, const char *code, const char *xcode,
                      sfsistat st, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static sfsistat reply(SMFICTX *ctx, msg_state *m, const char *code, const char *xcode,
                      sfsistat st, const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    reply_text(text, sizeof text, fmt, ap);
    va_end(ap);
    smfi_setreply(ctx, (char *)code, (char *)xcode, text);
    /* 452 4.5.3 at RCPT is the normal way to split a transaction, not a failure. */
    int deferred = !strcmp(code, "452");
    /* A post line (admin guide §10): before end of message no epoch, post
     * id or audience is known yet. */
    log_msg(deferred ? LOG_LEVEL_DEBUG : st == SMFIS_TEMPFAIL ? LOG_LEVEL_ERROR : LOG_LEVEL_NOTICE,
            m ? m->qid : NULL,
            "list=%s epoch=- stanzas=0 recipients=0 size=%llu post=- verdict=%s reply=\"%s %s %s\"",
            m && m->list[0] ? m->list : "-", m ? (unsigned long long)m->size : 0ULL,
            deferred ? "deferred-rcpt" : st == SMFIS_TEMPFAIL ? "tempfail" : "rejected", code,
            xcode, text);
    if (deferred)
        COUNT(n_deferred);
    else if (st == SMFIS_TEMPFAIL)
        COUNT(n_tempfail);
    else if (st == SMFIS_REJECT)
        COUNT(n_refused);
    return st;
}

static int spool_write(msg_state *m, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(m->spool, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A private, already unlinked file in TempDir. */
static int spool_open(int *fd, const config *cfg)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/recrypt-milter.XXXXXX", cfg->temp_dir);
    mode_t old = umask(077);
    *fd = mkstemp(path);
    umask(old);
    if (*fd < 0)
        return -1;
    unlink(path);
    return 0;
}

/* ---- callbacks ---- */

/* The steps recrypt-milter asks the MTA to leave out or not to wait for.
 * Every callback that could only answer "continue" is a no-reply step
 * (connect, MAIL, each header, end of header): the MTA then sends MAIL
 * with RCPT, and all header fields at once. RCPT, DATA, body and end of
 * message keep their replies (each can refuse). */
#define STEPS_OFF (SMFIP_NOHELO | SMFIP_NOUNKNOWN)
#define STEPS_NO_REPLY (SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_HDR | SMFIP_NR_EOH)
#define ACTIONS                                                                         \
    (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT | SMFIF_DELRCPT |    \
     SMFIF_CHGFROM)

/* The one macro recrypt-milter reads is the queue ID ("i", for its log
 * lines). Where the MTA lets a milter choose (SMFIF_SETSYMLIST), it is
 * asked for that alone at every stage: the MTA then neither looks up nor
 * sends its default lists (Postfix: seven names at MAIL, three at RCPT,
 * five at connect). */
#define MACROS_WANTED "i"
static const int MACRO_STAGES[] = {SMFIM_CONNECT, SMFIM_HELO, SMFIM_ENVFROM, SMFIM_ENVRCPT,
                                   SMFIM_DATA,    SMFIM_EOH,  SMFIM_EOM};

static conn_state *conn_new(SMFICTX *ctx)
{
    conn_state *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->m.spool = -1;
    msg_reset(&c->m);
    smfi_setpriv(ctx, c);
    return c;
}

/* Called once per connection before connect: f0 are the actions the MTA
 * offers, f1 the protocol steps. */
static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                             unsigned long f2, unsigned long f3, unsigned long *pf0,
                             unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
    (void)f2;
    (void)f3;
    if ((f0 & ACTIONS) != ACTIONS) {
        /* Without these a post cannot be rewritten: fail closed (the MTA
         * applies its default action for an unusable milter). */
        log_msg(LOG_LEVEL_ERROR, NULL,
                "the MTA does not offer the changes recrypt needs (offered 0x%lx, needed "
                "0x%lx): refusing the connection",
                f0, (unsigned long)ACTIONS);
        return SMFIS_REJECT;
    }
    conn_state *c = conn(ctx);
    if (!c && !(c = conn_new(ctx)))
        return SMFIS_TEMPFAIL;
    c->steps = (STEPS_OFF | STEPS_NO_REPLY) & f1;
    unsigned long actions = ACTIONS;
    if (f0 & SMFIF_SETSYMLIST) {
        actions |= SMFIF_SETSYMLIST;
        for (size_t i = 0; i < sizeof MACRO_STAGES / sizeof MACRO_STAGES[0]; i++)
            if (smfi_setsymlist(ctx, MACRO_STAGES[i], MACROS_WANTED) != MI_SUCCESS) {
                /* only on a second call for the same stage or out of memory:
                 * the lists already set stand, the rest are the MTA's */
                log_msg(LOG_LEVEL_WARNING, NULL, "could not ask the MTA for macro list %d",
                        MACRO_STAGES[i]);
            }
    }
    log_msg(LOG_LEVEL_DEBUG, NULL,
            "protocol=negotiated actions=0x%lx/0x%lx steps=0x%lx/0x%lx macros=%s", f0, actions,
            f1, c->steps, (actions & SMFIF_SETSYMLIST) ? MACROS_WANTED : "mta");
    *pf0 = actions;
    *pf1 = c->steps;
    *pf2 = 0;
    *pf3 = 0;
    return SMFIS_CONTINUE;
}

/* The reply of a callback for a step the MTA may not wait for. */
static sfsistat go_on(const conn_state *c, unsigned long no_reply_step)
{
    return c->steps & no_reply_step ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* Postfix hands a local submission (sendmail(1), pickup) to the milter as
 * a connection from "localhost", 127.0.0.1, port 0; an SMTP client always
 * has a port. */
static int is_local_submission(const char *host, const _SOCK_ADDR *addr)
{
    if (!host || strcmp(host, "localhost") != 0 || !addr || addr->sa_family != AF_INET)
        return 0;
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
    return in->sin_port == 0 && ntohl(in->sin_addr.s_addr) == INADDR_LOOPBACK;
}

static sfsistat cb_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
    conn_state *c = conn(ctx);
    if (!c && !(c = conn_new(ctx)))
        /* No reply may be allowed here: every later step tempfails. */
        return SMFIS_TEMPFAIL;
    c->local = is_local_submission(host, addr);
    if (addr && addr->sa_family == AF_INET)
        log_msg(LOG_LEVEL_DEBUG, NULL, "protocol=connect host=%s port=%u local=%s",
                host && *host ? host : "-",
                ntohs(((const struct sockaddr_in *)(const void *)addr)->sin_port),
                c->local ? "yes" : "no");
    return go_on(c, SMFIP_NR_CONN);
}

static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
    conn_state *c = conn(ctx);
    if (!c)
        return reply(ctx, NULL, "451", "4.3.0", SMFIS_TEMPFAIL,
                     "recrypt: out of memory, try again later");
    msg_reset(&c->m);
    read_config(&c->m.cfg);
    set_qid(ctx, &c->m);
    if (argv[0] && address_of(argv[0], c->m.sender) != 0)
        c->m.sender[0] = '\0';
    return go_on(c, SMFIP_NR_MAIL);
}

/* A refusal at RCPT. SMTP: the reply refuses this recipient only. A local
 * submission: held for DATA, where it refuses the message (the MTA bounces
 * it to its sender); the recipient is let through until then. */
static sfsistat refuse_rcpt(SMFICTX *ctx, conn_state *c, const char *code, const char *xcode,
                            const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static sfsistat refuse_rcpt(SMFICTX *ctx, conn_state *c, const char *code, const char *xcode,
                            const char *fmt, ...)
{
    msg_state *m = &c->m;
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    reply_text(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!c->local)
        return reply(ctx, m, code, xcode, code[0] == '4' ? SMFIS_TEMPFAIL : SMFIS_REJECT, "%s",
                     text);
    if (!m->held_code[0]) {
        /* 452 4.5.3 "send separately" cannot be retried by a local
         * submission: it becomes permanent (5.5.3: too many recipients). */
        int split = !strcmp(code, "452");
        snprintf(m->held_code, sizeof m->held_code, "%s", split ? "550" : code);
        snprintf(m->held_xcode, sizeof m->held_xcode, "%s", split ? "5.5.3" : xcode);
        snprintf(m->held_text, sizeof m->held_text, "%s (a local submission is refused as a "
                 "whole)", text);
    }
    m->n_rcpts++;
    return SMFIS_CONTINUE;
}

static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
    conn_state *c = conn(ctx);
    if (!c)
        return SMFIS_TEMPFAIL;
    msg_state *m = &c->m;
    const config *cfg = &m->cfg;
    set_qid(ctx, m);
    char addr[RC_ADDR_MAX + 1];
    int is_list = 0;
    if (argv[0]) {
        if (receipt_in_domain(argv[0], cfg->receipt_domain))
            return refuse_rcpt(ctx, c, "550", "5.7.1",
                               "addresses @%s are the MTA's delivery receipts for recrypt, not "
                               "recipients",
                               cfg->receipt_domain);
        if (receipt_in_domain(argv[0], cfg->fanout_domain))
            return refuse_rcpt(ctx, c, "550", "5.7.1",
                               "addresses @%s are recrypt's fan-out of checked posts, not "
                               "recipients",
                               cfg->fanout_domain);
    }
    if (argv[0] && address_of(argv[0], addr) == 0) {
        rc_store_reader *rd;
        rc_store_list l;
        rc_error err;
        int rc = rc_store_reader_begin(D->store, &rd, &err);
        if (rc == 0) {
            rc = rc_store_get_list(rd, addr, &l, &err);
            rc_store_reader_end(rd);
        }
        if (rc != 0 && rc != RC_E_NOT_FOUND) {
            log_msg(LOG_LEVEL_ERROR, m->qid, "%s", err.msg);
            return reply(ctx, m, "451", "4.3.0", SMFIS_TEMPFAIL,
                         "recrypt: membership store unavailable, try again later");
        }
        is_list = rc == 0;
    }
    if (is_list) {
        if (m->n_rcpts > 0)
            return refuse_rcpt(ctx, c, "452", "4.5.3",
                               "%s is an encrypted list: send to it in a transaction of its own",
                               addr);
        m->protected_list = 1;
        snprintf(m->list, sizeof m->list, "%s", addr);
        snprintf(m->list_rcpt, sizeof m->list_rcpt, "%s", argv[0]);
        if (spool_open(&m->spool, cfg) != 0)
            return reply(ctx, m, "451", "4.3.0", SMFIS_TEMPFAIL,
                         "recrypt: cannot spool the message, try again later");
    } else if (m->protected_list) {
        return refuse_rcpt(ctx, c, "452", "4.5.3",
                           "this transaction goes to the encrypted list %s: send to other "
                           "recipients separately",
                           m->list);
    }
    m->n_rcpts++;
    return SMFIS_CONTINUE;
}

/* DATA: mail that names no list is not ours and leaves here, before the MTA
 * sends a single header; a local submission's held refusal is given. */
static sfsistat cb_data(SMFICTX *ctx)
{
    conn_state *c = conn(ctx);
    if (!c)
        return SMFIS_TEMPFAIL;
    msg_state *m = &c->m;
    set_qid(ctx, m);
    if (m->held_code[0])
        return reply(ctx, m, m->held_code, m->held_xcode, SMFIS_REJECT, "%s", m->held_text);
    if (!m->protected_list)
        return SMFIS_ACCEPT; /* not ours: no headers, no body, no changes */
    return SMFIS_CONTINUE;
}

/* Lowercased address in a From value: inside <> if present, else the
 * whole value trimmed. Good enough for the members-only check, which is
 * forgeable anyway (signatures are what readers trust). */
static void from_address(const char *v, char *out)
{
    char buf[RC_ADDR_MAX + 8];
    const char *lt = strrchr(v, '<');
    const char *p = lt ? lt + 1 : v;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = lt ? strcspn(p, ">") : strcspn(p, " \t\r\n");
    out[0] = '\0';
    if (n == 0 || n > RC_ADDR_MAX)
        return;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (rc_address_canonical(out, buf, NULL) != 0)
        out[0] = '\0';
}

/* Headers and end of header have no reply (where the MTA agreed): a spool
 * failure is kept and given at the next step that has one. */
static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
    conn_state *c = conn(ctx);
    if (!c)
        return SMFIS_TEMPFAIL;
    msg_state *m = &c->m;
    if (!m->protected_list || m->too_big || m->spool_failed)
        return go_on(c, SMFIP_NR_HDR);
    if (!strcasecmp(name, RC_HDR_LIST_KEY))
        m->n_list_key++;
    else if (!strcasecmp(name, RC_HDR_SERVICE_SIG))
        m->n_svc_sig++;
    else if (!strcasecmp(name, RC_HDR_LIST_KEY_CURRENT))
        m->n_key_current++;
    else if (!strcasecmp(name, HDR_PROCESSED)) {
        m->n_processed++;
        snprintf(m->marker, sizeof m->marker, "%s", value);
    } else if (!strcasecmp(name, "List-Id"))
        m->n_list_id++;
    else if (!strcasecmp(name, "List-Post"))
        m->n_list_post++;
    else if (!strcasecmp(name, "From")) {
        from_address(value, m->from);
        if (m->n_from++ == 0) {
            m->from_long = strlen(value) >= sizeof m->from_value;
            snprintf(m->from_value, sizeof m->from_value, "%s", m->from_long ? "" : value);
        }
    } else if (!strcasecmp(name, "Reply-To"))
        m->n_reply_to++;
    else if (!strcasecmp(name, HDR_ORIGINAL_FROM))
        m->n_orig_from++;
    /* Spool as CRLF text: the MTA hands folded values with bare LF. */
    int bad = spool_write(m, name, strlen(name)) || spool_write(m, ": ", 2);
    for (const char *p = value; !bad && *p;) {
        size_t run = strcspn(p, "\r\n"); /* write each line in one call */
        bad = run && spool_write(m, p, run);
        p += run;
        if (!bad && *p == '\n')
            bad = spool_write(m, "\r\n", 2);
        if (*p)
            p++;
    }
    if (bad || spool_write(m, "\r\n", 2))
        m->spool_failed = 1;
    m->size += strlen(name) + strlen(value) + 4;
    return go_on(c, SMFIP_NR_HDR);
}

static sfsistat spool_failure(SMFICTX *ctx, msg_state *m)
{
    return reply(ctx, m, "451", "4.3.0", SMFIS_TEMPFAIL,
                 "recrypt: cannot spool the message, try again later");
}

static sfsistat cb_eoh(SMFICTX *ctx)
{
    conn_state *c = conn(ctx);
    if (!c)
        return SMFIS_TEMPFAIL;
    if (!c->m.protected_list) /* an MTA that skipped DATA */
        return c->steps & SMFIP_NR_EOH ? SMFIS_NOREPLY : SMFIS_ACCEPT;
    if (!c->m.spool_failed && spool_write(&c->m, "\r\n", 2))
        c->m.spool_failed = 1;
    if (c->m.spool_failed && !(c->steps & SMFIP_NR_EOH))
        return spool_failure(ctx, &c->m);
    return go_on(c, SMFIP_NR_EOH);
}

static sfsistat cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
    conn_state *c = conn(ctx);
    if (!c)
        return SMFIS_TEMPFAIL;
    msg_state *m = &c->m;
    if (!m->protected_list)
        return SMFIS_ACCEPT;
    if (m->spool_failed)
        return spool_failure(ctx, m);
    m->size += len;
    if (m->size > m->cfg.max_message_size) {
        m->too_big = 1;
        return reply(ctx, m, "552", "5.3.4", SMFIS_REJECT,
                     "message too big for the encrypted list %s (limit %llu bytes)", m->list,
                     (unsigned long long)m->cfg.max_message_size);
    }
    if (spool_write(m, chunk, len))
        return spool_failure(ctx, m);
    return SMFIS_CONTINUE;
}

/* ---- end of message ---- */

/* Tell the MTA: new body, recipients, sender, headers; with from_rewrite
 * (FromRewrite yes) the outer From too (fromrewrite.h). */
static int rewrite(SMFICTX *ctx, msg_state *m, int body_fd, const rc_store_list *l,
                   const rc_statement *st, const char *marker, const rc_store_audience *aud,
                   const char *receipt, int keep_body, int from_rewrite)
{
    if (!keep_body) {
        uint8_t *buf = malloc(BODY_CHUNK);
        if (!buf || lseek(body_fd, 0, SEEK_SET) != 0) {
            free(buf);
            return -1;
        }
        ssize_t got;
        /* All replacebody calls back to back, nothing in between. */
        while ((got = read(body_fd, buf, BODY_CHUNK)) > 0)
            if (smfi_replacebody(ctx, buf, (int)got) != MI_SUCCESS) {
                free(buf);
                return -1;
            }
        free(buf);
        if (got < 0)
            return -1;
    }
    if (smfi_delrcpt(ctx, m->list_rcpt) != MI_SUCCESS)
        return -1;
    for (size_t i = 0; i < aud->n_members; i++) {
        char a[MAX_RCPT_LEN];
        snprintf(a, sizeof a, "<%s>", aud->members[i].address);
        if (smfi_addrcpt(ctx, a) != MI_SUCCESS)
            return -1;
    }
    if (receipt && smfi_addrcpt(ctx, (char *)receipt) != MI_SUCCESS)
        return -1;
    char bounce[MAX_RCPT_LEN];
    snprintf(bounce, sizeof bounce, "<%s>", l->bounce);
    if (smfi_chgfrom(ctx, bounce, NULL) != MI_SUCCESS)
        return -1;
    /* Headers of ours that came in are removed, ours added. */
    for (int i = m->n_list_key; i > 0; i--)
        if (smfi_chgheader(ctx, RC_HDR_LIST_KEY, i, NULL) != MI_SUCCESS)
            return -1;
    for (int i = m->n_processed; i > 0; i--)
        if (smfi_chgheader(ctx, HDR_PROCESSED, i, NULL) != MI_SUCCESS)
            return -1;
    for (int i = m->n_svc_sig; i > 0; i--)
        if (smfi_chgheader(ctx, RC_HDR_SERVICE_SIG, i, NULL) != MI_SUCCESS)
            return -1;
    for (int i = m->n_key_current; i > 0; i--)
        if (smfi_chgheader(ctx, RC_HDR_LIST_KEY_CURRENT, i, NULL) != MI_SUCCESS)
            return -1;
    for (int i = m->n_list_id; i > 0; i--)
        if (smfi_chgheader(ctx, "List-Id", i, NULL) != MI_SUCCESS)
            return -1;
    for (int i = m->n_list_post; i > 0; i--)
        if (smfi_chgheader(ctx, "List-Post", i, NULL) != MI_SUCCESS)
            return -1;
    char v[RC_KEYSTR_MAX + 64], id[RC_ADDR_MAX + 8];
    snprintf(id, sizeof id, "<%s>", l->address);
    char *at = strchr(id, '@');
    if (at)
        *at = '.';
    snprintf(v, sizeof v, "<mailto:%s>", l->address);
    if (smfi_addheader(ctx, "List-Id", id) != MI_SUCCESS ||
        smfi_addheader(ctx, "List-Post", v) != MI_SUCCESS)
        return -1;
    if (st) {
        char key[RC_KEYSTR_MAX];
        if (rc_statement_encode(key, sizeof key, st, NULL) != 0)
            return -1;
        /* Folded: continuation lines of at most 75 characters. */
        size_t o = 0, len = strlen(key);
        for (size_t i = 0; i < len; i += 72) {
            if (i)
                o += (size_t)snprintf(v + o, sizeof v - o, "\n ");
            o += (size_t)snprintf(v + o, sizeof v - o, "%.72s", key + i);
        }
        if (smfi_addheader(ctx, RC_HDR_LIST_KEY, v) != MI_SUCCESS)
            return -1;
    }
    if (marker && smfi_addheader(ctx, HDR_PROCESSED, (char *)marker) != MI_SUCCESS)
        return -1;
    if (from_rewrite) {
        /* The first From becomes the list's, further ones (a plaintext post
         * may have them) go; the poster's From value is kept in
         * X-Original-From (replacing any the post brought) and the poster's
         * mailbox in Reply-To unless the post has one. A From longer than
         * FROM_VALUE_MAX is known by its address only. */
        char orig[RC_ADDR_MAX + 3] = "";
        const char *orig_value = m->from_value;
        if (m->from_long) {
            if (m->from[0])
                snprintf(orig, sizeof orig, "<%s>", m->from);
            orig_value = orig;
        }
        fromrw_result fr;
        if (fromrw_build(m->n_from && orig_value[0] ? orig_value : NULL, l->address, m->sender,
                         &fr) != 0)
            return -1;
        int bad = m->n_from ? smfi_chgheader(ctx, "From", 1, fr.from) != MI_SUCCESS
                            : smfi_addheader(ctx, "From", fr.from) != MI_SUCCESS;
        for (int i = m->n_from; !bad && i > 1; i--)
            bad = smfi_chgheader(ctx, "From", i, NULL) != MI_SUCCESS;
        for (int i = m->n_orig_from; !bad && i > 0; i--)
            bad = smfi_chgheader(ctx, HDR_ORIGINAL_FROM, i, NULL) != MI_SUCCESS;
        if (!bad && orig_value[0])
            bad = smfi_addheader(ctx, HDR_ORIGINAL_FROM, (char *)orig_value) != MI_SUCCESS;
        if (!bad && !m->n_reply_to && fr.reply_to)
            bad = smfi_addheader(ctx, "Reply-To", fr.reply_to) != MI_SUCCESS;
        fromrw_free(&fr);
        if (bad)
            return -1;
    }
    return 0;
}

static int body_sink(void *ctx, const uint8_t *p, size_t n)
{
    return rc_fd_sink(ctx, p, n);
}

/* A verdict that ends the transaction (a refusal or a tempfail): the
 * reply to the MTA and the log line. */
/* Refuse or defer the post as v says. mail: the parsed post, whose
 * envelope names the epoch it is sealed for (NULL before it was parsed or
 * for a plaintext post: epoch=- in the line). */
static sfsistat apply(SMFICTX *ctx, msg_state *m, const gw_verdict *v, const rc_mail *mail)
{
    char epoch[24] = "-";
    if (mail)
        snprintf(epoch, sizeof epoch, "%llu", (unsigned long long)rc_mail_envelope(mail)->epoch);
    sfsistat st = v->action == GW_TEMPFAIL ? SMFIS_TEMPFAIL : SMFIS_REJECT;
    if (v->n_lines < 2 || smfi_setmlreply(ctx, v->code, v->xcode, v->line[0],
                                          v->n_lines > 1 ? v->line[1] : NULL,
                                          v->n_lines > 2 ? v->line[2] : NULL,
                                          v->n_lines > 3 ? v->line[3] : NULL,
                                          v->n_lines > 4 ? v->line[4] : NULL, NULL) != MI_SUCCESS)
        smfi_setreply(ctx, (char *)v->code, (char *)v->xcode, (char *)v->line[0]);
    /* One post line (admin guide §10), a tempfail's cause in error="...". */
    log_msg(st == SMFIS_TEMPFAIL ? LOG_LEVEL_ERROR : LOG_LEVEL_NOTICE, m->qid,
            "list=%s epoch=%s stanzas=0 recipients=0 size=%llu post=- verdict=%s "
            "reply=\"%s %s %s\"%s%s%s",
            m->list[0] ? m->list : "-", epoch, (unsigned long long)m->size,
            st == SMFIS_TEMPFAIL ? "tempfail" : "rejected", v->code, v->xcode,
            v->log_text[0] ? v->log_text : v->line[0], v->detail[0] ? " error=\"" : "",
            v->detail, v->detail[0] ? "\"" : "");
    if (st == SMFIS_TEMPFAIL)
        COUNT(n_tempfail);
    else
        COUNT(n_refused);
    return st;
}

/* Split delivery (FanoutDomain set): the checked post goes, unchanged, to
 * one recipient, TOKEN@FanoutDomain, which the MTA routes to
 * recrypt-fanout; that builds each member's own copy. */
static int hand_to_fanout(SMFICTX *ctx, msg_state *m, const config *cfg, const rc_envelope *env)
{
    char token[RECEIPT_TOKEN_LEN + 1], a[RECEIPT_TOKEN_LEN + 1 + sizeof cfg->fanout_domain + 2];
    fanout_token(token, D->mark_secret, env->E);
    snprintf(a, sizeof a, "<%s@%s>", token, cfg->fanout_domain);
    if (smfi_delrcpt(ctx, m->list_rcpt) != MI_SUCCESS || smfi_addrcpt(ctx, a) != MI_SUCCESS)
        return -1;
    return 0;
}

static sfsistat process(SMFICTX *ctx, msg_state *m)
{
    const config *cfg = &m->cfg; /* as at MAIL */
    rc_error err;
    rc_mail *mail = NULL;
    rc_store_reader *rd = NULL;
    rc_store_list l;
    rc_store_epoch ep;
    rc_store_audience aud = {0};
    int out = -1, recorded = 0;
    size_t n_stanzas = 0;
    uint8_t stanza_hash[32];
    char svc_sig[GW_SVC_SIG_MAX], key_current[GW_CURRENT_MAX];
    svc_sig[0] = key_current[0] = '\0';
    sfsistat st = SMFIS_TEMPFAIL;
    uint64_t now = (uint64_t)time(NULL);

    /* The decisions: gateway.c. */
    gw_verdict v;
    const gw_post post = {
        .list = m->list,
        .fd = m->spool,
        .sender = m->sender,
        .from = m->from,
        .mark = m->marker,
        .n_marks = m->n_processed,
        .mark_secret = D->mark_secret,
        .plaintext_policy = cfg->plaintext_policy,
        .posting_policy = cfg->posting_policy,
        .now = now,
        .freshness_window = cfg->freshness_window,
        .future_skew = cfg->future_skew,
    };
    gateway_check(D->store, &post, &rd, &mail, &l, &ep, &v);
    if (v.plaintext)
        COUNT(n_plaintext);
    if (v.action == GW_PASS) {
        log_msg(LOG_LEVEL_INFO, m->qid,
                "list=%s epoch=%llu stanzas=0 recipients=0 size=%llu post=- verdict=passed",
                m->list, (unsigned long long)rc_mail_envelope(mail)->epoch,
                (unsigned long long)m->size);
        COUNT(n_passed);
        st = SMFIS_ACCEPT;
        goto done;
    }
    if (v.action != GW_GO_ON) {
        st = apply(ctx, m, &v, mail);
        goto done;
    }
    /* A plaintext post the policy lets through goes inline, as it came:
     * it has no stanzas to split. */
    int split = mail && cfg->fanout_domain[0];

    /* The replay cache, before the audience is known: a retry's audience
     * is its first attempt's. */
    gw_replay rp = {.state = RC_POST_NEW, .first = now, .rule = {UINT64_MAX, UINT64_MAX}};
    snprintf(rp.post_id, sizeof rp.post_id, "-");
    if (mail) {
        if (gateway_replay(D->store, mail, now, cfg->freshness_window, &rp, &v) != 0) {
            st = apply(ctx, m, &v, mail);
            goto done;
        }
        if (rp.state == RC_POST_DELIVERED) {
            log_msg(LOG_LEVEL_INFO, m->qid,
                    "list=%s epoch=%llu stanzas=0 recipients=0 size=%llu post=%s "
                    "verdict=duplicate (delivered before, the MTA's receipt says: a retry or a "
                    "replay; accepted and discarded)",
                    l.address, (unsigned long long)rc_mail_envelope(mail)->epoch,
                    (unsigned long long)m->size, rp.post_id);
            COUNT(n_replays);
            st = SMFIS_DISCARD;
            goto done;
        }
        recorded = rp.state == RC_POST_NEW; /* forgotten again unless the MTA gets it */
    }

    /* The delivery plan: who gets it (and, inline, the entries). */
    gateway_plan(rd, split || !mail ? NULL : D->svc, &l, ep.epoch, &rp.rule, split,
                 cfg->max_fanout, &aud, &v);
    if (v.action != GW_GO_ON) {
        st = apply(ctx, m, &v, mail);
        goto done;
    }

    char marker[64];
    char receipt[RECEIPT_TOKEN_LEN + 1 + sizeof m->cfg.receipt_domain + 2] = "";
    if (split) {
        if (hand_to_fanout(ctx, m, cfg, rc_mail_envelope(mail)) != 0) {
            st = reply(ctx, m, "451", "4.3.0", SMFIS_TEMPFAIL,
                       "recrypt: the MTA refused a change, try again later");
            goto done;
        }
    } else {
        if (mail) {
            const rc_envelope *env = rc_mail_envelope(mail);
            if (spool_open(&out, cfg) != 0 ||
                rc_mail_write_recrypted_body_h(mail, aud.entries, aud.n_entries, 1, body_sink,
                                               &out, &n_stanzas, stanza_hash, &err) != 0 ||
                gateway_service_fields(rd, D->svc, &l, &ep, mail, stanza_hash, "", svc_sig,
                                       key_current, &err) != 0) {
                st = reply(ctx, m, "451", "4.3.0", SMFIS_TEMPFAIL,
                           "recrypt: cannot recrypt: %s", err.msg[0] ? err.msg : "spool");
                goto done;
            }
            gateway_processed_mark(marker, D->mark_secret, l.list_id, env);
            if (cfg->receipt_domain[0]) {
                char token[RECEIPT_TOKEN_LEN + 1];
                receipt_token(token, D->mark_secret, env->E);
                snprintf(receipt, sizeof receipt, "<%s@%s>", token, cfg->receipt_domain);
            }
        }
        if (rewrite(ctx, m, out, &l, &ep.statement, mail ? marker : NULL, &aud,
                    receipt[0] ? receipt : NULL, mail == NULL, cfg->from_rewrite) != 0) {
            st = reply(ctx, m, "451", "4.3.0", SMFIS_TEMPFAIL,
                       "recrypt: the MTA refused a change, try again later");
            goto done;
        }
        /* The service signature of this copy and, for a post of an older
         * epoch, the current list key (FORMAT.md §9.2). */
        int add_sig = mail && svc_sig[0], add_cur = mail && key_current[0];
        if ((add_sig && smfi_addheader(ctx, RC_HDR_SERVICE_SIG, svc_sig) != MI_SUCCESS) ||
            (add_cur && smfi_addheader(ctx, RC_HDR_LIST_KEY_CURRENT, key_current) != MI_SUCCESS)) {
            st = reply(ctx, m, "451", "4.3.0", SMFIS_TEMPFAIL,
                       "recrypt: the MTA refused a change, try again later");
            goto done;
        }
        if (!mail && smfi_addheader(ctx, "Recrypt-Encrypted",
                                    "no (plaintext post, delivered as it came)") != MI_SUCCESS) {
            st = reply(ctx, m, "451", "4.3.0", SMFIS_TEMPFAIL, "recrypt: cannot mark the post");
            goto done;
        }
    }
    recorded = 0; /* handed to the MTA: pending until its receipt (or the fan-out) */
    if (split) {
        COUNT(n_split);
    } else if (mail) {
        COUNT(n_recrypted);
        __atomic_add_fetch(&D->n_stanzas, n_stanzas, __ATOMIC_RELAXED);
    }
    char retry[96] = "";
    if (rp.state == RC_POST_PENDING) {
        struct tm tm;
        time_t t = (time_t)rp.first;
        char when[32];
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(retry, sizeof retry, " (retry of a post first handed to the MTA at %s)", when);
    }
    /* "recrypted": handed to the MTA, which has not committed it yet; the
     * receipt's line says "delivered". "split": handed to the MTA for
     * recrypt-fanout, whose line says "delivered"; recipients= counts the
     * members planned now (the fan-out decides again). */
    log_msg(LOG_LEVEL_INFO, m->qid,
            "list=%s epoch=%llu stanzas=%zu recipients=%zu size=%llu post=%s verdict=%s%s",
            l.address, (unsigned long long)ep.epoch, n_stanzas, aud.n_members,
            (unsigned long long)m->size, rp.post_id,
            split ? "split" : mail ? "recrypted" : "plaintext", retry);
    st = SMFIS_CONTINUE;
done:
    if (recorded && mail &&
        rc_store_delivered_forget(D->store, rc_mail_envelope(mail)->E, rp.first, &err) != 0)
        /* The post stays pending: a retry still goes through, for this
         * attempt's audience. */
        log_msg(LOG_LEVEL_WARNING, m->qid, "list=%s cannot forget a post that was not handed "
                "over (it stays pending): %s", m->list, err.msg);
    if (out >= 0)
        close(out);
    rc_store_audience_free(&aud);
    rc_store_reader_end(rd);
    rc_mail_free(mail);
    return st;
}

static sfsistat cb_eom(SMFICTX *ctx)
{
    conn_state *c = conn(ctx);
    if (!c)
        return SMFIS_TEMPFAIL;
    msg_state *m = &c->m;
    set_qid(ctx, m);
    if (!m->protected_list) /* an MTA that skipped DATA */
        return SMFIS_CONTINUE;
    if (m->spool_failed) {
        sfsistat st = spool_failure(ctx, m);
        msg_reset(m);
        return st;
    }
    sfsistat st = process(ctx, m);
    msg_reset(m);
    return st;
}

static sfsistat cb_abort(SMFICTX *ctx)
{
    conn_state *c = conn(ctx);
    if (c)
        msg_reset(&c->m);
    return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
    conn_state *c = conn(ctx);
    if (c) {
        msg_reset(&c->m);
        free(c);
        smfi_setpriv(ctx, NULL);
    }
    return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    "recrypt",
    SMFI_VERSION,
    ACTIONS,
    cb_connect,
    NULL, /* helo */
    cb_envfrom,
    cb_envrcpt,
    cb_header,
    cb_eoh,
    cb_body,
    cb_eom,
    cb_abort,
    cb_close,
    NULL, /* unknown */
    cb_data,
    cb_negotiate,
};

struct smfiDesc *milter_description(void)
{
    return &desc;
}
