/*
 * recrypt-bench - figures for librecrypt: what recryption costs per device
 * (with and without the precomputed table for E), and how much memory
 * sealing, recrypting and opening a large message take.
 *
 * Not a test: it prints figures. It does fail (exit 1) when a peak
 * resident set exceeds the 32 MiB the project promises, when the opened
 * message differs from the input, or when a step fails. See README.md.
 *
 * Every memory figure is the ru_maxrss that wait4() reports for a forked
 * child doing one step. A forked child shares the parent's pages and its
 * peak can count those it maps, so the parent stays small: the recryption
 * timings run in a child too, and the baseline child (rc_init only) shows
 * the fixed cost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <sodium.h>
#include <gmime/gmime.h>
#include <recrypt/recrypt.h>

#define LIST_ADDR "bench@lists.example.org"
#define SENDER_ADDR "sender@example.org"
#ifndef BOUND_KIB
#define BOUND_KIB (32 * 1024) /* the promised peak: 32 MiB */
#endif
#define BODY_DEVICES 100       /* entries in the rc_mail_write_recrypted_body figure */
#define SERVICE_DEVICES 3      /* entries in the 100 MiB recrypt step */
#define MAX_DEVICE_COUNTS 16
#define IO_BUF 65536

/* ---- options ---- */

static struct {
    unsigned long size_mib;
    size_t devices[MAX_DEVICE_COUNTS];
    size_t n_devices;
    int runs;
    int quick;
    size_t fanout; /* devices in table 3 */
} opt;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: recrypt-bench [--size MiB] [--devices N,N,...] [--runs K] [--fanout N]\n"
            "                     [--quick]\n"
            "\n"
            "Prints two tables:\n"
            "  1. recryption time, R = r*E per device, with and without the precomputed\n"
            "     table for E (rc_recryptor_new/rc_recryptor_compute), for each device\n"
            "     count N, median of K runs; and rc_mail_write_recrypted_body for a small\n"
            "     sealed message with %d device entries.\n"
            "  2. peak resident memory (ru_maxrss from wait4, KiB) of sealing,\n"
            "     recrypting (%d devices) and opening a message of --size MiB, each in a\n"
            "     forked child, against the 32 MiB bound; plus a baseline child that only\n"
            "     calls rc_init. The opened message is compared with the input.\n"
            "  3. split delivery of one 4 KiB post to --fanout devices, one per member:\n"
            "     unsealing the service shares, R = r*E on 1 and 2 threads, and one\n"
            "     body per member (what recrypt-fanout does, without store and SMTP).\n"
            "\n"
            "  --size MiB       message size for table 2 (default 100)\n"
            "  --devices LIST   device counts for table 1, comma-separated\n"
            "                   (default 1,10,100,1000)\n"
            "  --runs K         runs per figure in table 1, median reported (default 7)\n"
            "  --fanout N       devices in table 3 (default 100000)\n"
            "  --quick          smoke run: --size 8 --devices 1,10,100 --runs 3 --fanout 10000\n"
            "                   (explicit options given after --quick still apply)\n"
            "  --help           this text\n"
            "\n"
            "Temporary files go to a private directory under $TMPDIR (or /tmp), which\n"
            "is removed at the end; table 2 needs about 6 times --size of free space.\n"
            "Exit status: 0 all fine; 1 a peak over 32 MiB, a mismatch or a failed\n"
            "step; 2 bad usage.\n",
            BODY_DEVICES, SERVICE_DEVICES);
}

static int parse_devices(const char *s)
{
    opt.n_devices = 0;
    while (*s) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || errno || v == 0 || v > 1000000 || opt.n_devices == MAX_DEVICE_COUNTS)
            return -1;
        opt.devices[opt.n_devices++] = v;
        s = end;
        if (*s == ',' || *s == ' ')
            s++;
        else if (*s)
            return -1;
    }
    return opt.n_devices ? 0 : -1;
}

static int parse_args(int argc, char **argv)
{
    opt.size_mib = 100;
    opt.runs = 7;
    opt.fanout = 100000;
    parse_devices("1,10,100,1000");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--quick") == 0) {
            opt.quick = 1;
            opt.size_mib = 8;
            opt.runs = 3;
            opt.fanout = 10000;
            parse_devices("1,10,100");
        } else if (strcmp(a, "--size") == 0 && v) {
            char *end;
            errno = 0;
            opt.size_mib = strtoul(v, &end, 10);
            if (*end || errno || opt.size_mib == 0 || opt.size_mib > 65536)
                return -1;
            i++;
        } else if (strcmp(a, "--devices") == 0 && v) {
            if (parse_devices(v) != 0)
                return -1;
            i++;
        } else if (strcmp(a, "--fanout") == 0 && v) {
            char *end;
            errno = 0;
            unsigned long f = strtoul(v, &end, 10);
            if (*end || errno || f == 0 || f > 10000000)
                return -1;
            opt.fanout = f;
            i++;
        } else if (strcmp(a, "--runs") == 0 && v) {
            char *end;
            long r = strtol(v, &end, 10);
            if (*end || r < 1 || r > 1000)
                return -1;
            opt.runs = (int)r;
            i++;
        } else {
            return -1;
        }
    }
    return 0;
}

