/*
 * fromrewrite.c - see fromrewrite.h.
 *
 * GMime parses the poster's From (quoted-strings, comments, RFC 2047
 * encoded-words, obsolete forms) into a decoded UTF-8 name and an address,
 * and encodes the new mailbox: atoms where they suffice, a quoted-string
 * (with \" and \\) where the name holds specials, encoded-words (each at
 * most 75 characters) for non-ASCII, so an encoded-word never sits inside
 * a quoted-string. The decoded name is cleaned first (control characters,
 * CR and LF among them, become spaces; runs of white space one space) and
 * cut to FROMRW_NAME_MAX bytes.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <gmime/gmime.h>
#include "fromrewrite.h"

/* The first mailbox of a parsed list, looking into groups too. */
static InternetAddressMailbox *first_mailbox(InternetAddressList *l)
{
    if (!l)
        return NULL;
    for (int i = 0; i < internet_address_list_length(l); i++) {
        InternetAddress *a = internet_address_list_get_address(l, i);
        if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
            const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
            if (addr && *addr)
                return INTERNET_ADDRESS_MAILBOX(a);
        } else if (INTERNET_ADDRESS_IS_GROUP(a)) {
            InternetAddressMailbox *m =
                first_mailbox(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)));
            if (m)
                return m;
        }
    }
    return NULL;
}

/* Append s to the name being built: control characters (C0, DEL) and
 * white space become one space, never two in a row or one in front. */
static void name_add(GString *g, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == ' ') {
            if (g->len && g->str[g->len - 1] != ' ')
                g_string_append_c(g, ' ');
        } else {
            g_string_append_c(g, (char)*p);
        }
    }
}

/* Cut g to at most max bytes at a UTF-8 character boundary, adding "...". */
static void name_cut(GString *g, size_t max)
{
    if (g->len <= max)
        return;
    size_t n = max - 3;
    while (n > 0 && ((unsigned char)g->str[n] & 0xc0) == 0x80)
        n--; /* not inside a character */
    g_string_truncate(g, n);
    while (g->len && g->str[g->len - 1] == ' ')
        g_string_truncate(g, g->len - 1);
    g_string_append(g, "...");
}

/* "From: " + mailbox, folded by GMime; returns the value part (malloc).
 * Takes a. */
static char *encode_mailbox(InternetAddress *a, GMimeFormatOptions *fo)
{
    InternetAddressList *l = internet_address_list_new();
    internet_address_list_add(l, a);
    g_object_unref(a); /* the list holds it now */
    GString *g = g_string_new("From: ");
    internet_address_list_encode(l, fo, g);
    g_object_unref(l);
    size_t len = g->len;
    while (len && (g->str[len - 1] == '\n' || g->str[len - 1] == '\r'))
        len--;
    char *out = len >= 6 ? strndup(g->str + 6, len - 6) : NULL;
    g_string_free(g, TRUE);
    return out;
}

int fromrw_build(const char *from_value, const char *list_address, const char *fallback,
                 fromrw_result *out)
{
    memset(out, 0, sizeof *out);
    const char *at = list_address ? strrchr(list_address, '@') : NULL;
    if (!at || at == list_address)
        return -1;
    GMimeFormatOptions *fo = g_mime_format_options_new();
    GMimeParserOptions *po = g_mime_parser_options_new();
    InternetAddressList *l = from_value ? internet_address_list_parse(po, from_value) : NULL;
    InternetAddressMailbox *poster = first_mailbox(l);
    GString *name = g_string_new("");
    const char *poster_name = poster ? internet_address_get_name(INTERNET_ADDRESS(poster)) : NULL;
    if (poster_name)
        name_add(name, poster_name);
    while (name->len && name->str[name->len - 1] == ' ')
        g_string_truncate(name, name->len - 1);
    if (!name->len && poster)
        name_add(name, internet_address_mailbox_get_addr(poster));
    else if (!name->len)
        name_add(name, fallback && *fallback ? fallback : "unknown sender");
    name_cut(name, FROMRW_NAME_MAX);
    g_string_append(name, " via ");
    g_string_append_len(name, list_address, at - list_address);

    InternetAddress *a = internet_address_mailbox_new(name->str, list_address);
    out->from = encode_mailbox(a, fo); /* takes a */
    if (poster) {
        /* The poster's mailbox as the post named it (name cleaned). */
        GString *pn = g_string_new("");
        if (poster_name)
            name_add(pn, poster_name);
        while (pn->len && pn->str[pn->len - 1] == ' ')
            g_string_truncate(pn, pn->len - 1);
        name_cut(pn, FROMRW_NAME_MAX);
        InternetAddress *p = internet_address_mailbox_new(
            pn->len ? pn->str : NULL, internet_address_mailbox_get_addr(poster));
        out->reply_to = encode_mailbox(p, fo);
        g_string_free(pn, TRUE);
    }
    g_string_free(name, TRUE);
    if (l)
        g_object_unref(l);
    g_mime_parser_options_free(po);
    g_mime_format_options_free(fo);
    if (!out->from || (poster && !out->reply_to)) {
        fromrw_free(out);
        return -1;
    }
    return 0;
}

void fromrw_free(fromrw_result *r)
{
    free(r->from);
    free(r->reply_to);
    r->from = r->reply_to = NULL;
}
