/*
 * smtp.h - an SMTP client (RFC 5321) for handing messages to the local MTA:
 * split delivery's fan-out builds one copy of a list post per member and
 * submits each copy, one transaction after another on one connection, to a
 * listener that runs no milter (Postfix: a 127.0.0.1:10026 smtpd as in
 * FILTER_README; Sendmail: a DaemonPortOptions port without the milter).
 *
 * Deliberately small: no PIPELINING, no TLS, no AUTH, no extensions (the
 * peer is on loopback or a unix socket). One command, one reply.
 *
 * Ownership: smtp_open allocates the client, smtp_close frees it; the
 * client copies nothing the caller passes in beyond the call, and the
 * strings it returns (smtp_last_reply) live until the next call on it. A
 * client is not thread-safe: one client per thread.
 *
 * Results: SMTP_OK, SMTP_TEMPFAIL (4xx, timeout, connection trouble: try
 * again later) or SMTP_PERMFAIL (5xx: this message, sender or recipient is
 * refused for good). A broken connection (EOF, I/O error, timeout, a 421
 * reply, a protocol error, a message abandoned half-sent) makes the client
 * unusable: every later call returns SMTP_TEMPFAIL at once, and the caller
 * closes it and opens a new one (smtp_usable tells). Otherwise, after a
 * refusal, the connection stays usable for the next message.
 *
 * Reasons and replies written to the caller's buffers are one line (no
 * control characters, no bytes above 0x7e), truncated to the buffer's size
 * and always NUL-terminated (a NULL buffer or size 0 is allowed).
 */
#ifndef RECRYPT_MILTER_SMTP_H
#define RECRYPT_MILTER_SMTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct smtp_client smtp_client;

enum {
    SMTP_OK = 0,
    SMTP_TEMPFAIL = -1, /* 4xx, timeout, connection trouble: try again later */
    SMTP_PERMFAIL = -2, /* 5xx: this message or recipient is refused for good */
};

/* Limits. */
#define SMTP_OUT_BUFFER 65536 /* message bytes buffered before a write */
#define SMTP_REPLY_MAX 65536  /* a longer reply (all its lines) is a protocol error */
#define SMTP_ADDRESS_MAX 256  /* octets in a path (RFC 5321 4.5.3.1.3) */
#define SMTP_QUIT_TIMEOUT 2   /* seconds smtp_close waits for the reply to QUIT */

/* Connect to target and greet it (EHLO helo; HELO helo when EHLO gets 5xx).
 *
 * target: "HOST:PORT" with HOST an IPv4 literal, an "[IPv6]" literal, or a
 * name resolved with getaddrinfo (a literal needs no DNS; each address of a
 * name is tried in turn); or "unix:/path/to/socket". PORT is 1-65535.
 * helo: the name for EHLO/HELO (no spaces or control characters).
 * timeout_s (>= 1): for connect (per address), for each whole reply, and for
 * each write of buffered output.
 *
 * Returns SMTP_OK with *out set, or (with *out NULL and a one-line reason in
 * why) SMTP_PERMFAIL for a malformed target, helo or timeout, a 5xx greeting
 * or a 5xx to HELO, else SMTP_TEMPFAIL (resolution or connection trouble,
 * 4xx, timeout, protocol error). */
int smtp_open(smtp_client **out, const char *target, const char *helo, int timeout_s, char *why,
              size_t why_cap);

/* Start one message: MAIL FROM:<sender> (sender "" means <>), RCPT
 * TO:<rcpt>, DATA (expects 354). Addresses are canonical, without angle
 * brackets; one containing a control character, a space, '<' or '>', or
 * longer than SMTP_ADDRESS_MAX octets (or an empty rcpt) is refused with
 * SMTP_PERMFAIL before anything is sent. On any other non-success the
 * transaction is reset (RSET) at once, so the connection stays usable for
 * the next message; if RSET is refused, the connection is dropped instead.
 * So a transaction never stays open between calls, and smtp_begin never
 * needs an RSET first.
 *
 * reply receives the server's last reply (code and text, e.g. "550 5.1.1
 * <x@y>: Recipient address rejected: User unknown"), or on a local failure
 * a reason without a code. On SMTP_OK (354 received) the caller must send
 * the message with smtp_write and finish it with smtp_end; calling
 * smtp_begin again instead abandons the message by dropping the connection
 * (the only way to abort DATA without delivering a truncated message). */
int smtp_begin(smtp_client *c, const char *sender, const char *rcpt, char *reply, size_t cap);

/* The message's bytes (header and body), in any number of pieces. LF,
 * CRLF and a bare CR in the input are each sent as CRLF, also when a CRLF
 * is split across two pieces; a line starting with '.' gets another '.'
 * (RFC 5321 4.5.2), also across pieces. Output is buffered
 * (SMTP_OUT_BUFFER) and written as the buffer fills. Returns 0, or
 * SMTP_TEMPFAIL on a write error or timeout (the client is then broken) or
 * when no message was started. */
int smtp_write(smtp_client *c, const void *p, size_t n);
/* smtp_write as an rc_sink_fn (include/recrypt/stream.h): pass the client
 * as ctx. */
int smtp_sink(void *c, const uint8_t *p, size_t n);

/* End the message: end the data with CRLF if it did not, send ".", read the
 * reply: SMTP_OK on 2xx, SMTP_TEMPFAIL on 4xx (421 breaks the client),
 * SMTP_PERMFAIL on 5xx, reply text in reply as for smtp_begin. Whatever the
 * reply, the transaction is over and the next smtp_begin needs no RSET.
 * A timeout here leaves it unknown whether the MTA queued the message: use
 * a generous timeout_s (RFC 5321 4.5.3.2.6 suggests 10 minutes). */
int smtp_end(smtp_client *c, char *reply, size_t cap);

/* The server's last reply, its lines joined: the code, then each line's
 * text, separated by single spaces ("250 2.0.0 Ok: queued as ABC123"),
 * sanitized, at most 1023 characters; "" before any reply or for NULL. */
const char *smtp_last_reply(const smtp_client *c);

/* The queue id from the last reply if it is a 2xx naming one: Postfix's
 * "250 2.0.0 Ok: queued as 4Zx1Y2abcdz" or Sendmail's
 * "250 2.0.0 5AB1Cdef012345 Message accepted for delivery". 0 with id
 * copied to out (NUL-terminated; -1 if it does not fit), or -1. */
int smtp_queue_id(const smtp_client *c, char *out, size_t cap);

/* 1 if the connection can carry another message, 0 if it broke (or NULL). */
int smtp_usable(const smtp_client *c);

/* QUIT (best effort, at most SMTP_QUIT_TIMEOUT seconds; not sent on a
 * broken connection or in the middle of a message, which the server then
 * discards), close, free. NULL-safe. */
void smtp_close(smtp_client *c);

#endif
