/*
 * test_gateway.c - the gateway's decisions (src/milter/gateway.c) on a real
 * LMDB store (store_world.h) and real sealed posts: each verdict with its
 * SMTP code, enhanced code and text, in the order the checks run.
 */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "store.h"
#include "test_util.h"
#include "store_world.h"
#include "config.h"
#include "gateway.h"

#define WINDOW (7 * 86400ull)
#define SKEW 3600ull
#define RC_MAX_PAD_TEST (1024 * 1024 + 1)

static const uint8_t MARK_SECRET[32] = {7, 7, 7};

/* A temporary file holding text; read from offset 0. */
static int tmp_with(const void *p, size_t n)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    int fd = dup(fileno(f));
    fclose(f);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static void rfc5322_date(char *out, size_t cap, uint64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* A post From from, dated date, sealed to st (unsigned); its text in *raw
 * when raw is not NULL (to change it). */
static int sealed_post(const rc_statement *st, uint64_t date, const char *from, mbuf *raw)
{
    char msg[512], when[64];
    rc_error err;
    rfc5322_date(when, sizeof when, date);
    snprintf(msg, sizeof msg,
             "From: %s\r\nTo: " LIST "\r\nSubject: minutes\r\nDate: %s\r\n"
             "Message-ID: <gw.%llu@example.org>\r\n\r\nthe minutes\r\n",
             from, when, (unsigned long long)date);
    int in = tmp_with(msg, strlen(msg));
    mbuf out = {0};
    assert_int_equal(rc_mail_seal(in, st, NULL, NULL, date, sink_mem, &out, &err), RC_OK);
    close(in);
    int fd = tmp_with(out.p, out.len);
    if (raw)
        *raw = out;
    else
        mbuf_free(&out);
    return fd;
}

typedef struct {
    rc_store *st;
    rc_store_reader *rd;
    rc_mail *mail;
    rc_store_list l;
    rc_store_epoch ep;
    gw_verdict v;
} run;

static gw_post post_for(int fd, uint64_t now)
{
    return (gw_post){.list = LIST,
                     .fd = fd,
                     .sender = "alice@example.org",
                     .from = "alice@example.org",
                     .mark = "",
                     .n_marks = 0,
                     .mark_secret = MARK_SECRET,
                     .plaintext_policy = PLAINTEXT_REJECT,
                     .posting_policy = POSTING_OPEN,
                     .now = now,
                     .freshness_window = WINDOW,
                     .future_skew = SKEW};
}

static void decide(run *r, const gw_post *p)
{
    gateway_check(r->st, p, &r->rd, &r->mail, &r->l, &r->ep, &r->v);
}

static void done(run *r)
{
    rc_store_reader_end(r->rd);
    rc_mail_free(r->mail);
    r->rd = NULL;
    r->mail = NULL;
}

static void verdict_is(const gw_verdict *v, gw_action action, const char *code, const char *xcode,
                       const char *text)
{
    assert_int_equal(v->action, action);
    assert_string_equal(v->code, code);
    assert_string_equal(v->xcode, xcode);
    if (!strstr(v->line[0], text))
        fail_msg("reply %s %s \"%s\" lacks \"%s\"", v->code, v->xcode, v->line[0], text);
    for (size_t i = 0; i < v->n_lines; i++)
        assert_null(strpbrk(v->line[i], "%\r\n"));
}

static int world_of_alice(void **state)
{
    run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->st = store_new();
    create_list(r->st);
    const int devs[] = {D_ALICE};
    add_member(r->st, M_ALICE, devs, 1, NOW - 1000);
    *state = r;
    return 0;
}

static int world_end(void **state)
{
    run *r = *state;
    done(r);
    store_destroy(r->st);
    free(r);
    return 0;
}

static void current_key(char *out, size_t cap)
{
    assert_int_equal(rc_statement_encode(out, cap, &W.st1, NULL), RC_OK);
}

/* ---------------------------------------------------------------- the tests */

static void test_good_post_goes_on(void **state)
{
    run *r = *state;
    int fd = sealed_post(&W.st1, DATE, "alice@example.org", NULL);
    gw_post p = post_for(fd, DATE + 60);
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    assert_int_equal(r->v.plaintext, 0);
    assert_non_null(r->mail);
    assert_int_equal(r->ep.epoch, 1);
    assert_string_equal(r->l.address, LIST);
    done(r);
    close(fd);
}

static void test_plaintext(void **state)
{
    run *r = *state;
    static const char plain[] = "From: alice@example.org\r\nTo: " LIST "\r\n\r\nhello\r\n";
    int fd = tmp_with(plain, sizeof plain - 1);
    gw_post p = post_for(fd, DATE);
    char key[RC_KEYSTR_MAX];
    current_key(key, sizeof key);

    decide(r, &p); /* refused, with the list key to seal it to */
    verdict_is(&r->v, GW_REJECT, "550", "5.7.1", "accepts only encrypted posts");
    assert_int_equal(r->v.plaintext, 1);
    assert_null(r->mail);
    assert_int_equal(r->v.n_lines, 5);
    assert_string_equal(r->v.line[1], "Seal the message with: recrypt seal --to LISTKEY");
    assert_string_equal(r->v.line[4], key);
    assert_string_equal(r->v.log_text, "plaintext post to an encrypted list");
    done(r);

    p.plaintext_policy = PLAINTEXT_FANOUT; /* or fanned out, to the current epoch */
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    assert_int_equal(r->v.plaintext, 1);
    assert_null(r->mail);
    assert_int_equal(r->ep.epoch, 1);
    done(r);
    close(fd);
}

static void test_unknown_list_tempfails(void **state)
{
    run *r = *state;
    int fd = sealed_post(&W.st1, DATE, "alice@example.org", NULL);
    gw_post p = post_for(fd, DATE);
    p.list = "nobody@example.org";
    decide(r, &p);
    verdict_is(&r->v, GW_TEMPFAIL, "451", "4.3.0", "membership store unavailable");
    done(r);
    close(fd);
}

static void test_another_list(void **state)
{
    run *r = *state;
    rc_list_secret *ls = rc_secret_alloc(sizeof *ls);
    rc_statement other;
    assert_non_null(ls);
    assert_int_equal(rc_list_generate(ls, "other@example.org", 1, NULL, NULL), RC_OK);
    assert_int_equal(rc_statement_sign(&other, ls, NOW - 100, 0, NULL), RC_OK);
    rc_secret_free(ls);
    int fd = sealed_post(&other, DATE, "alice@example.org", NULL);
    gw_post p = post_for(fd, DATE);
    decide(r, &p);
    verdict_is(&r->v, GW_REJECT, "550", "5.7.1", "sealed for another list than " LIST);
    done(r);
    close(fd);
}

static void test_epoch_not_in_store(void **state)
{
    run *r = *state;
    int fd = sealed_post(&W.st2, DATE, "alice@example.org", NULL);
    gw_post p = post_for(fd, DATE);
    char key[RC_KEYSTR_MAX], cmd[RC_KEYSTR_MAX + 32];
    current_key(key, sizeof key);
    snprintf(cmd, sizeof cmd, "recrypt seal --to %s", key);
    decide(r, &p);
    verdict_is(&r->v, GW_REJECT, "550", "5.7.0", "sealed for epoch 2, which list " LIST);
    assert_int_equal(r->v.n_lines, 3);
    assert_string_equal(r->v.line[2], cmd);
    done(r);
    close(fd);
}

static void test_date_window(void **state)
{
    run *r = *state;
    int fd = sealed_post(&W.st1, DATE, "alice@example.org", NULL);
    gw_post p = post_for(fd, DATE + WINDOW + 1); /* stale */
    decide(r, &p);
    verdict_is(&r->v, GW_REJECT, "550", "5.7.0", "older than the freshness window");
    done(r);
    p.now = DATE + WINDOW; /* the last second of the window */
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    done(r);
    p.now = DATE - SKEW - 1; /* ahead of the clock by more than the skew */
    decide(r, &p);
    verdict_is(&r->v, GW_REJECT, "550", "5.7.0", "lies in the future");
    done(r);
    p.now = DATE - SKEW;
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    done(r);
    close(fd);
}

static void test_proof_or_form(void **state)
{
    run *r = *state;
    mbuf raw = {0};
    int fd = sealed_post(&W.st1, DATE, "alice@example.org", &raw);
    close(fd);
    /* Another Message-ID than the proven one: the proof does not hold. */
    char *mid = memmem(raw.p, raw.len, "<gw.", 4);
    assert_non_null(mid);
    mid[1] = 'G'; /* the outer header only: the sealed part keeps its own */
    fd = tmp_with(raw.p, raw.len);
    gw_post p = post_for(fd, DATE);
    decide(r, &p);
    verdict_is(&r->v, GW_REJECT, "554", "5.7.1", "");
    assert_int_not_equal(r->v.line[0][0], '\0');
    done(r);
    close(fd);
    mbuf_free(&raw);
    /* The recrypt form, but not a recrypt message. */
    static const char bad[] = "From: alice@example.org\r\nTo: " LIST "\r\nMIME-Version: 1.0\r\n"
                              "Content-Type: multipart/encrypted; protocol=\"" RC_MIME_PROTOCOL
                              "\"; boundary=b\r\n\r\n--b\r\n\r\njunk\r\n--b--\r\n";
    fd = tmp_with(bad, sizeof bad - 1);
    p = post_for(fd, DATE);
    decide(r, &p);
    verdict_is(&r->v, GW_REJECT, "554", "5.6.0", "malformed recrypt message");
    done(r);
    close(fd);
}

static void test_processed_mark(void **state)
{
    run *r = *state;
    int fd = sealed_post(&W.st1, DATE, "alice@example.org", NULL);
    gw_post p = post_for(fd, DATE);
    /* The mark this service would put on it: passes unchanged. */
    decide(r, &p);
    assert_non_null(r->mail);
    char mark[64];
    gateway_processed_mark(mark, MARK_SECRET, r->l.list_id, rc_mail_envelope(r->mail));
    assert_int_equal(strlen(mark), GW_PROCESSED_MARK_LEN);
    done(r);
    p.mark = mark;
    p.n_marks = 1;
    decide(r, &p);
    assert_int_equal(r->v.action, GW_PASS);
    done(r);
    /* Two marks, a mark of another key, or one cut short: checked as any post. */
    p.n_marks = 2;
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    done(r);
    p.n_marks = 1;
    static const uint8_t other_secret[32] = {8};
    char other[64];
    decide(r, &p);
    gateway_processed_mark(other, other_secret, r->l.list_id, rc_mail_envelope(r->mail));
    done(r);
    p.mark = other;
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    done(r);
    mark[GW_PROCESSED_MARK_LEN - 1] = '\0';
    p.mark = mark;
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    done(r);
    close(fd);
}

static void test_members_only(void **state)
{
    run *r = *state;
    int fd = sealed_post(&W.st1, DATE, "mallory@example.net", NULL);
    gw_post p = post_for(fd, DATE);
    p.posting_policy = POSTING_MEMBERS;
    p.sender = "mallory@example.net";
    p.from = "mallory@example.net";
    decide(r, &p);
    verdict_is(&r->v, GW_REJECT, "550", "5.7.1", LIST " accepts posts from members only");
    done(r);
    p.from = "alice@example.org"; /* the From of a member is enough */
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    done(r);
    p.from = "";
    p.sender = "alice@example.org"; /* so is the envelope sender */
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    done(r);
    p.posting_policy = POSTING_OPEN;
    p.sender = "mallory@example.net";
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    done(r);
    close(fd);
}

/* The fan-out's check: the list is the one the post names. */
static void test_check_parsed(void **state)
{
    run *r = *state;
    rc_error err;
    int fd = sealed_post(&W.st1, DATE, "alice@example.org", NULL);
    rc_mail *mail = NULL;
    assert_int_equal(rc_mail_parse(&mail, fd, &err), RC_OK);
    gw_post p = post_for(fd, DATE + 60);
    p.list = NULL;
    gateway_check_parsed(r->st, &p, mail, &r->rd, &r->l, &r->ep, &r->v);
    assert_int_equal(r->v.action, GW_GO_ON);
    assert_string_equal(r->l.address, LIST);
    assert_int_equal(r->ep.epoch, 1);
    done(r);
    /* Checked as of the first check's time: stale now, fresh then. */
    p.now = DATE + WINDOW + 1;
    gateway_check_parsed(r->st, &p, mail, &r->rd, &r->l, &r->ep, &r->v);
    verdict_is(&r->v, GW_REJECT, "550", "5.7.0", "older than the freshness window");
    done(r);
    rc_mail_free(mail);
    close(fd);
    /* A post sealed for a list this store does not have. */
    rc_list_secret *other = rc_secret_alloc(sizeof *other);
    rc_statement ost;
    assert_non_null(other);
    assert_int_equal(rc_list_generate(other, "elsewhere@example.net", 1, NULL, &err), RC_OK);
    assert_int_equal(rc_statement_sign(&ost, other, NOW - 100, 0, &err), RC_OK);
    fd = sealed_post(&ost, DATE, "alice@example.org", NULL);
    assert_int_equal(rc_mail_parse(&mail, fd, &err), RC_OK);
    p.now = DATE + 60;
    gateway_check_parsed(r->st, &p, mail, &r->rd, &r->l, &r->ep, &r->v);
    verdict_is(&r->v, GW_REJECT, "550", "5.1.1", "a list this server does not have");
    done(r);
    rc_mail_free(mail);
    rc_secret_free(other);
    close(fd);
}

static int any_E(void *ctx, const uint8_t E[32])
{
    (void)ctx;
    (void)E;
    return 1;
}

/* The replay cache: new (recorded), then pending (a retry, with the first
 * attempt's audience), then delivered. */
static void test_replay(void **state)
{
    run *r = *state;
    rc_error err;
    int fd = sealed_post(&W.st1, DATE, "alice@example.org", NULL);
    rc_mail *mail = NULL;
    assert_int_equal(rc_mail_parse(&mail, fd, &err), RC_OK);
    gw_replay rp;
    gw_verdict v;
    assert_int_equal(gateway_replay(r->st, mail, DATE + 10, WINDOW, &rp, &v), 0);
    assert_int_equal(v.action, GW_GO_ON);
    assert_int_equal(rp.state, RC_POST_NEW);
    assert_int_equal(rp.first, DATE + 10);
    assert_int_equal(rp.rule.enrolled_before, DATE);
    assert_true(rp.rule.unchanged_since == UINT64_MAX);
    assert_int_equal(strlen(rp.post_id), 24);
    /* Again, earlier than the post's Date (a clock behind): a retry whose
     * audience is the first attempt's. */
    assert_int_equal(gateway_replay(r->st, mail, DATE + 20, WINDOW, &rp, &v), 0);
    assert_int_equal(rp.state, RC_POST_PENDING);
    assert_int_equal(rp.first, DATE + 10);
    assert_int_equal(rp.rule.enrolled_before, DATE);
    assert_int_equal(rp.rule.unchanged_since, DATE + 10);
    /* Delivered: what the fan-out or the receipt records. */
    uint8_t E_out[32];
    int was = 0;
    const uint8_t *E = rc_mail_envelope(mail)->E;
    assert_int_equal(rc_store_delivered_confirm(r->st, E, 32, any_E, NULL, E_out, &was, &err), RC_OK);
    assert_int_equal(was, RC_POST_PENDING);
    assert_int_equal(gateway_replay(r->st, mail, DATE + 30, WINDOW, &rp, &v), 0);
    assert_int_equal(rp.state, RC_POST_DELIVERED);
    rc_mail_free(mail);
    close(fd);
}

/* The delivery plan: grouped by member; the caps of each mode. */
static void test_plan(void **state)
{
    run *r = *state;
    const int bobs[] = {D_BOB1, D_BOB2};
    add_member(r->st, M_BOB, bobs, 2, NOW - 1000);
    rc_store_audience aud;
    gw_verdict v;
    rc_store_list l;
    rc_error err;
    assert_int_equal(rc_store_reader_begin(r->st, &r->rd, &err), RC_OK);
    assert_int_equal(rc_store_get_list(r->rd, LIST, &l, &err), RC_OK);
    gw_audience_rule all = {DATE, UINT64_MAX};
    /* Split, with the service key: 2 members, 3 entries, bob's 2 together. */
    gateway_plan(r->rd, W.svc, &l, 1, &all, 1, 100000, &aud, &v);
    assert_int_equal(v.action, GW_GO_ON);
    assert_int_equal(aud.n_members, 2);
    assert_int_equal(aud.n_entries, 3);
    assert_non_null(aud.entries);
    size_t seen = 0;
    for (size_t i = 0; i < aud.n_members; i++) {
        assert_int_equal(aud.members[i].n, strcmp(aud.members[i].address, "bob@example.org") ? 1 : 2);
        seen += aud.members[i].n;
    }
    assert_int_equal(seen, 3);
    rc_store_audience_free(&aud);
    /* Without the service key: who and how many, no entries. */
    gateway_plan(r->rd, NULL, &l, 1, &all, 1, 100000, &aud, &v);
    assert_int_equal(v.action, GW_GO_ON);
    assert_int_equal(aud.n_members, 2);
    assert_null(aud.entries);
    rc_store_audience_free(&aud);
    /* Caps: inline counts devices x addresses (3 x 2 = 6), split members. */
    gateway_plan(r->rd, NULL, &l, 1, &all, 0, 5, &aud, &v);
    verdict_is(&v, GW_REJECT, "552", "5.5.3", "too large for one post (3 devices, 2 addresses; limit 5)");
    rc_store_audience_free(&aud);
    gateway_plan(r->rd, NULL, &l, 1, &all, 0, 6, &aud, &v);
    assert_int_equal(v.action, GW_GO_ON);
    rc_store_audience_free(&aud);
    gateway_plan(r->rd, NULL, &l, 1, &all, 1, 2, &aud, &v);
    assert_int_equal(v.action, GW_GO_ON);
    rc_store_audience_free(&aud);
    gateway_plan(r->rd, NULL, &l, 1, &all, 1, 1, &aud, &v);
    verdict_is(&v, GW_REJECT, "552", "5.5.3", "too large for one post");
    rc_store_audience_free(&aud);
    /* Nobody enrolled before the post: 550 5.2.1. */
    gw_audience_rule early = {NOW - 2000, UINT64_MAX};
    gateway_plan(r->rd, NULL, &l, 1, &early, 1, 100000, &aud, &v);
    verdict_is(&v, GW_REJECT, "550", "5.2.1", "has no active member who can read this post");
    assert_int_equal(aud.n_members, 0);
    rc_store_audience_free(&aud);
    /* A retry's audience: members changed since the first attempt are out. */
    gw_audience_rule retry = {DATE, NOW - 1000};
    gateway_plan(r->rd, NULL, &l, 1, &retry, 1, 100000, &aud, &v);
    verdict_is(&v, GW_REJECT, "550", "5.2.1", "no active member");
    rc_store_audience_free(&aud);
    done(r);
}

static void test_verdict_text_is_one_clean_line(void **state)
{
    (void)state;
    gw_verdict v = {0};
    gateway_verdict_set(&v, GW_REJECT, "550", "5.7.1", "a%sb\r\nc", "%d");
    assert_string_equal(v.line[0], "a db  c");
    assert_int_equal(v.n_lines, 1);
}


/* ---------------------------------------------------------------- issue 13 */

/* raw with the first occurrence of from replaced by to (a new buffer). */
static mbuf edited(const mbuf *raw, const char *from, const char *to)
{
    mbuf out = {0};
    uint8_t *at = memmem(raw->p, raw->len, from, strlen(from));
    if (!at)
        fail_msg("the post lacks \"%s\"", from);
    size_t pre = (size_t)(at - raw->p);
    if (pre) /* (sink_mem: no memcpy of 0 bytes to a NULL buffer) */
        assert_int_equal(sink_mem(&out, raw->p, pre), 0);
    if (*to)
        assert_int_equal(sink_mem(&out, (const uint8_t *)to, strlen(to)), 0);
    assert_int_equal(sink_mem(&out, at + strlen(from), raw->len - pre - strlen(from)), 0);
    return out;
}

/* A sealed post of alice, dated date, as text (CRLF). */
static mbuf sealed_raw(uint64_t date)
{
    mbuf raw = {0};
    close(sealed_post(&W.st1, date, "alice@example.org", &raw));
    return raw;
}

/* The gateway's verdict on text under policy (the post's own time: DATE). */
static void decide_text(run *r, const mbuf *m, int policy, uint64_t now)
{
    int fd = tmp_with(m->p, m->len);
    gw_post p = post_for(fd, now);
    p.plaintext_policy = policy;
    decide(r, &p);
    close(fd);
}

/* Refused as a malformed sealed post (554 5.6.0) saying what, under both
 * plaintext policies: never taken for plaintext. */
static void refused_as_sealed(run *r, const mbuf *m, const char *what)
{
    const int policies[] = {PLAINTEXT_REJECT, PLAINTEXT_FANOUT};
    for (int i = 0; i < 2; i++) {
        decide_text(r, m, policies[i], DATE + 60);
        verdict_is(&r->v, GW_REJECT, "554", "5.6.0", what);
        assert_int_equal(r->v.plaintext, 0);
        done(r);
    }
}

/* Issue 13 item 1: "keep E until Date + window" (FORMAT.md §9.7: a row is
 * kept until max(first attempt, Date) + FreshnessWindow). A post dated
 * 50 minutes ahead is delivered, then replayed 20 minutes after arrival +
 * window, when it is still fresh: the cache still knows it (0.2.0 had
 * forgotten it at arrival + window and delivered it again). */
static void test_future_dated_replay(void **state)
{
    run *r = *state;
    rc_error err;
    const uint64_t arrival = DATE - 50 * 60;
    int fd = sealed_post(&W.st1, DATE, "alice@example.org", NULL);
    gw_post p = post_for(fd, arrival);
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON); /* 50 minutes ahead: within FutureSkew */
    gw_replay rp;
    gw_verdict v;
    assert_int_equal(gateway_replay(r->st, r->mail, arrival, WINDOW, &rp, &v), 0);
    assert_int_equal(rp.state, RC_POST_NEW);
    uint8_t E_out[32];
    int was = 0;
    assert_int_equal(rc_store_delivered_confirm(r->st, rc_mail_envelope(r->mail)->E, 32, any_E,
                                                NULL, E_out, &was, &err),
                     RC_OK);
    done(r);
    /* The replay: fresh (Date + window is still ahead), so the checks pass,
     * and the replay cache says delivered: discarded, not delivered again. */
    p.now = arrival + WINDOW + 20 * 60;
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    assert_int_equal(gateway_replay(r->st, r->mail, p.now, WINDOW, &rp, &v), 0);
    assert_int_equal(v.action, GW_GO_ON);
    assert_int_equal(rp.state, RC_POST_DELIVERED);
    done(r);
    /* The last second of its freshness: still known. One later: stale. */
    p.now = DATE + WINDOW;
    decide(r, &p);
    assert_int_equal(gateway_replay(r->st, r->mail, p.now, WINDOW, &rp, &v), 0);
    assert_int_equal(rp.state, RC_POST_DELIVERED);
    done(r);
    p.now = DATE + WINDOW + 1;
    decide(r, &p);
    verdict_is(&r->v, GW_REJECT, "550", "5.7.0", "older than the freshness window");
    done(r);
    close(fd);
}

