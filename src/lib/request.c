/*
 * request.c - administration requests: building device entries, signing,
 * the binary encoding, decoding with signature verification, and the text
 * armor in which requests travel from the owner's machine to the server.
 * docs/REQUESTS.md specifies the format.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "internal.h"

#define RC_L_REQUEST "recrypt/request"
#define RC_L_REQUEST_ID "recrypt/req-id"
#define ARMOR_BEGIN "-----BEGIN RECRYPT REQUEST-----"
#define ARMOR_END "-----END RECRYPT REQUEST-----"

const char *rc_request_type_name(uint8_t type)
{
    switch (type) {
    case RC_REQ_CREATE_GROUP: return "CreateGroup";
    case RC_REQ_UPDATE_GROUP: return "UpdateGroup";
    case RC_REQ_ADD_MEMBER: return "AddMember";
    case RC_REQ_UPDATE_MEMBER: return "UpdateMember";
    case RC_REQ_ADD_OWNER: return "AddOwner";
    case RC_REQ_UPDATE_OWNER: return "UpdateOwner";
    case RC_REQ_REMOVE_OWNER: return "RemoveOwner";
    }
    return "unknown";
}

const char *rc_status_name(uint8_t status)
{
    switch (status) {
    case RC_STATUS_ACTIVE: return "active";
    case RC_STATUS_SUSPENDED: return "suspended";
    case RC_STATUS_REVOKED: return "revoked";
    }
    return "unknown";
}

const char *rc_privilege_name(uint8_t privilege)
{
    switch (privilege) {
    case RC_PRIV_RECRYPT: return "recrypt";
    case RC_PRIV_ADMIN: return "admin";
    case RC_PRIV_SUPER: return "super";
    }
    return "unknown";
}

int rc_req_device_make(rc_req_device *out, const rc_list_secret *ls, const rc_device_public *dev,
                       const char *member, uint64_t enrolled_at, const rc_service_public *svc,
                       rc_error *err)
{
    rc_device_entry *e = rc_secret_alloc(sizeof *e);
    if (!e)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    memset(out, 0, sizeof *out);
    int rc = rc_address_canonical(out->member, member, err);
    if (rc == 0)
        rc = rc_entry_create(e, ls, dev, member, enrolled_at, err);
    if (rc == 0 && crypto_box_seal(out->sealed_r, e->r, 32, svc->pk) != 0)
        rc = rc_error_set(err, RC_E_CRYPTO, "cannot seal the service share");
    if (rc == 0) {
        out->epoch = ls->epoch;
        out->device = *dev;
        memcpy(out->K, e->K, 32);
        memcpy(out->W, e->W, e->W_len);
        out->W_len = e->W_len;
        out->enrolled_at = enrolled_at;
    }
    rc_secret_free(e);
    return rc;
}

int rc_request_add_device(rc_request *req, const rc_req_device *d, rc_error *err)
{
    if (req->n_devices >= RC_REQUEST_MAX_DEVICES)
        return rc_error_set(err, RC_E_INVALID, "too many devices in one request");
    rc_req_device *nd = realloc(req->devices, (req->n_devices + 1) * sizeof *nd);
    if (!nd)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    req->devices = nd;
    req->devices[req->n_devices++] = *d;
    return 0;
}

void rc_request_free(rc_request *req)
{
    if (!req)
        return;
    free(req->devices);
    req->devices = NULL;
    req->n_devices = 0;
}

/* ---- binary form ---- */