/* ---- small helpers ---- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t median(int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die_rc(const char *what, const rc_error *err)
{
    fprintf(stderr, "recrypt-bench: %s: %s (%s)\n", what, err->msg, rc_strerror(err->code));
}

/* A buffered file sink, as a real caller would use: the library hands its
 * output over in small pieces (one base64 line and its line break at a
 * time when sealing), so an unbuffered write(2) per piece would measure
 * system calls instead of the library. */
typedef struct {
    int fd;
    int bad;
    size_t n;
    uint8_t buf[IO_BUF];
} buf_sink;

static int buf_flush(buf_sink *b)
{
    if (!b->bad && b->n && rc_fd_sink(&b->fd, b->buf, b->n) != 0)
        b->bad = 1;
    b->n = 0;
    return b->bad ? -1 : 0;
}

static int buf_sink_fn(void *ctx, const uint8_t *p, size_t len)
{
    buf_sink *b = ctx;
    if (b->n + len > sizeof b->buf && buf_flush(b) != 0)
        return -1;
    if (len >= sizeof b->buf)
        return rc_fd_sink(&b->fd, p, len) == 0 ? 0 : (b->bad = 1, -1);
    memcpy(b->buf + b->n, p, len);
    b->n += len;
    return 0;
}

static buf_sink out_sink; /* each child uses it once */

static int null_sink(void *ctx, const uint8_t *p, size_t len)
{
    (void)p;
    *(size_t *)ctx += len;
    return 0;
}

static int write_all(int fd, const void *p, size_t len)
{
    return rc_fd_sink(&fd, p, len);
}

static off_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* ---- the temporary directory ---- */

static char tmpdir[PATH_MAX];
static const char *const tmp_names[] = {"small.eml", "small-sealed.eml", "input.eml",
                                        "sealed.eml", "recrypted.eml", "stage.bin",
                                        "opened.eml"};
static pid_t parent_pid;

static void tmp_path(char *out, size_t outlen, const char *name)
{
    snprintf(out, outlen, "%s/%s", tmpdir, name);
}

#define N_TMP (sizeof tmp_names / sizeof *tmp_names)
static char tmp_full[N_TMP][PATH_MAX + 64]; /* ready for the signal handler */

/* Parent only (children inherit the atexit and signal handlers). Uses only
 * async-signal-safe calls. */
static void cleanup(void)
{
    if (!tmpdir[0] || getpid() != parent_pid)
        return;
    for (size_t i = 0; i < N_TMP; i++)
        unlink(tmp_full[i]);
    rmdir(tmpdir);
    tmpdir[0] = '\0';
}

