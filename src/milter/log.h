/*
 * log.h - the daemon's one logging function: syslog or stderr, with levels,
 * and the queue id in front of every message line. Never pass a secret or
 * any message content.
 */
#ifndef RECRYPT_MILTER_LOG_H
#define RECRYPT_MILTER_LOG_H

#include "config.h"

void log_setup(int use_syslog, int facility, int level);
void log_set_level(int level);
int log_uses_syslog(void);
/* qid: the MTA's queue id, or NULL outside a message. */
void log_msg(int level, const char *qid, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
