/*
 * recrypt-milter - the recrypt gateway daemon for Postfix and Sendmail.
 *
 * Start-up, in order (Postfix's and OpenDKIM's order): read the config;
 * no core dumps; open the service key while still privileged; drop to
 * UserID; open the store as that user; set up the socket (stale unix socket removed after
 * a failed connect); fork unless -f; pid file; signals in a dedicated
 * thread (SIGTERM/SIGINT stop, SIGUSR1 reloads the config, SIGUSR2 logs
 * counters; SIGHUP is left alone: engine.c ends smfi_main on it, as
 * libmilter did), which
 * also logs the counters every StatsInterval seconds (deadlines on the
 * monotonic clock, so that signals never postpone them); run.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include "log.h"
#include "milter.h"
#include "privileges.h"
#include "receipt.h"

static daemon_ctx D;
static const char *config_path = CONFIG_DEFAULT_PATH;
static int foreground;

static void usage(FILE *f)
{
    fprintf(f,
"Usage: recrypt-milter [-c CONFIG] [-f] [-n] [-p SOCKET] [-P PIDFILE] [-u USER[:GROUP]]\n"
"       recrypt-milter [-c CONFIG] -r RECIPIENT [-Q QUEUEID]   (the MTA's receipt transport)\n"
"\n"
"The recrypt gateway: recrypts encrypted posts to protected lists for every\n"
"member device, without being able to read them. Postfix: smtpd_milters;\n"
"Sendmail: INPUT_MAIL_FILTER. See recrypt-milter(8) and docs/admin-guide.md.\n"
"\n"
"  -c CONFIG   configuration file (default " CONFIG_DEFAULT_PATH ")\n"
"  -f          stay in the foreground\n"
"  -n          check the configuration and the store, then exit\n"
"  -p SOCKET   unix:/path or inet:port@host (overrides Socket)\n"
"  -P PIDFILE  pid file (overrides PidFile)\n"
"  -u USER     run as USER[:GROUP] (overrides UserID); started as root, the daemon\n"
"              needs UserID or -u (-u root runs it as root on purpose)\n"
"  -r RCPT     record the MTA's delivery receipt RCPT (TOKEN@ReceiptDomain) and exit;\n"
"              run by the receipt transport (Postfix pipe(8), Sendmail prog mailer)\n"
"  -Q QUEUEID  with -r: the MTA's queue id, for the log line\n"
"  -V          version\n"
"Signals: SIGTERM stops, SIGUSR1 reloads the configuration, SIGUSR2 logs counters\n"
"(also logged every StatsInterval seconds, default 3600; 0 turns that off).\n");
}

/* The service key: opened while still privileged (it is 0600, the
 * store's owner's or root's). */
static int open_key(const config *c, rc_error *err)
{
    char *s = rc_secret_alloc(RC_KEYSTR_MAX);
    D.svc = rc_secret_alloc(sizeof *D.svc);
    if (!s || !D.svc)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    int rc = rc_keyfile_read(c->key_file, s, RC_KEYSTR_MAX, err);
    if (rc == 0)
        rc = rc_service_secret_decode(D.svc, s, err);
    rc_secret_free(s);
    return rc;
}

/* The store: opened as the service user, so that a lock file LMDB creates
 * belongs to that user, not to root. */
static int open_store(const config *c, unsigned flags, rc_error *err)
{
    int rc = rc_store_open(&D.store, c->database, c->map_size, flags, err);
    if (rc)
        return rc;
    rc_store_reader *rd;
    if ((rc = rc_store_reader_begin(D.store, &rd, err)) == 0) {
        rc = rc_store_mark_secret(rd, D.mark_secret, err);
        rc_store_reader_end(rd);
    }
    return rc;
}

/* unix:/path or local:/path or /path -> path; NULL for inet sockets. */
static const char *unix_path(const char *sock)
{
    if (!strncmp(sock, "unix:", 5))
        return sock + 5;
    if (!strncmp(sock, "local:", 6))
        return sock + 6;
    return sock[0] == '/' ? sock : NULL;
}