static void on_signal(int sig)
{
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    if (snprintf(tmpdir, sizeof tmpdir, "%s/recrypt-bench.XXXXXX", base) >= (int)sizeof tmpdir ||
        !mkdtemp(tmpdir)) {
        fprintf(stderr, "recrypt-bench: cannot create a temporary directory under %s: %s\n", base,
                strerror(errno));
        tmpdir[0] = '\0';
        return -1;
    }
    for (size_t i = 0; i < N_TMP; i++)
        tmp_path(tmp_full[i], sizeof tmp_full[i], tmp_names[i]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    return 0;
}

/* ---- keys and entries shared by every step (inherited by the children) ---- */

static struct {
    rc_list_secret *ls;
    rc_statement st;
    rc_device_secret *reader; /* device of entry 0: opens the message */
    rc_device_secret *sender; /* signs the post */
    rc_cert sender_cert;
    rc_device_entry *entries; /* BODY_DEVICES of them, entries[0] for reader */
    uint64_t now;
} k;

static int setup_keys(void)
{
    rc_error err;
    k.now = (uint64_t)time(NULL);
    k.ls = rc_secret_alloc(sizeof *k.ls);
    k.reader = rc_secret_alloc(sizeof *k.reader);
    k.sender = rc_secret_alloc(sizeof *k.sender);
    rc_device_secret *other = rc_secret_alloc(sizeof *other);
    k.entries = calloc(BODY_DEVICES, sizeof *k.entries);
    if (!k.ls || !k.reader || !k.sender || !other || !k.entries) {
        fprintf(stderr, "recrypt-bench: out of memory\n");
        return -1;
    }
    if (rc_list_generate(k.ls, LIST_ADDR, 1, NULL, &err) ||
        rc_statement_sign(&k.st, k.ls, k.now - 86400, 0, &err) ||
        rc_device_generate(k.reader, &err) || rc_device_generate(k.sender, &err) ||
        rc_cert_sign(&k.sender_cert, k.ls, SENDER_ADDR, k.sender->pub.sign_pk, &err)) {
        die_rc("key setup", &err);
        rc_secret_free(other);
        return -1;
    }
    for (size_t i = 0; i < BODY_DEVICES; i++) {
        char addr[64];
        const rc_device_secret *d = k.reader;
        if (i > 0) {
            if (rc_device_generate(other, &err)) {
                die_rc("device key", &err);
                rc_secret_free(other);
                return -1;
            }
            d = other;
        }
        snprintf(addr, sizeof addr, "member%zu@example.org", i);
        if (rc_entry_create(&k.entries[i], k.ls, &d->pub, addr, k.now - 86400, &err)) {
            die_rc("rc_entry_create", &err);
            rc_secret_free(other);
            return -1;
        }
    }
    rc_secret_free(other);
    return 0;
}

/* ---- generating the input message ---- */

static void rfc5322_date(char *out, size_t outlen, uint64_t t)
{
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d +0000", wd[tm.tm_wday], tm.tm_mday,
             mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* An RFC 5322 message of exactly `total` bytes (at least the header):
 * a plain header, then lines of 76 random base64 characters. */
static int make_message(const char *path, uint64_t total)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char date[64], hdr[1024];
    uint8_t rnd[16];
    char hex[33];
    rfc5322_date(date, sizeof date, k.now - 60);
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
    int hl = snprintf(hdr, sizeof hdr,
                      "From: Bench Sender <" SENDER_ADDR ">\n"
                      "To: " LIST_ADDR "\n"
                      "Subject: recrypt benchmark message\n"
                      "Date: %s\n"
                      "Message-ID: <bench-%s@example.org>\n"
                      "MIME-Version: 1.0\n"
                      "Content-Type: text/plain; charset=us-ascii\n"
                      "\n",
                      date, hex);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "recrypt-bench: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint64_t left = total > (uint64_t)hl ? total - (uint64_t)hl : 0;
    int bad = write_all(fd, hdr, (size_t)hl) != 0;
    char *buf = malloc(IO_BUF);
    uint8_t *raw = malloc(IO_BUF);
    if (!buf || !raw)
        bad = 1;
    while (!bad && left > 0) {
        size_t n = left < IO_BUF - IO_BUF % 77 ? (size_t)left : IO_BUF - IO_BUF % 77;
        randombytes_buf(raw, n);
        for (size_t i = 0; i < n; i++)
            buf[i] = (i % 77 == 76) ? '\n' : b64[raw[i] & 63];
        buf[n - 1] = '\n'; /* the message ends with a line break */
        bad = write_all(fd, buf, n) != 0;
        left -= n;
    }
    free(buf);
    free(raw);
    if (close(fd) != 0 || bad) {
        fprintf(stderr, "recrypt-bench: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

/* ---- running a step in a child ---- */

typedef struct {
    int status;       /* wait status */
    long maxrss_kib;  /* ru_maxrss */
    double elapsed_s; /* wall clock, fork to reap */
    double user_s;    /* CPU time in user mode */
    double sys_s;     /* CPU time in the kernel */
} child_result;

typedef int (*child_fn)(void *arg);

static int run_child(child_fn fn, void *arg, child_result *res)
{
    fflush(stdout);
    fflush(stderr);
    int64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "recrypt-bench: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore); /* a crashing step leaves no core file */
        int rc = fn(arg);
        fflush(stdout);
        fflush(stderr);
        _exit(rc ? 1 : 0);
    }
    struct rusage ru;
    int status;
    pid_t w;
    do
        w = wait4(pid, &status, 0, &ru);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
        fprintf(stderr, "recrypt-bench: wait4: %s\n", strerror(errno));
        return -1;
    }
    res->status = status;
    res->elapsed_s = (double)(now_ns() - t0) / 1e9;
    res->maxrss_kib = ru.ru_maxrss;
    res->user_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    res->sys_s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return 0;
}

/* "ok", or how the child ended. */
static const char *child_outcome(const child_result *res, char *buf, size_t len)
{
    if (WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0)
        return "ok";
    if (WIFSIGNALED(res->status))
        snprintf(buf, len, "CRASH (signal %d, %s)", WTERMSIG(res->status),
                 strsignal(WTERMSIG(res->status)));
    else
        snprintf(buf, len, "ERROR (exit status %d)", WEXITSTATUS(res->status));
    return buf;
}

static int child_ok(const child_result *res)
{
    return WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0;
}

/* ---- table 1: recryption time ---- */

static int bench_recrypt_child(void *arg)
{
    (void)arg;
    rc_error err;
    size_t maxn = 0;
    for (size_t i = 0; i < opt.n_devices; i++)
        if (opt.devices[i] > maxn)
            maxn = opt.devices[i];
    uint8_t(*r)[32] = malloc(maxn * 32);
    int64_t *setup = calloc((size_t)opt.runs, sizeof *setup);
    int64_t *comp = calloc((size_t)opt.runs, sizeof *comp);
    if (!r || !setup || !comp) {
        fprintf(stderr, "recrypt-bench: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < maxn; i++)
        do
            crypto_core_ristretto255_scalar_random(r[i]);
        while (sodium_is_zero(r[i], 32));

    /* Warm up (CPU clock, caches, lazy binding) before timing anything. */
    for (int mode = 0; mode < 2; mode++) {
        uint8_t t[32], E[32], R[32];
        rc_recryptor *rr = NULL;
        crypto_core_ristretto255_scalar_random(t);
        crypto_scalarmult_ristretto255_base(E, t);
        if (rc_recryptor_new(&rr, E, mode, &err)) {
            die_rc("rc_recryptor_new", &err);
            return -1;
        }
        for (int i = 0; i < 500; i++)
            rc_recryptor_compute(rr, r[i % maxn], R, &err);
        rc_recryptor_free(rr);
    }

    /* Both modes must give the same R (libdecaf's table vs libsodium). */
    {
        uint8_t t[32], E[32], R0[32], R1[32];
        rc_recryptor *a = NULL, *b = NULL;
        crypto_core_ristretto255_scalar_random(t);
        crypto_scalarmult_ristretto255_base(E, t);
        if (rc_recryptor_new(&a, E, 0, &err) || rc_recryptor_new(&b, E, 1, &err)) {
            die_rc("rc_recryptor_new", &err);
            return -1;
        }
        for (size_t i = 0; i < (maxn < 16 ? maxn : 16); i++)
            if (rc_recryptor_compute(a, r[i], R0, &err) ||
                rc_recryptor_compute(b, r[i], R1, &err) || memcmp(R0, R1, 32) != 0) {
                fprintf(stderr, "recrypt-bench: the two modes disagree on R = r*E\n");
                return -1;
            }
        rc_recryptor_free(a);
        rc_recryptor_free(b);
    }

    printf("1. Recryption, R = r*E per device (rc_recryptor_new + rc_recryptor_compute)\n");
    printf("   median of %d runs; setup = rc_recryptor_new (validates E; with the table\n",
           opt.runs);
    printf("   it also builds it); amortised = (setup + N computes) / N\n\n");
    printf("   %7s  %-8s  %9s  %11s  %10s  %11s  %s\n", "devices", "mode", "setup", "compute",
           "whole post", "amortised", "speedup");
    printf("   %7s  %-8s  %9s  %11s  %10s  %11s\n", "N", "", "us", "us/device", "ms",
           "us/device");
    for (size_t di = 0; di < opt.n_devices; di++) {
        size_t n = opt.devices[di];
        double amort[2] = {0, 0};
        for (int mode = 0; mode < 2; mode++) {
            for (int run = 0; run < opt.runs; run++) {
                uint8_t t[32], E[32], R[32];
                rc_recryptor *rr = NULL;
                crypto_core_ristretto255_scalar_random(t);
                crypto_scalarmult_ristretto255_base(E, t);
                int64_t t0 = now_ns();
                if (rc_recryptor_new(&rr, E, mode, &err)) {
                    die_rc("rc_recryptor_new", &err);
                    return -1;
                }
                int64_t t1 = now_ns();
                for (size_t i = 0; i < n; i++)
                    if (rc_recryptor_compute(rr, r[i], R, &err)) {
                        die_rc("rc_recryptor_compute", &err);
                        return -1;
                    }
                int64_t t2 = now_ns();
                rc_recryptor_free(rr);
                setup[run] = t1 - t0;
                comp[run] = t2 - t1;
            }
            double s_us = (double)median(setup, opt.runs) / 1e3;
            double c_us = (double)median(comp, opt.runs) / 1e3;
            amort[mode] = (s_us + c_us) / (double)n;
            printf("   %7zu  %-8s  %9.1f  %11.2f  %10.3f  %11.2f", n, mode ? "table" : "no table",
                   s_us, c_us / (double)n, (s_us + c_us) / 1e3, amort[mode]);
            if (mode == 1)
                printf("  %6.2fx", amort[0] / amort[1]);
            printf("\n");
        }
    }
    printf("   (speedup: amortised no-table time / amortised table time)\n\n");
    free(r);

    /* rc_mail_write_recrypted_body for a small sealed message. */
    char in_path[PATH_MAX + 64], sealed_path[PATH_MAX + 64];
    tmp_path(in_path, sizeof in_path, "small.eml");
    tmp_path(sealed_path, sizeof sealed_path, "small-sealed.eml");
    if (make_message(in_path, 4096) != 0)
        return -1;
    int in = open(in_path, O_RDONLY | O_CLOEXEC);
    int out = open(sealed_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (in < 0 || out < 0) {
        fprintf(stderr, "recrypt-bench: cannot open the small message files\n");
        return -1;
    }
    if (rc_mail_seal(in, &k.st, k.sender, &k.sender_cert, k.now, rc_fd_sink, &out, &err)) {
        die_rc("rc_mail_seal (small message)", &err);
        return -1;
    }
    close(in);
    rc_mail *m = NULL;
    if (rc_mail_parse(&m, out, &err)) {
        die_rc("rc_mail_parse (small message)", &err);
        return -1;
    }
    close(out);
    off_t sealed_size = file_size(sealed_path);
    printf("   rc_mail_write_recrypted_body: %d device entries, a sealed message of %lld bytes\n",
           BODY_DEVICES, (long long)sealed_size);
    printf("   (4 KiB plaintext), output to a null sink, median of %d runs\n\n", opt.runs);
    printf("   %-8s  %12s  %14s  %14s\n", "mode", "total ms", "us/device", "output bytes");
    for (int mode = 0; mode < 2; mode++) {
        size_t bytes = 0;
        for (int run = 0; run < opt.runs; run++) {
            size_t nw = 0;
            bytes = 0;
            int64_t t0 = now_ns();
            if (rc_mail_write_recrypted_body(m, k.entries, BODY_DEVICES, mode, null_sink, &bytes,
                                             &nw, &err)) {
                die_rc("rc_mail_write_recrypted_body", &err);
                return -1;
            }
            comp[run] = now_ns() - t0;
            if (nw != BODY_DEVICES) {
                fprintf(stderr, "recrypt-bench: %zu stanzas written, expected %d\n", nw,
                        BODY_DEVICES);
                return -1;
            }
        }
        double ms = (double)median(comp, opt.runs) / 1e6;
        printf("   %-8s  %12.3f  %14.2f  %14zu\n", mode ? "table" : "no table", ms,
               ms * 1e3 / BODY_DEVICES, bytes);
    }
    printf("\n");
    rc_mail_free(m);
    free(setup);
    free(comp);
    return 0;
}

/* ---- table 3: split delivery, one post for many devices ---- */

static int bench_fanout_child(void *arg)
{
    (void)arg;
    rc_error err;
    size_t n = opt.fanout;
    uint8_t svc_pk[32], svc_sk[32];
    crypto_box_keypair(svc_pk, svc_sk);
    rc_device_entry *e = calloc(n, sizeof *e);
    uint8_t(*sealed)[RC_SEALED_R_BYTES] = malloc(n * sizeof *sealed);
    uint8_t(*R)[RC_POINT_BYTES] = malloc(n * sizeof *R);
    if (!e || !sealed || !R) {
        fprintf(stderr, "recrypt-bench: out of memory for %zu devices\n", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const rc_device_entry *w = &k.entries[i % BODY_DEVICES];
        do
            crypto_core_ristretto255_scalar_random(e[i].r);
        while (sodium_is_zero(e[i].r, 32));
        crypto_box_seal(sealed[i], e[i].r, 32, svc_pk);
        memcpy(e[i].W, w->W, w->W_len);
        e[i].W_len = w->W_len;
        e[i].enrolled_at = k.now - 86400;
    }
    char sealed_path[PATH_MAX + 64];
    tmp_path(sealed_path, sizeof sealed_path, "small-sealed.eml");
    int fd = open(sealed_path, O_RDONLY | O_CLOEXEC);
    rc_mail *m = NULL;
    if (fd < 0 || rc_mail_parse(&m, fd, &err)) {
        fprintf(stderr, "recrypt-bench: cannot parse the small sealed message\n");
        return -1;
    }
    close(fd);
    const uint8_t *E = rc_mail_envelope(m)->E;

    printf("3. Split delivery: one post (4 KiB) for %zu devices, one device per member\n", n);
    printf("   (what recrypt-fanout does per post, without the store and SMTP)\n\n");
    int64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        uint8_t r[32];
        if (crypto_box_seal_open(r, sealed[i], RC_SEALED_R_BYTES, svc_pk, svc_sk) != 0) {
            fprintf(stderr, "recrypt-bench: a sealed r does not open\n");
            return -1;
        }
    }
    double unseal_s = (double)(now_ns() - t0) / 1e9;
    printf("   unseal the service shares r (crypto_box_seal_open, 1 thread)  %8.3f s  %6.1f us/device\n",
           unseal_s, unseal_s * 1e6 / (double)n);
    double one = 0;
    for (unsigned threads = 1; threads <= 2; threads++) {
        rc_recryptor *rr = NULL;
        t0 = now_ns();
        if (rc_recryptor_new(&rr, E, 1, &err) ||
            rc_recryptor_compute_all(rr, e, n, R, threads, NULL, &err)) {
            die_rc("rc_recryptor_compute_all", &err);
            return -1;
        }
        double s = (double)(now_ns() - t0) / 1e9;
        rc_recryptor_free(rr);
        if (threads == 1)
            one = s;
        printf("   R = r*E for all, table for E, %u thread%s (compute_all)       %8.3f s  %6.1f us/device%s",
               threads, threads > 1 ? "s" : " ", s, s * 1e6 / (double)n, threads > 1 ? "" : "\n");
        if (threads > 1)
            printf("  (%.2fx)\n", one / s);
    }
    size_t bytes = 0, stanzas = 0;
    t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        size_t nw = 0;
        if (rc_mail_write_body_stanzas(m, &e[i], (const uint8_t(*)[RC_POINT_BYTES])&R[i], 1,
                                       null_sink, &bytes, &nw, &err)) {
            die_rc("rc_mail_write_body_stanzas", &err);
            return -1;
        }
        stanzas += nw;
    }
    double body_s = (double)(now_ns() - t0) / 1e9;
    printf("   write one body per member (rc_mail_write_body_stanzas)        %8.3f s  %6.1f us/member\n",
           body_s, body_s * 1e6 / (double)n);
    printf("   bodies written: %zu bytes in all, %.0f bytes per copy (%zu stanzas)\n\n", bytes,
           (double)bytes / (double)n, stanzas);
    sodium_memzero(e, n * sizeof *e);
    free(e);
    free(sealed);
    free(R);
    rc_mail_free(m);
    return stanzas == n ? 0 : -1;
}

/* ---- table 2: the steps, each run in a child ---- */

static int step_baseline(void *arg)
{
    (void)arg;
    rc_error err;
    if (rc_init(&err)) {
        die_rc("rc_init", &err);
        return -1;
    }
    return 0;
}

static int open_pair(const char *in_name, const char *out_name, int *in, int *out)
{
    char ip[PATH_MAX + 64], op[PATH_MAX + 64];
    tmp_path(ip, sizeof ip, in_name);
    tmp_path(op, sizeof op, out_name);
    *in = open(ip, O_RDONLY | O_CLOEXEC);
    *out = open(op, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (*in < 0 || *out < 0) {
        fprintf(stderr, "recrypt-bench: cannot open %s or %s: %s\n", ip, op, strerror(errno));
        return -1;
    }
    return 0;
}

static int step_seal(void *arg)
{
    (void)arg;
    rc_error err;
    int in, out;
    if (open_pair("input.eml", "sealed.eml", &in, &out))
        return -1;
    out_sink.fd = out;
    if (rc_mail_seal(in, &k.st, k.sender, &k.sender_cert, k.now, buf_sink_fn, &out_sink, &err)) {
        die_rc("rc_mail_seal", &err);
        return -1;
    }
    if (buf_flush(&out_sink) != 0 || close(out) != 0) {
        fprintf(stderr, "recrypt-bench: cannot write the sealed message\n");
        return -1;
    }
    close(in);
    return 0;
}

static int step_recrypt(void *arg)
{
    (void)arg;
    rc_error err;
    int in, out;
    rc_mail *m = NULL;
    size_t nw = 0;
    if (open_pair("sealed.eml", "recrypted.eml", &in, &out))
        return -1;
    if (rc_mail_parse(&m, in, &err)) {
        die_rc("rc_mail_parse (service)", &err);
        return -1;
    }
    close(in);
    if (rc_mail_check_post(m, LIST_ADDR, 1, k.ls->A, (uint64_t)time(NULL), 3600, 300, &err)) {
        die_rc("rc_mail_check_post", &err);
        return -1;
    }
    out_sink.fd = out;
    if (rc_mail_write_header(m, buf_sink_fn, &out_sink, &err) ||
        rc_mail_write_recrypted_body(m, k.entries, SERVICE_DEVICES, 1, buf_sink_fn, &out_sink,
                                     &nw, &err)) {
        die_rc("recrypting", &err);
        return -1;
    }
    rc_mail_free(m);
    if (nw != SERVICE_DEVICES || buf_flush(&out_sink) != 0 || close(out) != 0) {
        fprintf(stderr, "recrypt-bench: recrypting wrote %zu stanzas (or failed to write)\n", nw);
        return -1;
    }
    return 0;
}

static int step_open(void *arg)
{
    (void)arg;
    rc_error err;
    int in, out;
    rc_mail *m = NULL;
    rc_open_result res;
    char sp[PATH_MAX + 64];
    if (open_pair("recrypted.eml", "opened.eml", &in, &out))
        return -1;
    tmp_path(sp, sizeof sp, "stage.bin");
    int stage = open(sp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (stage < 0) {
        fprintf(stderr, "recrypt-bench: cannot create %s: %s\n", sp, strerror(errno));
        return -1;
    }
    if (rc_mail_parse(&m, in, &err)) {
        die_rc("rc_mail_parse (device)", &err);
        return -1;
    }
    close(in);
    out_sink.fd = out;
    if (rc_mail_open(m, &k.st, k.reader, stage, buf_sink_fn, &out_sink, &res, &err)) {
        die_rc("rc_mail_open", &err);
        return -1;
    }
    sodium_memzero(&res.share, sizeof res.share);
    rc_mail_free(m);
    close(stage);
    if (buf_flush(&out_sink) != 0 || close(out) != 0) {
        fprintf(stderr, "recrypt-bench: cannot write the opened message\n");
        return -1;
    }
    if (!res.is_signed) {
        fprintf(stderr, "recrypt-bench: the opened message is not reported as signed\n");
        return -1;
    }
    return 0;
}

/* The opened message minus its first line (the Recrypt-Verdict field) must
 * equal the input byte for byte. Streaming, 64 KiB at a time. */
static int compare_output(char *verdict, size_t vlen)
{
    char ip[PATH_MAX + 64], op[PATH_MAX + 64];
    tmp_path(ip, sizeof ip, "input.eml");
    tmp_path(op, sizeof op, "opened.eml");
    FILE *a = fopen(ip, "rb"), *b = fopen(op, "rb");
    int ok = 0;
    verdict[0] = '\0';
    if (a && b) {
        size_t vl = 0;
        int c;
        while ((c = getc(b)) != EOF && c != '\n')
            if (vl + 1 < vlen)
                verdict[vl++] = (char)c;
        verdict[vl] = '\0';
        ok = c == '\n' && strncmp(verdict, RC_HDR_VERDICT ": ", strlen(RC_HDR_VERDICT) + 2) == 0;
        static char ba[IO_BUF], bb[IO_BUF];
        while (ok) {
            size_t na = fread(ba, 1, sizeof ba, a), nb = fread(bb, 1, sizeof bb, b);
            if (na != nb || memcmp(ba, bb, na) != 0)
                ok = 0;
            if (na < sizeof ba)
                break;
        }
        if (ferror(a) || ferror(b))
            ok = 0;
    }
    if (a)
        fclose(a);
    if (b)
        fclose(b);
    return ok ? 0 : -1;
}

static int bench_memory(void)
{
    const double mib = (double)opt.size_mib;
    char ip[PATH_MAX + 64], path[PATH_MAX + 64], how[64];
    struct rusage self;
    child_result base, r[3];
    int failed = 0, ran[3] = {0, 0, 0};
    static const char *const names[] = {"seal", "recrypt", "open"};
    static const child_fn fns[] = {step_seal, step_recrypt, step_open};
    static const char *const what[] = {
        "rc_mail_seal (signed post), input file -> file",
        "rc_mail_parse + check_post + write_header + write_recrypted_body (3 devices, table)",
        "rc_mail_parse + rc_mail_open (staging file), -> file"};

    tmp_path(ip, sizeof ip, "input.eml");
    printf("2. Peak memory for one message of %lu MiB (%llu bytes); each step runs in a\n",
           opt.size_mib, (unsigned long long)opt.size_mib << 20);
    printf("   forked child; peak = ru_maxrss from wait4 (KiB); bound 32 MiB = %d KiB\n\n",
           BOUND_KIB);
    int64_t t0 = now_ns();
    if (make_message(ip, (uint64_t)opt.size_mib << 20) != 0)
        return -1;
    printf("   input message written in %.2f s\n", (double)(now_ns() - t0) / 1e9);

    getrusage(RUSAGE_SELF, &self);
    if (run_child(step_baseline, NULL, &base) != 0 || !child_ok(&base)) {
        fprintf(stderr, "recrypt-bench: the baseline child failed\n");
        return -1;
    }
    printf("   bench parent's own peak so far: %ld KiB (not counted in the children's peaks,\n"
           "   except for the pages a forked child shares and touches)\n\n",
           self.ru_maxrss);

    /* Each step needs the previous one's output. */
    for (int i = 0; i < 3; i++) {
        if (i > 0 && !(ran[i - 1] && child_ok(&r[i - 1])))
            break;
        if (run_child(fns[i], NULL, &r[i]) != 0)
            return -1;
        ran[i] = 1;
    }

    printf("   %-8s  %9s  %9s  %9s  %7s  %6s  %6s  %s\n", "step", "peak KiB", "over base",
           "elapsed s", "MiB/s", "user s", "sys s", "result");
    printf("   %-8s  %9ld  %9s  %9.3f  %7s  %6.2f  %6.2f  %s\n", "baseline", base.maxrss_kib,
           "-", base.elapsed_s, "-", base.user_s, base.sys_s,
           base.maxrss_kib <= BOUND_KIB ? "PASS" : "FAIL");
    failed |= base.maxrss_kib > BOUND_KIB;
    for (int i = 0; i < 3; i++) {
        if (!ran[i]) {
            printf("   %-8s  %9s  %9s  %9s  %7s  %6s  %6s  %s\n", names[i], "-", "-", "-", "-",
                   "-", "-", "SKIPPED (an earlier step failed)");
            failed = 1;
            continue;
        }
        const char *outcome = child_outcome(&r[i], how, sizeof how);
        int pass = child_ok(&r[i]) && r[i].maxrss_kib <= BOUND_KIB;
        failed |= !pass;
        printf("   %-8s  %9ld  %9ld  %9.3f  %7.1f  %6.2f  %6.2f  %s\n", names[i],
               r[i].maxrss_kib, r[i].maxrss_kib - base.maxrss_kib, r[i].elapsed_s,
               mib / r[i].elapsed_s, r[i].user_s, r[i].sys_s,
               !child_ok(&r[i]) ? outcome : pass ? "PASS" : "FAIL");
    }
    printf("\n   baseline: fork + rc_init only, the fixed cost of a process\n");
    for (int i = 0; i < 3; i++)
        printf("   %-8s  %s\n", names[i], what[i]);
    printf("   MiB/s = plaintext message size / elapsed wall time of the step; result =\n"
           "   peak within the 32 MiB bound (PASS) or not (FAIL)\n\n");

    static const char *const files[] = {"input.eml", "sealed.eml", "recrypted.eml", "stage.bin",
                                        "opened.eml"};
    printf("   file sizes (bytes):");
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        tmp_path(path, sizeof path, files[i]);
        off_t sz = file_size(path);
        if (sz >= 0)
            printf(" %s %lld", files[i], (long long)sz);
    }
    printf("\n");

    char verdict[512];
    if (!(ran[2] && child_ok(&r[2]))) {
        printf("   output check: not done (the message was not opened): FAIL\n");
        failed = 1;
    } else if (compare_output(verdict, sizeof verdict) == 0) {
        printf("   output check: opened = input + 1 header line, byte for byte: OK\n"
               "     %s\n", verdict);
    } else {
        printf("   output check: the opened message minus its first line differs from the "
               "input: FAIL\n");
        failed = 1;
    }
    printf("\nRESULT: %s\n", failed ? "FAIL (see above)"
                                    : "PASS (every peak within 32 MiB, output identical)");
    return failed ? 1 : 0;
}

/* ---- main ---- */

static void print_machine(void)
{
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    c += 1 + (c[1] == ' ');
                    c[strcspn(c, "\n")] = '\0';
                    snprintf(model, sizeof model, "%s", c);
                }
                break;
            }
        fclose(f);
    }
    printf("recrypt-bench: librecrypt %s, libsodium %s, GMime %u.%u.%u\n", RC_VERSION_STRING,
           sodium_version_string(), gmime_major_version, gmime_minor_version,
           gmime_micro_version);
    printf("machine: %s, %ld online CPUs\n", model, sysconf(_SC_NPROCESSORS_ONLN));
    printf("options: --size %lu --runs %d --devices ", opt.size_mib, opt.runs);
    for (size_t i = 0; i < opt.n_devices; i++)
        printf("%zu%s", opt.devices[i], i + 1 < opt.n_devices ? "," : "");
    printf("%s\n\n", opt.quick ? " (--quick)" : "");
}

int main(int argc, char **argv)
{
    rc_error err;
    if (parse_args(argc, argv) != 0) {
        usage(stderr);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    parent_pid = getpid();
    if (rc_init(&err)) {
        die_rc("rc_init", &err);
        return 1;
    }
    print_machine();
    if (make_tmpdir() != 0)
        return 1;
    atexit(cleanup);
    if (setup_keys() != 0)
        return 1;

    child_result cr = {0};
    if (run_child(bench_recrypt_child, NULL, &cr) != 0 || !child_ok(&cr)) {
        char how[64];
        fprintf(stderr, "recrypt-bench: the recryption timing failed: %s\n",
                child_outcome(&cr, how, sizeof how));
        return 1;
    }
    if (run_child(bench_fanout_child, NULL, &cr) != 0 || !child_ok(&cr)) {
        char how[64];
        fprintf(stderr, "recrypt-bench: the split delivery figures failed: %s\n",
                child_outcome(&cr, how, sizeof how));
        return 1;
    }
    printf("   (peak memory of that child: %ld KiB)\n\n", cr.maxrss_kib);
    int rc = bench_memory();
    if (rc < 0)
        fprintf(stderr, "recrypt-bench: the memory measurement failed\n");
    return rc ? 1 : 0;
}
