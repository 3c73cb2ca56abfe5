/*
 * recrypt/svcsig.h - the service signature (FORMAT.md §8.1): the list's
 * service signs every copy it delivers with the Ed25519 key of the epoch
 * that the list key statement (version 2) names as service_pk. A reader
 * tells by it a copy that came through the list from one anybody could
 * have written: the signature covers the envelope (list id, epoch, E, KC),
 * the post's Date, the copy's stanzas in order and, for a split copy, the
 * member it was written for.
 */
#ifndef RECRYPT_SVCSIG_H
#define RECRYPT_SVCSIG_H

#include <stddef.h>
#include <stdint.h>
#include <recrypt/error.h>
#include <recrypt/keys.h>
#include <recrypt/stream.h>

/* Outer header fields the gateway adds (FORMAT.md §9.2). */
#define RC_HDR_SERVICE_SIG "Recrypt-Service-Signature"
#define RC_HDR_LIST_KEY_CURRENT "Recrypt-List-Key-Current"
#define RC_SVC_SEED_BYTES 32
/* The service seed sealed to the service's X25519 key (crypto_box_seal). */
#define RC_SEALED_SVC_SEED_BYTES (RC_SVC_SEED_BYTES + 48)

/* H(stanzas): BLAKE2b-256, personal "recrypt/stanzas", over u8 1 and each
 * stanza's bytes (R ‖ u16 len ‖ W) prefixed with its u16 length, in order. */
int rc_svc_stanza_hash(uint8_t out[32], const rc_stanza *stanzas, size_t n, rc_error *err);
/* The Ed25519 public key of a service seed. */
void rc_svc_public(uint8_t pk[RC_SIGN_PK_BYTES], const uint8_t seed[RC_SVC_SEED_BYTES]);
/* sig = Ed25519_seed("recrypt/svc-sig" ‖ u8 1 ‖ list_id ‖ u64 epoch ‖ E ‖ KC ‖
 * u64 date ‖ stanza_hash ‖ str8(recipient)); recipient: the member's
 * canonical address for a split copy, "" (or NULL) for an inline copy. */
int rc_svc_sign(uint8_t sig[RC_SIG_BYTES], const uint8_t seed[RC_SVC_SEED_BYTES],
                const rc_envelope *env, uint64_t date, const uint8_t stanza_hash[32],
                const char *recipient, rc_error *err);
/* 0 when sig verifies with pk; RC_E_SIGNATURE otherwise. */
int rc_svc_verify(const uint8_t sig[RC_SIG_BYTES], const uint8_t pk[RC_SIGN_PK_BYTES],
                  const rc_envelope *env, uint64_t date, const uint8_t stanza_hash[32],
                  const char *recipient, rc_error *err);
/* base64url of the signature (86 characters and a NUL). */
#define RC_SVC_SIG_TEXT 87
int rc_svc_sig_encode(char out[RC_SVC_SIG_TEXT], const uint8_t sig[RC_SIG_BYTES]);
/* Seal a seed to the service (X25519 public key) and open it again. */
int rc_svc_seed_seal(uint8_t out[RC_SEALED_SVC_SEED_BYTES], const uint8_t seed[RC_SVC_SEED_BYTES],
                     const uint8_t service_box_pk[RC_BOX_PK_BYTES], rc_error *err);
int rc_svc_seed_open(uint8_t seed[RC_SVC_SEED_BYTES],
                     const uint8_t sealed[RC_SEALED_SVC_SEED_BYTES], const rc_service_secret *svc,
                     rc_error *err);

#endif
