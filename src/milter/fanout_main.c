/*
 * recrypt-fanout - split delivery's second step, run by the MTA for each
 * post the milter checked: Postfix pipe(8) on the FanoutDomain transport,
 * Sendmail a prog mailer. Reads the queued post on stdin, builds one copy
 * per member and submits the copies to FanoutRelay (fanout.h has the
 * design, recrypt-fanout(8) and docs/admin-guide.md §5.6 the set-up).
 *
 * Order: read the config (the milter's); no core dumps (the process
 * unseals service shares); open the service key; become UserID when run
 * as root; open the store; stage stdin in a private, unlinked file; run.
 * Exit codes are sysexits(3), as the MTA reads them: 0 done, 75 try again
 * later, anything else bounces the post to its sender with what this
 * program printed on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include "fanout.h"
#include "log.h"
#include "privileges.h"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: recrypt-fanout [-c CONFIG] [-Q QUEUEID] RECIPIENT < POST\n"
"\n"
"Split delivery of the recrypt gateway: the MTA runs this for each post that\n"
"recrypt-milter checked and addressed to RECIPIENT (TOKEN@FanoutDomain). It\n"
"builds one copy per member, carrying only that member's devices' stanzas,\n"
"and submits each copy over SMTP to FanoutRelay (a listener without milters).\n"
"Copies already queued by an earlier run are not sent again.\n"
"\n"
"  -c CONFIG   recrypt-milter's configuration (default " CONFIG_DEFAULT_PATH ")\n"
"  -Q QUEUEID  the MTA's queue id, for the log lines\n"
"  -V          version\n"
"\n"
"Postfix master.cf (see recrypt-fanout(8)):\n"
"  recrypt-fanout unix - n n - 4 pipe\n"
"    flags=q user=recrypt argv=/usr/sbin/recrypt-fanout -Q ${queue_id} ${recipient}\n"
"Exit: 0 done; 75 the MTA retries later; other codes bounce the post to its sender.\n");
}

/* stdin into a private file in dir, unlinked at once: the post must be
 * read more than once (parse, then the data part for every copy). */
static int stage_stdin(const char *dir, int *out, rc_error *err)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/recrypt-fanout.XXXXXX", dir);
    mode_t old = umask(077);
    int fd = mkstemp(path);
    umask(old);
    if (fd < 0)
        return rc_error_set(err, RC_E_IO, "cannot create a file in %s: %s", dir, strerror(errno));
    unlink(path);
    static char buf[65536];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close(fd);
            return rc_error_set(err, RC_E_IO, "cannot read the post: %s", strerror(errno));
        }
        if (n == 0)
            break;
        for (ssize_t o = 0; o < n;) {
            ssize_t w = write(fd, buf + o, (size_t)(n - o));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                close(fd);
                return rc_error_set(err, RC_E_IO, "cannot stage the post in %s: %s", dir,
                                    strerror(errno));
            }
            o += w;
        }
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return rc_error_set(err, RC_E_IO, "cannot rewind the staged post");
    }
    *out = fd;
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_path = CONFIG_DEFAULT_PATH, *queue_id = NULL;
    config cfg;
    rc_error err;
    int c;
    while ((c = getopt(argc, argv, "c:Q:Vh")) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'Q': queue_id = optarg; break;
        case 'V': printf("recrypt-fanout %s\n", RC_VERSION_STRING); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *recipient = argv[optind];
    log_set_name("recrypt-fanout");
    /* Everything that can be fixed and retried is EX_TEMPFAIL: a config
     * being edited, a store being moved, a key not readable yet. */
    if (rc_init(&err) != 0 || config_load(&cfg, config_path, &err) != 0)
        return log_fatal(EX_TEMPFAIL, "%s", err.msg);
    log_setup(cfg.syslog, cfg.syslog_facility, cfg.log_level);
    if (!cfg.fanout_domain[0])
        return log_fatal(EX_TEMPFAIL, "%s sets no FanoutDomain: split delivery is off, so the MTA "
                                  "should not route anything here",
                     config_path);

    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    rc_service_secret *svc = rc_secret_alloc(sizeof *svc);
    char *s = rc_secret_alloc(RC_KEYSTR_MAX);
    if (!svc || !s)
        return log_fatal(EX_TEMPFAIL, "out of memory");
    int rc = rc_keyfile_read(cfg.key_file, s, RC_KEYSTR_MAX, &err);
    if (rc == 0)
        rc = rc_service_secret_decode(svc, s, &err);
    rc_secret_free(s);
    if (rc)
        return log_fatal(EX_TEMPFAIL, "%s", err.msg);
    if (geteuid() == 0 && cfg.user[0] && drop_privileges(cfg.user, &err) != 0)
        return log_fatal(EX_TEMPFAIL, "%s", err.msg);

    rc_store *store = NULL;
    rc_store_reader *rd = NULL;
    uint8_t mark[32];
    if (rc_store_open(&store, cfg.database, cfg.map_size, RC_STORE_NO_MIGRATE, &err) != 0 ||
        rc_store_reader_begin(store, &rd, &err) != 0 || rc_store_mark_secret(rd, mark, &err) != 0) {
        rc_store_reader_end(rd);
        rc_store_close(store);
        return log_fatal(EX_TEMPFAIL, "store %s: %s", cfg.database, err.msg);
    }
    rc_store_reader_end(rd);
    rc_store_set_threads(store, fanout_threads(&cfg));

    int fd = -1;
    if (stage_stdin(cfg.temp_dir, &fd, &err) != 0) {
        rc_store_close(store);
        return log_fatal(EX_TEMPFAIL, "%s", err.msg);
    }
    fanout_job job = {
        .cfg = &cfg,
        .store = store,
        .svc = svc,
        .mark_secret = mark,
        .recipient = recipient,
        .queue_id = queue_id,
        .fd = fd,
        .now = (uint64_t)time(NULL),
    };
    fanout_result res;
    char why[600];
    int code = fanout_run(&job, &res, why, sizeof why);
    if (code != 0)
        fprintf(stderr, "recrypt-fanout: %s\n", why);
    close(fd);
    sodium_memzero(mark, sizeof mark);
    rc_secret_free(svc);
    rc_store_close(store);
    return code;
}
