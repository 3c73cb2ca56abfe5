/*
 * recrypt/service.h - the recryption service's arithmetic: for one post's
 * ephemeral key E and each device entry (r, W), R = r·E and the stanza
 * (R, W). One rc_recryptor per post; it validates E once and, when asked,
 * builds a fixed-base table for E (libdecaf) that serves every device.
 */
#ifndef RECRYPT_SERVICE_H
#define RECRYPT_SERVICE_H

#include <stdint.h>
#include <recrypt/error.h>
#include <recrypt/list.h>
#include <recrypt/stream.h>

typedef struct rc_recryptor rc_recryptor;

/* E must be a canonical, non-identity ristretto255 point (RC_E_CRYPTO).
 * use_table: 1 builds the precomputed table (faster from ~2 devices on). */
int rc_recryptor_new(rc_recryptor **out, const uint8_t E[RC_POINT_BYTES], int use_table,
                     rc_error *err);
/* R = r·E. r must be canonical and non-zero; R must not be the identity. */
int rc_recryptor_compute(rc_recryptor *rc, const uint8_t r[RC_SCALAR_BYTES],
                         uint8_t R[RC_POINT_BYTES], rc_error *err);
/* Fill a stanza: R = r·E and a copy of W. */
int rc_recryptor_stanza(rc_recryptor *rc, const uint8_t r[RC_SCALAR_BYTES], const uint8_t *W,
                        size_t W_len, rc_stanza *out, rc_error *err);
/* R[i] = entries[i].r·E for every i < n, on n_threads threads (0 or 1: in
 * the caller's thread; more: the table is read-only and shared, each
 * thread takes a contiguous slice). The first failing entry's error is
 * returned (its index in *bad when bad is not NULL). */
int rc_recryptor_compute_all(rc_recryptor *rc, const rc_device_entry *entries, size_t n,
                             uint8_t (*R)[RC_POINT_BYTES], unsigned n_threads, size_t *bad,
                             rc_error *err);
void rc_recryptor_free(rc_recryptor *rc);

#endif
