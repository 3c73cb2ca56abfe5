/*
 * gateway.c - the gateway's decisions about one post: see gateway.h.
 *
 * The order of the checks is the order of docs/SCHEME.md, recryption
 * step 1, after the store and the form: the list, the processing mark (a
 * post this service already recrypted passes unchanged), stanzas, the
 * list id, the epoch and its grace, rc_mail_check_post (proof and Date),
 * and last the posting policy. The first that fails decides.
 */
#include <ctype.h>
#include <strings.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include "config.h"
#include "gateway.h"
#include "receipt.h"

#define RC_L_PROCESSED "recrypt/marker" /* 16-byte BLAKE2b personal */

static void clean_line(char *s)
{
    for (; *s; s++)
        if (*s == '%' || *s == '\r' || *s == '\n')
            *s = ' ';
}

static void verdict_vset(gw_verdict *v, gw_action action, const char *code, const char *xcode,
                         const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static void verdict_vset(gw_verdict *v, gw_action action, const char *code, const char *xcode,
                         const char *fmt, va_list ap)
{
    int plaintext = v->plaintext;
    memset(v, 0, sizeof *v);
    v->plaintext = plaintext;
    v->action = action;
    snprintf(v->code, sizeof v->code, "%s", code);
    snprintf(v->xcode, sizeof v->xcode, "%s", xcode);
    vsnprintf(v->line[0], 400, fmt, ap); /* one SMTP reply line stays under 512 octets */
    clean_line(v->line[0]);
    v->n_lines = 1;
}

void gateway_verdict_set(gw_verdict *v, gw_action action, const char *code, const char *xcode,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verdict_vset(v, action, code, xcode, fmt, ap);
    va_end(ap);
}

static void add_line(gw_verdict *v, const char *s)
{
    if (v->n_lines >= GW_LINES)
        return;
    snprintf(v->line[v->n_lines], GW_LINE_MAX, "%s", s);
    clean_line(v->line[v->n_lines]);
    v->n_lines++;
}

/* The current list key as a key line ("" when the store cannot say). */
static void current_key(rc_store_reader *rd, const rc_store_list *l, char *key, size_t cap)
{
    rc_store_epoch cur;
    key[0] = '\0';
    if (rc_store_get_epoch(rd, l->list_id, l->current_epoch, &cur, NULL) != 0 ||
        rc_statement_encode(key, cap, &cur.statement, NULL) != 0)
        key[0] = '\0';
}

/* 550 5.7.0 for a post sealed to an epoch the list no longer takes. The
 * reply ends with the command that seals it to the current list key, so
 * that the sender recovers from the bounce in one step. */
static void reject_epoch(gw_verdict *v, rc_store_reader *rd, const rc_store_list *l,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void reject_epoch(gw_verdict *v, rc_store_reader *rd, const rc_store_list *l,
                         const char *fmt, ...)
{
    char key[RC_KEYSTR_MAX], cmd[RC_KEYSTR_MAX + 32];
    va_list ap;
    va_start(ap, fmt);
    verdict_vset(v, GW_REJECT, "550", "5.7.0", fmt, ap);
    va_end(ap);
    current_key(rd, l, key, sizeof key);
    if (!key[0])
        return;
    snprintf(cmd, sizeof cmd, "recrypt seal --to %s", key);
    add_line(v, "Seal the message again with the current list key:");
    add_line(v, cmd);
}

/* Does the text hold the recrypt control type (any case)? */
static int has_protocol(const char *p, size_t n)
{
    static const char want[] = RC_MIME_PROTOCOL;
    const size_t w = sizeof want - 1;
    for (size_t i = 0; i + w <= n; i++)
        if (strncasecmp(p + i, want, w) == 0)
            return 1;
    return 0;
}

/* Is the spooled message a sealed post (else: plaintext)? Decided on the
 * whole message, whatever the size of its header (docs/FORMAT.md §9.3,
 * "Sealed or plaintext"): sealed when the text application/vnd.recrypt.
 * control occurs anywhere in it, header or body, in any case (an outer
 * Content-Type with that protocol, or such a part anywhere). 1 sealed,
 * 0 plaintext, -1 unreadable. */
static int is_sealed(int fd)
{
    enum { BLOCK = 65536, KEEP = sizeof RC_MIME_PROTOCOL - 2 };
    char *buf = malloc(KEEP + BLOCK);
    size_t have = 0;
    int rc = -1;
    if (!buf || lseek(fd, 0, SEEK_SET) != 0) {
        free(buf);
        return -1;
    }
    for (;;) {
        ssize_t n = read(fd, buf + have, BLOCK);
        if (n <= 0) {
            rc = n < 0 ? -1 : 0;
            break;
        }
        have += (size_t)n;
        if (has_protocol(buf, have)) {
            rc = 1;
            break;
        }
        /* Keep the tail that may begin a match across blocks. */
        size_t keep = have < KEEP ? have : KEEP;
        memmove(buf, buf + have - keep, keep);
        have = keep;
    }
    free(buf);
    return rc;
}

static int members_only_ok(rc_store_reader *rd, const uint8_t *list_id, const gw_post *p)
{
    rc_store_member mem;
    const char *who[2] = {p->sender, p->from};
    for (int i = 0; i < 2; i++)
        if (who[i] && who[i][0] && rc_store_get_member(rd, list_id, who[i], &mem, NULL) == 0 &&
            mem.status == RC_STATUS_ACTIVE)
            return 1;
    return 0;
}

void gateway_processed_mark(char out[64], const uint8_t mark_secret[32],
                            const uint8_t list_id[32], const rc_envelope *env)
{
    uint8_t in[32 + 32 + 32], mac[32];
    crypto_generichash_blake2b_state st;
    uint8_t personal[16] = {0}, salt[16] = {0};
    memcpy(personal, RC_L_PROCESSED, strlen(RC_L_PROCESSED));
    memcpy(in, list_id, 32);
    memcpy(in + 32, env->E, 32);
    memcpy(in + 64, env->KC, 32);
    crypto_generichash_blake2b_init_salt_personal(&st, mark_secret, 32, sizeof mac, salt,
                                                  personal);
    crypto_generichash_blake2b_update(&st, in, sizeof in);
    crypto_generichash_blake2b_final(&st, mac, sizeof mac);
    sodium_bin2base64(out, 64, mac, sizeof mac, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* The checks of a sealed post; v is set only when one fails. */
static void check_sealed(rc_store_reader *rd, const gw_post *p, const rc_mail *mail,
                         const rc_store_list *l, rc_store_epoch *ep, gw_verdict *v)
{
    rc_error err;
    const rc_envelope *env = rc_mail_envelope(mail);
    /* Already processed by this service: pass unchanged. */
    if (p->n_marks == 1 && p->mark && strlen(p->mark) == GW_PROCESSED_MARK_LEN) {
        char want[64];
        gateway_processed_mark(want, p->mark_secret, l->list_id, env);
        if (sodium_memcmp(want, p->mark, GW_PROCESSED_MARK_LEN) == 0) {
            v->action = GW_PASS;
            ep->epoch = env->epoch;
            return;
        }
    }
    if (rc_mail_stanza_count(mail)) {
        gateway_verdict_set(v, GW_REJECT, "554", "5.7.1",
                            "the post already carries stanzas but no valid processing mark");
        return;
    }
    if (sodium_memcmp(env->list_id, l->list_id, RC_ID_BYTES) != 0) {
        gateway_verdict_set(v, GW_REJECT, "550", "5.7.1",
                            "the message was sealed for another list than %s", l->address);
        return;
    }
    if (rc_store_get_epoch(rd, l->list_id, env->epoch, ep, &err) != 0) {
        reject_epoch(v, rd, l,
                     "sealed for epoch %llu, which list %s does not have (current epoch %llu)",
                     (unsigned long long)env->epoch, l->address,
                     (unsigned long long)l->current_epoch);
        return;
    }
    if (ep->grace_until && ep->grace_until < p->now) {
        reject_epoch(v, rd, l,
                     "the list key of epoch %llu of %s is no longer accepted (current epoch "
                     "%llu; members' mail programs learn it from list mail)",
                     (unsigned long long)env->epoch, l->address,
                     (unsigned long long)l->current_epoch);
        return;
    }
    /* The list and the epoch are checked above, so a policy failure here
     * is the Date (stale or ahead); anything else is a proof that does not
     * hold or a malformed post. */
    int crc = rc_mail_check_post(mail, l->address, env->epoch, ep->statement.A, p->now,
                                 p->freshness_window, p->future_skew, &err);
    if (crc == RC_E_POLICY)
        gateway_verdict_set(v, GW_REJECT, "550", "5.7.0", "%s", err.msg);
    else if (crc)
        gateway_verdict_set(v, GW_REJECT, "554", "5.7.1", "%s", err.msg);
}

/* A verdict to go on with and a store reader in *rd; or a tempfail
 * verdict (and -1) when the store cannot be read. */
static int verdict_begin(rc_store *store, rc_store_reader **rd, gw_verdict *v)
{
    rc_error err;
    memset(v, 0, sizeof *v);
    v->action = GW_GO_ON;
    *rd = NULL;
    if (rc_store_reader_begin(store, rd, &err) == 0)
        return 0;
    gateway_verdict_set(v, GW_TEMPFAIL, "451", "4.3.0",
                        "recrypt: membership store unavailable, try again later");
    snprintf(v->detail, sizeof v->detail, "%s", err.msg);
    return -1;
}

typedef struct {
    const uint8_t *id;
    rc_store_list *out;
    int found;
} find_list_ctx;

static int find_list_row(void *ctx, const rc_store_list *l)
{
    find_list_ctx *f = ctx;
    if (sodium_memcmp(l->list_id, f->id, RC_ID_BYTES) != 0)
        return 0;
    *f->out = *l;
    f->found = 1;
    return 1;
}

/* The list whose id the post names (split delivery's fan-out, which is
 * not told the list's address): 0, RC_E_NOT_FOUND, or a store error. */
static int list_by_id(rc_store_reader *rd, const uint8_t id[RC_ID_BYTES], rc_store_list *l,
                      rc_error *err)
{
    find_list_ctx f = {id, l, 0};
    int rc = rc_store_each_list(rd, find_list_row, &f, err);
    if (f.found)
        return 0;
    return rc ? rc : RC_E_NOT_FOUND;
}

void gateway_check(rc_store *store, const gw_post *p, rc_store_reader **rd, rc_mail **mail,
                   rc_store_list *l, rc_store_epoch *ep, gw_verdict *v)
{
    rc_error err;
    *mail = NULL;
    if (verdict_begin(store, rd, v) != 0)
        return;
    if (rc_store_get_list(*rd, p->list, l, &err) != 0) {
        gateway_verdict_set(v, GW_TEMPFAIL, "451", "4.3.0",
                            "recrypt: membership store unavailable, try again later");
        snprintf(v->detail, sizeof v->detail, "%s", err.msg);
        return;
    }
    int sealed = is_sealed(p->fd);
    if (sealed < 0) {
        gateway_verdict_set(v, GW_TEMPFAIL, "451", "4.3.0",
                            "recrypt: cannot read the spooled message, try again later");
        return;
    }
    if (!sealed) {
        v->plaintext = 1;
        if (p->plaintext_policy == PLAINTEXT_REJECT) {
            char key[RC_KEYSTR_MAX];
            current_key(*rd, l, key, sizeof key);
            gateway_verdict_set(v, GW_REJECT, "550", "5.7.1",
                                "recrypt: this list accepts only encrypted posts.");
            add_line(v, "Seal the message with: recrypt seal --to LISTKEY");
            add_line(v, "(the list key is in the Recrypt-List-Key header of any list");
            add_line(v, "message, or ask the list owner). The current list key is:");
            add_line(v, key);
            snprintf(v->log_text, sizeof v->log_text, "plaintext post to an encrypted list");
            return;
        }
        if (rc_store_get_epoch(*rd, l->list_id, l->current_epoch, ep, &err) != 0) {
            gateway_verdict_set(v, GW_TEMPFAIL, "451", "4.3.0", "recrypt: store inconsistent");
            return;
        }
    } else {
        if (rc_mail_parse(mail, p->fd, &err) != 0) {
            /* A post that carries the recrypt control type is never
             * plaintext, whatever the policy: refused with what is wrong. */
            gateway_verdict_set(v, GW_REJECT, "554", "5.6.0",
                                "malformed recrypt message (it carries " RC_MIME_PROTOCOL
                                ", so it is checked as a sealed post): %s",
                                err.msg);
            return;
        }
        check_sealed(*rd, p, *mail, l, ep, v);
        if (v->action != GW_GO_ON)
            return;
    }
    if (p->posting_policy == POSTING_MEMBERS && !members_only_ok(*rd, l->list_id, p))
        gateway_verdict_set(v, GW_REJECT, "550", "5.7.1",
                            "%s accepts posts from members only (judged on the envelope sender "
                            "and From, which can be forged; members' signatures are what "
                            "readers trust)",
                            l->address);
}

void gateway_check_parsed(rc_store *store, const gw_post *p, const rc_mail *mail,
                          rc_store_reader **rd, rc_store_list *l, rc_store_epoch *ep,
                          gw_verdict *v)
{
    rc_error err;
    if (verdict_begin(store, rd, v) != 0)
        return;
    int rc = list_by_id(*rd, rc_mail_envelope(mail)->list_id, l, &err);
    if (rc == RC_E_NOT_FOUND) {
        gateway_verdict_set(v, GW_REJECT, "550", "5.1.1",
                            "the post is sealed for a list this server does not have");
        return;
    }
    if (rc) {
        gateway_verdict_set(v, GW_TEMPFAIL, "451", "4.3.0",
                            "recrypt: membership store unavailable, try again later");
        snprintf(v->detail, sizeof v->detail, "%s", err.msg);
        return;
    }
    check_sealed(*rd, p, mail, l, ep, v);
    if (v->action == GW_GO_ON && p->posting_policy == POSTING_MEMBERS &&
        !members_only_ok(*rd, l->list_id, p))
        gateway_verdict_set(v, GW_REJECT, "550", "5.7.1",
                            "%s accepts posts from members only", l->address);
}

int gateway_replay(rc_store *store, const rc_mail *mail, uint64_t now, uint64_t window,
                   gw_replay *r, gw_verdict *v)
{
    rc_error err;
    const rc_envelope *env = rc_mail_envelope(mail);
    memset(v, 0, sizeof *v);
    v->action = GW_GO_ON;
    memset(r, 0, sizeof *r);
    sodium_bin2hex(r->post_id, sizeof r->post_id, env->E, RECEIPT_PREFIX_BYTES);
    r->rule.enrolled_before = rc_mail_date(mail);
    r->rule.unchanged_since = UINT64_MAX;
    if (rc_store_delivered_begin(store, env->E, now, rc_mail_date(mail), window, &r->state,
                                 &r->first, &err) != 0) {
        gateway_verdict_set(v, GW_TEMPFAIL, "451", "4.3.0", "recrypt: replay cache: %s", err.msg);
        return -1;
    }
    if (r->state == RC_POST_PENDING) {
        /* A retry (or a replay before delivery): the first attempt's audience. */
        if (r->first < r->rule.enrolled_before)
            r->rule.enrolled_before = r->first;
        r->rule.unchanged_since = r->first;
    }
    return 0;
}

void gateway_plan(rc_store_reader *rd, const rc_service_secret *svc, const rc_store_list *l,
                  uint64_t epoch, const gw_audience_rule *rule, int split, uint64_t max_fanout,
                  rc_store_audience *aud, gw_verdict *v)
{
    rc_error err;
    memset(v, 0, sizeof *v);
    v->action = GW_GO_ON;
    memset(aud, 0, sizeof *aud);
    if (rc_store_audience_get(rd, svc, l->list_id, epoch, rule->enrolled_before,
                              rule->unchanged_since, aud, &err) != 0) {
        memset(aud, 0, sizeof *aud);
        gateway_verdict_set(v, GW_TEMPFAIL, "451", "4.3.0",
                            err.code == RC_E_CRYPTO ? "recrypt: cannot read the entries"
                                                    : "recrypt: cannot read the members");
        return;
    }
    size_t devices = 0;
    for (size_t i = 0; i < aud->n_members; i++)
        devices += aud->members[i].n;
    if (aud->n_members == 0) {
        gateway_verdict_set(v, GW_REJECT, "550", "5.2.1",
                            "list %s has no active member who can read this post", l->address);
    } else if (split ? aud->n_members > max_fanout
                     : (uint64_t)devices * aud->n_members > max_fanout ||
                           devices > RC_MAX_STANZAS) {
        /* Inline: every copy carries every stanza, and readers refuse a
         * message with more than RC_MAX_STANZAS. Split: one copy per member. */
        gateway_verdict_set(v, GW_REJECT, "552", "5.5.3",
                            "list %s is too large for one post (%zu devices, %zu addresses; "
                            "limit %llu)",
                            l->address, devices, aud->n_members, (unsigned long long)max_fanout);
    }
}

void gateway_fold(char *out, size_t cap, const char *value, size_t width)
{
    size_t o = 0, len = strlen(value);
    out[0] = '\0';
    for (size_t i = 0; i < len && o + 1 < cap; i += width) {
        if (i)
            o += (size_t)snprintf(out + o, cap - o, "\n ");
        if (o + 1 < cap)
            o += (size_t)snprintf(out + o, cap - o, "%.*s", (int)width, value + i);
    }
}

int gateway_current_field(rc_store_reader *rd, const rc_store_list *l, const rc_store_epoch *ep,
                          char *cur, rc_error *err)
{
    cur[0] = '\0';
    if (ep->epoch != l->current_epoch) {
        rc_store_epoch c;
        char key[RC_KEYSTR_MAX];
        int rc = rc_store_get_epoch(rd, l->list_id, l->current_epoch, &c, err);
        if (rc == 0)
            rc = rc_statement_encode(key, sizeof key, &c.statement, err);
        if (rc)
            return rc;
        gateway_fold(cur, GW_CURRENT_MAX, key, 72);
    }
    return 0;
}

void gateway_sig_field(char *sig, const uint8_t s[RC_SIG_BYTES])
{
    char b64[RC_SVC_SIG_TEXT];
    rc_svc_sig_encode(b64, s);
    gateway_fold(sig, GW_SVC_SIG_MAX, b64, 48);
}

int gateway_service_fields(rc_store_reader *rd, const rc_service_secret *svc,
                           const rc_store_list *l, const rc_store_epoch *ep, const rc_mail *mail,
                           const uint8_t stanza_hash[32], const char *recipient, char *sig,
                           char *cur, rc_error *err)
{
    sig[0] = '\0';
    int rc = gateway_current_field(rd, l, ep, cur, err);
    if (rc || ep->statement.version != RC_STATEMENT_V2)
        return rc;
    uint8_t *seed = rc_secret_alloc(RC_SVC_SEED_BYTES), s[RC_SIG_BYTES];
    if (!seed)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    rc = rc_store_service_seed(rd, svc, l->list_id, ep->epoch, seed, err);
    if (rc == 0)
        rc = rc_svc_sign(s, seed, rc_mail_envelope(mail), rc_mail_date(mail), stanza_hash,
                         recipient, err);
    rc_secret_free(seed);
    if (rc)
        return rc;
    gateway_sig_field(sig, s);
    return 0;
}
