/*
 * fuzz_stanza.c - libFuzzer target for what a device parses of a post:
 * stanzas, W (the member share sealed to the device) and the encrypted
 * stream (framing, padding, trailer, sender certificate and signature).
 *
 * A fixed world is built once: a device, a list, its statement, the device's
 * entry, one post's envelope and the device's stanza, all deterministic
 * except W (crypto_box_seal is randomised). The content key is derived from
 * the list key (S = a·E), so the harness can encrypt arbitrary plaintext
 * streams that authenticate and reach the parsers behind the AEAD.
 *
 * Input: one mode byte, then
 *   mode 0: stanza bytes for rc_stanza_from_bytes; a stanza that parses is
 *           re-encoded (must give the same bytes), its W opened with the
 *           device key, and rc_opener_new tried with it;
 *   mode 1: W for rc_wrap_open with the device key;
 *   mode 2: W plaintext, sealed to the device by the harness, for
 *           rc_wrap_open (reaches the W parser past crypto_box_seal_open);
 *   mode 3: piece byte, then a raw ciphertext stream for a fresh opener
 *           (rc_opener_update in pieces, rc_opener_final);
 *   mode 4: flags, split and piece bytes, then a plaintext stream that the
 *           harness pads (optionally), cuts into chunks, encrypts with the
 *           content key and feeds to a fresh opener.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <recrypt/recrypt.h>
/* rc_entry_create_det, rc_sealer_new_det, rc_derive_content_key, rc_label:
 * the deterministic world needs them. */
#include "internal.h"

#define FZ_NAME "fuzz_stanza"
#include "fuzz_common.h"

#define FZ_DATE 1700000600ULL
#define FZ_MSGID "fuzz.0001@example.org"

#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES

static struct {
    rc_device_secret dev;
    rc_list_secret ls;
    rc_statement st;
    rc_cert cert; /* the device's membership certificate (for signed seeds) */
    rc_device_entry entry;
    rc_envelope env;
    rc_stanza stanza;
    uint8_t K[32];
    uint8_t ad[RC_LABEL_BYTES + RC_ENVELOPE_BYTES];
    uint8_t hdr[RC_STREAM_HEADER_BYTES];
} fz;

/* Build the fixed world. Also used by the seed generator. */
static void fz_setup(void)
{
    rc_error err;
    uint8_t k[32], t[32], u[32], S[32], KC[32];
    rc_sealer *s = NULL;
    rc_recryptor *rr = NULL;
    rc_opener *o = NULL;

    fz_fixed_keys(&fz.dev, &fz.ls, &fz.st, &fz.cert);

    fz_fixed_scalar(k, 0x22);
    fz_fixed_scalar(t, 0x33);
    fz_fixed_scalar(u, 0x44);
    for (size_t i = 0; i < sizeof fz.hdr; i++)
        fz.hdr[i] = (uint8_t)(0x5a ^ i);
    if (rc_entry_create_det(&fz.entry, &fz.ls, &fz.dev.pub, FZ_MEMBER_ADDR, FZ_ENROLLED, k,
                            &err) != 0)
        fz_die("entry", &err);
    if (rc_sealer_new_det(&s, &fz.env, &fz.st, FZ_DATE, FZ_MSGID, NULL, NULL, t, u, fz.hdr,
                          &err) != 0)
        fz_die("sealer", &err);
    rc_sealer_free(s);
    if (rc_recryptor_new(&rr, fz.env.E, 0, &err) != 0 ||
        rc_recryptor_stanza(rr, fz.entry.r, fz.entry.W, fz.entry.W_len, &fz.stanza, &err) != 0)
        fz_die("recryption", &err);
    rc_recryptor_free(rr);

    /* The device derives S = r·E + k·E = a·E. */
    if (crypto_scalarmult_ristretto255(S, fz.ls.a, fz.env.E) != 0)
        fz_die("S", NULL);
    rc_derive_content_key(fz.K, KC, fz.env.list_id, fz.env.epoch, fz.ls.A, fz.env.E, S);
    if (sodium_memcmp(KC, fz.env.KC, 32) != 0)
        fz_die("content key derivation differs from the library's", NULL);
    rc_label(fz.ad, RC_L_HEADER);
    rc_envelope_to_bytes(fz.ad + RC_LABEL_BYTES, &fz.env);

    if (rc_opener_new(&o, &fz.env, &fz.st, &fz.dev, &fz.stanza, 1, FZ_DATE, FZ_MSGID, &err) != 0)
        fz_die("opener", &err);
    rc_opener_free(o);
}