static void put_devices(rc_wr *w, const rc_request *req)
{
    rc_wr_bytes(w, (uint8_t[4]){(uint8_t)(req->n_devices >> 24), (uint8_t)(req->n_devices >> 16),
                                (uint8_t)(req->n_devices >> 8), (uint8_t)req->n_devices},
                4);
    for (size_t i = 0; i < req->n_devices; i++) {
        const rc_req_device *d = &req->devices[i];
        rc_wr_str8(w, d->member);
        rc_wr_u64(w, d->epoch);
        rc_wr_bytes(w, d->device.wrap_pk, 32);
        rc_wr_bytes(w, d->device.sign_pk, 32);
        rc_wr_bytes(w, d->sealed_r, RC_SEALED_R_BYTES);
        rc_wr_bytes(w, d->K, 32);
        rc_wr_u16(w, (uint16_t)d->W_len);
        rc_wr_bytes(w, d->W, d->W_len);
        rc_wr_u64(w, d->enrolled_at);
    }
}

/* The statement, and after a version 2 statement the sealed service seed. */
static void put_statement(rc_wr *w, const rc_request *req)
{
    const rc_statement *st = &req->statement;
    uint8_t b[RC_STATEMENT_MAX];
    size_t len = 0;
    if (rc_statement_to_bytes(b, sizeof b, &len, st, NULL) != 0) {
        w->bad = 1;
        return;
    }
    rc_wr_u16(w, (uint16_t)len);
    rc_wr_bytes(w, b, len);
    if (st->version == RC_STATEMENT_V2)
        rc_wr_bytes(w, req->sealed_svc_seed, RC_SEALED_SVC_SEED_BYTES);
}

/* The signed body (everything but the signature). */
static void put_body(rc_wr *w, const rc_request *req)
{
    rc_wr_u8(w, req->version);
    rc_wr_u8(w, req->type);
    rc_wr_bytes(w, req->service_pk, 32);
    rc_wr_str8(w, req->list);
    rc_wr_bytes(w, req->signer_pk, 32);
    rc_wr_u64(w, req->counter);
    rc_wr_u64(w, req->created_at);
    rc_wr_u64(w, req->not_after);
    switch (req->type) {
    case RC_REQ_CREATE_GROUP:
        put_statement(w, req);
        rc_wr_str8(w, req->bounce);
        rc_wr_bytes(w, req->owner.sign_pk, 32);
        rc_wr_bytes(w, req->owner.box_pk, 32);
        break;
    case RC_REQ_UPDATE_GROUP:
        put_statement(w, req);
        rc_wr_u64(w, req->grace_until);
        put_devices(w, req);
        break;
    case RC_REQ_ADD_MEMBER:
        rc_wr_str8(w, req->member);
        rc_wr_u8(w, req->privilege);
        put_devices(w, req);
        break;
    case RC_REQ_UPDATE_MEMBER:
        rc_wr_str8(w, req->member);
        rc_wr_u8(w, req->status);
        rc_wr_u8(w, req->flags);
        put_devices(w, req);
        break;
    case RC_REQ_ADD_OWNER:
        rc_wr_bytes(w, req->owner.sign_pk, 32);
        rc_wr_bytes(w, req->owner.box_pk, 32);
        rc_wr_u8(w, req->privilege);
        break;
    case RC_REQ_UPDATE_OWNER:
        rc_wr_bytes(w, req->owner.sign_pk, 32);
        rc_wr_u8(w, req->privilege);
        break;
    case RC_REQ_REMOVE_OWNER:
        rc_wr_bytes(w, req->owner.sign_pk, 32);
        break;
    default:
        w->bad = 1;
    }
}

static size_t body_bound(const rc_request *req)
{
    return 1024 + RC_STATEMENT_MAX + req->n_devices * (1 + RC_ADDR_MAX + 8 + 64 +
                                                        RC_SEALED_R_BYTES + 32 + 2 +
                                                        RC_WRAP_MAX + 8);
}

/* label ‖ body, for signing and verifying. */
static int signed_message(const rc_request *req, uint8_t **out, size_t *len)
{
    size_t cap = 16 + body_bound(req);
    uint8_t *b = malloc(cap);
    if (!b)
        return -1;
    rc_wr w = {b, cap, 0, 0};
    rc_wr_label(&w, RC_L_REQUEST);
    put_body(&w, req);
    if (w.bad) {
        free(b);
        return -1;
    }
    *out = b;
    *len = w.len;
    return 0;
}

