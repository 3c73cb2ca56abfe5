/*
 * parallel.h - one way to spread a loop over threads, shared by librecrypt
 * (R = r·E for every device of a post) and the store (unsealing every
 * device's service share): [0, n) is cut into contiguous slices, one per
 * thread; the caller's thread runs the first slice, and a slice whose
 * thread cannot be started runs in the caller's thread too, so the work is
 * always done. Each slice has its own index, so that results need no lock.
 */
#ifndef RECRYPT_COMMON_PARALLEL_H
#define RECRYPT_COMMON_PARALLEL_H

#include <stddef.h>

#define RC_PARALLEL_MAX 64      /* threads at most */
#define RC_PARALLEL_MIN_ITEMS 256 /* fewer items per thread: fewer threads */

/* Run fn(ctx, slice, from, to) for the slices of [0, n) on up to `threads`
 * threads (0 means 1); returns the number of slices used (1..RC_PARALLEL_MAX),
 * slice numbers are 0..that - 1. */
unsigned rc_parallel_slices(size_t n, unsigned threads,
                            void (*fn)(void *ctx, unsigned slice, size_t from, size_t to),
                            void *ctx);

#endif
