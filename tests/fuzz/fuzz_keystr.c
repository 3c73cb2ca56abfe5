/*
 * fuzz_keystr.c - libFuzzer target for the key string codec: the generic
 * rc_keystr_decode for every type word and each typed decoder.
 *
 * Input: one mode byte, then
 *   mode 0 (raw):       a string, decoded as is (NUL-terminated copy);
 *   mode 1 (checksum):  type index, layout byte, payload. The harness
 *                       encodes the payload with a valid checksum, sprinkles
 *                       white space into it as the layout byte says, then
 *                       decodes: this reaches the payload parsers (list
 *                       secret) that the 4-byte checksum hides from raw input.
 *
 * Oracles besides the sanitizers: a string that decodes re-encodes to itself
 * (white space removed); an encoded payload always decodes to the same bytes;
 * a typed key that decodes re-encodes to the same string.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <recrypt/recrypt.h>

#define FZ_NAME "fuzz_keystr"
#include "fuzz_common.h"

#define PAYLOAD_CAP 4096 /* above the codec's payload limit (2496) */

static const char *const types[] = {
    RC_KT_DEVICE, RC_KT_DEVICE_SECRET, RC_KT_SERVICE, RC_KT_SERVICE_SECRET, RC_KT_OWNER,
    RC_KT_OWNER_SECRET, RC_KT_LIST_SECRET, RC_KT_LISTKEY,
};
#define N_TYPES (sizeof types / sizeof *types)

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_keystr: invariant violated: %s (%s)\n", what, detail);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

/* Copy of s without white space (as rc_keystr_decode sees it). */
static char *strip_space(const char *s)
{
    char *out = malloc(strlen(s) + 1), *d = out;
    if (!out)
        abort();
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            *d++ = *s;
    *d = '\0';
    return out;
}

/* A successfully decoded typed key must re-encode to the canonical string. */
static void check_same(int enc_rc, const char *enc, const char *canon, const char *type)
{
    if (enc_rc != 0)
        fail("a decoded key does not encode again", type);
    if (strcmp(enc, canon) != 0)
        fail("a decoded key re-encodes to another string", type);
}

/* Run every typed decoder on s; canon is s without white space. */
static void typed_decoders(const char *s, const char *canon)
{
    char enc[RC_KEYSTR_MAX];
    rc_error err;
    int rc;

    rc_device_public dp;
    if (rc_device_public_decode(&dp, s, &err) == 0) {
        rc = rc_device_public_encode(enc, sizeof enc, &dp, &err);
        check_same(rc, enc, canon, RC_KT_DEVICE);
    }
    rc_device_secret ds_, *ds = &ds_; /* on the stack: rc_secret_alloc is slow */
    if (rc_device_secret_decode(ds, s, &err) == 0) {
        rc = rc_device_secret_encode(enc, sizeof enc, ds, &err);
        check_same(rc, enc, canon, RC_KT_DEVICE_SECRET);
    }
    sodium_memzero(ds, sizeof *ds);

    rc_service_public sp;
    if (rc_service_public_decode(&sp, s, &err) == 0) {
        rc = rc_service_public_encode(enc, sizeof enc, &sp, &err);
        check_same(rc, enc, canon, RC_KT_SERVICE);
    }
    rc_service_secret ss_, *ss = &ss_; /* on the stack: rc_secret_alloc is slow */
    if (rc_service_secret_decode(ss, s, &err) == 0) {
        rc = rc_service_secret_encode(enc, sizeof enc, ss, &err);
        check_same(rc, enc, canon, RC_KT_SERVICE_SECRET);
    }
    sodium_memzero(ss, sizeof *ss);

    rc_owner_public op;
    if (rc_owner_public_decode(&op, s, &err) == 0) {
        rc = rc_owner_public_encode(enc, sizeof enc, &op, &err);
        check_same(rc, enc, canon, RC_KT_OWNER);
    }
    rc_owner_secret os_, *os = &os_; /* on the stack: rc_secret_alloc is slow */
    if (rc_owner_secret_decode(os, s, &err) == 0) {
        rc = rc_owner_secret_encode(enc, sizeof enc, os, &err);
        check_same(rc, enc, canon, RC_KT_OWNER_SECRET);
    }
    sodium_memzero(os, sizeof *os);

    rc_list_secret ls_, *ls = &ls_; /* on the stack: rc_secret_alloc is slow */
    if (rc_list_secret_decode(ls, s, &err) == 0) {
        if (strlen(ls->address) > RC_ADDR_MAX)
            fail("decoded list address too long", RC_KT_LIST_SECRET);
        rc = rc_list_secret_encode(enc, sizeof enc, ls, &err);
        check_same(rc, enc, canon, RC_KT_LIST_SECRET);
    }
    sodium_memzero(ls, sizeof *ls);
}

