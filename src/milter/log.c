/*
 * log.c - see log.h.
 */
#include <errno.h>
#include <paths.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include "log.h"

/* Set once at start-up (and on reload, before threads read it again). */
static int log_to_syslog, log_level = LOG_LEVEL_INFO;
static const char *log_name = "recrypt-milter";

void log_set_name(const char *name)
{
    log_name = name;
}

/* Whether a syslog daemon listens on /dev/log. syslog(3) drops every
 * line silently when nothing does (a container, a chroot, a machine
 * without rsyslog or journald), so the daemon checks first. */
static int syslog_reachable(char *why, size_t len)
{
    static const int types[] = {SOCK_DGRAM, SOCK_STREAM};
    int saved = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s", _PATH_LOG);
        int ok = connect(fd, (const struct sockaddr *)&a, sizeof a) == 0;
        saved = errno;
        close(fd);
        if (ok)
            return 1;
        if (saved != EPROTOTYPE)
            break;
    }
    snprintf(why, len, "%s", strerror(saved));
    return 0;
}

void log_setup(int use_syslog, int facility, int level)
{
    static int warned;
    if (log_to_syslog)
        closelog();
    log_level = level;
    char why[128];
    if (use_syslog && !syslog_reachable(why, sizeof why)) {
        log_to_syslog = 0;
        if (!warned++)
            log_msg(LOG_LEVEL_WARNING, NULL,
                    "Syslog is on but nothing listens on %s (%s): logging to standard error "
                    "instead",
                    _PATH_LOG, why);
        return;
    }
    log_to_syslog = use_syslog;
    if (use_syslog)
        openlog(log_name, LOG_PID, facility);
}

int log_uses_syslog(void)
{
    return log_to_syslog;
}

void log_set_level(int level)
{
    log_level = level;
}

void log_msg(int level, const char *qid, const char *fmt, ...)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};
    static const char *const name[] = {"error", "warning", "notice", "info", "debug"};
    if (level > log_level)
        return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (log_to_syslog) {
        syslog(prio[level], "%s%s%s", qid ? qid : "", qid ? ": " : "", text);
    } else {
        char ts[32];
        time_t now = time(NULL);
        struct tm tm;
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
        fprintf(stderr, "%s %s %s: %s%s%s\n", ts, log_name, name[level], qid ? qid : "",
                qid ? ": " : "", text);
    }
}

int log_fatal(int code, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (log_to_syslog)
        log_msg(LOG_LEVEL_ERROR, NULL, "%s", text);
    fprintf(stderr, "%s: %s\n", log_name, text);
    return code;
}
