/*
 * recrypt/stream.h - the cryptographic core of one post: the envelope (the
 * clear header a sender publishes: list id, epoch, E, key commitment and
 * proof of knowledge of t), stanzas (R, W) added by the service, the
 * streaming sealer (sender) and the streaming opener (device).
 *
 * Streaming: update() may be called with any amount of data; memory stays
 * constant. The sealer hands its output through the sink as it goes. The
 * opener hands NOTHING to its sink before the whole stream has
 * authenticated: update() only decrypts and stages (since 0.3.0; before,
 * it released every chunk but the last two as they authenticated), and
 * final() passes the whole plaintext to the sink only once the stream
 * ended with its FINAL chunk, the padding and trailer are well formed and
 * the signature (if any) verifies. The stage is an anonymous memory file
 * (memfd_create) on Linux, else a heap buffer; it is never a named file and
 * is wiped or truncated by rc_opener_free. A failed final() or update()
 * leaves the sink untouched.
 */
#ifndef RECRYPT_STREAM_H
#define RECRYPT_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <recrypt/error.h>
#include <recrypt/keys.h>
#include <recrypt/list.h>

#define RC_SUITE_1 1
/* Plaintext bytes per secretstream chunk (all but the FINAL one). */
#define RC_CHUNK_BYTES 65536
/* The padded plaintext stream is a multiple of this. */
#define RC_PAD_BLOCK 512
#define RC_STREAM_HEADER_BYTES 24
#define RC_CHUNK_OVERHEAD 17
#define RC_ENVELOPE_BYTES (1 + 1 + 32 + 8 + 32 + 32 + 32 + 32)

typedef struct {
    uint8_t version;
    uint8_t suite;
    uint8_t list_id[RC_ID_BYTES];
    uint64_t epoch;
    uint8_t E[RC_POINT_BYTES];
    uint8_t KC[32]; /* key commitment */
    uint8_t U[RC_POINT_BYTES];  /* proof commitment */
    uint8_t z[RC_SCALAR_BYTES]; /* proof response */
} rc_envelope;

int rc_envelope_to_bytes(uint8_t out[RC_ENVELOPE_BYTES], const rc_envelope *env);

/* Check the proof of knowledge of t: z·G == U + c·E with
 * c = H(list id, epoch, A, E, U, date, Message-ID). Also checks E and U
 * are canonical non-identity points and z canonical and non-zero. */
int rc_proof_verify(const rc_envelope *env, const uint8_t A[RC_POINT_BYTES], uint64_t date,
                    const char *message_id, rc_error *err);

typedef struct {
    uint8_t R[RC_POINT_BYTES];
    uint8_t W[RC_WRAP_MAX];
    size_t W_len;
} rc_stanza;

#define RC_STANZA_MAX (32 + 2 + RC_WRAP_MAX)
int rc_stanza_to_bytes(uint8_t *out, size_t outlen, size_t *len, const rc_stanza *s,
                       rc_error *err);
int rc_stanza_from_bytes(rc_stanza *s, const uint8_t *in, size_t len, rc_error *err);

/* Output callback: return 0 on success, non-zero to abort the stream. */
typedef int (*rc_sink_fn)(void *ctx, const uint8_t *buf, size_t len);

/* A ready-made sink: ctx points to an int file descriptor; writes all of
 * buf, retrying on EINTR and short writes. */
int rc_fd_sink(void *ctx, const uint8_t *buf, size_t len);

typedef struct rc_sealer rc_sealer;

/* Start sealing to statement st (already trusted by the caller).
 * date and message_id are the post's Date (unix seconds) and Message-ID
 * (without angle brackets); the proof binds them. signer and cert are both
 * NULL (unsigned post) or both set (cert for this list and epoch).
 * env_out receives the envelope to publish. */
int rc_sealer_new(rc_sealer **out, rc_envelope *env_out, const rc_statement *st, uint64_t date,
                  const char *message_id, const rc_device_secret *signer, const rc_cert *cert,
                  rc_error *err);
int rc_sealer_update(rc_sealer *s, const uint8_t *in, size_t len, rc_sink_fn sink, void *ctx,
                     rc_error *err);
int rc_sealer_final(rc_sealer *s, rc_sink_fn sink, void *ctx, rc_error *err);
void rc_sealer_free(rc_sealer *s);

typedef struct rc_opener rc_opener;

typedef struct {
    int is_signed;  /* 1 when a valid signature and certificate were present */
    rc_cert cert;   /* the signer's certificate when is_signed */
    rc_share share; /* what this device found in its W (holds k: wipe) */
    int path;       /* rc_mail_open_ex: RC_PATH_* (0 from the stream opener alone) */
} rc_open_result;
/* How a copy reached this device (FORMAT.md §9.5). */
enum { RC_PATH_LIST = 1, RC_PATH_UNVERIFIED = 2, RC_PATH_DIRECT = 3 };

/* Find this device's stanza and derive the content key. Checks the
 * envelope against st (list id, epoch), the proof, the W contents against
 * st, S != identity, and the key commitment. RC_E_NOT_FOR_US when no
 * stanza is for this device. */
int rc_opener_new(rc_opener **out, const rc_envelope *env, const rc_statement *st,
                  const rc_device_secret *dev, const rc_stanza *stanzas, size_t n_stanzas,
                  uint64_t date, const char *message_id, rc_error *err);
/* Decrypts and stages; the sink is not called (it is kept in the
 * signature for compatibility and may be NULL). */
int rc_opener_update(rc_opener *o, const uint8_t *in, size_t len, rc_sink_fn sink, void *ctx,
                     rc_error *err);
/* Checks the end of the stream, then writes the whole plaintext to sink
 * (in one or more pieces), then fills res. */
int rc_opener_final(rc_opener *o, rc_sink_fn sink, void *ctx, rc_open_result *res,
                    rc_error *err);
void rc_opener_free(rc_opener *o);

#endif
