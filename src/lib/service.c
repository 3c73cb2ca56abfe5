/*
 * service.c - R = r·E for every device entry of one post. With use_table,
 * libdecaf builds a constant-time fixed-base table for E once (its
 * encodings are byte-identical to libsodium's ristretto255; a unit test
 * compares the two); without it, libsodium's variable-base multiplication.
 */
#include <stdlib.h>
#include <decaf/point_255.h>
#include "internal.h"
#include "parallel.h"

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
    struct {
        int status;
        size_t bad;
        rc_error err;
    } slice[RC_PARALLEL_MAX];
} compute_ctx;

static void compute_slice(void *arg, unsigned slice, size_t from, size_t to)
{
    compute_ctx *c = arg;
    for (size_t i = from; i < to; i++)
        if ((c->slice[slice].status =
                 rc_recryptor_compute(c->rc, c->entries[i].r, c->R[i], &c->slice[slice].err)) !=
            0) {
            c->slice[slice].bad = i;
            break;
        }
}

int rc_recryptor_compute_all(rc_recryptor *rc, const rc_device_entry *entries, size_t n,
                             uint8_t (*R)[RC_POINT_BYTES], unsigned n_threads, size_t *bad,
                             rc_error *err)
{
    if (!rc || (n && (!entries || !R)))
        return rc_error_set(err, RC_E_INVALID, "rc_recryptor_compute_all: missing argument");
    compute_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    c->rc = rc;
    c->entries = entries;
    c->R = R;
    unsigned slices = rc_parallel_slices(n, n_threads, compute_slice, c);
    int status = 0;
    for (unsigned t = 0; t < slices && !status; t++)
        if ((status = c->slice[t].status) != 0) {
            if (bad)
                *bad = c->slice[t].bad;
            if (err)
                *err = c->slice[t].err;
        }
    free(c);
    return status;
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
