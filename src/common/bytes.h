/*
 * bytes.h - big-endian fields and a bounds-checked byte writer and reader:
 * the binary encodings of FORMAT.md (librecrypt, src/lib) and the rows of
 * the membership store (src/store, docs/STORE.md) are written and read
 * with these. Shared by both; owned by neither (src/common). Not installed.
 */
#ifndef RECRYPT_COMMON_BYTES_H
#define RECRYPT_COMMON_BYTES_H

#include <stddef.h>
#include <stdint.h>

void rc_be16_put(uint8_t *p, uint16_t v);
void rc_be32_put(uint8_t *p, uint32_t v);
void rc_be64_put(uint8_t *p, uint64_t v);
uint16_t rc_be16_get(const uint8_t *p);
uint32_t rc_be32_get(const uint8_t *p);
uint64_t rc_be64_get(const uint8_t *p);

/* Bounds-checked writer and reader. Errors are sticky: check `bad` once. */
typedef struct {
    uint8_t *p;
    size_t cap, len;
    int bad;
} rc_wr;
typedef struct {
    const uint8_t *p;
    size_t len, pos;
    int bad;
} rc_rd;

void rc_wr_bytes(rc_wr *w, const void *b, size_t n);
void rc_wr_u8(rc_wr *w, uint8_t v);
void rc_wr_u16(rc_wr *w, uint16_t v);
void rc_wr_u64(rc_wr *w, uint64_t v);
/* length-prefixed (u8) string */
void rc_wr_str8(rc_wr *w, const char *s);

const uint8_t *rc_rd_bytes(rc_rd *r, size_t n);
void rc_rd_copy(rc_rd *r, void *out, size_t n);
uint8_t rc_rd_u8(rc_rd *r);
uint16_t rc_rd_u16(rc_rd *r);
uint64_t rc_rd_u64(rc_rd *r);
/* u8 length + bytes into out (NUL-terminated); max chars excl. NUL. */
void rc_rd_str8(rc_rd *r, char *out, size_t max);
/* 1 when everything was read and nothing went wrong. */
int rc_rd_done(const rc_rd *r);

/* A time in unix seconds as ISO 8601 UTC ("2026-12-03T03:15:00Z"), the form
 * every date recrypt shows or writes into a text takes; "@SECONDS" when it
 * has none. Returns out. */
const char *rc_iso_utc(char *out, size_t cap, uint64_t t);

#endif
