/*
 * config.c - see config.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include "config.h"

void config_defaults(config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->temp_dir, sizeof c->temp_dir, "/tmp");
    c->syslog = 1;
    c->syslog_facility = LOG_MAIL;
    c->log_level = LOG_LEVEL_INFO;
    c->umask = 007;
    c->max_message_size = 50ULL << 20;
    c->plaintext_policy = PLAINTEXT_REJECT;
    c->posting_policy = POSTING_OPEN;
    c->from_rewrite = 1; /* the body is always replaced: DKIM never survives */
    c->freshness_window = 7 * 86400;
    c->future_skew = 3600;
    c->max_fanout = 100000;
    c->map_size = (size_t)1 << 30;
    snprintf(c->fanout_relay, sizeof c->fanout_relay, "127.0.0.1:10026");
    c->fanout_connections = 4;
    c->stats_interval = 3600;
}

static int parse_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "on"))
        *out = 1;
    else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0") ||
             !strcasecmp(v, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

static int parse_u64(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*v))
        return -1;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end)
        return -1;
    *out = n;
    return 0;
}

/* Seconds, or a number with s, m, h or d. */
static int parse_duration(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*v))
        return -1;
    unsigned long long n = strtoull(v, &end, 10);
    uint64_t mult = 1;
    if (errno)
        return -1;
    if (*end) {
        if (end[1])
            return -1;
        switch (*end) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        default: return -1;
        }
    }
    if (n > UINT64_MAX / mult)
        return -1;
    *out = n * mult;
    return 0;
}

static int copy(char *dst, size_t cap, const char *v)
{
    if (strlen(v) >= cap)
        return -1;
    strcpy(dst, v);
    return 0;
}

/* A domain name the MTA routes to one of recrypt's transports (receipts,
 * fan-out): letters, digits, '-' and at least one dot; stored lower case. */
static int parse_domain(const char *v, char out[254])
{
    size_t len = strlen(v), dots = 0;
    if (len == 0 || len > 253 || v[0] == '.' || v[len - 1] == '.' || strstr(v, ".."))
        return -1;
    for (const char *p = v; *p; p++) {
        if (*p == '.')
            dots++;
        else if (!isalnum((unsigned char)*p) && *p != '-')
            return -1;
    }
    if (!dots)
        return -1;
    for (size_t i = 0; i <= len; i++)
        out[i] = (char)tolower((unsigned char)v[i]);
    return 0;
}

