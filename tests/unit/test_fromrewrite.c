/*
 * test_fromrewrite.c - FromRewrite (src/milter/fromrewrite.c, the From of
 * list copies; docs/admin-guide.md §13) and its configuration key.
 *
 * Every rewritten From is checked for what members' mail programs and
 * RFC 5322 / RFC 2047 need: 7-bit, no CR or LF but folding, no line over
 * 78 characters, no encoded-word inside a quoted-string, and parsed again
 * (by GMime) exactly one mailbox, the list's address, whose decoded name
 * is the poster's name (or address) + " via " + the list's local part.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <gmime/gmime.h>
#include <sodium.h>
#include <recrypt/recrypt.h>
#include "config.h"
#include "fromrewrite.h"

#define LIST "team@example.org"

static int setup(void **state)
{
    (void)state;
    rc_error err;
    return rc_init(&err);
}

/* The checks every From value must pass; returns the decoded display name
 * (g_free) of its single mailbox, whose address must be want_addr. */
static char *check_value(const char *v, const char *want_addr)
{
    assert_non_null(v);
    size_t line = 0;
    int quoted = 0, esc = 0;
    for (const char *p = v; *p; p++) {
        unsigned char c = (unsigned char)*p;
        assert_true(c < 0x80);                            /* 7-bit */
        assert_true(c >= 0x20 || c == '\n' || c == '\t'); /* no CR, no controls */
        if (c == '\n') {
            assert_true(p[1] == ' ' || p[1] == '\t'); /* only folding */
            line = 0;
            continue;
        }
        assert_true(++line <= 78 - 6); /* "From: " + value within 78 */
        if (esc) {
            esc = 0;
        } else if (quoted && c == '\\') {
            esc = 1;
        } else if (c == '"') {
            quoted = !quoted;
        } else if (quoted && c == '=' && p[1] == '?') {
            fail_msg("an encoded-word inside a quoted-string: %s", v);
        }
    }
    assert_false(quoted);
    /* unfolded, as a reader's header parser does (RFC 5322 §2.2.3) */
    char *u = g_strdup(v), *q = u;
    for (const char *p = v; *p; p++)
        if (*p != '\n')
            *q++ = *p;
    *q = '\0';
    InternetAddressList *l = internet_address_list_parse(NULL, u);
    g_free(u);
    assert_non_null(l);
    assert_int_equal(internet_address_list_length(l), 1);
    InternetAddress *a = internet_address_list_get_address(l, 0);
    assert_true(INTERNET_ADDRESS_IS_MAILBOX(a));
    assert_string_equal(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)), want_addr);
    const char *name = internet_address_get_name(a);
    char *res = g_strdup(name ? name : "");
    g_object_unref(l);
    return res;
}

/* from -> the decoded name of the new From (and of Reply-To, when
 * want_reply is not NULL: the poster's address). */
static void expect(const char *from, const char *want_name, const char *want_exact,
                   const char *want_reply)
{
    fromrw_result r;
    assert_int_equal(fromrw_build(from, LIST, "envelope@example.net", &r), 0);
    char *name = check_value(r.from, LIST);
    if (strcmp(name, want_name) != 0)
        fail_msg("From %s: name '%s', expected '%s' (value %s)", from ? from : "(none)", name,
                 want_name, r.from);
    if (want_exact)
        assert_string_equal(r.from, want_exact);
    if (want_reply) {
        g_free(check_value(r.reply_to, want_reply));
    } else {
        assert_null(r.reply_to);
    }
    g_free(name);
    fromrw_free(&r);
}

static void test_plain_names(void **state)
{
    (void)state;
    expect("Alice <alice@example.org>", "Alice via team", "Alice via team <" LIST ">",
           "alice@example.org");
    expect("Alice Liddell <Alice@Example.ORG>", "Alice Liddell via team", NULL,
           "Alice@Example.ORG");
    expect("\"Alice\" <alice@example.org>", "Alice via team", NULL, "alice@example.org");
    /* a comment as the name (old style) */
    expect("alice@example.org (Alice L.)", "Alice L. via team", NULL, "alice@example.org");
}