/* Encrypt plaintext chunks as the sealer would, into a malloc'd stream. */
typedef struct {
    crypto_secretstream_xchacha20poly1305_state ss;
    uint8_t *p;
    size_t len, cap;
    int first;
} fz_enc;

static void fz_enc_init(fz_enc *e, size_t cap)
{
    e->cap = RC_STREAM_HEADER_BYTES + cap;
    e->p = malloc(e->cap);
    if (!e->p)
        abort();
    memcpy(e->p, fz.hdr, RC_STREAM_HEADER_BYTES);
    e->len = RC_STREAM_HEADER_BYTES;
    crypto_secretstream_xchacha20poly1305_init_pull(&e->ss, fz.hdr, fz.K);
    e->first = 1;
}

static void fz_enc_chunk(fz_enc *e, const uint8_t *pt, size_t n, uint8_t tag)
{
    unsigned long long clen = 0;
    if (e->cap - e->len < n + SS_ABYTES)
        abort();
    crypto_secretstream_xchacha20poly1305_push(&e->ss, e->p + e->len, &clen, pt, n,
                                               e->first ? fz.ad : NULL,
                                               e->first ? sizeof fz.ad : 0, tag);
    e->first = 0;
    e->len += (size_t)clen;
}

#ifndef FZ_NO_FUZZER

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int fail;
} fz_sink_t;

static int fz_sink(void *ctx, const uint8_t *p, size_t n)
{
    fz_sink_t *s = ctx;
    if (s->fail)
        return -1;
    if (s->buf && s->cap - s->len >= n)
        memcpy(s->buf + s->len, p, n);
    s->len += n;
    return 0;
}

static size_t piece_size(uint8_t sel)
{
    static const size_t sizes[] = {0, 1, 7, 16, 17, 23, 24, 25, 41, 512, 4096, 65553, 65554};
    return sizes[sel % (sizeof sizes / sizeof *sizes)];
}

/* Feed a whole stream to a fresh opener. Returns the first failure. */
static int feed(const uint8_t *in, size_t len, size_t piece, fz_sink_t *sink, int extra_calls)
{
    rc_opener *o = NULL;
    rc_open_result res;
    rc_error err;
    int rc = rc_opener_new(&o, &fz.env, &fz.st, &fz.dev, &fz.stanza, 1, FZ_DATE, FZ_MSGID, &err);
    if (rc != 0)
        fz_die("opener", &err);
    if (piece == 0)
        piece = len ? len : 1;
    for (size_t off = 0; rc == 0 && off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        rc = rc_opener_update(o, in + off, n, fz_sink, sink, &err);
    }
    if (rc == 0)
        rc = rc_opener_final(o, fz_sink, sink, &res, &err);
    if (rc == 0) {
        if (res.is_signed && strlen(res.cert.address) > RC_ADDR_MAX)
            fz_die("certificate address too long", NULL);
        sodium_memzero(&res, sizeof res);
        if (extra_calls) {
            uint8_t b = 0;
            if (rc_opener_update(o, &b, 1, fz_sink, sink, &err) == 0 ||
                rc_opener_final(o, fz_sink, sink, &res, &err) == 0)
                fz_die("an opener accepts data or final after the end of the stream", NULL);
            sodium_memzero(&res, sizeof res);
        }
    }
    rc_opener_free(o);
    return rc;
}

static void mode_stanza(const uint8_t *data, size_t size)
{
    rc_stanza s;
    rc_share share;
    rc_error err;
    rc_opener *o = NULL;
    uint8_t b[RC_STANZA_MAX];
    size_t len = 0;
    if (rc_stanza_from_bytes(&s, data, size, &err) != 0)
        return;
    if (s.W_len > RC_WRAP_MAX)
        fz_die("stanza W too long", NULL);
    if (rc_stanza_to_bytes(b, sizeof b, &len, &s, &err) != 0 || len != size ||
        memcmp(b, data, size) != 0)
        fz_die("a parsed stanza encodes to other bytes", &err);
    if (rc_wrap_open(&share, &fz.dev, s.W, s.W_len, &err) == 0)
        sodium_memzero(&share, sizeof share);
    if (rc_opener_new(&o, &fz.env, &fz.st, &fz.dev, &s, 1, FZ_DATE, FZ_MSGID, &err) == 0)
        rc_opener_free(o);
}

static void mode_wrap(const uint8_t *data, size_t size)
{
    rc_share share;
    rc_error err;
    if (rc_wrap_open(&share, &fz.dev, data, size, &err) == 0)
        sodium_memzero(&share, sizeof share);
}

