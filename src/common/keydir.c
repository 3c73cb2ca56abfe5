/*
 * keydir.c - see keydir.h. Every file is written through a private
 * temporary file and renamed into place, so a crash never leaves half a key.
 * (Moved here from src/client/keystore.c unchanged.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "keydir.h"

int keystore_path(char *out, const keystore *ks, const char *fmt, ...)
{
    char rel[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof rel)
        return -1;
    return snprintf(out, PATH_MAX, "%s/%s", ks->dir, rel) >= PATH_MAX ? -1 : 0;
}

int keystore_open(keystore *ks, const char *home_opt, rc_error *err)
{
    const char *env = getenv("RECRYPT_HOME"), *xdg = getenv("XDG_DATA_HOME"),
               *home = getenv("HOME");
    int n;
    if (home_opt && *home_opt)
        n = snprintf(ks->dir, sizeof ks->dir, "%s", home_opt);
    else if (env && *env)
        n = snprintf(ks->dir, sizeof ks->dir, "%s", env);
    else if (xdg && *xdg)
        n = snprintf(ks->dir, sizeof ks->dir, "%s/recrypt", xdg);
    else if (home && *home)
        n = snprintf(ks->dir, sizeof ks->dir, "%s/.local/share/recrypt", home);
    else
        return rc_error_set(err, RC_E_INVALID, "no keystore: set RECRYPT_HOME or HOME");
    if (n >= (int)sizeof ks->dir)
        return rc_error_set(err, RC_E_INVALID, "keystore path too long");
    return 0;
}

int keystore_mkdirs(const char *path, rc_error *err)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return rc_error_set(err, RC_E_IO, "cannot create %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return rc_error_set(err, RC_E_IO, "cannot create %s: %s", tmp, strerror(errno));
    return 0;
}

int keystore_write_file(const char *path, const char *text, rc_error *err)
{
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    mode_t old = umask(077);
    int fd = mkstemp(tmp);
    umask(old);
    if (fd < 0)
        return rc_error_set(err, RC_E_IO, "cannot write %s: %s", path, strerror(errno));
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return rc_error_set(err, RC_E_IO, "cannot write %s", path);
    }
    return 0;
}

int keystore_read_file(const char *path, char *out, size_t outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, out, outlen - 1);
    close(fd);
    if (n < 0)
        return -1;
    out[n] = '\0';
    return 0;
}