static void test_no_display_name(void **state)
{
    (void)state;
    expect("alice@example.org", "alice@example.org via team",
           "\"alice@example.org via team\" <" LIST ">", "alice@example.org");
    expect("<alice@example.org>", "alice@example.org via team", NULL, "alice@example.org");
    expect("\"\" <alice@example.org>", "alice@example.org via team", NULL, "alice@example.org");
}

static void test_specials(void **state)
{
    (void)state;
    /* quotes, a comma, a backslash: one quoted-string, escaped */
    expect("\"Bob \\\"the\\\" Builder, Jr.\" <bob@example.org>",
           "Bob \"the\" Builder, Jr. via team",
           "\"Bob \\\"the\\\" Builder, Jr. via team\" <" LIST ">", "bob@example.org");
    expect("\"back\\\\slash\" <b@example.org>", "back\\slash via team",
           "\"back\\\\slash via team\" <" LIST ">", "b@example.org");
    expect("\"Doe, John\" <john@example.org>", "Doe, John via team",
           "\"Doe, John via team\" <" LIST ">", "john@example.org");
    expect("\"a <b@c.d> e\" <x@example.org>", "a <b@c.d> e via team", NULL, "x@example.org");
    expect("\"semi;colon (paren)\" <x@example.org>", "semi;colon (paren) via team", NULL,
           "x@example.org");
}

static void test_encoded_words(void **state)
{
    (void)state;
    expect("=?UTF-8?Q?J=C3=B6rg?= <joerg@example.org>", "J\xc3\xb6rg via team", NULL,
           "joerg@example.org");
    expect("=?ISO-8859-1?Q?Andr=E9?= Dupont <andre@example.org>", "Andr\xc3\xa9 Dupont via team",
           NULL, "andre@example.org");
    /* decoded: Jörg "Q", Jr. -- non-ASCII and specials together */
    expect("=?UTF-8?B?SsO2cmcgIlEiLCBKci4=?= <j@example.org>", "J\xc3\xb6rg \"Q\", Jr. via team",
           NULL, "j@example.org");
    /* an encoded-word next to a quoted-string */
    expect("\"Dr.\" =?UTF-8?Q?J=C3=B6rg?= <j@example.org>", "Dr. J\xc3\xb6rg via team", NULL,
           "j@example.org");
    /* raw UTF-8 (a plaintext post): encoded on the way out */
    expect("J\xc3\xb6rg <j@example.org>", "J\xc3\xb6rg via team", NULL, "j@example.org");
    /* CR and LF in a decoded name: spaces, never a new header line */
    expect("=?UTF-8?Q?Eve=0D=0ABcc=3A_victim=40example.net?= <eve@example.org>",
           "Eve Bcc: victim@example.net via team", NULL, "eve@example.org");
}

