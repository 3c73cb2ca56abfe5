/*
 * recrypt/list.h - what a list owner signs and hands out: the list key
 * statement (senders encrypt to it), membership certificates (a device signs
 * posts with them) and device entries (r, W) that split the list key between
 * the service and one device; and the device side that opens W again.
 *
 * All structs are plain and caller-owned. rc_share holds the member share k:
 * allocate it with rc_secret_alloc() or wipe it with sodium_memzero.
 */
#ifndef RECRYPT_LIST_H
#define RECRYPT_LIST_H

#include <stddef.h>
#include <stdint.h>
#include <recrypt/error.h>
#include <recrypt/keys.h>

#define RC_FORMAT_VERSION 1

/* List key statement versions (FORMAT.md §4): 1 is read only (legacy: no
 * service key, no revocations); writers write 2. */
#define RC_STATEMENT_V1 1
#define RC_STATEMENT_V2 2
/* At most this many revoked device keys in one statement. */
#define RC_STATEMENT_MAX_REVOKED 64

/* The signed list key statement of one epoch. */
typedef struct {
    uint8_t version; /* RC_STATEMENT_V1 or RC_STATEMENT_V2 */
    char address[RC_ADDR_MAX + 1];
    uint64_t epoch;
    uint8_t A[RC_POINT_BYTES];
    uint64_t not_before; /* unix seconds */
    uint64_t not_after;  /* unix seconds, 0 = no expiry */
    uint8_t signer_pk[RC_SIGN_PK_BYTES];
    /* Version 2 only (zero in a version 1 statement): */
    uint8_t service_pk[RC_SIGN_PK_BYTES]; /* the service's Ed25519 key of this epoch (copies) */
    uint16_t n_revoked;                   /* 0..RC_STATEMENT_MAX_REVOKED */
    uint8_t revoked[RC_STATEMENT_MAX_REVOKED][RC_SIGN_PK_BYTES]; /* device Ed25519 keys */
    uint8_t sig[RC_SIG_BYTES];
} rc_statement;

#define RC_STATEMENT_MAX                                                                      \
    (1 + 1 + RC_ADDR_MAX + 8 + 32 + 8 + 8 + 32 + 32 + 2 + 32 * RC_STATEMENT_MAX_REVOKED + 64)

/* A version 1 statement (legacy; tests and old vectors only). */
int rc_statement_sign(rc_statement *out, const rc_list_secret *ls, uint64_t not_before,
                      uint64_t not_after, rc_error *err);
/* A version 2 statement: service_pk is the public key of the service
 * signing key of this epoch; revoked: n_revoked device Ed25519 keys whose
 * certificates of earlier epochs stop counting for posts dated at or after
 * not_before (n_revoked <= RC_STATEMENT_MAX_REVOKED, else RC_E_INVALID). */
int rc_statement_sign_v2(rc_statement *out, const rc_list_secret *ls, uint64_t not_before,
                         uint64_t not_after, const uint8_t service_pk[RC_SIGN_PK_BYTES],
                         const uint8_t (*revoked)[RC_SIGN_PK_BYTES], size_t n_revoked,
                         rc_error *err);
/* 1 when st (version 2) lists device key pk as revoked. */
int rc_statement_revokes(const rc_statement *st, const uint8_t pk[RC_SIGN_PK_BYTES]);
/* Verify the signature with the signer key the statement names. */
int rc_statement_verify(const rc_statement *st, rc_error *err);
/* Binary form (FORMAT.md) and key string form (type "listkey"). */
int rc_statement_to_bytes(uint8_t *out, size_t outlen, size_t *len, const rc_statement *st,
                          rc_error *err);
int rc_statement_from_bytes(rc_statement *st, const uint8_t *in, size_t len, rc_error *err);
int rc_statement_encode(char *out, size_t outlen, const rc_statement *st, rc_error *err);
/* Parses and verifies the signature; no pinning (see rc_statement_accept). */
int rc_statement_decode(rc_statement *st, const char *str, rc_error *err);

