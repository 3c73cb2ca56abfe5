/*
 * fuzz_request.c - the administration request parsers: the armor reader
 * (rc_request_read_armored) on arbitrary text, and rc_request_decode on
 * arbitrary bytes. Whatever decodes must encode back to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <recrypt/recrypt.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return rc_init(NULL) == 0 ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rc_request req, *reqs = NULL;
    size_t n = 0;
    rc_error err;

    if (rc_request_decode(&req, data, size, &err) == 0) {
        uint8_t *enc = NULL;
        size_t len = 0;
        if (rc_request_encode(&req, &enc, &len, &err) != 0 || len != size ||
            memcmp(enc, data, size) != 0)
            abort(); /* a decoded request must re-encode byte for byte */
        free(enc);
        rc_request_free(&req);
    }
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (rc_request_read_armored(text, size, &reqs, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++)
            rc_request_free(&reqs[i]);
        free(reqs);
    }
    free(text);
    return 0;
}
