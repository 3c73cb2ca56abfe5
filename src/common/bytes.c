/*
 * bytes.c - big-endian fields and the bounds-checked byte writer and reader
 * declared in bytes.h (moved here from src/lib/util.c unchanged).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "bytes.h"

const char *rc_iso_utc(char *out, size_t cap, uint64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if ((uint64_t)tt != t || !gmtime_r(&tt, &tm) ||
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "@%llu", (unsigned long long)t);
    return out;
}

void rc_be16_put(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void rc_be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void rc_be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint16_t rc_be16_get(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t rc_be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t rc_be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

void rc_wr_bytes(rc_wr *w, const void *b, size_t n)
{
    if (w->bad || w->cap - w->len < n) {
        w->bad = 1;
        return;
    }
    memcpy(w->p + w->len, b, n);
    w->len += n;
}

void rc_wr_u8(rc_wr *w, uint8_t v)
{
    rc_wr_bytes(w, &v, 1);
}

void rc_wr_u16(rc_wr *w, uint16_t v)
{
    uint8_t b[2];
    rc_be16_put(b, v);
    rc_wr_bytes(w, b, 2);
}

void rc_wr_u64(rc_wr *w, uint64_t v)
{
    uint8_t b[8];
    rc_be64_put(b, v);
    rc_wr_bytes(w, b, 8);
}

void rc_wr_str8(rc_wr *w, const char *s)
{
    size_t n = strlen(s);
    if (n > 255) {
        w->bad = 1;
        return;
    }
    rc_wr_u8(w, (uint8_t)n);
    rc_wr_bytes(w, s, n);
}

const uint8_t *rc_rd_bytes(rc_rd *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

void rc_rd_copy(rc_rd *r, void *out, size_t n)
{
    const uint8_t *p = rc_rd_bytes(r, n);
    if (p)
        memcpy(out, p, n);
    else
        memset(out, 0, n);
}

uint8_t rc_rd_u8(rc_rd *r)
{
    const uint8_t *p = rc_rd_bytes(r, 1);
    return p ? p[0] : 0;
}

uint16_t rc_rd_u16(rc_rd *r)
{
    const uint8_t *p = rc_rd_bytes(r, 2);
    return p ? rc_be16_get(p) : 0;
}

uint64_t rc_rd_u64(rc_rd *r)
{
    const uint8_t *p = rc_rd_bytes(r, 8);
    return p ? rc_be64_get(p) : 0;
}

void rc_rd_str8(rc_rd *r, char *out, size_t max)
{
    size_t n = rc_rd_u8(r);
    const uint8_t *p = rc_rd_bytes(r, n);
    if (!p || n > max) {
        r->bad = 1;
        out[0] = '\0';
        return;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    if (memchr(out, '\0', n))
        r->bad = 1;
}

int rc_rd_done(const rc_rd *r)
{
    return !r->bad && r->pos == r->len;
}
