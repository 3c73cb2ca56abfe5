/*
 * internal.h - helpers shared by librecrypt's modules; private to src/lib
 * (and the unit tests of its internals), not installed. Context labels,
 * labelled BLAKE2b, scalar and point checks, base64url; with bytes.h
 * (src/common) the big-endian fields and the bounds-checked byte
 * writer/reader for the binary encodings of FORMAT.md.
 */
#ifndef RECRYPT_INTERNAL_H
#define RECRYPT_INTERNAL_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <recrypt/recrypt.h>
#include "bytes.h"

/* Context labels: ASCII, NUL-padded to 16 bytes; used as BLAKE2b `personal`
 * and as the first 16 bytes of every signed message. FORMAT.md lists them. */
#define RC_LABEL_BYTES 16
#define RC_L_LIST_ID "recrypt/list-id"
#define RC_L_KEYSTR "recrypt/keystr"
#define RC_L_CONTENT "recrypt/content"
#define RC_L_PROOF "recrypt/proof"
#define RC_L_MSGID "recrypt/msgid"
#define RC_L_STATEMENT "recrypt/stmt"
#define RC_L_CERT "recrypt/cert"
#define RC_L_WRAP "recrypt/wrap"
#define RC_L_POST_SIG "recrypt/post-sig"
#define RC_L_HEADER "recrypt/header"
#define RC_L_SVC_SIG "recrypt/svc-sig"
#define RC_L_STANZAS "recrypt/stanzas"

void rc_label(uint8_t out[RC_LABEL_BYTES], const char *label);

/* BLAKE2b with `personal` = label; outlen 16..64. */
int rc_hash_init(crypto_generichash_blake2b_state *st, size_t outlen, const char *label);
int rc_hash(uint8_t *out, size_t outlen, const char *label, const uint8_t *in, size_t len);

/* Scalars and points (ristretto255). */
int rc_scalar_is_canonical_nonzero(const uint8_t s[RC_SCALAR_BYTES]);
int rc_point_is_valid_nonidentity(const uint8_t p[RC_POINT_BYTES]);
void rc_scalar_random_nonzero(uint8_t s[RC_SCALAR_BYTES]);

/* base64url without padding, canonical (re-encoding must give the input). */
int rc_b64url_encode(char *out, size_t outlen, const uint8_t *in, size_t len);
int rc_b64url_decode(uint8_t *out, size_t outlen, size_t *len, const char *in, size_t inlen);

/* The byte writer and reader (rc_wr, rc_rd) and big-endian fields are in
 * bytes.h (src/common), shared with the store; this writes a context label. */
void rc_wr_label(rc_wr *w, const char *label);

/* H(stanzas) (svcsig.c): one stanza's bytes, u16-length-prefixed. */
void rc_svc_stanza_hash_add(crypto_generichash_blake2b_state *st, const uint8_t *stanza,
                            size_t len);

/* Ed25519ph / post-signature prefix and W plaintext live in their modules. */

/* Deterministic variants for test vectors (FORMAT.md); not for production. */
int rc_entry_create_det(rc_device_entry *out, const rc_list_secret *ls,
                        const rc_device_public *dev, const char *member_address,
                        uint64_t enrolled_at, const uint8_t k[RC_SCALAR_BYTES], rc_error *err);
int rc_sealer_new_det(rc_sealer **out, rc_envelope *env_out, const rc_statement *st,
                      uint64_t date, const char *message_id, const rc_device_secret *signer,
                      const rc_cert *cert, const uint8_t t[RC_SCALAR_BYTES],
                      const uint8_t u[RC_SCALAR_BYTES],
                      const uint8_t stream_header[RC_STREAM_HEADER_BYTES], rc_error *err);
/* K ‖ KC and S for given inputs (shared by sealer and opener). */
int rc_derive_content_key(uint8_t K[32], uint8_t KC[32], const uint8_t list_id[RC_ID_BYTES],
                          uint64_t epoch, const uint8_t A[RC_POINT_BYTES],
                          const uint8_t E[RC_POINT_BYTES], const uint8_t S[RC_POINT_BYTES]);
int rc_proof_challenge(uint8_t c[RC_SCALAR_BYTES], const uint8_t list_id[RC_ID_BYTES],
                       uint64_t epoch, const uint8_t A[RC_POINT_BYTES],
                       const uint8_t E[RC_POINT_BYTES], const uint8_t U[RC_POINT_BYTES],
                       uint64_t date, const char *message_id);

/* The opener stages authenticated plaintext in fd (the caller's private,
 * empty file) instead of its own memory file, and rc_opener_final writes
 * the rest there too instead of calling the sink: rc_mail_open, which
 * parses the inner message from that file. Before any data. */
int rc_opener_stage_into(rc_opener *o, int fd, rc_error *err);

#endif