/* A unix socket left by a dead daemon is removed; a live one is an error. */
static int stale_socket(const char *path, rc_error *err)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return 0;
    if (!S_ISSOCK(sb.st_mode))
        return rc_error_set(err, RC_E_EXISTS, "%s exists and is not a socket", path);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return rc_error_set(err, RC_E_INVALID, "socket path %s is too long", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int live = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    if (live)
        return rc_error_set(err, RC_E_EXISTS, "another milter is listening on %s", path);
    if (unlink(path) != 0)
        return rc_error_set(err, RC_E_IO, "cannot remove the stale socket %s: %s", path,
                            strerror(errno));
    log_msg(LOG_LEVEL_WARNING, NULL, "removed stale socket %s", path);
    return 0;
}

#define NS_PER_S 1000000000LL

/* Nanoseconds on the monotonic clock (steps of the wall clock do not move it). */
static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* The signals, and the periodic counters line every StatsInterval seconds.
 * The deadline is fixed when set and moves only by whole periods, so that
 * signals in between never postpone the line; a reload that changes
 * StatsInterval starts the new period from the reload. Only this thread
 * writes D.cfg once it runs, so it reads it without the lock. */
static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    long long period = (long long)D.cfg.stats_interval * NS_PER_S; /* 0: none */
    long long next = period ? mono_ns() + period : 0;
    for (;;) {
        int sig;
        if (period) {
            long long now = mono_ns();
            if (now >= next) {
                milter_log_counters();
                next += period;
                if (next <= now) /* a whole period late (a stopped process): afresh */
                    next = now + period;
            }
            long long left = next - now;
            struct timespec ts = {.tv_sec = (time_t)(left / NS_PER_S),
                                  .tv_nsec = (long)(left % NS_PER_S)};
            sig = sigtimedwait(set, NULL, &ts);
        } else {
            sig = sigwaitinfo(set, NULL);
        }
        if (sig < 0) /* EAGAIN: the deadline; EINTR: look again */
            continue;
        if (sig == SIGUSR1) {
            config c;
            rc_error err;
            if (config_load(&c, config_path, &err) != 0) {
                log_msg(LOG_LEVEL_WARNING, NULL, "reload refused, old configuration kept: %s",
                        err.msg);
                continue;
            }
            pthread_rwlock_wrlock(&D.lock);
            /* What a running daemon cannot change keeps its old value. */
            if (strcmp(c.socket, D.cfg.socket) || strcmp(c.database, D.cfg.database) ||
                strcmp(c.user, D.cfg.user) || strcmp(c.pid_file, D.cfg.pid_file) ||
                strcmp(c.key_file, D.cfg.key_file) || c.map_size != D.cfg.map_size ||
                c.umask != D.cfg.umask)
                log_msg(LOG_LEVEL_WARNING, NULL,
                        "Socket, Database, KeyFile, UserID, PidFile, UMask and MapSize change "
                        "only on restart: their old values are kept");
            memcpy(c.socket, D.cfg.socket, sizeof c.socket);
            memcpy(c.database, D.cfg.database, sizeof c.database);
            memcpy(c.user, D.cfg.user, sizeof c.user);
            memcpy(c.pid_file, D.cfg.pid_file, sizeof c.pid_file);
            memcpy(c.key_file, D.cfg.key_file, sizeof c.key_file);
            c.map_size = D.cfg.map_size;
            c.umask = D.cfg.umask;
            int relog = c.syslog != D.cfg.syslog || c.syslog_facility != D.cfg.syslog_facility;
            if ((long long)c.stats_interval * NS_PER_S != period) {
                /* A new period counts from now; an unchanged one keeps its deadline. */
                period = (long long)c.stats_interval * NS_PER_S;
                next = period ? mono_ns() + period : 0;
            }
            D.cfg = c;
            pthread_rwlock_unlock(&D.lock);
            if (relog)
                log_setup(c.syslog || !foreground, c.syslog_facility, c.log_level);
            log_set_level(c.log_level);
            log_msg(LOG_LEVEL_NOTICE, NULL, "configuration reloaded from %s", config_path);
        } else if (sig == SIGUSR2) {
            milter_log_counters();
        } else {
            log_msg(LOG_LEVEL_NOTICE, NULL, "stopping on signal %d", sig);
            smfi_stop();
            return NULL;
        }
    }
}

/* Started as root, the daemon needs a user to become: UserID, or -u
 * (-u root keeps root on purpose). NULL when that holds, else the error. */
static const char *root_refusal(const config *c)
{
    if (geteuid() != 0 || c->user[0])
        return NULL;
    return "refusing to run as root without UserID: set UserID (such as UserID recrypt) in "
           "the configuration, or give -u root to run as root on purpose";
}

