/*
 * log.c - see log.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>
#include "log.h"

/* Set once at start-up (and on reload, before threads read it again). */
static int log_to_syslog, log_level = LOG_LEVEL_INFO;
static const char *log_name = "recrypt-milter";

void log_set_name(const char *name)
{
    log_name = name;
}

void log_setup(int use_syslog, int facility, int level)
{
    if (log_to_syslog)
        closelog();
    log_to_syslog = use_syslog;
    log_level = level;
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
