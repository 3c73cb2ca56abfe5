/*
 * service.c - R = r·E for every device entry of one post. With use_table,
 * libdecaf builds a constant-time fixed-base table for E once (its
 * encodings are byte-identical to libsodium's ristretto255; a unit test
 * compares the two); without it, libsodium's variable-base multiplication.
 */
#include <pthread.h>
#include <stdlib.h>
#include <decaf/point_255.h>
#include "internal.h"

struct rc_recryptor {
    uint8_t E[RC_POINT_BYTES];
    decaf_255_precomputed_s *table; /* NULL when not used */
};

int rc_recryptor_new(rc_recryptor **out, const uint8_t E[RC_POINT_BYTES], int use_table,
                     rc_error *err)
{
    *out = NULL;
    if (!rc_point_is_valid_nonidentity(E))
        return rc_error_set(err, RC_E_CRYPTO,
                            "ephemeral key E is not a canonical non-identity ristretto255 point");
    rc_recryptor *rc = calloc(1, sizeof *rc);
    if (!rc)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    memcpy(rc->E, E, 32);
    if (use_table) {
        decaf_255_point_t P;
        if (decaf_255_point_decode(P, E, DECAF_FALSE) != DECAF_SUCCESS) {
            free(rc);
            return rc_error_set(err, RC_E_CRYPTO, "libdecaf refuses E");
        }
        if (posix_memalign((void **)&rc->table, decaf_255_alignof_precomputed_s < sizeof(void *)
                                                     ? sizeof(void *)
                                                     : decaf_255_alignof_precomputed_s,
                           decaf_255_sizeof_precomputed_s) != 0) {
            free(rc);
            return rc_error_set(err, RC_E_NOMEM, "out of memory for the table");
        }
        decaf_255_precompute(rc->table, P);
        decaf_255_point_destroy(P);
    }
    *out = rc;
    return 0;
}

int rc_recryptor_compute(rc_recryptor *rc, const uint8_t r[RC_SCALAR_BYTES],
                         uint8_t R[RC_POINT_BYTES], rc_error *err)
{
    if (!rc_scalar_is_canonical_nonzero(r))
        return rc_error_set(err, RC_E_CRYPTO, "service share r is not a canonical non-zero scalar");
    if (rc->table) {
        decaf_255_scalar_t s;
        decaf_255_point_t P;
        if (decaf_255_scalar_decode(s, r) != DECAF_SUCCESS)
            return rc_error_set(err, RC_E_CRYPTO, "libdecaf refuses r");
        decaf_255_precomputed_scalarmul(P, rc->table, s);
        decaf_255_point_encode(R, P);
        decaf_255_scalar_destroy(s);
        decaf_255_point_destroy(P);
    } else if (crypto_scalarmult_ristretto255(R, r, rc->E) != 0) {
        return rc_error_set(err, RC_E_CRYPTO, "r·E is the identity");
    }
    if (sodium_is_zero(R, 32))
        return rc_error_set(err, RC_E_CRYPTO, "r·E is the identity");
    return 0;
}

int rc_recryptor_stanza(rc_recryptor *rc, const uint8_t r[RC_SCALAR_BYTES], const uint8_t *W,
                        size_t W_len, rc_stanza *out, rc_error *err)
{
    if (W_len == 0 || W_len > RC_WRAP_MAX)
        return rc_error_set(err, RC_E_FORMAT, "W has a bad length");
    int e = rc_recryptor_compute(rc, r, out->R, err);
    if (e)
        return e;
    memcpy(out->W, W, W_len);
    out->W_len = W_len;
    return 0;
}

typedef struct {
    rc_recryptor *rc;
    const rc_device_entry *entries;
    uint8_t (*R)[RC_POINT_BYTES];
    size_t from, to;
    size_t bad;
    int status;
    rc_error err;
} slice_t;

static void *compute_slice(void *arg)
{
    slice_t *s = arg;
    for (size_t i = s->from; i < s->to; i++)
        if ((s->status = rc_recryptor_compute(s->rc, s->entries[i].r, s->R[i], &s->err)) != 0) {
            s->bad = i;
            break;
        }
    return NULL;
}

#define RC_RECRYPT_THREADS_MAX 64

int rc_recryptor_compute_all(rc_recryptor *rc, const rc_device_entry *entries, size_t n,
                             uint8_t (*R)[RC_POINT_BYTES], unsigned n_threads, size_t *bad,
                             rc_error *err)
{
    slice_t s[RC_RECRYPT_THREADS_MAX];
    pthread_t th[RC_RECRYPT_THREADS_MAX];
    int started[RC_RECRYPT_THREADS_MAX] = {0};
    if (!rc || (n && (!entries || !R)))
        return rc_error_set(err, RC_E_INVALID, "rc_recryptor_compute_all: missing argument");
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > RC_RECRYPT_THREADS_MAX)
        n_threads = RC_RECRYPT_THREADS_MAX;
    if (n < 256 * (size_t)n_threads) /* not worth a thread */
        n_threads = 1;
    size_t per = n_threads ? (n + n_threads - 1) / n_threads : n;
    for (unsigned t = 0; t < n_threads; t++) {
        memset(&s[t], 0, sizeof s[t]);
        s[t].rc = rc;
        s[t].entries = entries;
        s[t].R = R;
        s[t].from = t * per < n ? t * per : n;
        s[t].to = (t + 1) * per < n ? (t + 1) * per : n;
    }
    /* Slice 0 runs here; if a thread cannot start, this thread does its slice. */
    for (unsigned t = 1; t < n_threads; t++)
        started[t] = pthread_create(&th[t], NULL, compute_slice, &s[t]) == 0;
    compute_slice(&s[0]);
    for (unsigned t = 1; t < n_threads; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            compute_slice(&s[t]);
    }
    for (unsigned t = 0; t < n_threads; t++)
        if (s[t].status) {
            if (bad)
                *bad = s[t].bad;
            if (err)
                *err = s[t].err;
            return s[t].status;
        }
    return 0;
}

void rc_recryptor_free(rc_recryptor *rc)
{
    if (!rc)
        return;
    if (rc->table) {
        decaf_255_precomputed_destroy(rc->table);
        free(rc->table);
    }
    free(rc);
}
