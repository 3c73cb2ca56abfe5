/*
 * fuzz_mime.c - libFuzzer target for recrypt mail: rc_mail_parse on
 * arbitrary bytes (through a memfd), the accessors, the service's checks and
 * rewrite, and rc_mail_open with a fixed device key and list statement.
 *
 * rc_mail_header_recipients (recrypt sendmail's recipients) on the same
 * bytes first. The input is the whole message. A fixed world (device, list, statement,
 * one device entry) is built once; seed messages sealed to that list and
 * recrypted for that device open successfully.
 *
 * Oracles besides the sanitizers: what rc_mail_parse accepts, the service
 * rewrites (header + recrypted body) into a message that parses again with
 * the same envelope, Date and Message-ID and one stanza per entry written.
 * (Set FUZZ_MIME_NO_REWRITE_CHECK=1 to skip that re-parse, e.g. to look for
 * other bugs while a known rewrite bug is open.)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sodium.h>
#include <recrypt/recrypt.h>

#define FZ_NAME "fuzz_mime"
#include "fuzz_common.h"

static struct {
    rc_device_secret dev;
    rc_list_secret ls;
    rc_statement st;
    rc_cert cert;
    rc_device_entry entry;
    int msg_fd, stage_fd, out_fd;
    int no_rewrite_check;
} fz;

static int new_memfd(const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        fz_die("memfd_create failed", NULL);
    return fd;
}

/* Build the fixed world (the keys of fuzz_common.h, as fuzz_stanza). Also
 * used by the seed generator. */
static void fz_setup(void)
{
    rc_error err;

    fz_fixed_keys(&fz.dev, &fz.ls, &fz.st, &fz.cert);
    if (rc_entry_create(&fz.entry, &fz.ls, &fz.dev.pub, FZ_MEMBER_ADDR, FZ_ENROLLED, &err) != 0)
        fz_die("entry", &err);
    fz.msg_fd = new_memfd("fuzz-mime-msg");
    fz.stage_fd = new_memfd("fuzz-mime-stage");
    fz.out_fd = new_memfd("fuzz-mime-out");
}

static void fd_reset(int fd)
{
    if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
        fz_die("cannot reset a memfd", NULL);
}

#ifndef FZ_NO_FUZZER

static int null_sink(void *ctx, const uint8_t *p, size_t len)
{
    size_t *total = ctx;
    (void)p;
    *total += len;
    return 0;
}

/* The service's rewrite must give a message that parses again. */
static void check_rewrite(const rc_mail *m)
{
    rc_error err;
    size_t n_written = 0;
    rc_mail *m2 = NULL;
    fd_reset(fz.out_fd);
    if (rc_mail_write_header(m, rc_fd_sink, &fz.out_fd, &err) != 0)
        fz_die("rc_mail_write_header", &err);
    if (rc_mail_write_recrypted_body(m, &fz.entry, 1, 0, rc_fd_sink, &fz.out_fd, &n_written,
                                     &err) != 0)
        return; /* E is not a valid point: refused, fine */
    if (fz.no_rewrite_check)
        return;
    if (rc_mail_parse(&m2, fz.out_fd, &err) != 0)
        fz_die("the recrypted message does not parse", &err);
    if (memcmp(rc_mail_envelope(m2), rc_mail_envelope(m), sizeof(rc_envelope)) != 0 ||
        rc_mail_date(m2) != rc_mail_date(m) ||
        strcmp(rc_mail_message_id(m2), rc_mail_message_id(m)) != 0 ||
        rc_mail_stanza_count(m2) != n_written)
        fz_die("the recrypted message parses to another envelope, date, id or stanzas", NULL);
    rc_mail_free(m2);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_setup();
    const char *skip = getenv("FUZZ_MIME_NO_REWRITE_CHECK");
    fz.no_rewrite_check = skip && *skip && strcmp(skip, "0") != 0;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rc_error err;
    rc_mail *m = NULL;
    size_t total = 0;

    fd_reset(fz.msg_fd);
    if (rc_fd_sink(&fz.msg_fd, data, size) != 0)
        fz_die("cannot write the input to a memfd", NULL);
    /* The recipients recrypt sendmail takes from any message. */
    char **rcpt = NULL;
    size_t n_rcpt = 0;
    if (rc_mail_header_recipients(fz.msg_fd, &rcpt, &n_rcpt, &err) == 0) {
        for (size_t i = 0; i < n_rcpt; i++)
            for (const char *p = rcpt[i]; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    fz_die("rc_mail_header_recipients returned an address not in lower case", NULL);
        rc_mail_addresses_free(rcpt, n_rcpt);
    } else if (rcpt || n_rcpt) {
        fz_die("rc_mail_header_recipients failed but returned addresses", &err);
    }
    if (lseek(fz.msg_fd, 0, SEEK_SET) != 0)
        fz_die("lseek", NULL);
    if (rc_mail_parse(&m, fz.msg_fd, &err) != 0) {
        if (m != NULL)
            fz_die("rc_mail_parse failed but returned a message", NULL);
        return 0;
    }

    /* Accessors. */
    const rc_envelope *env = rc_mail_envelope(m);
    size_t n = rc_mail_stanza_count(m);
    const rc_stanza *s = rc_mail_stanzas(m);
    const char *mid = rc_mail_message_id(m);
    const char *lk = rc_mail_list_key(m);
    if (!env || !mid || !*mid || (n && !s) || n > RC_MAX_STANZAS)
        fz_die("accessors give inconsistent answers", NULL);
    for (size_t i = 0; i < n; i++) {
        uint8_t b[RC_STANZA_MAX];
        size_t len;
        if (rc_stanza_to_bytes(b, sizeof b, &len, &s[i], &err) != 0)
            fz_die("a parsed stanza does not encode", &err);
    }
    if (lk) {
        rc_statement st;
        (void)rc_statement_decode(&st, lk, &err);
    }
    (void)rc_mail_check_post(m, FZ_LIST_ADDR, FZ_EPOCH, fz.ls.A, rc_mail_date(m), 600, 60, &err);

    /* Service side. */
    (void)rc_mail_write_header(m, null_sink, &total, &err);
    check_rewrite(m);

    /* Device side. */
    rc_open_result res;
    memset(&res, 0, sizeof res);
    (void)rc_mail_open(m, &fz.st, &fz.dev, fz.stage_fd, null_sink, &total, &res, &err);
    sodium_memzero(&res, sizeof res);
    /* Opening twice must work the same way (the streams are reset). */
    (void)rc_mail_open(m, &fz.st, &fz.dev, fz.stage_fd, null_sink, &total, NULL, &err);

    rc_mail_free(m);
    return 0;
}

#endif /* FZ_NO_FUZZER */
