/*
 * spool.c - see spool.h.
 */
#define _GNU_SOURCE /* memfd_create, O_TMPFILE */
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "keydir.h"
#include "spool.h"

/* The private directory for the O_TMPFILE fallback: $XDG_RUNTIME_DIR/recrypt
 * (the runtime dir is the user's own, 0700), else <keystore>/tmp. Created
 * 0700; refused unless it is a real directory of ours that nobody else can
 * enter. */
static int private_dir(char *out, size_t outlen, rc_error *err)
{
    const char *run = getenv("XDG_RUNTIME_DIR");
    keystore ks;
    int n;
    if (run && *run == '/')
        n = snprintf(out, outlen, "%s/recrypt", run);
    else if (keystore_open(&ks, NULL, err) == 0)
        n = snprintf(out, outlen, "%s/tmp", ks.dir);
    else
        return -1;
    if (n < 0 || (size_t)n >= outlen)
        return rc_error_set(err, RC_E_INVALID, "the staging directory's path is too long"), -1;
    if (keystore_mkdirs(out, err) != 0)
        return -1;
    struct stat sb;
    if (lstat(out, &sb) != 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != getuid() ||
        (sb.st_mode & 077)) {
        rc_error_set(err, RC_E_PERMISSION,
                     "%s must be your own directory with mode 0700 (decrypted mail is "
                     "staged there)",
                     out);
        return -1;
    }
    return 0;
}

int spool_tmpfile(rc_error *err)
{
    /* Memory first: an anonymous file that has no name anywhere. */
    int fd = memfd_create("recrypt-stage", MFD_CLOEXEC);
    if (fd >= 0)
        return fd;
    int e = errno;
    /* Else a file without a name, in a directory that is ours alone. */
    char dir[PATH_MAX];
    if (private_dir(dir, sizeof dir, err) != 0)
        return -1;
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC | O_EXCL, 0600);
    if (fd < 0) {
        rc_error_set(err, RC_E_IO,
                     "cannot create a private staging file (memfd_create: %s; O_TMPFILE in %s: "
                     "%s)",
                     strerror(e), dir, strerror(errno));
        return -1;
    }
    return fd;
}

int spool_stdin(int in, rc_error *err)
{
    int fd = spool_tmpfile(err);
    if (fd < 0)
        return -1;
    char *buf = malloc(65536);
    if (!buf) {
        close(fd);
        rc_error_set(err, RC_E_NOMEM, "out of memory");
        return -1;
    }
    for (;;) {
        ssize_t n = read(in, buf, 65536);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (n > 0 && rc_fd_sink(&fd, (uint8_t *)buf, (size_t)n) != 0)) {
            free(buf);
            close(fd);
            rc_error_set(err, RC_E_IO, "cannot spool standard input: %s", strerror(errno));
            return -1;
        }
        if (n == 0)
            break;
    }
    free(buf);
    if (lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        rc_error_set(err, RC_E_IO, "cannot rewind the spool file");
        return -1;
    }
    return fd;
}