static void request_id(rc_request *req, const uint8_t *enc, size_t len)
{
    rc_hash(req->id, sizeof req->id, RC_L_REQUEST_ID, enc, len);
}

int rc_request_encode(const rc_request *req, uint8_t **out, size_t *len, rc_error *err)
{
    size_t cap = body_bound(req) + RC_SIG_BYTES;
    uint8_t *b = malloc(cap);
    if (!b)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    rc_wr w = {b, cap, 0, 0};
    put_body(&w, req);
    rc_wr_bytes(&w, req->sig, RC_SIG_BYTES);
    if (w.bad) {
        free(b);
        return rc_error_set(err, RC_E_INVALID, "request does not encode");
    }
    *out = b;
    *len = w.len;
    return 0;
}

int rc_request_sign(rc_request *req, const rc_owner_secret *owner, rc_error *err)
{
    uint8_t *msg, *enc;
    size_t len, elen;
    memcpy(req->signer_pk, owner->pub.sign_pk, 32);
    if (signed_message(req, &msg, &len) != 0)
        return rc_error_set(err, RC_E_INVALID, "request does not encode");
    crypto_sign_detached(req->sig, NULL, msg, len, owner->sign_sk);
    free(msg);
    int rc = rc_request_encode(req, &enc, &elen, err);
    if (rc == 0) {
        request_id(req, enc, elen);
        free(enc);
    }
    return rc;
}

static int get_statement(rc_rd *r, rc_request *req, rc_error *err)
{
    size_t len = rc_rd_u16(r);
    const uint8_t *p = rc_rd_bytes(r, len);
    if (!p)
        return rc_error_set(err, RC_E_FORMAT, "request is truncated");
    int rc = rc_statement_from_bytes(&req->statement, p, len, err);
    if (rc == 0 && req->statement.version == RC_STATEMENT_V2) {
        rc_rd_copy(r, req->sealed_svc_seed, RC_SEALED_SVC_SEED_BYTES);
        if (r->bad)
            return rc_error_set(err, RC_E_FORMAT, "request is truncated");
    }
    return rc;
}

static int get_addr(rc_rd *r, char *out, const char *what, rc_error *err)
{
    char canon[RC_ADDR_MAX + 1];
    rc_rd_str8(r, out, RC_ADDR_MAX);
    if (r->bad)
        return rc_error_set(err, RC_E_FORMAT, "request is truncated");
    if (rc_address_canonical(canon, out, NULL) != 0 || strcmp(canon, out) != 0)
        return rc_error_set(err, RC_E_FORMAT, "%s '%.80s' in the request is not a canonical "
                                              "address", what, out);
    return 0;
}

static int get_devices(rc_rd *r, rc_request *req, rc_error *err)
{
    const uint8_t *p = rc_rd_bytes(r, 4);
    if (!p)
        return rc_error_set(err, RC_E_FORMAT, "request is truncated");
    size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    /* Each entry takes at least 300 bytes: a bound before allocating. */
    if (n > RC_REQUEST_MAX_DEVICES || n > (r->len - r->pos) / 300 + 1)
        return rc_error_set(err, RC_E_FORMAT, "request announces %zu device entries", n);
    req->devices = n ? calloc(n, sizeof *req->devices) : NULL;
    if (n && !req->devices)
        return rc_error_set(err, RC_E_NOMEM, "out of memory");
    req->n_devices = n;
    for (size_t i = 0; i < n; i++) {
        rc_req_device *d = &req->devices[i];
        int rc = get_addr(r, d->member, "device member", err);
        if (rc)
            return rc;
        d->epoch = rc_rd_u64(r);
        rc_rd_copy(r, d->device.wrap_pk, 32);
        rc_rd_copy(r, d->device.sign_pk, 32);
        rc_rd_copy(r, d->sealed_r, RC_SEALED_R_BYTES);
        rc_rd_copy(r, d->K, 32);
        d->W_len = rc_rd_u16(r);
        if (d->W_len < crypto_box_SEALBYTES || d->W_len > RC_WRAP_MAX)
            return rc_error_set(err, RC_E_FORMAT, "device entry %zu has a bad W length", i + 1);
        rc_rd_copy(r, d->W, d->W_len);
        d->enrolled_at = rc_rd_u64(r);
        if (r->bad)
            return rc_error_set(err, RC_E_FORMAT, "request is truncated");
        if (!rc_point_is_valid_nonidentity(d->K))
            return rc_error_set(err, RC_E_CRYPTO, "device entry %zu carries an invalid K", i + 1);
    }
    return 0;
}