static int check_only(const config *c)
{
    rc_error err;
    /* As a start does: the key as root, the store as the service user
     * (so a store that user cannot write fails here, and a lock file LMDB
     * creates is not root's), read-write but without migrating: a check
     * changes nothing, an older schema is only reported. */
    if (open_key(c, &err) != 0 || (c->user[0] && drop_privileges(c->user, &err) != 0) ||
        open_store(c, RC_STORE_NO_MIGRATE, &err) != 0)
        return log_fatal(EX_CONFIG, "%s", err.msg);
    struct stat sb;
    if (stat(c->temp_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return log_fatal(EX_CONFIG, "TemporaryDirectory %s is not a directory", c->temp_dir);
    if (root_refusal(c))
        return log_fatal(EX_CONFIG, "%s", root_refusal(c));
    uint32_t schema = rc_store_found_schema(D.store);
    if (schema < RC_STORE_SCHEMA_VERSION)
        printf("recrypt-milter: store %s has schema %u; recrypt-milter will migrate it to "
               "schema %u when it starts (one transaction; back up the store first)\n",
               c->database, schema, RC_STORE_SCHEMA_VERSION);
    if (c->fanout_domain[0])
        printf("recrypt-milter: split delivery: checked posts go to @%s, which the MTA must route "
               "to recrypt-fanout; it submits the copies to %s, which must be a listener without "
               "this milter (admin guide, section 5.6)\n",
               c->fanout_domain, c->fanout_relay);
    if (c->receipt_domain[0])
        printf("recrypt-milter: delivery receipts to @%s: the MTA must route that domain to "
               "recrypt-milter -r (admin guide, section 5.5)\n",
               c->receipt_domain);
    else if (!c->fanout_domain[0])
        printf("recrypt-milter: warning: no ReceiptDomain: a post handed to the MTA stays "
               "pending, so a replay of it reaches its first recipients again (admin guide, "
               "section 5.5)\n");
    printf("recrypt-milter: configuration %s and store %s are usable\n", config_path, c->database);
    return 0;
}

int main(int argc, char **argv)
{
    const char *opt_sock = NULL, *opt_pid = NULL, *opt_user = NULL, *receipt = NULL,
               *queue_id = NULL;
    int check = 0, c;
    rc_error err;
    while ((c = getopt(argc, argv, "c:fnp:P:u:r:Q:Vh")) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'f': foreground = 1; break;
        case 'n': check = 1; break;
        case 'p': opt_sock = optarg; break;
        case 'P': opt_pid = optarg; break;
        case 'u': opt_user = optarg; break;
        case 'r': receipt = optarg; break;
        case 'Q': queue_id = optarg; break;
        case 'V': printf("recrypt-milter %s\n", RC_VERSION_STRING); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (optind < argc || (queue_id && !receipt) || (receipt && (check || foreground))) {
        usage(stderr);
        return EX_USAGE;
    }
    if (receipt) {
        /* The MTA runs this for each receipt: every failure it can retry
         * is EX_TEMPFAIL (a config being edited, a store being moved). */
        if (rc_init(&err) != 0 || config_load(&D.cfg, config_path, &err) != 0)
            return log_fatal(EX_TEMPFAIL, "%s", err.msg);
        if (opt_user)
            snprintf(D.cfg.user, sizeof D.cfg.user, "%s", opt_user);
        log_setup(D.cfg.syslog, D.cfg.syslog_facility, D.cfg.log_level);
        /* Run by root (a prog mailer without U=): become UserID first, so
         * that the store's files stay that user's. */
        if (geteuid() == 0 && D.cfg.user[0] && drop_privileges(D.cfg.user, &err) != 0)
            return log_fatal(EX_TEMPFAIL, "%s", err.msg);
        return receipt_run(&D.cfg, receipt, queue_id);
    }
    if (rc_init(&err) != 0)
        return log_fatal(EX_SOFTWARE, "%s", err.msg);
    if (config_load(&D.cfg, config_path, &err) != 0)
        return log_fatal(EX_CONFIG, "%s", err.msg);
    if (opt_sock)
        snprintf(D.cfg.socket, sizeof D.cfg.socket, "%s", opt_sock);
    if (opt_pid)
        snprintf(D.cfg.pid_file, sizeof D.cfg.pid_file, "%s", opt_pid);
    if (opt_user)
        snprintf(D.cfg.user, sizeof D.cfg.user, "%s", opt_user);
    if (check)
        return check_only(&D.cfg);
    if (root_refusal(&D.cfg))
        return log_fatal(EX_CONFIG, "%s", root_refusal(&D.cfg));
    log_setup(D.cfg.syslog || !foreground, D.cfg.syslog_facility, D.cfg.log_level);

    /* No core files, not dumpable: the process holds the service key. */
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    if (open_key(&D.cfg, &err) != 0)
        return log_fatal(EX_CONFIG, "%s", err.msg);
    if (D.cfg.user[0] && drop_privileges(D.cfg.user, &err) != 0)
        return log_fatal(EX_CONFIG, "%s", err.msg);
    if (open_store(&D.cfg, 0, &err) != 0)
        return log_fatal(EX_CONFIG, "%s", err.msg);
    if (rc_store_found_schema(D.store) < RC_STORE_SCHEMA_VERSION)
        log_msg(LOG_LEVEL_NOTICE, NULL, "store %s migrated from schema %u to %u", D.cfg.database,
                rc_store_found_schema(D.store), RC_STORE_SCHEMA_VERSION);
    umask(D.cfg.umask);

    const char *path = unix_path(D.cfg.socket);
    if (path && stale_socket(path, &err) != 0)
        return log_fatal(err.code == RC_E_EXISTS && strstr(err.msg, "listening") ? EX_TEMPFAIL
                                                                           : EX_CONFIG,
                     "%s", err.msg);
    if (smfi_setconn(D.cfg.socket) != MI_SUCCESS)
        return log_fatal(EX_CONFIG, "Socket %s is not usable", D.cfg.socket);
    pthread_rwlock_init(&D.lock, NULL);
    milter_set_daemon(&D);
    if (smfi_register(*milter_description()) != MI_SUCCESS)
        return log_fatal(EX_SOFTWARE, "smfi_register failed");
    if (smfi_opensocket(1) != MI_SUCCESS)
        return log_fatal(EX_TEMPFAIL, "cannot open the socket %s", D.cfg.socket);

    if (!foreground) {
        /* An LMDB environment must not cross a fork (the child would not
         * hold the lock file's locks): close the store, open it again in
         * the daemon. Opening it before made start-up errors reach the
         * admin's terminal and exit status. */
        rc_store_close(D.store);
        D.store = NULL;
        pid_t pid = fork();
        if (pid < 0)
            return log_fatal(EX_OSERR, "fork: %s", strerror(errno));
        if (pid > 0)
            _exit(0);
        if (open_store(&D.cfg, 0, &err) != 0)
            return log_fatal(EX_CONFIG, "%s", err.msg);
        setsid();
        /* Standard error stays open when the log goes there (no syslog
         * daemon: log_setup said so): the init script sends it to a file. */
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            if (log_uses_syslog())
                dup2(null, 2);
            if (null > 2)
                close(null);
        }
    }
    if (D.cfg.pid_file[0]) {
        FILE *f = fopen(D.cfg.pid_file, "w");
        if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0)
            return log_fatal(EX_CANTCREAT, "cannot write the pid file %s", D.cfg.pid_file);
    }

    /* Signals go to one thread; the milter threads never see them. */
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t th;
    pthread_create(&th, NULL, signal_thread, &set);
    pthread_detach(th);

    log_msg(LOG_LEVEL_NOTICE, NULL, "recrypt-milter %s listening on %s, store %s",
            RC_VERSION_STRING, D.cfg.socket, D.cfg.database);
    if (!D.cfg.receipt_domain[0] && !D.cfg.fanout_domain[0])
        log_msg(LOG_LEVEL_WARNING, NULL,
                "no ReceiptDomain: posts handed to the MTA stay pending in the replay cache, so "
                "a replay of one reaches its first recipients again (admin guide, section 5.5)");
    int rc = smfi_main();
    milter_log_counters();
    if (D.cfg.pid_file[0])
        unlink(D.cfg.pid_file);
    /* The unix socket: ours to remove (engine.c leaves it, as libmilter
     * did when running as root). */
    struct stat sb;
    if (path && lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
        unlink(path);
    rc_store_close(D.store);
    rc_secret_free(D.svc);
    sodium_memzero(D.mark_secret, sizeof D.mark_secret);
    log_msg(LOG_LEVEL_NOTICE, NULL, "stopped");
    return rc == MI_SUCCESS ? 0 : EX_SOFTWARE;
}
