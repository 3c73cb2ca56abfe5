/*
 * fuzz_common.h - what the libFuzzer targets share: the entry points'
 * prototypes, the fatal report, library start-up, and the fixed world
 * (device key, list secret, statement, the device's certificate) that
 * fuzz_mime and fuzz_stanza build alike, so that seeds made for one list
 * fit both.
 *
 * Define FZ_NAME (the target's name, for messages) before including it.
 */
#ifndef RC_FUZZ_COMMON_H
#define RC_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <recrypt/recrypt.h>

#ifndef FZ_NAME
#error "define FZ_NAME before including fuzz_common.h"
#endif

#define FZ_LIST_ADDR "fuzz-list@example.org"
#define FZ_MEMBER_ADDR "alice@example.org"
#define FZ_EPOCH 7
#define FZ_NOT_BEFORE 1700000000ULL
#define FZ_ENROLLED 1700000000ULL

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void fz_die(const char *what, const rc_error *err)
{
    fprintf(stderr, FZ_NAME ": %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    abort();
}

static inline void fz_init(void)
{
    rc_error err;
    if (rc_init(&err) != 0)
        fz_die("rc_init", &err);
}

/* A fixed canonical scalar derived from base. */
static inline void fz_fixed_scalar(uint8_t s[32], uint8_t base)
{
    uint8_t wide[64];
    for (size_t i = 0; i < sizeof wide; i++)
        wide[i] = (uint8_t)(base + 3 * i);
    crypto_core_ristretto255_scalar_reduce(s, wide);
}

/* The fixed list signing key pair (the world's list and fuzz_statement's
 * certificates use it). */
static inline void fz_list_sign_keypair(uint8_t pk[RC_SIGN_PK_BYTES], uint8_t sk[RC_SIGN_SK_BYTES])
{
    uint8_t seed[RC_SIGN_SEED_BYTES];
    for (size_t i = 0; i < sizeof seed; i++)
        seed[i] = (uint8_t)(0xa0 + i);
    crypto_sign_seed_keypair(pk, sk, seed);
}

/* Start the library and build the fixed keys: the device, the list
 * FZ_LIST_ADDR in epoch FZ_EPOCH, its statement and FZ_MEMBER_ADDR's
 * certificate for the device. */
static inline void fz_fixed_keys(rc_device_secret *dev, rc_list_secret *ls, rc_statement *st,
                                 rc_cert *cert)
{
    rc_error err;
    uint8_t seed[64];
    char ks[RC_KEYSTR_MAX];

    fz_init();
    for (size_t i = 0; i < sizeof seed; i++)
        seed[i] = (uint8_t)(i + 1);
    if (rc_keystr_encode(ks, sizeof ks, RC_KT_DEVICE_SECRET, seed, sizeof seed, &err) != 0 ||
        rc_device_secret_decode(dev, ks, &err) != 0)
        fz_die("device key", &err);
    if (rc_address_canonical(ls->address, FZ_LIST_ADDR, &err) != 0)
        fz_die("list address", &err);
    ls->epoch = FZ_EPOCH;
    fz_fixed_scalar(ls->a, 0x11);
    crypto_scalarmult_ristretto255_base(ls->A, ls->a);
    fz_list_sign_keypair(ls->sign_pk, ls->sign_sk);
    if (rc_statement_sign(st, ls, FZ_NOT_BEFORE, 0, &err) != 0 ||
        rc_cert_sign(cert, ls, FZ_MEMBER_ADDR, dev->pub.sign_pk, &err) != 0)
        fz_die("statement or certificate", &err);
}

#endif /* RC_FUZZ_COMMON_H */
