/*
 * gateway.h - the gateway's decisions about one post, without libmilter.
 *
 * gateway_check takes a post to a list (the spooled message, the list's
 * address, the envelope sender and From, the settings) and decides, with
 * the membership store, whether it goes on to be recrypted: it parses the
 * post, checks it (docs/SCHEME.md, recryption step 1: the list, the epoch
 * and its grace, the proof, the freshness of its Date) and the list's
 * posting policy, and ends in a verdict: what the MTA is told (SMTP code,
 * enhanced code, text, one or more lines) and what the log says. It
 * classifies failures by their code (rc_code), never by a message's text.
 *
 * milter.c applies verdicts and does what libmilter needs; the caller owns
 * everything: the store reader and the parsed post that gateway_check
 * hands back (to end and free), and the verdict.
 */
#ifndef RECRYPT_MILTER_GATEWAY_H
#define RECRYPT_MILTER_GATEWAY_H

#include <stddef.h>
#include <stdint.h>
#include <recrypt/recrypt.h>
#include "store.h"

#define GW_PROCESSED_MARK_LEN 43 /* the Recrypt-Processed value: base64url of 32 bytes */

typedef enum {
    GW_GO_ON = 0, /* the checks passed: recrypt it (or, plaintext allowed, fan it out) */
    GW_PASS,      /* already processed by this service: accept it unchanged */
    GW_REJECT,    /* 5xx: refused for good */
    GW_TEMPFAIL   /* 4xx: could not decide now (store, I/O) */
} gw_action;

#define GW_LINES 5
#define GW_LINE_MAX (RC_KEYSTR_MAX + 64)

typedef struct {
    gw_action action;
    char code[4];  /* "550" */
    char xcode[8]; /* "5.7.1" */
    /* The reply: line[0] alone, or a multi-line reply of n_lines lines;
     * no '%', CR or LF in any of them (the MTA would take them for a
     * format or a line end). */
    char line[GW_LINES][GW_LINE_MAX];
    size_t n_lines;
    /* What the log line's reply="..." says when it is not line[0] (the
     * plaintext refusal, whose reply is five lines of instructions). */
    char log_text[128];
    /* Why a tempfail happened (the store's error), for the log only: the
     * client gets the generic reply. "" when there is nothing to add. */
    char detail[RC_ERROR_MSG_MAX];
    int plaintext; /* the post was not in the recrypt form */
} gw_verdict;

typedef struct {
    const char *list;            /* the list's canonical address (the envelope recipient) */
    int fd;                      /* the spooled message (read from offset 0) */
    const char *sender, *from;   /* envelope sender and From address, lower case ("" = none) */
    const char *mark;            /* the Recrypt-Processed value seen, or "" */
    int n_marks;                 /* how many Recrypt-Processed fields the post had */
    const uint8_t *mark_secret;  /* 32 bytes: the key of the processing mark */
    int plaintext_policy;        /* PLAINTEXT_REJECT / PLAINTEXT_FANOUT (config.h) */
    int posting_policy;          /* POSTING_OPEN / POSTING_MEMBERS */
    uint64_t now, freshness_window, future_skew;
} gw_post;

/* Decide about post p. Begins *rd on store (NULL when even that failed),
 * sets *mail to the parsed post (NULL for a plaintext one), *l to the
 * list and *ep to the epoch the post is sealed for (a plaintext post: the
 * current one). The caller ends *rd and frees *mail, whatever the verdict. */
void gateway_check(rc_store *store, const gw_post *p, rc_store_reader **rd, rc_mail **mail,
                   rc_store_list *l, rc_store_epoch *ep, gw_verdict *v);

/* The same checks for a post already parsed (recrypt-fanout, which needs
 * its E and Date before it decides): the list is the one the post names
 * (p->list and p->fd are not used); 550 5.1.1 when the store has no such
 * list. The caller ends *rd. */
void gateway_check_parsed(rc_store *store, const gw_post *p, const rc_mail *mail,
                          rc_store_reader **rd, rc_store_list *l, rc_store_epoch *ep,
                          gw_verdict *v);

