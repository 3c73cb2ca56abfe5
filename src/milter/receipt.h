/*
 * receipt.h - delivery receipts: how the milter learns that the MTA
 * committed a post it handed over.
 *
 * A milter is never told whether the MTA queued the message (Postfix sends
 * the same abort after a commit and after a later milter's tempfail). So
 * at end of message the milter records the post's E as pending and adds
 * one more envelope recipient, TOKEN@ReceiptDomain. The MTA routes that
 * domain to a transport that runs `recrypt-milter -r RECIPIENT` (Postfix:
 * pipe(8); Sendmail: a prog mailer), which it does only for a message it
 * committed; that run marks E delivered (rc_store_delivered_confirm).
 *
 * TOKEN is 48 lowercase hex digits: the first 12 bytes of E, then a 12-byte
 * tag, BLAKE2b keyed with the store's mark secret over E, so that nobody
 * without the store can mark a post delivered (which would make the milter
 * discard its retry). docs/FORMAT.md §"Delivery receipts" is the spec.
 */
#ifndef RECRYPT_MILTER_RECEIPT_H
#define RECRYPT_MILTER_RECEIPT_H

#include <stddef.h>
#include <stdint.h>
#include <recrypt/recrypt.h>
#include "config.h"

#define RECEIPT_PREFIX_BYTES 12
#define RECEIPT_TAG_BYTES 12
#define RECEIPT_TOKEN_LEN (2 * (RECEIPT_PREFIX_BYTES + RECEIPT_TAG_BYTES)) /* 48 */

/* The token (RECEIPT_TOKEN_LEN characters and a NUL) for E. */
void receipt_token(char out[RECEIPT_TOKEN_LEN + 1], const uint8_t mark_secret[32],
                   const uint8_t E[RC_POINT_BYTES]);
/* Does address (TOKEN@domain, or TOKEN alone; <> allowed) carry a
 * well-formed token? 0 and prefix and tag filled, or -1. */
int receipt_parse(const char *address, uint8_t prefix[RECEIPT_PREFIX_BYTES],
                  uint8_t tag[RECEIPT_TAG_BYTES]);
/* Is tag the right one for E? (constant time) */
int receipt_tag_ok(const uint8_t mark_secret[32], const uint8_t E[RC_POINT_BYTES],
                   const uint8_t tag[RECEIPT_TAG_BYTES]);
/* Split delivery's fan-out address (docs/FORMAT.md §9.8): TOKEN@FanoutDomain,
 * the same form with the BLAKE2b personal "recrypt/fanout", so that a
 * receipt token is never a fan-out token or the other way round. The
 * milter makes it; recrypt-fanout parses it with receipt_parse and checks
 * it against the post's E (both prefix and tag; constant time). */
void fanout_token(char out[RECEIPT_TOKEN_LEN + 1], const uint8_t mark_secret[32],
                  const uint8_t E[RC_POINT_BYTES]);
int fanout_tag_ok(const uint8_t mark_secret[32], const uint8_t E[RC_POINT_BYTES],
                  const uint8_t prefix[RECEIPT_PREFIX_BYTES], const uint8_t tag[RECEIPT_TAG_BYTES]);

/* Does address name the receipt domain (case-insensitive), in any form the
 * MTA may route there: @domain, @domain., a subdomain, the percent hack
 * (user%domain@host), a bang path (domain!user)? domain "" never matches.
 * For refusing such recipients at RCPT. */
int receipt_in_domain(const char *address, const char *domain);

/* recrypt-milter -r RECIPIENT (receipt_run.c): the receipt transport's command. Reads and
 * drops the message on stdin (the MTA writes it), marks the post
 * delivered, logs one line. Returns a sysexits code the MTA understands:
 * 0 done (also for a post already delivered, no longer in the cache, or a
 * token whose tag does not match: logged as receipt-unknown),
 * EX_DATAERR for a malformed address (the MTA bounces it),
 * EX_TEMPFAIL when the store cannot be used now (the MTA retries). */
int receipt_run(const config *cfg, const char *recipient, const char *queue_id);

#endif
