/*
 * fromrewrite.h - FromRewrite (docs/admin-guide.md §13): the outer From of
 * a list copy becomes the list's address, with the poster's name:
 *
 *     From: "Alice via team" <team@example.org>
 *
 * so that the copy passes DMARC at members' providers (the body is always
 * replaced, so the poster's DKIM signature never survives). The poster's
 * mailbox goes into Reply-To when the post has none, and the original From
 * value into X-Original-From. Only the outer header of the copy changes;
 * the sealed inner message (and its From) is never touched.
 *
 * Shared by the milter (inline delivery) and recrypt-fanout (split
 * delivery). Needs rc_init (GMime).
 */
#ifndef RECRYPT_MILTER_FROMREWRITE_H
#define RECRYPT_MILTER_FROMREWRITE_H

#include <stddef.h>

/* The longest display name kept from the poster (bytes of UTF-8, cut at a
 * character boundary): a longer one is shortened with "...". */
#define FROMRW_NAME_MAX 200

typedef struct {
    char *from;     /* the new From value, 7-bit, folded with "\n\t" */
    char *reply_to; /* the poster's mailbox for Reply-To (7-bit), or NULL
                     * when the From held no mailbox */
} fromrw_result;

/* Build the rewritten From for a post whose From value is from_value (as
 * in the header, unfolded or folded; NULL when the post had none) to the
 * list list_address. The display name is the poster's display name (RFC
 * 2047 decoded), or the poster's address when there is none, then " via "
 * and the list's local part; it is encoded again as RFC 5322 and RFC 2047
 * want it (quoted where needed, encoded-words for non-ASCII, never an
 * encoded-word inside a quoted-string), and folded. fallback names the
 * poster when the From holds no mailbox (the envelope sender; may be NULL
 * or ""). 0, or -1 (out of memory, or list_address is not an address). */
int fromrw_build(const char *from_value, const char *list_address, const char *fallback,
                 fromrw_result *out);
void fromrw_free(fromrw_result *r);

#endif
