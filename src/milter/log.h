/*
 * log.h - the daemon's one logging function: syslog or stderr, with levels,
 * and the queue id in front of every message line. Never pass a secret or
 * any message content.
 */
#ifndef RECRYPT_MILTER_LOG_H
#define RECRYPT_MILTER_LOG_H

#include "config.h"

void log_setup(int use_syslog, int facility, int level);
/* The program name in every line (syslog ident); before log_setup.
 * Default "recrypt-milter". */
void log_set_name(const char *name);
void log_set_level(int level);
int log_uses_syslog(void);
/* qid: the MTA's queue id, or NULL outside a message. */
void log_msg(int level, const char *qid, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A failure that ends the program: to syslog (when it is used) and to
 * stderr as "NAME: text" (what the MTA shows for a transport command, and
 * the admin at a terminal); returns code, for `return log_fatal(...)`. */
int log_fatal(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
