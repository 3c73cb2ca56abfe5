/*
 * test_udf.c - Uniform Data Fingerprints: the public vectors of docs/SCHEME.md
 * (from the Mesh UDF draft), the output shape for every allowed length,
 * and refusal of bad lengths and short buffers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "internal.h"

static const char vec_data[] = "UDF Data Value";

static void test_vector_140(void **state)
{
    (void)state;
    char out[RC_UDF_MAX];
    rc_error err;
    memset(out, 'x', sizeof out);
    assert_int_equal(rc_udf(out, sizeof out, "text/plain", (const uint8_t *)vec_data,
                            strlen(vec_data), 140, &err),
                     RC_OK);
    assert_string_equal(out, "MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF");
    /* The default length is 140 bits. */
    assert_int_equal(RC_UDF_DEFAULT_BITS, 140);
}

static void test_vector_100(void **state)
{
    (void)state;
    char out[RC_UDF_MAX];
    rc_error err;
    assert_int_equal(rc_udf(out, sizeof out, "text/plain", (const uint8_t *)vec_data,
                            strlen(vec_data), 100, &err),
                     RC_OK);
    assert_string_equal(out, "MDDK-7N6A-727A-JZNO-STRX");
}

/* The content type is part of the hash: another type, another UDF. */
static void test_content_type_matters(void **state)
{
    (void)state;
    char a[RC_UDF_MAX], b[RC_UDF_MAX];
    assert_int_equal(rc_udf(a, sizeof a, "text/plain", (const uint8_t *)vec_data,
                            strlen(vec_data), 140, NULL),
                     RC_OK);
    assert_int_equal(rc_udf(b, sizeof b, "text/html", (const uint8_t *)vec_data,
                            strlen(vec_data), 140, NULL),
                     RC_OK);
    assert_string_not_equal(a, b);
    /* ... and so is every data byte. */
    assert_int_equal(rc_udf(b, sizeof b, "text/plain", (const uint8_t *)"UDF Data Valuf",
                            strlen(vec_data), 140, NULL),
                     RC_OK);
    assert_string_not_equal(a, b);
}

/* Every allowed length: bits/5 Base32 characters in groups of four, each a
 * prefix of the longest one (truncation, not a different hash). */
static void test_all_lengths(void **state)
{
    (void)state;
    char full[RC_UDF_MAX], out[RC_UDF_MAX];
    assert_int_equal(rc_udf(full, sizeof full, "text/plain", (const uint8_t *)vec_data,
                            strlen(vec_data), 440, NULL),
                     RC_OK);
    assert_int_equal(strlen(full), 88 + 21);
    assert_memory_equal(full, "MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF", 34);
    for (unsigned bits = 20; bits <= 440; bits += 20) {
        size_t nchars = bits / 5, groups = nchars / 4;
        memset(out, 'x', sizeof out);
        assert_int_equal(rc_udf(out, sizeof out, "text/plain", (const uint8_t *)vec_data,
                                strlen(vec_data), bits, NULL),
                         RC_OK);
        assert_int_equal(strlen(out), nchars + groups - 1);
        assert_memory_equal(out, full, nchars + groups - 1);
        for (size_t i = 0; i < strlen(out); i++) {
            if (i % 5 == 4)
                assert_int_equal(out[i], '-');
            else
                assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", out[i]));
        }
    }
}

static void test_bad_bits_refused(void **state)
{
    (void)state;
    static const unsigned bad[] = {0, 5, 10, 19, 21, 25, 100 + 5, 130, 139, 141, 150, 445, 460, 480, 512, 1000, 0xffffffffu};
    char out[RC_UDF_MAX];
    rc_error err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc_error_clear(&err);
        assert_int_equal(rc_udf(out, sizeof out, "text/plain", (const uint8_t *)vec_data,
                                strlen(vec_data), bad[i], &err),
                         RC_E_INVALID);
        assert_int_equal(err.code, RC_E_INVALID);
        assert_true(strlen(err.msg) > 0);
    }
    /* NULL err is allowed. */
    assert_int_equal(rc_udf(out, sizeof out, "text/plain", (const uint8_t *)vec_data,
                            strlen(vec_data), 7, NULL),
                     RC_E_INVALID);
}

static void test_buffer_size(void **state)
{
    (void)state;
    char out[RC_UDF_MAX];
    rc_error err;
    /* 140 bits: 28 characters, 6 dashes, NUL = 35 bytes. */
    assert_int_equal(rc_udf(out, 35, "text/plain", (const uint8_t *)vec_data, strlen(vec_data),
                            140, &err),
                     RC_OK);
    assert_string_equal(out, "MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF");
    assert_int_equal(rc_udf(out, 34, "text/plain", (const uint8_t *)vec_data, strlen(vec_data),
                            140, &err),
                     RC_E_INVALID);
    assert_int_equal(err.code, RC_E_INVALID);
    assert_int_equal(rc_udf(out, 0, "text/plain", (const uint8_t *)vec_data, strlen(vec_data),
                            140, &err),
                     RC_E_INVALID);
}

/* Key fingerprints are 140-bit UDFs under a per-type content type. */
static void test_key_fingerprint(void **state)
{
    (void)state;
    uint8_t pk[32];
    char fp[RC_UDF_MAX], udf[RC_UDF_MAX], fp2[RC_UDF_MAX];
    for (int i = 0; i < 32; i++)
        pk[i] = (uint8_t)i;
    assert_int_equal(rc_key_fingerprint(fp, sizeof fp, "device", pk, 32, NULL), RC_OK);
    assert_int_equal(rc_udf(udf, sizeof udf, "application/vnd.recrypt.device", pk, 32, 140,
                            NULL),
                     RC_OK);
    assert_string_equal(fp, udf);
    assert_int_equal(strlen(fp), 34);
    assert_int_equal(rc_key_fingerprint(fp2, sizeof fp2, "service", pk, 32, NULL), RC_OK);
    assert_string_not_equal(fp, fp2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_140),
        cmocka_unit_test(test_vector_100),
        cmocka_unit_test(test_content_type_matters),
        cmocka_unit_test(test_all_lengths),
        cmocka_unit_test(test_bad_bits_refused),
        cmocka_unit_test(test_buffer_size),
        cmocka_unit_test(test_key_fingerprint),
    };
    if (rc_init(NULL) != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
