/*
 * nativehost.h - `recrypt native-host`: the native messaging host of the
 * Thunderbird add-on. It speaks the WebExtension native messaging protocol
 * (each message a 32-bit native-endian length and that many bytes of UTF-8
 * JSON) on standard input and output, and does every cryptographic step
 * with librecrypt and the subscriber's keystore (the one the command line
 * uses), so that no key and no cryptography lives in the add-on.
 *
 * Requests, responses, operations and limits are specified in
 * docs/NATIVE-HOST.md. Large messages travel in chunks through handles:
 * private, already unlinked temporary files of this process, so nothing
 * the host stages (decrypted text included) outlives it. Nothing decrypted
 * is returned unless the whole message authenticated.
 *
 * The host state owns its handles; nh_handle() is the whole protocol for
 * one request and is what the unit tests drive.
 */
#ifndef RECRYPT_CLIENT_NATIVEHOST_H
#define RECRYPT_CLIENT_NATIVEHOST_H

#include <stddef.h>
#include <stdint.h>

#define NH_PROTOCOL 1
#define NH_FRAME_MAX (1024u * 1024u)   /* one message, either direction */
#define NH_CHUNK_MAX (512u * 1024u)    /* decoded bytes per upload or read */
#define NH_TEXT_INLINE (256u * 1024u)  /* text parts returned inline up to this */
#define NH_MESSAGE_MAX_DEFAULT (64u * 1024u * 1024u)
#define NH_HANDLES 64
/* compose: what the add-on hands over, bounded field by field */
#define NH_FIELD_MAX 998 /* octets: an address, the subject, a msg-id, a file name */
#define NH_RECIPIENTS_MAX 1000           /* to and cc together */
#define NH_REFERENCES_MAX (64u * 1024u)  /* octets of "references" */
#define NH_TEXT_MAX (1024u * 1024u)      /* octets of "text", and of "html" */
#define NH_ATTACHMENTS_MAX 256

typedef struct nh_host nh_host;

/* home: the keystore directory option (NULL: the default, as recrypt).
 * message_max: the largest message a handle may hold (0: the default). */
int nh_host_new(nh_host **out, const char *home, uint64_t message_max);
void nh_host_free(nh_host *h);

/* One request (JSON text of len bytes); returns the response JSON (malloc'd,
 * never NULL unless out of memory). */
char *nh_handle(nh_host *h, const char *req, size_t len);

/* Serve frames from in_fd, answering on out_fd, until end of input.
 * Returns 0 at a clean end, 1 when the input ended inside a frame or the
 * output failed. An oversize frame gets an error response and is skipped. */
int nh_serve(nh_host *h, int in_fd, int out_fd);

#endif
