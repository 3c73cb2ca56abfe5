/*
 * recrypt/message.h - recrypt mail as MIME: sealing an RFC 5322 message
 * into the outer multipart/encrypted form, parsing that form (sealed or
 * recrypted), the service's rewrite that adds stanzas, and opening.
 *
 * Every function reads the message from a seekable file descriptor (spool
 * piped input first: GMime keeps piped input in memory) and streams its
 * output through an rc_sink_fn, so memory stays flat for any message size.
 * The caller keeps ownership of the descriptors it passes.
 */
#ifndef RECRYPT_MESSAGE_H
#define RECRYPT_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <recrypt/error.h>
#include <recrypt/keys.h>
#include <recrypt/list.h>
#include <recrypt/stream.h>
#include <recrypt/svcsig.h>

/* MIME names (FORMAT.md). */
#define RC_MIME_PROTOCOL "application/vnd.recrypt.control"
#define RC_HDR_LIST_KEY "Recrypt-List-Key"
#define RC_HDR_VERDICT "Recrypt-Verdict"
/* Split delivery's copy mark (FORMAT.md 9.8): 22 base64url characters, the
 * same in every copy of one fan-out run, another in a rerun's. */
#define RC_HDR_COPY "Recrypt-Copy"
#define RC_COPY_ID_LEN 22
#define RC_SUBJECT_PLACEHOLDER "[recrypt] encrypted message"
/* Upper bound on stanzas one message may carry (and the control part's size). */
#define RC_MAX_STANZAS 10000

/* Seal the message in in_fd to st. Adds Date and Message-ID to the inner
 * message when missing (now: the time to use). signer/cert: both NULL for
 * an unsigned post. A signed post must come From the certificate's member
 * (one From address, equal to cert->address ignoring case), because every
 * reader refuses a signed post from anyone else (rc_mail_open): otherwise
 * RC_E_POLICY, and nothing is written to sink. Writes the whole outer
 * message to sink. */
int rc_mail_seal(int in_fd, const rc_statement *st, const rc_device_secret *signer,
                 const rc_cert *cert, uint64_t now, rc_sink_fn sink, void *ctx, rc_error *err);
/* rc_mail_seal with flags. RC_SEAL_ANY_FROM signs whatever the From: only
 * for testing readers, which refuse such a post. */
#define RC_SEAL_ANY_FROM 1u
int rc_mail_seal_flags(int in_fd, const rc_statement *st, const rc_device_secret *signer,
                       const rc_cert *cert, uint64_t now, unsigned flags, rc_sink_fn sink,
                       void *ctx, rc_error *err);

/* The addresses `sendmail -t` may take as recipients from the message in
 * in_fd (read from position 0): every mailbox of every To, Cc, Bcc,
 * Resent-To, Resent-Cc, Resent-Bcc and Apparently-To field, groups
 * flattened, lower-cased, in order, duplicates dropped. GMime's parser is
 * lenient (it may drop what it cannot read): a caller deciding where mail
 * may go must also look at the raw text (rc_mail_header_recipient_text).
 * *out: *n malloc'ed strings (rc_mail_addresses_free). A field that does
 * not parse as addresses is RC_E_FORMAT naming it. */
int rc_mail_header_recipients(int in_fd, char ***out, size_t *n, rc_error *err);
void rc_mail_addresses_free(char **a, size_t n);
/* The mailboxes of an address list as text ("A <a@x>, b@y", groups
 * flattened), lower-cased, duplicates dropped; as rc_mail_header_recipients
 * does for one field. */
int rc_address_list_parse(const char *text, char ***out, size_t *n, rc_error *err);
/* The raw, unfolded values of those same fields, joined by '\n' (malloc'ed,
 * "" when none). */
int rc_mail_header_recipient_text(int in_fd, char **out, rc_error *err);

typedef struct rc_mail rc_mail;

/* Parse an outer message strictly: top-level multipart/encrypted with our
 * protocol and exactly two parts (control, then application/octet-stream in
 * base64); one Date and one Message-ID; a control part of known version.
 * The descriptor is duplicated; the caller may close its own. */
int rc_mail_parse(rc_mail **out, int fd, rc_error *err);
void rc_mail_free(rc_mail *m);

const rc_envelope *rc_mail_envelope(const rc_mail *m);
size_t rc_mail_stanza_count(const rc_mail *m);
const rc_stanza *rc_mail_stanzas(const rc_mail *m);
uint64_t rc_mail_date(const rc_mail *m);
const char *rc_mail_message_id(const rc_mail *m);
/* Value of the Recrypt-List-Key header (unfolded), or NULL. */
const char *rc_mail_list_key(const rc_mail *m);
/* Value of the Recrypt-List-Key-Current header (the list's current epoch,
 * added by the gateway to a post of an older epoch), or NULL. */
