/*
 * config.h - recrypt-milter's configuration: "Name value" lines in the
 * OpenDKIM style (docs/admin-guide.md has the reference). config_load
 * fills a config from a file and reports the first problem with its line
 * number; the daemon keeps the current config behind a lock and swaps in a
 * new one on SIGUSR1.
 */
#ifndef RECRYPT_MILTER_CONFIG_H
#define RECRYPT_MILTER_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <recrypt/error.h>

#define CONFIG_DEFAULT_PATH "/etc/recrypt/recrypt-milter.conf"
/* StatsInterval: 0 (off) or 1 s .. 7 d; under a minute is for tests. */
#define CONFIG_STATS_INTERVAL_MAX (7 * 86400)
/* Longest FreshnessWindow and FutureSkew: ten years (and no overflow). */
#define CONFIG_DURATION_MAX ((uint64_t)3650 * 86400)
/* Longest FutureSkew: one hour (docs/FORMAT.md §9.4, §9.7). */
#define CONFIG_FUTURE_SKEW_MAX ((uint64_t)3600)

enum { LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_NOTICE, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };
enum { PLAINTEXT_REJECT, PLAINTEXT_FANOUT };
enum { POSTING_OPEN, POSTING_MEMBERS };

typedef struct {
    char socket[PATH_MAX];
    char database[PATH_MAX];
    char key_file[PATH_MAX]; /* "" = database/service.key */
    char user[128];          /* "" = stay as we are */
    char pid_file[PATH_MAX];
    char temp_dir[PATH_MAX];
    int syslog;
    int syslog_facility;
    int log_level;
    mode_t umask;
    uint64_t max_message_size;
    int plaintext_policy;
    int posting_policy;
    /* FromRewrite (docs/admin-guide.md §13): the outer From of every list
     * copy becomes "NAME via LIST" <LIST>, the poster in Reply-To and
     * X-Original-From. Default yes. */
    int from_rewrite;
    uint64_t freshness_window;
    uint64_t future_skew;
    uint64_t max_fanout;
    size_t map_size;
    uint64_t stats_interval; /* seconds between periodic counters lines; 0 = none */
    char receipt_domain[254]; /* "" = no receipts (docs/admin-guide.md §5.5) */
    /* Split delivery (docs/admin-guide.md §5.6): "" = inline (one rewritten
     * message for all members); else the milter hands each checked post to
     * TOKEN@fanout_domain, which the MTA routes to recrypt-fanout. */
    char fanout_domain[254];
    char fanout_relay[300]; /* where recrypt-fanout submits copies: HOST:PORT or unix:/path */
    unsigned fanout_threads; /* recryption threads of recrypt-fanout (0: one per CPU) */
    unsigned fanout_connections; /* SMTP connections of recrypt-fanout at once (1..32) */
} config;

void config_defaults(config *c);
/* Read path into c (defaults first). On error: RC_E_FORMAT/RC_E_IO with
 * "FILE:LINE: what is wrong". */
int config_load(config *c, const char *path, rc_error *err);

#endif