/* The service fields (FORMAT.md §9.2, §8.1): with a version 2 statement a
 * signature by the epoch's service key over the copy's stanza hash and
 * recipient; for a post of an older epoch (grace) also the current list
 * key; with a version 1 statement no signature. */
static void unfold(char *s)
{
    size_t k = 0;
    for (size_t i = 0; s[i]; i++)
        if (s[i] != '\n' && s[i] != ' ')
            s[k++] = s[i];
    s[k] = '\0';
}

static void test_service_fields(void **state)
{
    run *r = *state;
    rc_error err;
    char sig[GW_SVC_SIG_MAX], cur[GW_CURRENT_MAX];
    uint8_t h[32], raw[64], seed1[32], seed2[32], pk1[32], pk2[32];
    size_t len;
    randombytes_buf(h, 32);
    /* the version 1 world: nothing to sign, nothing current to add */
    int fd = sealed_post(&W.st1, NOW, "alice@example.org", NULL);
    gw_post p = post_for(fd, NOW);
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    assert_int_equal(gateway_service_fields(r->rd, W.svc, &r->l, &r->ep, r->mail, h, "", sig, cur,
                                            &err),
                     RC_OK);
    assert_string_equal(sig, "");
    assert_string_equal(cur, "");
    done(r);
    close(fd);
    store_destroy(r->st);

    /* version 2: a list with a service key per epoch */
    r->st = store_new();
    randombytes_buf(seed1, 32);
    randombytes_buf(seed2, 32);
    rc_svc_public(pk1, seed1);
    rc_svc_public(pk2, seed2);
    rc_statement st1, st2;
    rc_request q;
    req_init(&q, RC_REQ_CREATE_GROUP, LIST);
    assert_int_equal(rc_statement_sign_v2(&st1, W.ls1, NOW - 100, 0, pk1, NULL, 0, &err), RC_OK);
    q.statement = st1;
    q.owner = W.owner->pub;
    assert_int_equal(rc_svc_seed_seal(q.sealed_svc_seed, seed1, W.svc->pub.pk, &err), RC_OK);
    apply_ok(r->st, &q);
    const int devs[] = {D_ALICE};
    add_member(r->st, M_ALICE, devs, 1, NOW - 1000);
    fd = sealed_post(&st1, NOW, "alice@example.org", NULL);
    p = post_for(fd, NOW);
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    assert_int_equal(gateway_service_fields(r->rd, W.svc, &r->l, &r->ep, r->mail, h,
                                            "alice@example.org", sig, cur, &err),
                     RC_OK);
    assert_non_null(strchr(sig, '\n')); /* folded */
    unfold(sig);
    assert_int_equal(sodium_base642bin(raw, sizeof raw, sig, strlen(sig), NULL, &len, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                     0);
    assert_int_equal(len, 64);
    assert_int_equal(rc_svc_verify(raw, pk1, rc_mail_envelope(r->mail), rc_mail_date(r->mail), h,
                                   "alice@example.org", &err),
                     RC_OK);
    assert_int_equal(rc_svc_verify(raw, pk1, rc_mail_envelope(r->mail), rc_mail_date(r->mail), h,
                                   "", &err),
                     RC_E_SIGNATURE);
    assert_string_equal(cur, "");
    done(r);

    /* rotation with grace: the epoch-1 post gets the epoch-2 statement too,
     * and is still signed with the epoch-1 key */
    req_init(&q, RC_REQ_UPDATE_GROUP, LIST);
    assert_int_equal(rc_statement_sign_v2(&st2, W.ls2, NOW - 100, 0, pk2,
                                          (const uint8_t(*)[32])W.dev[D_ALICE]->pub.sign_pk, 1,
                                          &err),
                     RC_OK);
    q.statement = st2;
    q.grace_until = NOW + 86400;
    assert_int_equal(rc_svc_seed_seal(q.sealed_svc_seed, seed2, W.svc->pub.pk, &err), RC_OK);
    apply_ok(r->st, &q);
    decide(r, &p);
    assert_int_equal(r->v.action, GW_GO_ON);
    assert_int_equal(r->ep.epoch, 1);
    assert_int_equal(gateway_service_fields(r->rd, W.svc, &r->l, &r->ep, r->mail, h, "", sig, cur,
                                            &err),
                     RC_OK);
    unfold(sig);
    sodium_base642bin(raw, sizeof raw, sig, strlen(sig), NULL, &len, NULL,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    assert_int_equal(rc_svc_verify(raw, pk1, rc_mail_envelope(r->mail), rc_mail_date(r->mail), h,
                                   "", &err),
                     RC_OK);
    rc_statement got;
    assert_int_equal(rc_statement_decode(&got, cur, &err), RC_OK);
    assert_int_equal(got.epoch, 2);
    assert_true(rc_statement_revokes(&got, W.dev[D_ALICE]->pub.sign_pk));
    /* another service key cannot sign: the store's seed does not open */
    assert_int_equal(gateway_service_fields(r->rd, W.other_svc, &r->l, &r->ep, r->mail, h, "", sig,
                                            cur, &err),
                     RC_E_CRYPTO);
    done(r);
    close(fd);
}

/* Issue 13 item 8: "Whether a post is sealed must be decided on the parsed
 * header, whatever its size." A sealed post whose visible header holds a
 * Cc of 64 KiB goes on, under either policy. */
static void test_large_header_sealed(void **state)
{
    run *r = *state;
    rc_error err;
    size_t cap = 70 * 1024;
    char *msg = malloc(cap + 1024), when[64];
    assert_non_null(msg);
    rfc5322_date(when, sizeof when, DATE);
    size_t o = (size_t)snprintf(msg, cap, "From: alice@example.org\r\nTo: " LIST "\r\nCc: ");
    for (int i = 0; o < 65 * 1024; i++)
        o += (size_t)snprintf(msg + o, cap - o, "%sreader%04d@example.net", i ? ",\r\n " : "", i);
    o += (size_t)snprintf(msg + o, cap + 1024 - o,
                          "\r\nSubject: big\r\nDate: %s\r\nMessage-ID: <big@example.org>\r\n\r\n"
                          "body\r\n",
                          when);
    int in = tmp_with(msg, o);
    free(msg);
    mbuf raw = {0};
    assert_int_equal(rc_mail_seal(in, &W.st1, NULL, NULL, DATE, sink_mem, &raw, &err), RC_OK);
    close(in);
    /* The protocol lies beyond the first 64 KiB of the outer message. */
    uint8_t *ct = memmem(raw.p, raw.len, RC_MIME_PROTOCOL, strlen(RC_MIME_PROTOCOL));
    assert_non_null(ct);
    assert_true(ct - raw.p > 65536);
    const int policies[] = {PLAINTEXT_REJECT, PLAINTEXT_FANOUT};
    for (int i = 0; i < 2; i++) {
        decide_text(r, &raw, policies[i], DATE + 60);
        assert_int_equal(r->v.action, GW_GO_ON);
        assert_int_equal(r->v.plaintext, 0);
        assert_non_null(r->mail);
        done(r);
    }
    mbuf_free(&raw);
}

/* Issue 13 item 8: "A post that carries the control part of a sealed post
 * is never treated as plaintext, under any policy." The padded replay: a
 * 17 KB header field put in front of a delivered post, resent. Checked as
 * a sealed post under both policies: the replay cache says delivered (the
 * milter discards it). With more than 1 MiB of padding the header cannot
 * be read: refused saying so, never "accepts only encrypted posts". */
static void test_padded_replay(void **state)
{
    run *r = *state;
    rc_error err;
    mbuf raw = sealed_raw(DATE);
    decide_text(r, &raw, PLAINTEXT_REJECT, DATE + 60);
    gw_replay rp;
    gw_verdict v;
    assert_int_equal(gateway_replay(r->st, r->mail, DATE + 60, WINDOW, &rp, &v), 0);
    assert_int_equal(rp.state, RC_POST_NEW);
    uint8_t E_out[32];
    int was = 0;
    assert_int_equal(rc_store_delivered_confirm(r->st, rc_mail_envelope(r->mail)->E, 32, any_E,
                                                NULL, E_out, &was, &err),
                     RC_OK);
    done(r);
    for (int big = 0; big < 2; big++) {
        size_t pad = big ? RC_MAX_PAD_TEST : 17 * 1024;
        mbuf m = {0};
        char *field = malloc(pad + 16);
        assert_non_null(field);
        memcpy(field, "X-Pad: ", 7);
        memset(field + 7, 'a', pad);
        memcpy(field + 7 + pad, "\r\n", 3);
        assert_int_equal(sink_mem(&m, (uint8_t *)field, strlen(field)), 0);
        assert_int_equal(sink_mem(&m, raw.p, raw.len), 0);
        free(field);
        const int policies[] = {PLAINTEXT_REJECT, PLAINTEXT_FANOUT};
        for (int i = 0; i < 2; i++) {
            decide_text(r, &m, policies[i], DATE + 120);
            assert_int_equal(r->v.plaintext, 0);
            if (big) {
                verdict_is(&r->v, GW_REJECT, "554", "5.6.0", "header is larger than");
            } else {
                assert_int_equal(r->v.action, GW_GO_ON);
                assert_int_equal(gateway_replay(r->st, r->mail, DATE + 120, WINDOW, &rp, &v), 0);
                assert_int_equal(rp.state, RC_POST_DELIVERED);
            }
            done(r);
        }
        mbuf_free(&m);
    }
    mbuf_free(&raw);
}

/* A control part anywhere (here inside a multipart/mixed "plaintext"
 * post): checked as sealed, refused with what is wrong, never fanned out. */
static void test_control_part_anywhere(void **state)
{
    run *r = *state;
    static const char text[] =
        "From: alice@example.org\r\nTo: " LIST "\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        "hello\r\n--b\r\nContent-Type: Application/Vnd.Recrypt.Control\r\n\r\nVersion: 1\r\n"
        "--b--\r\n";
    mbuf m = {0};
    assert_int_equal(sink_mem(&m, (const uint8_t *)text, sizeof text - 1), 0);
    refused_as_sealed(r, &m, "it carries application/vnd.recrypt.control");
    mbuf_free(&m);
    /* The type across the gateway's 64 KiB read blocks, at each offset
     * around the boundary: found every time. */
    for (size_t at = 65536 - 33; at <= 65536 + 1; at += 3) {
        mbuf b = {0};
        static const char head[] = "From: alice@example.org\r\nX-Fill: ";
        assert_int_equal(sink_mem(&b, (const uint8_t *)head, sizeof head - 1), 0);
        while (b.len < at - 16)
            assert_int_equal(sink_mem(&b, (const uint8_t *)"f", 1), 0);
        static const char ct[] = "\r\nContent-Type: application/vnd.recrypt.control\r\n\r\nx\r\n";
        assert_int_equal(sink_mem(&b, (const uint8_t *)ct, sizeof ct - 1), 0);
        uint8_t *t = memmem(b.p, b.len, RC_MIME_PROTOCOL, strlen(RC_MIME_PROTOCOL));
        assert_int_equal((size_t)(t - b.p), at);
        decide_text(r, &b, PLAINTEXT_FANOUT, DATE + 60);
        assert_int_equal(r->v.plaintext, 0);
        verdict_is(&r->v, GW_REJECT, "554", "5.6.0", "checked as a sealed post");
        done(r);
        mbuf_free(&b);
    }
}

/* Issue 13 item 7: the structural checks, each a 554 5.6.0 that says what
 * is wrong (the grammar of FORMAT.md §9.3, in rc_mail_parse). */
static void test_structural(void **state)
{
    run *r = *state;
    mbuf raw = sealed_raw(DATE);
    static const struct {
        const char *from, *to, *what;
    } cases[] = {
        /* "exactly one of each outer field the format relies on" */
        {"MIME-Version: 1.0\r\n", "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n",
         "2 Content-Type fields"},
        {"MIME-Version: 1.0\r\n", "MIME-Version: 1.0\r\nMIME-Version: 1.0\r\n",
         "2 MIME-Version fields"},
        {"Subject: ", "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nSubject: ", "2 Date fields"},
        {"Subject: ", "Message-ID: <a@b>\r\nSubject: ", "2 Message-ID fields"},
        {"Subject: ", "From: bob@example.org\r\nSubject: ", "2 From fields"},
        {"From: alice@example.org\r\n", "", "0 From fields"},
        /* "no NUL byte and no bare 8-bit byte in the outer header" */
        {"Subject: [recrypt]", "Subject: [rec\0ypt]", "field Subject holds a NUL byte"},
        {"Subject: [recrypt]", "Subject: [rec\xc3\xa9ypt]", "8-bit byte (0xC3)"},
        /* "a leading mbox From line: the reader and the gateway refuse it" */
        {"From: alice", "From alice@example.org Tue Nov 14 22:13:20 2023\r\nFrom: alice",
         "mbox 'From ' line"},
        /* "the Message-ID: <x@y and junk <a@b> are refused, not repaired" */
        {"Message-ID: <gw.", "Message-ID: junk <gw.", "malformed Message-ID"},
        {"@example.org>\r\nSubject", "@example.org\r\nSubject", "does not end with '>'"},
        /* "the Date grammar" */
        {"+0000\r\nMessage-ID", "EST\r\nMessage-ID", "zone is not +hhmm"},
        /* "strict base64 in the data part" */
        {"Content-Disposition: inline; filename=\"message.rcx\"\r\n\r\n",
         "Content-Disposition: inline; filename=\"message.rcx\"\r\n\r\n!", "not base64 (0x21"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mbuf m = edited(&raw, cases[i].from, cases[i].to);
        if (strchr(cases[i].to, '\0') && strstr(cases[i].what, "NUL")) {
            /* The NUL case: "[rec\0ypt]" is cut at the NUL by strlen; put it back. */
            mbuf_free(&m);
            m = edited(&raw, "Subject: [recrypt]", "Subject: [recXypt]");
            uint8_t *x = memmem(m.p, m.len, "[recXypt]", 9);
            assert_non_null(x);
            x[4] = '\0';
        }
        print_message("case %zu: %s\n", i, cases[i].what);
        refused_as_sealed(r, &m, cases[i].what);
        mbuf_free(&m);
    }
    mbuf_free(&raw);
}

/* Issue 14: a sealed post with a huge Message-ID was answered "this list
 * accepts only encrypted posts". The reply names the real problem: a
 * Message-ID over 984 octets (FORMAT.md §9.3), or, past 1 MiB, a header
 * too large; under either policy. */
static void test_oversized_message_id(void **state)
{
    run *r = *state;
    mbuf raw = sealed_raw(DATE);
    const size_t sizes[] = {2000, 1100 * 1024};
    for (size_t i = 0; i < 2; i++) {
        char *to = malloc(sizes[i] + 32);
        assert_non_null(to);
        strcpy(to, "Message-ID: <");
        memset(to + 13, 'x', sizes[i]);
        strcpy(to + 13 + sizes[i], "gw.");
        mbuf m = edited(&raw, "Message-ID: <gw.", to);
        free(to);
        refused_as_sealed(r, &m, i == 0 ? "octets long, more than 984" : "header is larger than");
        assert_null(strstr(r->v.line[0], "only encrypted"));
        mbuf_free(&m);
    }
    mbuf_free(&raw);
}

/* The post with its data part's text replaced by data. */
static mbuf with_data(const mbuf *raw, const char *data)
{
    static const char start[] = "filename=\"message.rcx\"\r\n\r\n";
    uint8_t *a = memmem(raw->p, raw->len, start, strlen(start));
    assert_non_null(a);
    a += strlen(start);
    uint8_t *b = memmem(a, raw->len - (size_t)(a - raw->p), "\r\n--=_recrypt_", 14);
    assert_non_null(b);
    mbuf out = {0};
    assert_int_equal(sink_mem(&out, raw->p, (size_t)(a - raw->p)), 0);
    if (*data)
        assert_int_equal(sink_mem(&out, (const uint8_t *)data, strlen(data)), 0);
    assert_int_equal(sink_mem(&out, b, raw->len - (size_t)(b - raw->p)), 0);
    return out;
}

/* n bytes in base64 as the writer writes it: lines of 76, CRLF between. */
static char *b64_lines(size_t n)
{
    uint8_t *bin = calloc(1, n + 1);
    char *out = malloc(n / 57 * 78 + 200), line[80];
    assert_non_null(bin);
    assert_non_null(out);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 57) {
        sodium_bin2base64(line, sizeof line, bin + i, n - i < 57 ? n - i : 57,
                          sodium_base64_VARIANT_ORIGINAL);
        o += (size_t)sprintf(out + o, "%s%s", i ? "\r\n" : "", line);
    }
    out[o] = '\0';
    free(bin);
    return out;
}

/* Issue 13 item 7: the data part, strict base64 (FORMAT.md §9.3
 * data-part) whose decoded length fits the chunk framing of §7.5 (24-byte
 * header, full chunks of 65536+17, a last chunk of 1+17..65536+17). The
 * gateway cannot authenticate the data, so a length that fits goes on. */
static void test_data_part(void **state)
{
    run *r = *state;
    mbuf raw = sealed_raw(DATE);
    static const struct {
        size_t len;
        int ok;
    } lens[] = {{0, 0},          {41, 0},         {42, 1}, {24 + 65553, 1},
                {24 + 65553 + 17, 0}, {24 + 65553 + 18, 1}};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        char *d = b64_lines(lens[i].len);
        mbuf m = with_data(&raw, d);
        free(d);
        print_message("data of %zu bytes: %s\n", lens[i].len, lens[i].ok ? "goes on" : "refused");
        if (lens[i].ok) {
            decide_text(r, &m, PLAINTEXT_FANOUT, DATE + 60);
            assert_int_equal(r->v.action, GW_GO_ON);
            done(r);
        } else {
            refused_as_sealed(r, &m, lens[i].len ? "which is no sealed stream" : "data part is empty");
        }
        mbuf_free(&m);
    }
    static const struct {
        const char *data, *what;
    } bad[] = {
        /* "no `!`, no data after padding" */
        {"AAAAAAAA!AAA", "not base64 (0x21"},
        {"AAAAAAAAAAA=\r\nAAAA", "data after its '=' padding"},
        {"AAAAAAAAAA==AAAA", "data after its '=' padding"},
        {"AAAAAAAAA===", "padding that is not at the end"},
        {"AAAAAAAAAR==", "pad bits that are not zero"},
        {"AAAAAAAAAAB=", "pad bits that are not zero"},
        {"AAAAAAAAAAA", "not a multiple of 4"},
        {"AAAAAAAAAAA\r\nA", "not a multiple of 4"},
        {"AAAA\r\n\r\nAAAA", "empty line"},
        {"AAAA\rAAAA", "CR without LF"},
        {"AAAA-AAA", "not base64 (0x2D"},
        {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
         "longer than 76"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mbuf m = with_data(&raw, bad[i].data);
        print_message("data \"%s\": %s\n", bad[i].data, bad[i].what);
        refused_as_sealed(r, &m, bad[i].what);
        mbuf_free(&m);
    }
    /* Cut short anywhere after its Content-Type (in the header, the
     * control part or the data part): refused, never plaintext. */
    uint8_t *ct = memmem(raw.p, raw.len, RC_MIME_PROTOCOL, strlen(RC_MIME_PROTOCOL));
    assert_non_null(ct);
    size_t from = (size_t)(ct - raw.p) + strlen(RC_MIME_PROTOCOL), cuts = 0;
    for (size_t at = from; at < raw.len - 4; at += (raw.len - from) / 29 + 1, cuts++) {
        mbuf m = {0};
        assert_int_equal(sink_mem(&m, raw.p, at), 0);
        const int policies[] = {PLAINTEXT_REJECT, PLAINTEXT_FANOUT};
        for (int k = 0; k < 2; k++) {
            decide_text(r, &m, policies[k], DATE + 60);
            if (r->v.action != GW_REJECT || strcmp(r->v.code, "554") || r->v.plaintext)
                fail_msg("cut at %zu of %zu: action %d %s %s \"%s\"", at, raw.len, r->v.action,
                         r->v.code, r->v.xcode, r->v.line[0]);
            done(r);
        }
        mbuf_free(&m);
    }
    assert_true(cuts >= 25);
    /* The writer's own data (the post as sealed) goes on. */
    decide_text(r, &raw, PLAINTEXT_REJECT, DATE + 60);
    assert_int_equal(r->v.action, GW_GO_ON);
    done(r);
    mbuf_free(&raw);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, world_of_alice, world_end)
    const struct CMUnitTest tests[] = {
        T(test_good_post_goes_on),   T(test_plaintext),     T(test_unknown_list_tempfails),
        T(test_another_list),        T(test_epoch_not_in_store), T(test_date_window),
        T(test_proof_or_form),       T(test_processed_mark), T(test_members_only),
        T(test_check_parsed),        T(test_replay),         T(test_plan),
        T(test_future_dated_replay), T(test_large_header_sealed), T(test_padded_replay),
        T(test_control_part_anywhere), T(test_structural), T(test_data_part),
        T(test_oversized_message_id),
        T(test_service_fields),
        cmocka_unit_test(test_verdict_text_is_one_clean_line),
    };
    return cmocka_run_group_tests(tests, world_setup, world_teardown);
}