/* What a client remembers about a list: the pinned signing key and the
 * highest epoch it has accepted. */
typedef struct {
    uint8_t signer_pk[RC_SIGN_PK_BYTES];
    uint64_t highest_epoch;
} rc_pin;

/* Trust decision for a verified statement.
 * pin: NULL on first use (trust on first use), else the pinned state.
 * expected_signer: NULL or a signer key the user named (--signer).
 * known_epoch: 1 if this exact statement was accepted before (an older
 * epoch is then acceptable, for reading old mail).
 * at: the time at which it must be valid (now for sealing, the message's
 * date for opening). Refuses another signer, an older unknown epoch, a
 * statement not yet valid or expired at `at`. */
int rc_statement_accept(const rc_statement *st, const rc_pin *pin,
                        const uint8_t *expected_signer, int known_epoch, uint64_t at,
                        rc_error *err);

/* Membership certificate: binds a member address and a device signing key
 * to a list and epoch, signed by the list signing key. */
typedef struct {
    uint8_t version;
    uint8_t list_id[RC_ID_BYTES];
    uint64_t epoch;
    char address[RC_ADDR_MAX + 1];
    uint8_t device_sign_pk[RC_SIGN_PK_BYTES];
    uint8_t sig[RC_SIG_BYTES];
} rc_cert;

#define RC_CERT_MAX (1 + 32 + 8 + 1 + RC_ADDR_MAX + 32 + 64)

int rc_cert_sign(rc_cert *out, const rc_list_secret *ls, const char *member_address,
                 const uint8_t device_sign_pk[RC_SIGN_PK_BYTES], rc_error *err);
int rc_cert_verify(const rc_cert *c, const uint8_t list_sign_pk[RC_SIGN_PK_BYTES],
                   rc_error *err);
int rc_cert_to_bytes(uint8_t *out, size_t outlen, size_t *len, const rc_cert *c, rc_error *err);
int rc_cert_from_bytes(rc_cert *c, const uint8_t *in, size_t len, rc_error *err);

/* W: the member share sealed to one device. */
#define RC_WRAP_PLAIN_MAX (16 + 1 + 32 + 8 + 32 + 32 + 32 + 2 + RC_CERT_MAX)
#define RC_WRAP_MAX (RC_WRAP_PLAIN_MAX + 48)

/* A device entry as the owner creates it. r is a secret of the service's;
 * the owner sends it sealed to the service key, never in the clear. */
typedef struct {
    uint8_t r[RC_SCALAR_BYTES];
    uint8_t K[RC_POINT_BYTES]; /* k·G, lets the service check r·G + K == A */
    uint8_t W[RC_WRAP_MAX];
    size_t W_len;
    uint64_t enrolled_at;
} rc_device_entry;

/* Owner side: split the list key for one device (k random, r = a - k). */
int rc_entry_create(rc_device_entry *out, const rc_list_secret *ls, const rc_device_public *dev,
                    const char *member_address, uint64_t enrolled_at, rc_error *err);
/* Service side: r·G + K == A, r canonical and non-zero. */
int rc_entry_check(const uint8_t r[RC_SCALAR_BYTES], const uint8_t K[RC_POINT_BYTES],
                   const uint8_t A[RC_POINT_BYTES], rc_error *err);

/* What a device finds inside W. */
typedef struct {
    uint8_t list_id[RC_ID_BYTES];
    uint64_t epoch;
    uint8_t A[RC_POINT_BYTES];
    uint8_t X[RC_BOX_PK_BYTES];
    uint8_t k[RC_SCALAR_BYTES];
    rc_cert cert;
} rc_share;

/* Device side: open W with the device key; checks the label, version, that
 * W names this device's key, k canonical and non-zero, and the certificate's
 * list id and epoch equal W's. */
int rc_wrap_open(rc_share *out, const rc_device_secret *dev, const uint8_t *W, size_t W_len,
                 rc_error *err);

#endif