static int decode_body(rc_rd *r, rc_request *req, rc_error *err)
{
    int rc;
    req->version = rc_rd_u8(r);
    /* Version 1 requests carry no expiry: refused, not accepted during a
     * transition (docs/REQUESTS.md §12 says why). */
    if (!r->bad && req->version == 1)
        return rc_error_set(err, RC_E_VERSION,
                            "request version 1 is no longer accepted (this build reads version "
                            "%u, which expires): make the request again with this recryptctl",
                            RC_REQUEST_VERSION);
    if (!r->bad && req->version != RC_REQUEST_VERSION)
        return rc_error_set(err, RC_E_VERSION,
                            "request version %u is not supported (this build reads %u)",
                            req->version, RC_REQUEST_VERSION);
    req->type = rc_rd_u8(r);
    rc_rd_copy(r, req->service_pk, 32);
    if ((rc = get_addr(r, req->list, "list", err)))
        return rc;
    rc_rd_copy(r, req->signer_pk, 32);
    req->counter = rc_rd_u64(r);
    req->created_at = rc_rd_u64(r);
    req->not_after = rc_rd_u64(r);
    if (r->bad)
        return rc_error_set(err, RC_E_FORMAT, "request is truncated");
    switch (req->type) {
    case RC_REQ_CREATE_GROUP:
        if ((rc = get_statement(r, req, err)))
            return rc;
        rc_rd_str8(r, req->bounce, RC_ADDR_MAX);
        if (req->bounce[0]) {
            char canon[RC_ADDR_MAX + 1];
            if (rc_address_canonical(canon, req->bounce, NULL) != 0 ||
                strcmp(canon, req->bounce) != 0)
                return rc_error_set(err, RC_E_FORMAT, "bounce address is not an address");
        }
        rc_rd_copy(r, req->owner.sign_pk, 32);
        rc_rd_copy(r, req->owner.box_pk, 32);
        return 0;
    case RC_REQ_UPDATE_GROUP:
        if ((rc = get_statement(r, req, err)))
            return rc;
        req->grace_until = rc_rd_u64(r);
        return get_devices(r, req, err);
    case RC_REQ_ADD_MEMBER:
        if ((rc = get_addr(r, req->member, "member", err)))
            return rc;
        req->privilege = rc_rd_u8(r);
        return get_devices(r, req, err);
    case RC_REQ_UPDATE_MEMBER:
        if ((rc = get_addr(r, req->member, "member", err)))
            return rc;
        req->status = rc_rd_u8(r);
        req->flags = rc_rd_u8(r);
        return get_devices(r, req, err);
    case RC_REQ_ADD_OWNER:
        rc_rd_copy(r, req->owner.sign_pk, 32);
        rc_rd_copy(r, req->owner.box_pk, 32);
        req->privilege = rc_rd_u8(r);
        return 0;
    case RC_REQ_UPDATE_OWNER:
        rc_rd_copy(r, req->owner.sign_pk, 32);
        req->privilege = rc_rd_u8(r);
        return 0;
    case RC_REQ_REMOVE_OWNER:
        rc_rd_copy(r, req->owner.sign_pk, 32);
        return 0;
    }
    return rc_error_set(err, RC_E_VERSION, "request type %u is not known to this build",
                        req->type);
}