static void mode_wrap_plain(const uint8_t *data, size_t size)
{
    rc_share share;
    rc_error err;
    uint8_t *W = malloc(size + crypto_box_SEALBYTES);
    if (!W)
        abort();
    crypto_box_seal(W, data, size, fz.dev.pub.wrap_pk);
    if (rc_wrap_open(&share, &fz.dev, W, size + crypto_box_SEALBYTES, &err) == 0) {
        if (strlen(share.cert.address) > RC_ADDR_MAX)
            fz_die("certificate address too long", NULL);
        sodium_memzero(&share, sizeof share);
    }
    free(W);
}

static void mode_stream_raw(const uint8_t *data, size_t size)
{
    fz_sink_t sink = {NULL, 0, 0, 0};
    if (size < 1)
        return;
    (void)feed(data + 1, size - 1, piece_size(data[0]), &sink, 0);
}

/* flags: bit0 pad to RC_PAD_BLOCK; bit1 a full first chunk (filler then the
 * first `split` bytes of plaintext); bits2-3 tag of the last chunk (FINAL,
 * MESSAGE, PUSH, REKEY); bit4 the first chunk tagged FINAL; bit5 the sink
 * fails; bit6 extra calls after the end; bit7 unused. */
static void mode_stream_plain(const uint8_t *data, size_t size)
{
    static const uint8_t tags[] = {crypto_secretstream_xchacha20poly1305_TAG_FINAL,
                                   crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
                                   crypto_secretstream_xchacha20poly1305_TAG_PUSH,
                                   crypto_secretstream_xchacha20poly1305_TAG_REKEY};
    if (size < 3)
        return;
    uint8_t flags = data[0], split = data[1], piece = data[2];
    const uint8_t *pt = data + 3;
    size_t ptlen = size - 3;
    int two = flags & 2;
    size_t head = two ? (size_t)split * 16 : 0;
    if (head > ptlen)
        head = ptlen;
    size_t filler = two ? RC_CHUNK_BYTES - head : 0;

    /* Z = filler ‖ plaintext, padded when asked. */
    size_t zcap = filler + ptlen + RC_PAD_BLOCK, zlen = filler + ptlen;
    uint8_t *Z = malloc(zcap);
    if (!Z)
        abort();
    for (size_t i = 0; i < filler; i++)
        Z[i] = (uint8_t)('a' + i % 26);
    memcpy(Z + filler, pt, ptlen);
    if ((flags & 1) && sodium_pad(&zlen, Z, filler + ptlen, RC_PAD_BLOCK, zcap) != 0)
        abort();

    fz_enc e;
    fz_enc_init(&e, zlen + 2 * SS_ABYTES);
    size_t off = 0;
    if (two && zlen >= RC_CHUNK_BYTES) {
        fz_enc_chunk(&e, Z, RC_CHUNK_BYTES,
                     (flags & 16) ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                                  : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
        off = RC_CHUNK_BYTES;
    }
    uint8_t last_tag = tags[(flags >> 2) & 3];
    fz_enc_chunk(&e, Z + off, zlen - off, last_tag);

    fz_sink_t sink = {malloc(zlen + 1), 0, zlen + 1, (flags & 32) != 0};
    if (!sink.buf)
        abort();
    int rc = feed(e.p, e.len, piece_size(piece), &sink, (flags & 64) != 0);

    /* A well-formed unsigned stream must open to exactly its inner message.
     * (The opener only accepts a full-size first chunk before the last.) */
    size_t unpadded = filler + ptlen;
    int first_ok = !(two && zlen >= RC_CHUNK_BYTES) || !(flags & 16);
    int final_fits = zlen - off <= RC_CHUNK_BYTES;
    if ((flags & 1) && !(flags & 32) && last_tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL &&
        first_ok && final_fits && unpadded >= 3 && Z[unpadded - 3] == 0 && Z[unpadded - 2] == 0 &&
        Z[unpadded - 1] == 1) {
        if (rc != 0)
            fz_die("a well-formed unsigned stream does not open", NULL);
        if (sink.len != unpadded - 3 || memcmp(sink.buf, Z, unpadded - 3) != 0)
            fz_die("a well-formed unsigned stream opens to other bytes", NULL);
    }
    free(sink.buf);
    free(e.p);
    free(Z);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 5) {
    case 0:
        mode_stanza(data + 1, size - 1);
        break;
    case 1:
        mode_wrap(data + 1, size - 1);
        break;
    case 2:
        mode_wrap_plain(data + 1, size - 1);
        break;
    case 3:
        mode_stream_raw(data + 1, size - 1);
        break;
    default:
        mode_stream_plain(data + 1, size - 1);
        break;
    }
    return 0;
}

#endif /* FZ_NO_FUZZER */