const char *rc_mail_list_key_current(const rc_mail *m);
/* The 64-byte Recrypt-Service-Signature, or NULL when absent or malformed. */
const uint8_t *rc_mail_service_sig(const rc_mail *m);
/* The Recrypt-Copy value when the message has exactly one such field and it
 * is RC_COPY_ID_LEN base64url characters (white space around it ignored);
 * else NULL. Only a hint for marking duplicates: it is not authenticated. */
const char *rc_mail_copy_id(const rc_mail *m);

/* Service side, recryption step 1: the post names list_address and epoch
 * (whose key is A), carries no stanza, its proof verifies, and its date
 * lies within [now - window, now + future_skew]. */
int rc_mail_check_post(const rc_mail *m, const char *list_address, uint64_t epoch,
                       const uint8_t A[RC_POINT_BYTES], uint64_t now, uint64_t window,
                       uint64_t future_skew, rc_error *err);

/* Service side, step 2: write the new body (everything after the outer
 * header) with one stanza per entry enrolled at or before the post's date,
 * in random order. *n_written receives the number of stanzas. */
int rc_mail_write_recrypted_body(const rc_mail *m, const rc_device_entry *entries, size_t n,
                                 int use_table, rc_sink_fn sink, void *ctx, size_t *n_written,
                                 rc_error *err);
/* The same with R[i] = entries[i].r·E computed by the caller
 * (rc_recryptor_compute_all), for split delivery, which writes one body per
 * member from one computation per post. R of an entry that gets no stanza
 * is not read. */
int rc_mail_write_body_stanzas(const rc_mail *m, const rc_device_entry *entries,
                               const uint8_t (*R)[RC_POINT_BYTES], size_t n, rc_sink_fn sink,
                               void *ctx, size_t *n_written, rc_error *err);
/* The same two, also returning H(stanzas as written, in order) for the
 * service signature (recrypt/svcsig.h); stanza_hash may be NULL. */
int rc_mail_write_recrypted_body_h(const rc_mail *m, const rc_device_entry *entries, size_t n,
                                   int use_table, rc_sink_fn sink, void *ctx, size_t *n_written,
                                   uint8_t stanza_hash[32], rc_error *err);
int rc_mail_write_body_stanzas_h(const rc_mail *m, const rc_device_entry *entries,
                                 const uint8_t (*R)[RC_POINT_BYTES], size_t n, rc_sink_fn sink,
                                 void *ctx, size_t *n_written, uint8_t stanza_hash[32],
                                 rc_error *err);
/* The same in two steps, for a caller that must know H(stanzas) before it
 * writes the body (split delivery signs each copy in its header): the
 * order of the stanzas (indexes into entries, n slots; *k of them used)
 * and, when stanza_hash is not NULL, H over them in that order; then the
 * body in that order. */
int rc_mail_stanza_order(const rc_mail *m, const rc_device_entry *entries,
                         const uint8_t (*R)[RC_POINT_BYTES], size_t n, size_t *order, size_t *k,
                         uint8_t stanza_hash[32], rc_error *err);
int rc_mail_write_body_order(const rc_mail *m, const rc_device_entry *entries,
                             const uint8_t (*R)[RC_POINT_BYTES], const size_t *order, size_t k,
                             rc_sink_fn sink, void *ctx, size_t *n_written, rc_error *err);
/* The outer header block as received, including the empty line. */
int rc_mail_write_header(const rc_mail *m, rc_sink_fn sink, void *ctx, rc_error *err);

/* Device side: open m for dev under statement st (trusted by the caller).
 * Decrypts into stage_fd (a private, empty, seekable file of the caller's),
 * checks everything, then writes the inner message with its own headers
 * plus one Recrypt-Verdict header to sink. Nothing reaches sink unless the
 * whole message authenticated. res may be NULL. */
int rc_mail_open(rc_mail *m, const rc_statement *st, const rc_device_secret *dev, int stage_fd,
                 rc_sink_fn sink, void *ctx, rc_open_result *res, rc_error *err);

/* rc_mail_open's options (FORMAT.md §9.5 steps 5 and 6). */
#define RC_OPEN_ALLOW_DIRECT 1u /* show a copy that did not come through the list */
typedef struct {
    unsigned flags;
    /* Statements of the same list with higher epochs that the caller
     * accepted (pinned signer): their revocations apply to posts dated at or
     * after their not_before. */
    const rc_statement *later;
    size_t n_later;
} rc_open_options;
/* rc_mail_open with options (opt may be NULL: no later statements, direct
 * copies refused). With a version 2 statement a copy without a valid
 * service signature is RC_E_POLICY unless RC_OPEN_ALLOW_DIRECT (then its
 * verdict is "direct; …" and res->path RC_PATH_DIRECT); a signed post whose
 * device a later statement revokes is RC_E_SIGNATURE. */
int rc_mail_open_ex(rc_mail *m, const rc_statement *st, const rc_device_secret *dev,
                    const rc_open_options *opt, int stage_fd, rc_sink_fn sink, void *ctx,
                    rc_open_result *res, rc_error *err);

#endif
