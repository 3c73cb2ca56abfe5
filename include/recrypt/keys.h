/*
 * recrypt/keys.h - key material of every party and its one-line text form.
 *
 * Key strings look like `recrypt1.device.<base64url>`: a version, a type
 * word and the payload followed by a 4-byte checksum (BLAKE2b under its own
 * label), base64url
 * without padding. A string of another type, a corrupted string or a
 * non-canonical encoding is refused (RC_E_FORMAT).
 *
 * Secret structs are plain structs owned by the caller; allocate them with
 * rc_secret_alloc() (guarded, locked memory) and release them with
 * rc_secret_free(), which wipes. Public structs may live anywhere.
 *
 * Key files hold one key string and a newline; they are written 0600 and
 * refused when group- or world-accessible (RC_E_PERMISSION).
 */
#ifndef RECRYPT_KEYS_H
#define RECRYPT_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <recrypt/error.h>

#define RC_POINT_BYTES 32
#define RC_SCALAR_BYTES 32
#define RC_ID_BYTES 32
#define RC_SIGN_PK_BYTES 32
#define RC_SIGN_SK_BYTES 64
#define RC_SIGN_SEED_BYTES 32
#define RC_SIG_BYTES 64
#define RC_BOX_PK_BYTES 32
#define RC_BOX_SK_BYTES 32
#define RC_ADDR_MAX 254
/* Longest key string we produce or accept. */
#define RC_KEYSTR_MAX 4096 /* a listkey with 64 revocations: about 3350 */

/* Key string type words. */
#define RC_KT_DEVICE "device"
#define RC_KT_DEVICE_SECRET "device-secret"
#define RC_KT_SERVICE "service"
#define RC_KT_SERVICE_SECRET "service-secret"
#define RC_KT_OWNER "owner"
#define RC_KT_OWNER_SECRET "owner-secret"
#define RC_KT_LIST_SECRET "list-secret"
#define RC_KT_LISTKEY "listkey"

/* A subscriber device: X25519 wrap key pair and Ed25519 signing key pair. */
typedef struct {
    uint8_t wrap_pk[RC_BOX_PK_BYTES];
    uint8_t sign_pk[RC_SIGN_PK_BYTES];
} rc_device_public;

typedef struct {
    uint8_t wrap_sk[RC_BOX_SK_BYTES];
    uint8_t sign_sk[RC_SIGN_SK_BYTES]; /* libsodium form: seed ‖ public key */
    rc_device_public pub;
} rc_device_secret;

/* The recryption service: an X25519 key pair that receives service shares. */
typedef struct {
    uint8_t pk[RC_BOX_PK_BYTES];
} rc_service_public;

typedef struct {
    uint8_t sk[RC_BOX_SK_BYTES];
    rc_service_public pub;
} rc_service_secret;

/* A list owner: Ed25519 to sign requests, X25519 to receive list secrets. */
typedef struct {
    uint8_t sign_pk[RC_SIGN_PK_BYTES];
    uint8_t box_pk[RC_BOX_PK_BYTES];
} rc_owner_public;

typedef struct {
    uint8_t sign_sk[RC_SIGN_SK_BYTES];
    uint8_t box_sk[RC_BOX_SK_BYTES];
    rc_owner_public pub;
} rc_owner_secret;

/* What a list owner holds for one list and epoch: the group key `a` (A = a·G)
 * and the list signing key. */
typedef struct {
    char address[RC_ADDR_MAX + 1]; /* canonical (lowercased) list address */
    uint64_t epoch;
    uint8_t a[RC_SCALAR_BYTES];
    uint8_t A[RC_POINT_BYTES];
    uint8_t sign_sk[RC_SIGN_SK_BYTES];
    uint8_t sign_pk[RC_SIGN_PK_BYTES];
} rc_list_secret;

/* Guarded allocation for secrets (sodium_malloc + mlock), zero-filled.
 * Returns NULL on failure. rc_secret_free wipes and frees; NULL is a no-op. */
void *rc_secret_alloc(size_t size);
void rc_secret_free(void *p);

/* Generate fresh keys. */
int rc_device_generate(rc_device_secret *out, rc_error *err);
int rc_service_generate(rc_service_secret *out, rc_error *err);
int rc_owner_generate(rc_owner_secret *out, rc_error *err);
/* A new list (or a new epoch of it when sign_sk_or_null carries the existing
 * list signing key, libsodium 64-byte form). */
int rc_list_generate(rc_list_secret *out, const char *address, uint64_t epoch,
                     const uint8_t *sign_sk_or_null, rc_error *err);

/* Canonical list or member address: ASCII, lowercased, local@domain.
 * out must hold RC_ADDR_MAX + 1 bytes. */
int rc_address_canonical(char *out, const char *in, rc_error *err);

/* 32-byte list id: BLAKE2b-256 over the canonical address (FORMAT.md). */
int rc_list_id(uint8_t id[RC_ID_BYTES], const char *address, rc_error *err);

/* Generic key string codec. out must hold RC_KEYSTR_MAX bytes. */
int rc_keystr_encode(char *out, size_t outlen, const char *type, const uint8_t *payload,
                     size_t len, rc_error *err);
/* Decode a key string of exactly `type`; surrounding white space is ignored.
 * On success *len is the payload length. */
int rc_keystr_decode(const char *str, const char *type, uint8_t *payload, size_t maxlen,
                     size_t *len, rc_error *err);

/* Typed codecs. */
int rc_device_public_encode(char *out, size_t outlen, const rc_device_public *k, rc_error *err);
int rc_device_public_decode(rc_device_public *k, const char *str, rc_error *err);
int rc_device_secret_encode(char *out, size_t outlen, const rc_device_secret *k, rc_error *err);
int rc_device_secret_decode(rc_device_secret *k, const char *str, rc_error *err);
int rc_service_public_encode(char *out, size_t outlen, const rc_service_public *k,
                             rc_error *err);
int rc_service_public_decode(rc_service_public *k, const char *str, rc_error *err);
int rc_service_secret_encode(char *out, size_t outlen, const rc_service_secret *k,
                             rc_error *err);
int rc_service_secret_decode(rc_service_secret *k, const char *str, rc_error *err);
int rc_owner_public_encode(char *out, size_t outlen, const rc_owner_public *k, rc_error *err);
int rc_owner_public_decode(rc_owner_public *k, const char *str, rc_error *err);
int rc_owner_secret_encode(char *out, size_t outlen, const rc_owner_secret *k, rc_error *err);
int rc_owner_secret_decode(rc_owner_secret *k, const char *str, rc_error *err);
int rc_list_secret_encode(char *out, size_t outlen, const rc_list_secret *k, rc_error *err);
int rc_list_secret_decode(rc_list_secret *k, const char *str, rc_error *err);

/* Fingerprint types beyond the key string types: the list signing key (what
 * clients pin) and a device's signing key (how a device is shown everywhere:
 * keygen, recryptctl show, the Recrypt-Verdict header). */
#define RC_FP_LIST_SIGNER "list-signer"
#define RC_FP_DEVICE_SIGNER "device-signer"

/* Fingerprint (UDF, 140 bits) of a public key's bytes, tagged by type. */
int rc_key_fingerprint(char *out, size_t outlen, const char *type, const uint8_t *pub,
                       size_t len, rc_error *err);

/* Key files. write: creates or replaces atomically with mode 0600.
 * read: refuses a file that is not a regular file or is group/world
 * accessible; returns the first line (without newline) in out. */
int rc_keyfile_write(const char *path, const char *keystr, rc_error *err);
int rc_keyfile_read(const char *path, char *out, size_t outlen, rc_error *err);

#endif
