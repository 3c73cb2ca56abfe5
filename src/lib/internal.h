/*
 * internal.h - helpers shared by librecrypt's modules; not installed.
 * Context labels, big-endian fields, labelled BLAKE2b, scalar and point
 * checks, base64url, and a bounds-checked byte writer/reader for the binary
 * encodings of FORMAT.md.
 */
#ifndef RECRYPT_INTERNAL_H
#define RECRYPT_INTERNAL_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <recrypt/recrypt.h>

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

void rc_label(uint8_t out[RC_LABEL_BYTES], const char *label);

void rc_be16_put(uint8_t *p, uint16_t v);
void rc_be32_put(uint8_t *p, uint32_t v);
void rc_be64_put(uint8_t *p, uint64_t v);
uint16_t rc_be16_get(const uint8_t *p);
uint32_t rc_be32_get(const uint8_t *p);
uint64_t rc_be64_get(const uint8_t *p);

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

/* Bounds-checked writer and reader. Errors are sticky: check `bad` once. */
typedef struct {
    uint8_t *p;
    size_t cap, len;
    int bad;
} rc_wr;
typedef struct {
    const uint8_t *p;
    size_t len, pos;
    int bad;
} rc_rd;

void rc_wr_bytes(rc_wr *w, const void *b, size_t n);
void rc_wr_u8(rc_wr *w, uint8_t v);
void rc_wr_u16(rc_wr *w, uint16_t v);
void rc_wr_u64(rc_wr *w, uint64_t v);
void rc_wr_label(rc_wr *w, const char *label);
/* length-prefixed (u8) string */
void rc_wr_str8(rc_wr *w, const char *s);

const uint8_t *rc_rd_bytes(rc_rd *r, size_t n);
void rc_rd_copy(rc_rd *r, void *out, size_t n);
uint8_t rc_rd_u8(rc_rd *r);
uint16_t rc_rd_u16(rc_rd *r);
uint64_t rc_rd_u64(rc_rd *r);
/* u8 length + bytes into out (NUL-terminated); max chars excl. NUL. */
void rc_rd_str8(rc_rd *r, char *out, size_t max);
/* 1 when everything was read and nothing went wrong. */
int rc_rd_done(const rc_rd *r);

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

#endif
