/*
 * fanout.h - split delivery: one copy of a checked post per member.
 *
 * With FanoutDomain set, recrypt-milter checks a post to a list and hands
 * it, unchanged, to one recipient TOKEN@FanoutDomain (receipt.h,
 * fanout_token); the MTA queues it (the sender's 250 comes only then) and
 * routes that domain to recrypt-fanout, a pipe(8) / prog-mailer command
 * that runs fanout_run on the queued post. fanout_run checks the post again
 * (gateway_check_parsed, at the time of its first check, so that a
 * deferred fan-out is not refused as stale), plans the audience
 * (gateway_plan), computes R = r·E for every device once (both cores), and
 * for each member builds a copy that carries only that member's devices'
 * stanzas, under one header shared by all copies, and submits it over SMTP
 * (smtp.h) to FanoutRelay, a listener of the MTA without milters, on
 * FanoutConnections connections at once (one worker thread each, taking
 * the next member in turn). Each copy
 * is recorded in the store (rc_store_copies_record) after the MTA's 250;
 * a retry of the whole post skips recorded copies. When every copy is
 * queued the post is marked delivered in the replay cache, which makes the
 * milter discard any later replay.
 *
 * Crash window: a copy queued but not yet recorded (records are committed
 * in batches, at most FANOUT_BATCH copies or FANOUT_BATCH_MS) is sent
 * again by the retry: that member gets two byte-identical copies (same
 * Message-ID and E). docs/admin-guide.md §5.6 has the fault table.
 *
 * Owns nothing of the caller's: the job's store, key and descriptor stay
 * the caller's.
 */
#ifndef RECRYPT_MILTER_FANOUT_H
#define RECRYPT_MILTER_FANOUT_H

#include <stddef.h>
#include <stdint.h>
#include <recrypt/recrypt.h>
#include "config.h"
#include "store.h"

#define FANOUT_BATCH 64
#define FANOUT_BATCH_MS 200
#define FANOUT_CONNECTIONS_MAX 32 /* FanoutConnections: SMTP connections, one thread each */

typedef struct {
    const config *cfg;
    rc_store *store;                /* read-write */
    const rc_service_secret *svc;
    const uint8_t *mark_secret;     /* 32 bytes, the store's */
    const char *recipient;          /* TOKEN@FanoutDomain, as the MTA gives it */
    const char *queue_id;           /* for the log; may be NULL */
    int fd;                         /* the queued post, seekable, from offset 0 */
    uint64_t now;
} fanout_job;

typedef struct {
    size_t members;  /* the audience: members planned */
    size_t sent;     /* copies queued by this run */
    size_t skipped;  /* copies a former run had queued */
    size_t refused;  /* copies the MTA refused for good (5xx) */
    size_t stanzas;  /* stanzas in the copies of this run */
    int duplicate;   /* the post was delivered before: nothing done */
} fanout_result;

/* FanoutThreads, or one per CPU when it is 0. */
unsigned fanout_threads(const config *cfg);

/* Run one fan-out. Returns a sysexits code for the MTA: 0 (done, also for a
 * post delivered before), EX_TEMPFAIL (the MTA retries: store, relay or
 * I/O trouble, or a copy the relay deferred), EX_NOUSER (not a fan-out
 * address), EX_NOPERM (the token does not belong to this post),
 * EX_DATAERR (the post is refused: the MTA bounces it to its sender with
 * the text in why). why: one line for the MTA's report. */
int fanout_run(const fanout_job *job, fanout_result *res, char *why, size_t cap);

#endif
