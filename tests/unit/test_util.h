/*
 * test_util.h - small helpers shared by the unit tests: the group order L,
 * 256-bit addition (to build L + 1, 2L, ...), the refusal assertion, and a
 * growing memory buffer with its sink.
 *
 * Include it after <cmocka.h> (and its prerequisites).
 */
#ifndef RC_TEST_UTIL_H
#define RC_TEST_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <recrypt/error.h>

/* Group order L = 2^252 + 27742317777372353535851937790883648493, LE. */
static const uint8_t L_BYTES[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                    0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                    0,    0,    0,    0,    0,    0,    0,    0,
                                    0,    0,    0,    0,    0,    0,    0,    0x10};

/* The call returns want, and err carries the same code and a message. */
#define ASSERT_REFUSED(call, want, errp)                                                       \
    do {                                                                                       \
        rc_error_clear(errp);                                                                  \
        assert_int_equal((call), (want));                                                      \
        assert_int_equal((errp)->code, (want));                                                \
        assert_true(strlen((errp)->msg) > 0);                                                  \
    } while (0)

/* out = a + b over 256-bit little-endian integers (no reduction). */
static inline void add256(uint8_t out[32], const uint8_t a[32], const uint8_t b[32])
{
    unsigned carry = 0;
    for (int i = 0; i < 32; i++) {
        carry += (unsigned)a[i] + b[i];
        out[i] = (uint8_t)carry;
        carry >>= 8;
    }
    assert_int_equal(carry, 0);
}

/* A memory buffer that sink_mem appends to; start it as {0}. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} mbuf;

static inline int sink_mem(void *ctx, const uint8_t *b, size_t n)
{
    mbuf *m = ctx;
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + n)
            cap *= 2;
        uint8_t *np = realloc(m->p, cap);
        if (!np)
            return -1;
        m->p = np;
        m->cap = cap;
    }
    memcpy(m->p + m->len, b, n);
    m->len += n;
    return 0;
}

static inline void mbuf_free(mbuf *m)
{
    free(m->p);
    memset(m, 0, sizeof *m);
}

#endif /* RC_TEST_UTIL_H */