/* Who may receive a post (docs/FORMAT.md §9.7): devices enrolled before
 * enrolled_before, of active members whose record has not changed since
 * unchanged_since (UINT64_MAX: no such restriction). */
typedef struct {
    uint64_t enrolled_before, unchanged_since;
} gw_audience_rule;

/* What the replay cache says about a sealed post about to be delivered. */
typedef struct {
    int state;             /* RC_POST_NEW (now recorded as pending), RC_POST_PENDING (a
                            * retry, or a replay before delivery), RC_POST_DELIVERED */
    uint64_t first;        /* the first attempt's time (now for a new post) */
    gw_audience_rule rule; /* the post's audience: a retry's is its first attempt's */
    char post_id[25];      /* hex of E's first 12 bytes: the post's id in log lines */
} gw_replay;

/* Look the post's E up in the replay cache at `now` (window: the freshness
 * window), recording a new post as pending. 0, or -1 with a tempfail
 * verdict in v. A caller that records a new post and then fails before the
 * MTA has it forgets it again (rc_store_delivered_forget with r->first). */
int gateway_replay(rc_store *store, const rc_mail *mail, uint64_t now, uint64_t window,
                   gw_replay *r, gw_verdict *v);

/* The delivery plan of a checked post: its audience in *aud, grouped by
 * member (with svc, the service shares unsealed for recryption; without,
 * only who and how many devices). Refuses with 550 5.2.1 when nobody can
 * read it and 552 5.5.3 when the list is too large for the delivery mode:
 * inline (split 0), every copy carries every device's stanza, so devices ×
 * addresses must stay within max_fanout and devices within RC_MAX_STANZAS;
 * split, one copy per member, so members within max_fanout. The caller
 * frees *aud (rc_store_audience_free) whatever the verdict. */
void gateway_plan(rc_store_reader *rd, const rc_service_secret *svc, const rc_store_list *l,
                  uint64_t epoch, const gw_audience_rule *rule, int split, uint64_t max_fanout,
                  rc_store_audience *aud, gw_verdict *v);

/* The Recrypt-Processed value for a post of list_id: a MAC under
 * mark_secret of the list and the post's E and KC (out: 44 bytes at least). */
void gateway_processed_mark(char out[64], const uint8_t mark_secret[32],
                            const uint8_t list_id[32], const rc_envelope *env);

/* A verdict of one line; fmt as printf. */
void gateway_verdict_set(gw_verdict *v, gw_action action, const char *code, const char *xcode,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The service fields of one copy (docs/FORMAT.md §9.2), as header field
 * values folded with "\n " (smfi_addheader's form): *sig the
 * Recrypt-Service-Signature over the copy's stanzas (stanza_hash, from
 * rc_mail_write_*_h or rc_mail_stanza_order) for recipient ("" inline, the
 * member's address for a split copy), "" when the epoch's statement is of
 * version 1 (no service key); *cur the Recrypt-List-Key-Current value (the
 * list's current statement), "" when the post's epoch is the current one.
 * An epoch of version 2 whose key the store cannot give is an error (the
 * copy would reach members as mail they refuse). sig: GW_SVC_SIG_MAX
 * bytes; cur: GW_CURRENT_MAX bytes. */
#define GW_SVC_SIG_MAX 100
#define GW_CURRENT_MAX (RC_KEYSTR_MAX + RC_KEYSTR_MAX / 36 + 8)
int gateway_service_fields(rc_store_reader *rd, const rc_service_secret *svc,
                           const rc_store_list *l, const rc_store_epoch *ep, const rc_mail *mail,
                           const uint8_t stanza_hash[32], const char *recipient, char *sig,
                           char *cur, rc_error *err);
/* The two halves: the Recrypt-List-Key-Current value, and a signature's value. */
int gateway_current_field(rc_store_reader *rd, const rc_store_list *l, const rc_store_epoch *ep,
                          char *cur, rc_error *err);
void gateway_sig_field(char *sig, const uint8_t s[RC_SIG_BYTES]);
/* value folded into lines of `width` characters joined by "\n " */
void gateway_fold(char *out, size_t cap, const char *value, size_t width);

#endif
