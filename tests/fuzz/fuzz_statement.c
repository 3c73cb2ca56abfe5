/*
 * fuzz_statement.c - libFuzzer target for the list key statement (key string
 * form and binary form) and membership certificates.
 *
 * Input: one mode byte, then
 *   mode 0: a string for rc_statement_decode (NUL-terminated copy);
 *   mode 1: bytes for rc_statement_from_bytes, then rc_statement_verify and
 *           rc_statement_accept;
 *   mode 2: bytes for rc_cert_from_bytes, then rc_cert_verify against a fixed
 *           list signing key;
 *   mode 3: bytes wrapped by the harness in a "listkey" key string with a
 *           valid checksum, then rc_statement_decode (the checksum would hide
 *           the binary parser from mode 0).
 *
 * Oracles besides the sanitizers: what parses encodes back to the same
 * bytes; a statement that decodes from a string verifies.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <recrypt/recrypt.h>

#define FZ_NAME "fuzz_statement"
#include "fuzz_common.h"

/* The list signing key certificates are checked against: fixed, so that
 * seed certificates signed with it verify in every run. */
static uint8_t list_sign_pk[RC_SIGN_PK_BYTES];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_statement: invariant violated: %s\n", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    uint8_t sk[RC_SIGN_SK_BYTES];
    fz_init();
    fz_list_sign_keypair(list_sign_pk, sk);
    sodium_memzero(sk, sizeof sk);
    return 0;
}

static void statement_checks(const rc_statement *st)
{
    uint8_t b[RC_STATEMENT_MAX];
    size_t len = 0;
    rc_error err;
    rc_pin pin;
    if (strlen(st->address) > RC_ADDR_MAX)
        fail("statement address too long");
    (void)rc_statement_verify(st, &err);
    memcpy(pin.signer_pk, st->signer_pk, 32);
    pin.highest_epoch = st->epoch ^ 1;
    (void)rc_statement_accept(st, NULL, NULL, 0, st->not_before, &err);
    (void)rc_statement_accept(st, &pin, st->signer_pk, 0, st->not_after, &err);
    (void)rc_statement_accept(st, &pin, list_sign_pk, 1, UINT64_MAX, &err);
    if (rc_statement_to_bytes(b, sizeof b, &len, st, &err) != 0)
        fail("a parsed statement does not encode");
}

static void mode_string(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), *canon = malloc(size + 1), enc[RC_KEYSTR_MAX];
    rc_statement st;
    rc_error err;
    if (!s || !canon)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    if (rc_statement_decode(&st, s, &err) == 0) {
        statement_checks(&st);
        if (rc_statement_verify(&st, &err) != 0)
            fail("a decoded statement does not verify");
        size_t o = 0;
        for (const char *p = s; *p; p++)
            if (!isspace((unsigned char)*p))
                canon[o++] = *p;
        canon[o] = '\0';
        if (rc_statement_encode(enc, sizeof enc, &st, &err) != 0 || strcmp(enc, canon) != 0)
            fail("a decoded statement re-encodes to another string");
    }
    free(canon);
    free(s);
}

static void mode_binary(const uint8_t *data, size_t size)
{
    rc_statement st;
    rc_error err;
    uint8_t b[RC_STATEMENT_MAX];
    size_t len = 0;
    if (rc_statement_from_bytes(&st, data, size, &err) != 0)
        return;
    statement_checks(&st);
    if (rc_statement_to_bytes(b, sizeof b, &len, &st, &err) != 0 || len != size ||
        memcmp(b, data, size) != 0)
        fail("a parsed statement encodes to other bytes");
}

static void mode_cert(const uint8_t *data, size_t size)
{
    rc_cert c;
    rc_error err;
    uint8_t b[RC_CERT_MAX];
    size_t len = 0;
    if (rc_cert_from_bytes(&c, data, size, &err) != 0)
        return;
    if (strlen(c.address) > RC_ADDR_MAX)
        fail("certificate address too long");
    (void)rc_cert_verify(&c, list_sign_pk, &err);
    (void)rc_cert_verify(&c, c.device_sign_pk, &err);
    if (rc_cert_to_bytes(b, sizeof b, &len, &c, &err) != 0 || len != size ||
        memcmp(b, data, size) != 0)
        fail("a parsed certificate encodes to other bytes");
}

static void mode_wrapped(const uint8_t *data, size_t size)
{
    char enc[RC_KEYSTR_MAX];
    rc_statement st;
    rc_error err;
    if (rc_keystr_encode(enc, sizeof enc, RC_KT_LISTKEY, data, size, &err) != 0)
        return;
    if (rc_statement_decode(&st, enc, &err) == 0) {
        statement_checks(&st);
        mode_binary(data, size); /* the same bytes must parse on their own */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] & 3) {
    case 0:
        mode_string(data + 1, size - 1);
        break;
    case 1:
        mode_binary(data + 1, size - 1);
        break;
    case 2:
        mode_cert(data + 1, size - 1);
        break;
    default:
        mode_wrapped(data + 1, size - 1);
        break;
    }
    return 0;
}
