/*
 * open.h - opening a list message on this device, shared by `recrypt open`,
 * `view`, `archive` and the native messaging host: trust the list key
 * (only a list pinned by an explicit act, or --signer; follow newer epochs
 * of the pinned signer), decrypt and
 * authenticate, and only then hand the decrypted message to the sink.
 * Afterwards the keystore remembers the list key, keeps this device's
 * membership certificate (for signing) and records the post for the reply
 * guard of `recrypt sendmail`.
 */
#ifndef RECRYPT_CLIENT_OPEN_H
#define RECRYPT_CLIENT_OPEN_H

#include <recrypt/recrypt.h>
#include "keystore.h"

typedef struct {
    int first_use;                     /* this message's key completed the pin (a pin by
                                        * fingerprint, or --signer) */
    int unpinned; /* refused because the list is not pinned: list and signer_fp name
                   * the list and the key its statement is signed by */
    int is_signed;                     /* signed by a member's device */
    char list[RC_ADDR_MAX + 1];        /* the list's address */
    uint64_t epoch;                    /* the list key's epoch */
    char signer_fp[RC_UDF_MAX];        /* the list signing key's fingerprint */
    char member[RC_ADDR_MAX + 1];      /* when is_signed: the member */
    char device_fp[RC_UDF_MAX];        /* when is_signed: the device signing key */
    int duplicate; /* a second copy of a post opened before here (another Recrypt-Copy):
                    * the verdict line ends with "; duplicate" */
    int path;      /* RC_PATH_LIST, RC_PATH_UNVERIFIED (version 1 list key) or RC_PATH_DIRECT */
} client_open_info;

/* Open the list message in `in` (a seekable file, read from its current
 * offset). list_key: a list key line/file/address to use instead of the
 * message's Recrypt-List-Key; signer_fp: a required list signer, or NULL.
 * info may be NULL. */
int client_open(const keystore *ks, int in, const char *list_key, const char *signer_fp,
                rc_sink_fn sink, void *ctx, client_open_info *info, rc_error *err);
/* With flags: CLIENT_OPEN_ALLOW_DIRECT shows a copy that did not come
 * through the list (no valid service signature), its verdict "direct"
 * (FORMAT.md §9.6); without it such a copy is refused (RC_E_POLICY). */
#define CLIENT_OPEN_ALLOW_DIRECT 1u
#define CLIENT_LATER_MAX 64 /* later statements consulted for revocations */
int client_open_ex(const keystore *ks, int in, const char *list_key, const char *signer_fp,
                   unsigned flags, rc_sink_fn sink, void *ctx, client_open_info *info,
                   rc_error *err);

#endif
