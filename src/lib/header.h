/*
 * header.h - raw RFC 5322 header blocks, kept byte for byte (internal).
 * Sealing copies header fields into the inner message unchanged, and opening
 * filters them, so the fields are held as their exact original text.
 */
#ifndef RECRYPT_HEADER_H
#define RECRYPT_HEADER_H

#include <sys/types.h>
#include <recrypt/error.h>

#define RC_HEADER_MAX (1024 * 1024)

typedef struct {
    const char *text; /* "Name: value" with folding and line ending(s), as read */
    size_t len;
    size_t name_len;
} rc_hfield;

typedef struct {
    char *block;       /* the header block as read (owned) */
    rc_hfield *f;      /* fields in order (owned) */
    size_t n;
    const char *eol;   /* "\r\n" or "\n", from the first line */
    off_t body_offset; /* where the body starts in the file */
} rc_header;

/* Read the header block at the start of fd (position 0). Skips an mbox
 * "From " line. Lenient on folding and line endings; refuses a line that is
 * neither a field nor a continuation, and a block over RC_HEADER_MAX. */
int rc_header_read(rc_header *h, int fd, rc_error *err);
void rc_header_free(rc_header *h);
int rc_hfield_is(const rc_hfield *f, const char *name);
/* Unfolded value with surrounding white space trimmed; caller frees. */
char *rc_hfield_value(const rc_hfield *f);
/* First field of that name and the number of such fields. */
const rc_hfield *rc_header_get(const rc_header *h, const char *name, size_t *count);

#endif
