/*
 * test_receipt.c - the delivery receipt token of recrypt-milter
 * (src/milter/receipt.c) against docs/FORMAT.md §9.7: the test vector,
 * the token rebuilt from the documented definition with plain libsodium,
 * and the parser's refusals. The vector must appear in FORMAT.md as
 * written here (the test reads the file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>
#include "receipt.h"

/* FORMAT.md §9.7 vector: mark secret 00 01 .. 1f, E 20 21 .. 3f. */
#define VECTOR_TOKEN "202122232425262728292a2b39ebffb4e1002fc28f848320"
/* FORMAT.md §9.8 vector: the same inputs, the fan-out address. */
#define FANOUT_TOKEN "202122232425262728292a2b36be6ac2ca8e128368d25471"

static uint8_t mark[32], E[32];

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    for (int i = 0; i < 32; i++) {
        mark[i] = (uint8_t)i;
        E[i] = (uint8_t)(0x20 + i);
    }
    return 0;
}

static void test_vector(void **state)
{
    (void)state;
    char tok[RECEIPT_TOKEN_LEN + 1];
    receipt_token(tok, mark, E);
    assert_string_equal(tok, VECTOR_TOKEN);
    /* From the definition: hex(E[0..12]) ‖ hex(BLAKE2b-128(key = mark,
     * salt = 16 zero bytes, personal = "recrypt/receipt" NUL-padded, E)[0..12]). */
    uint8_t personal[16] = {0}, salt[16] = {0}, mac[16];
    memcpy(personal, "recrypt/receipt", 15);
    assert_int_equal(crypto_generichash_blake2b_salt_personal(mac, sizeof mac, E, 32, mark, 32,
                                                              salt, personal),
                     0);
    char want[RECEIPT_TOKEN_LEN + 1];
    sodium_bin2hex(want, 25, E, 12);
    sodium_bin2hex(want + 24, 25, mac, 12);
    assert_string_equal(tok, want);
}

static void test_fanout_vector(void **state)
{
    (void)state;
    char tok[RECEIPT_TOKEN_LEN + 1];
    fanout_token(tok, mark, E);
    assert_string_equal(tok, FANOUT_TOKEN);
    /* Not a receipt token: another personal. */
    assert_string_not_equal(tok, VECTOR_TOKEN);
    uint8_t prefix[RECEIPT_PREFIX_BYTES], tag[RECEIPT_TAG_BYTES];
    assert_int_equal(receipt_parse(FANOUT_TOKEN "@fanout.example.net", prefix, tag), 0);
    assert_true(fanout_tag_ok(mark, E, prefix, tag));
    /* The receipt token's tag is no fan-out tag, and E must match too. */
    uint8_t rp[RECEIPT_PREFIX_BYTES], rt[RECEIPT_TAG_BYTES];
    assert_int_equal(receipt_parse(VECTOR_TOKEN, rp, rt), 0);
    assert_false(fanout_tag_ok(mark, E, rp, rt));
    uint8_t E2[32];
    memcpy(E2, E, 32);
    E2[31] ^= 1;
    assert_false(fanout_tag_ok(mark, E2, prefix, tag));
    uint8_t mark2[32];
    memcpy(mark2, mark, 32);
    mark2[0] ^= 1;
    assert_false(fanout_tag_ok(mark2, E, prefix, tag));
}

static int in_format_md(const char *needle)
{
    FILE *f = fopen(RC_SOURCE_DIR "/docs/FORMAT.md", "r");
    assert_non_null(f);
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static void test_vector_in_format_md(void **state)
{
    (void)state;
    assert_true(in_format_md(VECTOR_TOKEN "@receipt.example.net"));
    assert_true(in_format_md(FANOUT_TOKEN "@fanout.example.net"));
}

static void test_parse(void **state)
{
    (void)state;
    uint8_t prefix[RECEIPT_PREFIX_BYTES], tag[RECEIPT_TAG_BYTES];
    char tok[RECEIPT_TOKEN_LEN + 1];
    receipt_token(tok, mark, E);
    const char *good[] = {VECTOR_TOKEN "@receipt.example.net",
                          "<" VECTOR_TOKEN "@receipt.example.net>", VECTOR_TOKEN,
                          "202122232425262728292A2B39EBFFB4E1002FC28F848320@R.example.net"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        memset(prefix, 0, sizeof prefix);
        assert_int_equal(receipt_parse(good[i], prefix, tag), 0);
        assert_memory_equal(prefix, E, RECEIPT_PREFIX_BYTES);
        assert_true(receipt_tag_ok(mark, E, tag));
    }
    /* Another E with the same prefix, or another secret: the tag fails. */
    uint8_t E2[32], mark2[32];
    memcpy(E2, E, 32);
    E2[31] ^= 1;
    memcpy(mark2, mark, 32);
    mark2[0] ^= 1;
    assert_int_equal(receipt_parse(good[0], prefix, tag), 0);
    assert_false(receipt_tag_ok(mark, E2, tag));
    assert_false(receipt_tag_ok(mark2, E, tag));
    const char *bad[] = {
        "", "@receipt.example.net", "202122232425262728292a2b39ebffb4e1002fc28f84832@x.net",
        "202122232425262728292a2b39ebffb4e1002fc28f8483200@x.net",
        "202122232425262728292a2b39ebffb4e1002fc28f84832g@x.net",
        "202122232425262728292a2b 9ebffb4e1002fc28f848320@x.net",
        "+02122232425262728292a2b39ebffb4e1002fc28f848320@x.net",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (receipt_parse(bad[i], prefix, tag) != -1)
            fail_msg("accepted '%s'", bad[i]);
}

static void test_in_domain(void **state)
{
    (void)state;
    assert_true(receipt_in_domain("<x@receipt.example.net>", "receipt.example.net"));
    assert_true(receipt_in_domain("x@Receipt.Example.NET", "receipt.example.net"));
    /* Forms an MTA may still route to the receipt domain. */
    assert_true(receipt_in_domain("<x@receipt.example.net.>", "receipt.example.net"));
    assert_true(receipt_in_domain("x@sub.receipt.example.net", "receipt.example.net"));
    assert_true(receipt_in_domain("<x%receipt.example.net@mx.example.org>", "receipt.example.net"));
    assert_true(receipt_in_domain("<receipt.example.net!x>", "receipt.example.net"));
    assert_true(receipt_in_domain("<mx.example.org!receipt.example.net!x>", "receipt.example.net") ==
                0); /* (a relayed bang path: the next hop decides) */
    /* Not the receipt domain. */
    assert_false(receipt_in_domain("x@receipt.example.net.evil", "receipt.example.net"));
    assert_false(receipt_in_domain("x@myreceipt.example.net", "receipt.example.net"));
    assert_false(receipt_in_domain("x@example.net", "receipt.example.net"));
    assert_false(receipt_in_domain("receipt.example.netx@y.org", "receipt.example.net"));
    assert_false(receipt_in_domain("x@receipt.example.net", ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector),
        cmocka_unit_test(test_fanout_vector),
        cmocka_unit_test(test_vector_in_format_md),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_in_domain),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