/* Every type word through the generic decoder; maxlen varies with sel. */
static void generic_decoder(const char *s, const char *canon, uint8_t sel)
{
    static const size_t maxlens[] = {PAYLOAD_CAP, 0, 4, 31, 32, 33, 64, 600};
    uint8_t *payload = malloc(PAYLOAD_CAP);
    char enc[RC_KEYSTR_MAX];
    rc_error err;
    if (!payload)
        abort();
    size_t maxlen = maxlens[sel % (sizeof maxlens / sizeof *maxlens)];
    for (size_t i = 0; i < N_TYPES; i++) {
        size_t len = (size_t)-1;
        if (rc_keystr_decode(s, types[i], payload, maxlen, &len, &err) != 0) {
            if (err.code >= 0 || !memchr(err.msg, '\0', sizeof err.msg))
                fail("error report malformed", types[i]);
            continue;
        }
        if (len > maxlen)
            fail("payload longer than maxlen", types[i]);
        if (rc_keystr_encode(enc, sizeof enc, types[i], payload, len, &err) != 0)
            fail("a decoded payload does not encode again", types[i]);
        if (strcmp(enc, canon) != 0)
            fail("a decoded string is not canonical", types[i]);
    }
    free(payload);
}

static void mode_raw(const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    uint8_t sel = data[0];
    char *s = malloc(size);
    if (!s)
        abort();
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    char *canon = strip_space(s);
    generic_decoder(s, canon, sel);
    typed_decoders(s, canon);
    free(canon);
    free(s);
}

static void mode_checksum(const uint8_t *data, size_t size)
{
    static const char spaces[] = " \t\n\r\v\f";
    char enc[RC_KEYSTR_MAX];
    rc_error err;
    if (size < 2)
        return;
    const char *type = types[data[0] % N_TYPES];
    uint8_t layout = data[1];
    const uint8_t *payload = data + 2;
    size_t len = size - 2;
    if (rc_keystr_encode(enc, sizeof enc, type, payload, len, &err) != 0)
        return; /* payload too long */

    /* The encoded string must decode to the same payload. */
    uint8_t *back = malloc(PAYLOAD_CAP);
    size_t blen = 0;
    if (!back)
        abort();
    if (rc_keystr_decode(enc, type, back, PAYLOAD_CAP, &blen, &err) != 0)
        fail("an encoded payload does not decode", err.msg);
    if (blen != len || memcmp(back, payload, len) != 0)
        fail("an encoded payload decodes to other bytes", type);
    free(back);

    /* White space anywhere (a folded header field) must not matter. */
    size_t n = strlen(enc);
    char *s = malloc(2 * n + 3);
    if (!s)
        abort();
    size_t o = 0, step = (layout >> 3) + 1;
    if (layout & 1)
        s[o++] = ' ';
    for (size_t i = 0; i < n; i++) {
        s[o++] = enc[i];
        if ((layout & 2) && (i + 1) % step == 0)
            s[o++] = spaces[(i / step) % (sizeof spaces - 1)];
    }
    if (layout & 4)
        s[o++] = '\n';
    s[o] = '\0';
    generic_decoder(s, enc, layout >> 5);
    typed_decoders(s, enc);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] & 1) {
    case 0:
        mode_raw(data + 1, size - 1);
        break;
    default:
        mode_checksum(data + 1, size - 1);
        break;
    }
    return 0;
}