int rc_request_decode(rc_request *req, const uint8_t *in, size_t len, rc_error *err)
{
    memset(req, 0, sizeof *req);
    if (len < RC_SIG_BYTES)
        return rc_error_set(err, RC_E_FORMAT, "request is truncated");
    rc_rd r = {in, len - RC_SIG_BYTES, 0, 0};
    int rc = decode_body(&r, req, err);
    if (rc == 0 && !rc_rd_done(&r))
        rc = rc_error_set(err, RC_E_FORMAT, "request is truncated or has trailing bytes");
    if (rc == 0) {
        uint8_t *msg;
        size_t mlen;
        memcpy(req->sig, in + len - RC_SIG_BYTES, RC_SIG_BYTES);
        if (signed_message(req, &msg, &mlen) != 0)
            rc = rc_error_set(err, RC_E_FORMAT, "request does not re-encode");
        else {
            if (crypto_sign_verify_detached(req->sig, msg, mlen, req->signer_pk) != 0)
                rc = rc_error_set(err, RC_E_SIGNATURE,
                                  "%s request for %s: the owner's signature does not verify",
                                  rc_request_type_name(req->type), req->list);
            free(msg);
        }
    }
    if (rc == 0)
        request_id(req, in, len);
    else
        rc_request_free(req);
    return rc;
}

/* ---- armor ---- */

int rc_request_armor(const rc_request *req, rc_sink_fn sink, void *ctx, rc_error *err)
{
    uint8_t *enc;
    size_t len;
    int rc = rc_request_encode(req, &enc, &len, err);
    if (rc)
        return rc;
    char fp[RC_UDF_MAX], line[600];
    rc_key_fingerprint(fp, sizeof fp, RC_KT_OWNER, req->signer_pk, 32, NULL);
    int fail = 0;
#define EMIT(s) (fail |= sink(ctx, (const uint8_t *)(s), strlen(s)) != 0)
    EMIT(ARMOR_BEGIN "\n");
    switch (req->type) {
    case RC_REQ_CREATE_GROUP:
    case RC_REQ_UPDATE_GROUP:
        snprintf(line, sizeof line, "Request: %s %s epoch %llu (%zu device entries)\n",
                 rc_request_type_name(req->type), req->list,
                 (unsigned long long)req->statement.epoch, req->n_devices);
        break;
    case RC_REQ_ADD_MEMBER:
    case RC_REQ_UPDATE_MEMBER:
        snprintf(line, sizeof line, "Request: %s %s member %s%s%s (%zu device entries)\n",
                 rc_request_type_name(req->type), req->list, req->member,
                 req->type == RC_REQ_UPDATE_MEMBER ? " status " : "",
                 req->type == RC_REQ_UPDATE_MEMBER ? rc_status_name(req->status) : "",
                 req->n_devices);
        break;
    case RC_REQ_UPDATE_OWNER:
    case RC_REQ_REMOVE_OWNER: {
        char ofp[RC_UDF_MAX];
        rc_key_fingerprint(ofp, sizeof ofp, RC_KT_OWNER, req->owner.sign_pk, 32, NULL);
        snprintf(line, sizeof line, "Request: %s %s owner %s%s%s\n",
                 rc_request_type_name(req->type), req->list, ofp,
                 req->type == RC_REQ_UPDATE_OWNER ? " privilege " : "",
                 req->type == RC_REQ_UPDATE_OWNER ? rc_privilege_name(req->privilege) : "");
        break;
    }
    default:
        snprintf(line, sizeof line, "Request: %s %s privilege %s\n",
                 rc_request_type_name(req->type), req->list, rc_privilege_name(req->privilege));
    }
    EMIT(line);
    snprintf(line, sizeof line, "Signer: %s counter %llu\n", fp,
             (unsigned long long)req->counter);
    EMIT(line);
    char made[32], until[32];
    rc_iso_utc(made, sizeof made, req->created_at);
    rc_iso_utc(until, sizeof until, req->not_after);
    snprintf(line, sizeof line, "Valid: %s to %s\n\n", made, until);
    EMIT(line);
    for (size_t off = 0; off < len; off += 57) {
        size_t n = len - off < 57 ? len - off : 57;
        sodium_bin2base64(line, sizeof line, enc + off, n, sodium_base64_VARIANT_ORIGINAL);
        strcat(line, "\n");
        EMIT(line);
    }
    EMIT(ARMOR_END "\n");
#undef EMIT
    free(enc);
    return fail ? rc_error_set(err, RC_E_IO, "cannot write the request") : 0;
}

