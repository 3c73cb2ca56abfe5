/*
 * recrypt/request.h - signed administration requests from a list owner to
 * the recryption service, modelled on the Mesh/Recrypt administration
 * service (draft-hallambaker-mesh-recrypt, section 4): CreateGroup,
 * UpdateGroup (rotation), AddMember, UpdateMember, AddOwner, UpdateOwner and
 * RemoveOwner.
 *
 * The owner builds an rc_request, signs it with rc_request_sign and writes
 * it armored (text, one or more per file). The server reads the armor,
 * rc_request_decode checks structure and signature, and the store applies
 * it (src/store). The service share r inside each device entry is sealed
 * to the service's X25519 key and never appears in the clear.
 *
 * Ownership: rc_request owns its devices array; release with
 * rc_request_free (which does not free the struct itself).
 */
#ifndef RECRYPT_REQUEST_H
#define RECRYPT_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <recrypt/error.h>
#include <recrypt/keys.h>
#include <recrypt/list.h>
#include <recrypt/stream.h>
#include <recrypt/svcsig.h>

enum {
    RC_REQ_CREATE_GROUP = 1,
    RC_REQ_UPDATE_GROUP = 2,
    RC_REQ_ADD_MEMBER = 3,
    RC_REQ_UPDATE_MEMBER = 4,
    RC_REQ_ADD_OWNER = 5,
    RC_REQ_UPDATE_OWNER = 6, /* an owner's new privilege (SUPER only) */
    RC_REQ_REMOVE_OWNER = 7  /* an owner key removed from the list (SUPER only) */
};

/* The request format version this build writes and reads (docs/REQUESTS.md
 * §2). 2: the header carries not_after (requests expire); version 1 is
 * refused. */
#define RC_REQUEST_VERSION 2
/* Lifetimes (seconds): the owner's tool's default, the longest a service
 * accepts (not_after - created_at), and how far created_at may lie ahead
 * of the service's clock. */
#define RC_REQUEST_DEFAULT_LIFETIME (7u * 86400u)
#define RC_REQUEST_MAX_LIFETIME (90u * 86400u)
#define RC_REQUEST_FUTURE_SKEW 3600u

/* Privileges (seed: MemberEntry privileges). Members hold RECRYPT; owners
 * hold ADMIN (manage members, rotate) or SUPER (also manage owners). */
enum { RC_PRIV_RECRYPT = 1, RC_PRIV_ADMIN = 2, RC_PRIV_SUPER = 3 };

/* Member status (seed: MemberEntry status). */
enum { RC_STATUS_ACTIVE = 1, RC_STATUS_SUSPENDED = 2, RC_STATUS_REVOKED = 3 };

/* UpdateMember flags. */
#define RC_UPDATE_REPLACE_DEVICES 0x01 /* drop the member's entries of the epoch first */

/* r sealed to the service key: crypto_box_seal of 32 bytes. */
#define RC_SEALED_R_BYTES (32 + 48)

/* A device entry as it travels in a request (seed: UserDecryptionEntry). */
typedef struct {
    char member[RC_ADDR_MAX + 1];
    uint64_t epoch;
    rc_device_public device;
    uint8_t sealed_r[RC_SEALED_R_BYTES];
    uint8_t K[RC_POINT_BYTES];
    uint8_t W[RC_WRAP_MAX];
    size_t W_len;
    uint64_t enrolled_at;
} rc_req_device;

typedef struct {
    uint8_t version;
    uint8_t type;
    uint8_t service_pk[RC_BOX_PK_BYTES]; /* the service this request is for */
    char list[RC_ADDR_MAX + 1];          /* canonical list address */
    uint8_t signer_pk[RC_SIGN_PK_BYTES]; /* the owner's Ed25519 key */
    uint64_t counter;                    /* strictly increasing per (list, signer) */
    uint64_t created_at;
    uint64_t not_after; /* the service refuses the request after this time */

    /* CreateGroup, UpdateGroup: the signed list key statement of the epoch. */
    rc_statement statement;
    /* With a version 2 statement: the epoch's service signing seed, sealed
     * to the service key (its public key is statement.service_pk). */
    uint8_t sealed_svc_seed[RC_SEALED_SVC_SEED_BYTES];
    /* CreateGroup: bounce address ("" for LOCAL-bounces@DOMAIN). */
    char bounce[RC_ADDR_MAX + 1];
    /* UpdateGroup: the previous epoch stays usable until then (0: refused at once). */
    uint64_t grace_until;
    /* AddMember, UpdateMember: the member. */
    char member[RC_ADDR_MAX + 1];
    /* AddMember: RC_PRIV_RECRYPT; AddOwner, UpdateOwner: RC_PRIV_ADMIN or
     * RC_PRIV_SUPER. */
    uint8_t privilege;
    /* UpdateMember: new status and RC_UPDATE_* flags. */
    uint8_t status;
    uint8_t flags;
    /* CreateGroup (the creator), AddOwner (the new owner), UpdateOwner and
     * RemoveOwner (the owner concerned; only sign_pk for RemoveOwner). */
    rc_owner_public owner;

    rc_req_device *devices; /* AddMember, UpdateMember, UpdateGroup */
    size_t n_devices;

    uint8_t sig[RC_SIG_BYTES];
    uint8_t id[32]; /* BLAKE2b-256 of the encoded request; set by sign and decode */
} rc_request;

#define RC_REQUEST_MAX_DEVICES 100000

const char *rc_request_type_name(uint8_t type);
const char *rc_status_name(uint8_t status);
const char *rc_privilege_name(uint8_t privilege);

/* Owner side: a device entry for `member`, r sealed to the service. */
int rc_req_device_make(rc_req_device *out, const rc_list_secret *ls, const rc_device_public *dev,
                       const char *member, uint64_t enrolled_at, const rc_service_public *svc,
                       rc_error *err);
/* Append a device entry (copied) to req->devices. */
int rc_request_add_device(rc_request *req, const rc_req_device *d, rc_error *err);

/* Fill signer_pk, sig and id. version, type, service_pk, list, counter,
 * created_at, not_after and the type's payload must be set. */
int rc_request_sign(rc_request *req, const rc_owner_secret *owner, rc_error *err);

/* Binary form (FORMAT of docs/REQUESTS.md); *out is malloc'ed. */
int rc_request_encode(const rc_request *req, uint8_t **out, size_t *len, rc_error *err);
/* Parse, check structure (canonical addresses, sizes, known type and
 * version) and verify the signature. On failure req is left empty. */
int rc_request_decode(rc_request *req, const uint8_t *in, size_t len, rc_error *err);

/* Armor: "-----BEGIN RECRYPT REQUEST-----", comment lines saying what it
 * does (not trusted), an empty line, base64 lines, "-----END ...-----". */
int rc_request_armor(const rc_request *req, rc_sink_fn sink, void *ctx, rc_error *err);
/* Decode every armored request in text (any text outside blocks is
 * ignored; a text with no block is an error). *reqs is malloc'ed; free each
 * with rc_request_free, then free(*reqs). */
int rc_request_read_armored(const char *text, size_t len, rc_request **reqs, size_t *n,
                            rc_error *err);

void rc_request_free(rc_request *req);

#endif