static void test_long_names(void **state)
{
    (void)state;
    char from[2048], want[512];
    /* 60 words: folded, cut to FROMRW_NAME_MAX bytes with "..." */
    size_t o = 0;
    for (int i = 0; i < 60; i++)
        o += (size_t)snprintf(from + o, sizeof from - o, "%sWord%02d", i ? " " : "\"", i);
    snprintf(from + o, sizeof from - o, ", Esq.\" <long@example.org>");
    fromrw_result r;
    assert_int_equal(fromrw_build(from, LIST, NULL, &r), 0);
    char *name = check_value(r.from, LIST);
    if (strlen(name) > FROMRW_NAME_MAX + strlen(" via team"))
        fail_msg("name of %zu bytes: %s (value %s)", strlen(name), name, r.from);
    assert_non_null(strstr(name, "... via team"));
    assert_int_equal(strncmp(name, "Word00 Word01", 13), 0);
    assert_non_null(strchr(r.from, '\n')); /* folded */
    g_free(name);
    fromrw_free(&r);
    /* 150 non-ASCII characters: several encoded-words, cut at a character */
    o = snprintf(from, sizeof from, "=?UTF-8?B?");
    char raw[400];
    size_t n = 0;
    for (int i = 0; i < 150; i++) {
        raw[n++] = (char)0xc3;
        raw[n++] = (char)0xb6;
    }
    char b64[600];
    sodium_bin2base64(b64, sizeof b64, (const unsigned char *)raw, n,
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(from + o, sizeof from - o, "%s?= <o@example.org>", b64);
    assert_int_equal(fromrw_build(from, LIST, NULL, &r), 0);
    name = check_value(r.from, LIST);
    /* 198 bytes of whole "ö" (two bytes each), "...", " via team" */
    snprintf(want, sizeof want, "%.*s... via team", 196, raw);
    assert_string_equal(name, want);
    g_free(name);
    fromrw_free(&r);
    /* one word of 300 letters: cut too */
    memset(from, 'x', 300);
    snprintf(from + 300, sizeof from - 300, " <x@example.org>");
    assert_int_equal(fromrw_build(from, LIST, NULL, &r), 0);
    assert_true(strlen(r.from) < 998);
    fromrw_free(&r);
}

static void test_odd_from(void **state)
{
    (void)state;
    /* no From at all (a plaintext post): the envelope sender names it */
    expect(NULL, "envelope@example.net via team", NULL, NULL);
    /* nothing usable in it */
    fromrw_result r;
    assert_int_equal(fromrw_build("<>", LIST, NULL, &r), 0);
    char *name = check_value(r.from, LIST);
    assert_string_equal(name, "unknown sender via team");
    assert_null(r.reply_to);
    g_free(name);
    fromrw_free(&r);
    /* a group: its first mailbox */
    expect("Friends: Alice <alice@example.org>, bob@example.org;", "Alice via team", NULL,
           "alice@example.org");
    /* several mailboxes: the first */
    expect("Alice <alice@example.org>, Bob <bob@example.org>", "Alice via team", NULL,
           "alice@example.org");
    /* folded as it came */
    expect("\"Alice\n Liddell\" <alice@example.org>", "Alice Liddell via team", NULL,
           "alice@example.org");
    /* the list's own local part with a dot: quoted */
    assert_int_equal(fromrw_build("Alice <a@example.org>", "dev.team@example.org", NULL, &r), 0);
    assert_string_equal(r.from, "\"Alice via dev.team\" <dev.team@example.org>");
    fromrw_free(&r);
    assert_int_equal(fromrw_build("Alice <a@example.org>", "nolist", NULL, &r), -1);
    assert_null(r.from);
}

/* FromRewrite in recrypt-milter.conf: default yes, yes, no, and nothing else. */
static int load(const char *extra, config *c, rc_error *err)
{
    char path[] = "/tmp/test_fromrewrite.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    fprintf(f, "Socket inet:1234@127.0.0.1\nDatabase /nonexistent\n%s", extra);
    fclose(f);
    int rc = config_load(c, path, err);
    unlink(path);
    return rc;
}

static void test_config(void **state)
{
    (void)state;
    config c;
    rc_error err;
    assert_int_equal(load("", &c, &err), 0);
    assert_int_equal(c.from_rewrite, 1);
    assert_int_equal(load("FromRewrite no\n", &c, &err), 0);
    assert_int_equal(c.from_rewrite, 0);
    assert_int_equal(load("fromrewrite YES  # on\n", &c, &err), 0);
    assert_int_equal(c.from_rewrite, 1);
    const char *bad[] = {"FromRewrite maybe\n", "FromRewrite 1\n", "FromRewrite\n",
                         "FromRewrite yes\nFromRewrite no\n"};
    const char *where[] = {":3: ", ":3: ", ":3: ", ":4: "};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_not_equal(load(bad[i], &c, &err), 0);
        assert_non_null(strstr(err.msg, "FromRewrite"));
        assert_non_null(strstr(err.msg, where[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_names), cmocka_unit_test(test_no_display_name),
        cmocka_unit_test(test_specials),    cmocka_unit_test(test_encoded_words),
        cmocka_unit_test(test_long_names),  cmocka_unit_test(test_odd_from),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
