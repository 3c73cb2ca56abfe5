/*
 * keystore.h - the subscriber's keystore ($RECRYPT_HOME): the device key,
 * and per list the pinned list signing key, the highest epoch seen, every
 * accepted list key statement, and this device's membership certificates.
 *
 * Layout (FORMAT.md "Client keystore"):
 *   device.key                      device-secret key string, or its
 *                                   passphrase-locked form, 0600
 *   device.pub                      the device's public key line (since 0.3.0)
 *   lists/<list>/pin                "signer <base64url>", "epoch <N>" and (since
 *                                   0.3.0) "pinned <unix seconds>" lines; or,
 *                                   pinned by fingerprint before any list key
 *                                   arrived (recrypt list pin), "fingerprint
 *                                   <UDF>" and "pinned <unix seconds>"
 *   lists/<list>/epoch-<N>.listkey  the accepted statement of epoch N
 *   lists/<list>/cert-<N>           this device's certificate for epoch N
 *   posts                           "<hash of Message-ID> <list>[ <copy>]" per
 *                                   opened post (the reply guard of recrypt
 *                                   sendmail; copy: its Recrypt-Copy, which
 *                                   marks a second copy of a post)
 */
#ifndef RECRYPT_CLIENT_KEYSTORE_H
#define RECRYPT_CLIENT_KEYSTORE_H

#include <limits.h>
#include <recrypt/recrypt.h>
/* The keystore directory (keystore, keystore_open, keystore_path) and its
 * small files (keystore_write_file, keystore_read_file, keystore_mkdirs),
 * which the owner's keystore (recryptctl) shares. */
#include "keydir.h"

/* Create the directory tree (0700) if missing. */
int keystore_prepare(const keystore *ks, rc_error *err);

int keystore_device_exists(const keystore *ks);
/* The device key (device.key) in the clear, or locked with a passphrase
 * (FORMAT.md §13.1; the scheme of src/common/passlock.h). save: in the
 * clear; store: locked under pass when pass is not NULL. Both also write
 * device.pub, the public key line. */
int keystore_device_save(const keystore *ks, const rc_device_secret *dev, rc_error *err);
int keystore_device_store(const keystore *ks, const rc_device_secret *dev, const char *pass,
                          rc_error *err);
/* Load (and unlock: the passphrase from $RECRYPT_PASSPHRASE_FILE, else the
 * terminal) the device key. A wrong passphrase: RC_E_PERMISSION; locked
 * and no way to ask: RC_E_POLICY. An unlocked key is kept for the process
 * while device.key stays the same file. */
int keystore_device_load(const keystore *ks, rc_device_secret *dev, rc_error *err);
/* The public half: of a locked key from device.pub (no passphrase
 * needed), of a key in the clear from the key itself. */
int keystore_device_public(const keystore *ks, rc_device_public *pub, rc_error *err);
/* 1 when device.key is locked with a passphrase. */
int keystore_device_is_protected(const keystore *ks);
/* Ask for the device key's passphrase (creating: a new one, confirmed on a
 * terminal) into pass (PASSLOCK_MAX secret bytes). */
int keystore_device_ask(char *pass, int creating, rc_error *err);
/* Never ask on the terminal (the native host): a locked key then needs
 * $RECRYPT_PASSPHRASE_FILE. */
void keystore_set_no_terminal(int on);

/* Pin: returns 1 and fills *pin when the list is pinned to a signing key, 0
 * when not (also when it is pinned by fingerprint only, see below). */
int keystore_pin_load(const keystore *ks, const char *list, rc_pin *pin, rc_error *err);

/* The pin state of a list (issue 13: a first pin only from an explicit act,
 * never from a message that merely arrives). */
enum { KS_PIN_NONE = 0, KS_PIN_FINGERPRINT = 1, KS_PIN_KEY = 2 };
/* KS_PIN_* for list; fp (RC_UDF_MAX, may be NULL) gets the pinned
 * fingerprint (for KS_PIN_KEY the pinned key's). -1 when the pin file is
 * damaged. */
int keystore_pin_state(const keystore *ks, const char *list, char *fp, rc_error *err);
/* Pin list to the list-signer fingerprint fpr (the 140-bit UDF the owner
 * gives at enrolment, dashes and case ignored). A list already pinned to
 * that key: nothing changes (*changed 0). Pinned to another key or
 * fingerprint: RC_E_POLICY, unless replace, which also drops the list keys
 * accepted from the other signer. */
int keystore_pin_fingerprint(const keystore *ks, const char *list, const char *fpr,
                             int replace, int *changed, rc_error *err);
/* Canonical form of a fingerprint the user typed (upper case, dashes in
 * groups of four); RC_E_INVALID when it is no 140-bit UDF. */
int keystore_fp_canonical(char out[RC_UDF_MAX], const char *in, rc_error *err);
/* When the list was first pinned (unix seconds); 0 when unknown (a pin
 * written before 0.3.0) or not pinned. */
uint64_t keystore_pin_since(const keystore *ks, const char *list);
/* Decide whether to trust st (rc_statement_accept with the stored pin) at
 * time `at`; expected_fp: a UDF the user gave (--signer), or NULL. for_opening: an
 * older epoch is acceptable when this exact statement was accepted before
 * (reading old mail); sealing never goes back to an older epoch.
 * A list that is not pinned is refused (RC_E_POLICY, the message says how
 * to pin) unless expected_fp names st's signer; a list pinned by
 * fingerprint accepts a statement of the key with that fingerprint. Then
 * *first_use is 1: keystore_remember pins the key. Every refusal states
 * the pin state. */
int keystore_trust(const keystore *ks, const rc_statement *st, const char *expected_fp,
                   uint64_t at, int for_opening, int *first_use, rc_error *err);
/* The statement this keystore accepted for the list whose list id is
 * list_id, epoch `epoch` (a message without Recrypt-List-Key, FORMAT.md
 * 13); RC_E_NOT_FOUND (saying what is missing) when there is none. */
int keystore_statement_for(const keystore *ks, const uint8_t *list_id, uint64_t epoch,
                           rc_statement *st, rc_error *err);
/* Record st as accepted: pin on first use, raise the highest epoch. */
int keystore_remember(const keystore *ks, const rc_statement *st, rc_error *err);

int keystore_cert_save(const keystore *ks, const rc_cert *cert, const char *list,
                       rc_error *err);
/* 1 and *cert when this device holds a certificate for (list, epoch). */
int keystore_cert_load(const keystore *ks, const char *list, uint64_t epoch, rc_cert *cert);

/* Opened posts, so that `recrypt sendmail` can tell a reply to a list post
 * (In-Reply-To, References) from other mail. Only a hash of the
 * Message-ID is kept; the file keeps the newest few thousand entries. */
int keystore_post_remember(const keystore *ks, const char *message_id, const char *list,
                           const char *copy, rc_error *err);
/* 1 and the list's address in list_out when message_id is an opened post
 * (and, when copy_out is not NULL, the Recrypt-Copy of the first copy
 * opened, "" when it had none); 0 when not; -1 when the record exists but
 * cannot be read. */
int keystore_post_lookup(const keystore *ks, const char *message_id, char *list_out,
                         size_t list_len, char copy_out[RC_COPY_ID_LEN + 1]);

#endif
