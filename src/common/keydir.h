/*
 * keydir.h - a keystore directory: where it is, paths inside it, and its
 * small files. Shared by the subscriber's keystore (src/client/keystore.h)
 * and the list owner's (src/ctl/owner.h), which keep their own files in it
 * by the same rules; owned by neither (src/common). Not installed.
 */
#ifndef RECRYPT_COMMON_KEYDIR_H
#define RECRYPT_COMMON_KEYDIR_H

#include <limits.h>
#include <stddef.h>
#include <recrypt/recrypt.h>

typedef struct {
    char dir[PATH_MAX];
} keystore;

/* Resolve the keystore directory: --home, $RECRYPT_HOME, else
 * $XDG_DATA_HOME/recrypt, else ~/.local/share/recrypt. */
int keystore_open(keystore *ks, const char *home_opt, rc_error *err);

/* DIR/<printf fmt> inside the keystore; -1 when too long. */
int keystore_path(char *out, const keystore *ks, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Small files shared by the subscriber's and the owner's keystores:
 * written through a private temporary file (0600) and renamed into place;
 * read whole into out (NUL-terminated). mkdirs creates a path with 0700. */
int keystore_write_file(const char *path, const char *text, rc_error *err);
int keystore_read_file(const char *path, char *out, size_t outlen);
int keystore_mkdirs(const char *path, rc_error *err);

#endif
