/*
 * owner.h - the list owner's keystore (on the owner's own machine):
 *
 *   owner.key                    owner-secret key string, 0600
 *   owned/<list>/service         the service's public key line
 *   owned/<list>/counter         last request counter used by this owner
 *   owned/<list>/current         current epoch number
 *   owned/<list>/epoch-N.secret  list secret of epoch N (0600), plain or
 *                                passphrase-locked (see docs/REQUESTS.md)
 *   owned/<list>/epoch-N.listkey the signed list key statement of epoch N
 *   owned/<list>/roster          one line per device: member status device-key
 *                                [enrolment time, ISO 8601 UTC]
 *   owned/<list>/protected       present when list secrets are locked
 *
 * The list's private key lives only here (and with co-owners it was sealed
 * to); requests to the service carry r sealed to the service key.
 */
#ifndef RECRYPT_CTL_OWNER_H
#define RECRYPT_CTL_OWNER_H

#include <limits.h>
#include <recrypt/recrypt.h>
#include "keydir.h"

/* The owner's keystore is a keystore (same directory rules and files:
 * keydir.h, src/common, shared with the subscriber's keystore). */
typedef keystore owner_ks;

/* A member's device as the owner remembers it. */
typedef struct {
    char member[RC_ADDR_MAX + 1];
    uint8_t status;
    rc_device_public device;
    uint64_t enrolled_at; /* when the owner enrolled it; 0: not recorded (older rosters) */
} roster_entry;

typedef struct {
    roster_entry *e;
    size_t n;
} roster;

int owner_ks_open(owner_ks *ks, const char *home, rc_error *err);
int owner_key_create(const owner_ks *ks, rc_owner_secret *out, rc_error *err);
int owner_key_load(const owner_ks *ks, rc_owner_secret *out, rc_error *err);

int owner_list_exists(const owner_ks *ks, const char *list);
int owner_list_prepare(const owner_ks *ks, const char *list, rc_error *err);
int owner_service_save(const owner_ks *ks, const char *list, const rc_service_public *svc,
                       rc_error *err);
int owner_service_load(const owner_ks *ks, const char *list, rc_service_public *svc,
                       rc_error *err);
/* Next request counter for this list (stored). */
int owner_next_counter(const owner_ks *ks, const char *list, uint64_t *counter, rc_error *err);
int owner_current_epoch(const owner_ks *ks, const char *list, uint64_t *epoch, rc_error *err);
int owner_set_current_epoch(const owner_ks *ks, const char *list, uint64_t epoch, rc_error *err);
/* protect: lock with a passphrase (RECRYPT_PASSPHRASE_FILE or the terminal). */
int owner_secret_save(const owner_ks *ks, const rc_list_secret *ls, int protect, rc_error *err);
int owner_secret_load(const owner_ks *ks, const char *list, uint64_t epoch, rc_list_secret *ls,
                      rc_error *err);
int owner_is_protected(const owner_ks *ks, const char *list);
int owner_set_protected(const owner_ks *ks, const char *list, rc_error *err);
int owner_statement_save(const owner_ks *ks, const rc_statement *st, rc_error *err);
int owner_statement_load(const owner_ks *ks, const char *list, uint64_t epoch, rc_statement *st,
                         char *line, size_t linelen, rc_error *err);

int roster_load(const owner_ks *ks, const char *list, roster *r, rc_error *err);
int roster_save(const owner_ks *ks, const char *list, const roster *r, rc_error *err);
int roster_add(roster *r, const char *member, uint8_t status, const rc_device_public *dev,
               rc_error *err);
void roster_free(roster *r);
/* Parse one roster line ("member status device-key [YYYY-MM-DDTHH:MM:SSZ]")
 * and append it. RC_E_FORMAT when it does not parse. */
int roster_add_line(roster *r, const char *line, rc_error *err);
/* Format one roster line (without newline) into out. */
int roster_format_line(char *out, size_t cap, const roster_entry *e);


#endif
