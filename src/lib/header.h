/*
 * header.h - raw RFC 5322 header blocks, kept byte for byte (internal).
 * Sealing copies header fields into the inner message unchanged, and opening
 * filters them, so the fields are held as their exact original text.
 */
#ifndef RECRYPT_HEADER_H
#define RECRYPT_HEADER_H

#include <stdint.h>
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
    size_t len;        /* bytes in block (it may hold a NUL) */
    int mbox_from;     /* the block started with an mbox "From " line (skipped) */
} rc_header;

/* Read the header block at the start of fd (position 0). Skips an mbox
 * "From " line (and says so in mbox_from: a recrypt message has none). Lenient on folding and line endings; refuses a line that is
 * neither a field nor a continuation, and a block over RC_HEADER_MAX. */
int rc_header_read(rc_header *h, int fd, rc_error *err);
void rc_header_free(rc_header *h);
int rc_hfield_is(const rc_hfield *f, const char *name);
/* Unfolded value with surrounding white space trimmed; caller frees. */
char *rc_hfield_value(const rc_hfield *f);
/* First field of that name and the number of such fields. */
const rc_hfield *rc_header_get(const rc_header *h, const char *name, size_t *count);

/* The Date grammar of docs/FORMAT.md §9.3 (a subset of RFC 5322
 * date-time, written there in ABNF): unix seconds in *out, or RC_E_FORMAT
 * saying what is wrong. v is the unfolded, trimmed field value. */
int rc_date_parse(const char *v, uint64_t *out, rc_error *err);

/* The Message-ID grammar of docs/FORMAT.md §9.3: "<" id-left "@" id-right
 * ">" with optional white space around; *id (malloc'd) is id-left "@"
 * id-right, without the brackets. Nothing is repaired: anything else is
 * RC_E_FORMAT. */
#define RC_MSGID_MAX 984 /* "Message-ID: <" id ">" fits one 998-octet line */
int rc_msgid_parse(const char *v, char **id, rc_error *err);

#endif
