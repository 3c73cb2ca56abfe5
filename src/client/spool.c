/*
 * spool.c - see spool.h.
 */
#define _GNU_SOURCE /* mkostemp */
#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "spool.h"

int spool_tmpfile(rc_error *err)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/recrypt.XXXXXX", dir && *dir ? dir : "/tmp");
    mode_t old = umask(077);
    int fd = mkostemp(path, O_CLOEXEC); /* never inherited by a child */
    umask(old);
    if (fd < 0) {
        rc_error_set(err, RC_E_IO, "cannot create a temporary file in %s: %s",
                     dir && *dir ? dir : "/tmp", strerror(errno));
        return -1;
    }
    unlink(path);
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
