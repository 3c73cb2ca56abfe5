/*
 * milter.h - the milter side of recrypt-milter: callbacks (on libmilter's
 * API, which engine.c implements), per-connection
 * and per-message state, and the end-of-message recryption (milter.c).
 * main.c owns the daemon: it fills a daemon_ctx before smfi_main and swaps
 * the config on reload through daemon_config_*.
 */
#ifndef RECRYPT_MILTER_MILTER_H
#define RECRYPT_MILTER_MILTER_H

#include <pthread.h>
#include <libmilter/mfapi.h>
#include <recrypt/recrypt.h>
#include "config.h"
#include "store.h"

typedef struct {
    pthread_rwlock_t lock; /* guards cfg (reload swaps it) */
    config cfg;
    rc_store *store;          /* opened read-write (the replay cache) */
    rc_service_secret *svc;   /* guarded memory; opened before dropping privileges */
    uint8_t mark_secret[32];  /* for the Recrypt-Processed marker */
    /* counters (atomic) */
    unsigned long n_recrypted, n_stanzas, n_refused, n_tempfail, n_replays, n_passed,
        n_plaintext, n_deferred, n_split;
} daemon_ctx;

/* The daemon's state for the callbacks (the milter API gives callbacks no other
 * way to reach it). Set once before smfi_main. */
void milter_set_daemon(daemon_ctx *d);
/* The callback table for smfi_register. */
struct smfiDesc *milter_description(void);
/* Log the counters line ("counters: ..." at notice): on SIGUSR2, every
 * StatsInterval seconds and at stop. */
void milter_log_counters(void);

#endif