static const struct {
    const char *name;
    int value;
} facilities[] = {{"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
                  {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
                  {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
                  {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7}};

static const char *const levels[] = {"error", "warning", "notice", "info", "debug"};

/* Apply one setting; returns NULL or what is wrong. */
static const char *set(config *c, const char *name, const char *v)
{
    uint64_t n;
    if (!strcasecmp(name, "Socket")) {
        if (strncmp(v, "unix:", 5) && strncmp(v, "local:", 6) && strncmp(v, "inet:", 5) &&
            strncmp(v, "inet6:", 6) && v[0] != '/')
            return "Socket must be unix:/path or inet:port@host";
        return copy(c->socket, sizeof c->socket, v) ? "value too long" : NULL;
    }
    if (!strcasecmp(name, "Database"))
        return copy(c->database, sizeof c->database, v) ? "value too long" : NULL;
    if (!strcasecmp(name, "KeyFile"))
        return copy(c->key_file, sizeof c->key_file, v) ? "value too long" : NULL;
    if (!strcasecmp(name, "UserID"))
        return copy(c->user, sizeof c->user, v) ? "value too long" : NULL;
    if (!strcasecmp(name, "PidFile"))
        return copy(c->pid_file, sizeof c->pid_file, v) ? "value too long" : NULL;
    if (!strcasecmp(name, "TemporaryDirectory"))
        return copy(c->temp_dir, sizeof c->temp_dir, v) ? "value too long" : NULL;
    if (!strcasecmp(name, "Syslog"))
        return parse_bool(v, &c->syslog) ? "Syslog takes yes or no" : NULL;
    if (!strcasecmp(name, "SyslogFacility")) {
        for (size_t i = 0; i < sizeof facilities / sizeof *facilities; i++)
            if (!strcasecmp(v, facilities[i].name)) {
                c->syslog_facility = facilities[i].value;
                return NULL;
            }
        return "unknown SyslogFacility (mail, daemon, user, local0..local7)";
    }
    if (!strcasecmp(name, "LogLevel")) {
        for (int i = 0; i < (int)(sizeof levels / sizeof *levels); i++)
            if (!strcasecmp(v, levels[i])) {
                c->log_level = i;
                return NULL;
            }
        return "LogLevel is one of error, warning, notice, info, debug";
    }
    if (!strcasecmp(name, "UMask")) {
        char *end;
        long m = strtol(v, &end, 8);
        if (*end || m < 0 || m > 0777)
            return "UMask is an octal number such as 007";
        c->umask = (mode_t)m;
        return NULL;
    }
    if (!strcasecmp(name, "MaxMessageSize"))
        return parse_u64(v, &c->max_message_size) || c->max_message_size < 1024
                   ? "MaxMessageSize is a number of bytes (at least 1024)"
                   : NULL;
    if (!strcasecmp(name, "PlaintextPolicy")) {
        if (!strcasecmp(v, "reject"))
            c->plaintext_policy = PLAINTEXT_REJECT;
        else if (!strcasecmp(v, "fanout"))
            c->plaintext_policy = PLAINTEXT_FANOUT;
        else
            return "PlaintextPolicy is reject or fanout";
        return NULL;
    }
    if (!strcasecmp(name, "PostingPolicy")) {
        if (!strcasecmp(v, "open"))
            c->posting_policy = POSTING_OPEN;
        else if (!strcasecmp(v, "members"))
            c->posting_policy = POSTING_MEMBERS;
        else
            return "PostingPolicy is open or members";
        return NULL;
    }
    if (!strcasecmp(name, "FromRewrite")) {
        if (!strcasecmp(v, "yes"))
            c->from_rewrite = 1;
        else if (!strcasecmp(v, "no"))
            c->from_rewrite = 0;
        else
            return "FromRewrite is yes (the outer From of list copies becomes the list's "
                   "address, for DMARC) or no";
        return NULL;
    }
    if (!strcasecmp(name, "FreshnessWindow"))
        return parse_duration(v, &c->freshness_window) || c->freshness_window < 3600 ||
                       c->freshness_window > CONFIG_DURATION_MAX
                   ? "FreshnessWindow is a duration such as 7d (at least 1h, at most 3650d)"
                   : NULL;
    if (!strcasecmp(name, "FutureSkew"))
        return parse_duration(v, &c->future_skew) || c->future_skew > CONFIG_FUTURE_SKEW_MAX
                   ? "FutureSkew is a duration such as 10m, at most 1h (3600 seconds): a "
                     "post dated further ahead would stay fresh longer than the replay cache "
                     "is sized for"
                   : NULL;
    if (!strcasecmp(name, "MaxFanout"))
        return parse_u64(v, &c->max_fanout) || c->max_fanout == 0 ? "MaxFanout is a positive number"
                                                                  : NULL;
    if (!strcasecmp(name, "StatsInterval"))
        return parse_duration(v, &c->stats_interval) ||
                       c->stats_interval > CONFIG_STATS_INTERVAL_MAX
                   ? "StatsInterval is 0 (no periodic counters) or a duration from 1s to 7d, "
                     "such as 1h"
                   : NULL;
    if (!strcasecmp(name, "ReceiptDomain"))
        return parse_domain(v, c->receipt_domain)
                   ? "ReceiptDomain is a domain name, such as receipt.recrypt.invalid"
                   : NULL;
    if (!strcasecmp(name, "FanoutDomain"))
        return parse_domain(v, c->fanout_domain)
                   ? "FanoutDomain is a domain name, such as fanout.recrypt.invalid"
                   : NULL;
    if (!strcasecmp(name, "FanoutRelay")) {
        /* Checked for form here; recrypt-fanout says whether it answers. */
        const char *colon = strrchr(v, ':');
        if (!strncmp(v, "unix:", 5) ? v[5] != '/'
                                    : !colon || colon == v || !colon[1] ||
                                          strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
                                          atoi(colon + 1) < 1 || atoi(colon + 1) > 65535 ||
                                          strlen(colon + 1) > 5)
            return "FanoutRelay is HOST:PORT (such as 127.0.0.1:10026 or [::1]:10026) or "
                   "unix:/path";
        return copy(c->fanout_relay, sizeof c->fanout_relay, v) ? "value too long" : NULL;
    }
    if (!strcasecmp(name, "FanoutConnections")) {
        if (parse_u64(v, &n) || n < 1 || n > 32)
            return "FanoutConnections is 1 to 32";
        c->fanout_connections = (unsigned)n;
        return NULL;
    }
    if (!strcasecmp(name, "FanoutThreads")) {
        if (parse_u64(v, &n) || n > 64)
            return "FanoutThreads is 0 (one per CPU) to 64";
        c->fanout_threads = (unsigned)n;
        return NULL;
    }
    if (!strcasecmp(name, "MapSize")) {
        if (parse_u64(v, &n) || n == 0 || n > (1ULL << 24))
            return "MapSize is a number of MiB";
        c->map_size = (size_t)n << 20;
        return NULL;
    }
    return "unknown setting";
}

int config_load(config *c, const char *path, rc_error *err)
{
    config_defaults(c);
    FILE *f = fopen(path, "r");
    if (!f)
        return rc_error_set(err, RC_E_IO, "cannot read the configuration %s: %s", path,
                            strerror(errno));
    char line[4096], seen[32][32];
    int lineno = 0, rc = 0, n_seen = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = rc_error_set(err, RC_E_FORMAT, "%s:%d: line too long", path, lineno);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            continue;
        char *name = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
        while (isspace((unsigned char)*p))
            p++;
        char *v = p, *e = p + strlen(p);
        while (e > v && isspace((unsigned char)e[-1]))
            *--e = '\0';
        if (!*v) {
            rc = rc_error_set(err, RC_E_FORMAT, "%s:%d: %s has no value", path, lineno, name);
            break;
        }
        for (int i = 0; i < n_seen; i++)
            if (!strcasecmp(seen[i], name)) {
                rc = rc_error_set(err, RC_E_FORMAT, "%s:%d: %s is set twice", path, lineno, name);
                break;
            }
        if (rc)
            break;
        if (n_seen < 32 && strlen(name) < sizeof seen[0])
            memcpy(seen[n_seen++], name, strlen(name) + 1);
        const char *why = set(c, name, v);
        if (why)
            rc = rc_error_set(err, RC_E_FORMAT, "%s:%d: %s: %s", path, lineno, name, why);
    }
    if (rc == 0 && ferror(f))
        rc = rc_error_set(err, RC_E_IO, "cannot read %s", path);
    fclose(f);
    if (rc == 0 && c->fanout_domain[0] && !strcasecmp(c->fanout_domain, c->receipt_domain))
        rc = rc_error_set(err, RC_E_FORMAT, "%s: FanoutDomain and ReceiptDomain must differ (the "
                                            "MTA routes them to different transports)", path);
    if (rc == 0 && !c->socket[0])
        rc = rc_error_set(err, RC_E_FORMAT, "%s: Socket is required", path);
    if (rc == 0 && !c->database[0])
        rc = rc_error_set(err, RC_E_FORMAT, "%s: Database is required (the directory of "
                                            "'recryptctl server init')", path);
    if (rc == 0 && !c->key_file[0] &&
        snprintf(c->key_file, sizeof c->key_file, "%s/service.key", c->database) >=
            (int)sizeof c->key_file)
        rc = rc_error_set(err, RC_E_FORMAT, "%s: Database path too long", path);
    return rc;
}