static const char *find_line(const char *p, const char *end, const char *what)
{
    size_t n = strlen(what);
    for (; p && p + n <= end; p = memchr(p, '\n', (size_t)(end - p)), p = p ? p + 1 : NULL)
        if (memcmp(p, what, n) == 0 && (p + n == end || p[n] == '\n' || p[n] == '\r'))
            return p;
    return NULL;
}

int rc_request_read_armored(const char *text, size_t len, rc_request **reqs, size_t *n,
                            rc_error *err)
{
    const char *p = text, *end = text + len;
    size_t count = 0, cap = 0;
    rc_request *out = NULL;
    int rc = 0;
    *reqs = NULL;
    *n = 0;
    while ((p = find_line(p, end, ARMOR_BEGIN)) != NULL) {
        const char *stop = find_line(p, end, ARMOR_END);
        if (!stop) {
            rc = rc_error_set(err, RC_E_FORMAT,
                              "request %zu is truncated (no '" ARMOR_END "' line)", count + 1);
            break;
        }
        /* Comment lines up to the first empty line, then base64. */
        const char *b = p;
        while (b < stop) {
            const char *nl = memchr(b, '\n', (size_t)(stop - b));
            if (!nl)
                break;
            b = nl + 1;
            if (*b == '\n' || (*b == '\r' && b[1] == '\n')) {
                b += *b == '\r' ? 2 : 1;
                break;
            }
        }
        size_t cap_bin = (size_t)(stop - b) / 4 * 3 + 3, blen = 0;
        uint8_t *bin = malloc(cap_bin ? cap_bin : 1);
        if (!bin) {
            rc = rc_error_set(err, RC_E_NOMEM, "out of memory");
            break;
        }
        const char *b64end = NULL;
        if (b >= stop ||
            sodium_base642bin(bin, cap_bin, b, (size_t)(stop - b), " \t\r\n", &blen, &b64end,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            b64end != stop) {
            free(bin);
            rc = rc_error_set(err, RC_E_FORMAT, "request %zu is corrupted (bad base64)",
                              count + 1);
            break;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 4;
            rc_request *nr = realloc(out, cap * sizeof *nr);
            if (!nr) {
                free(bin);
                rc = rc_error_set(err, RC_E_NOMEM, "out of memory");
                break;
            }
            out = nr;
        }
        rc = rc_request_decode(&out[count], bin, blen, err);
        free(bin);
        if (rc) {
            char msg[RC_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
            rc_error_set(err, rc, "request %zu: %s", count + 1, msg);
            break;
        }
        count++;
        p = stop + strlen(ARMOR_END);
    }
    if (rc == 0 && count == 0)
        rc = rc_error_set(err, RC_E_FORMAT, "no request found (expected '" ARMOR_BEGIN "')");
    if (rc) {
        for (size_t i = 0; i < count; i++)
            rc_request_free(&out[i]);
        free(out);
        return rc;
    }
    *reqs = out;
    *n = count;
    return 0;
}
