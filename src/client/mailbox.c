/*
 * mailbox.c - see mailbox.h.
 */
#define _GNU_SOURCE /* O_CLOEXEC, mkostemp */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include "mailbox.h"

int mailbox_view_path(char *out, size_t outlen, const char *dir_opt, rc_error *err)
{
    const char *run = getenv("XDG_RUNTIME_DIR"), *tmp = getenv("TMPDIR");
    int n;
    if (dir_opt && *dir_opt)
        n = snprintf(out, outlen, "%s", dir_opt);
    else if (run && *run == '/')
        n = snprintf(out, outlen, "%s/recrypt-view", run);
    else
        n = snprintf(out, outlen, "%s/recrypt-view-%lu", tmp && *tmp == '/' ? tmp : "/tmp",
                     (unsigned long)getuid());
    if (n < 0 || (size_t)n >= outlen)
        return rc_error_set(err, RC_E_INVALID, "the view folder's path is too long");
    return 0;
}

/* mkdir 0700 unless present; a present one must be a real directory, and
 * with private_dir the user's own with no access for others. */
static int make_dir(const char *path, int private_dir, rc_error *err)
{
    struct stat sb;
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return rc_error_set(err, RC_E_IO, "cannot create %s: %s", path, strerror(errno));
    if (lstat(path, &sb) != 0)
        return rc_error_set(err, RC_E_IO, "cannot read %s: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return rc_error_set(err, RC_E_PERMISSION, "%s is not a directory (a symbolic link?)",
                            path);
    if (private_dir && (sb.st_uid != getuid() || (sb.st_mode & 077)))
        return rc_error_set(err, RC_E_PERMISSION,
                            "%s must be your own directory with mode 0700 (it holds decrypted "
                            "mail); remove it or choose another with --dir",
                            path);
    return 0;
}

int maildir_prepare(const char *dir, int private_dir, rc_error *err)
{
    char sub[PATH_MAX];
    if (make_dir(dir, private_dir, err))
        return -1;
    static const char *const subs[] = {"cur", "new", "tmp"};
    for (size_t i = 0; i < 3; i++) {
        if (snprintf(sub, sizeof sub, "%s/%s", dir, subs[i]) >= (int)sizeof sub)
            return rc_error_set(err, RC_E_INVALID, "the folder path %s is too long", dir);
        if (make_dir(sub, private_dir, err))
            return -1;
    }
    return 0;
}

int maildir_remove(const char *dir)
{
    static const char *const subs[] = {"cur", "new", "tmp"};
    char sub[PATH_MAX], file[PATH_MAX + NAME_MAX + 2];
    int bad = 0;
    struct stat sb;
    if (lstat(dir, &sb) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(sb.st_mode) || sb.st_uid != getuid())
        return -1; /* not ours to empty */
    for (size_t i = 0; i < 3; i++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, subs[i]);
        DIR *d = opendir(sub);
        if (!d) {
            bad |= errno != ENOENT;
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(file, sizeof file, "%s/%s", sub, e->d_name);
            bad |= unlink(file) != 0 && errno != ENOENT;
        }
        closedir(d);
        bad |= rmdir(sub) != 0 && errno != ENOENT;
    }
    snprintf(file, sizeof file, "%s/.recrypt-view", dir); /* the view folder's marker */
    bad |= unlink(file) != 0 && errno != ENOENT;
    bad |= rmdir(dir) != 0 && errno != ENOENT;
    return bad ? -1 : 0;
}

int maildir_begin(const char *dir, const char *name, char *name_out, size_t name_len,
                  rc_error *err)
{
    char host[64] = "localhost", path[PATH_MAX];
    if (!name) {
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        for (char *p = host; *p; p++) /* maildir(5): no '/' or ':' in a name */
            if (*p == '/' || *p == ':')
                *p = '_';
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(name_out, name_len, "%lld.M%ldP%ldR%08x.%s", (long long)ts.tv_sec,
                 ts.tv_nsec / 1000, (long)getpid(), randombytes_random(), host);
    } else if (name_out != name && snprintf(name_out, name_len, "%s", name) >= (int)name_len) {
        return rc_error_set(err, RC_E_INVALID, "message name too long");
    }
    if (snprintf(path, sizeof path, "%s/tmp/%s", dir, name_out) >= (int)sizeof path)
        return rc_error_set(err, RC_E_INVALID, "the folder path %s is too long", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == EEXIST && name) { /* a leftover of a killed run */
        unlink(path);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    }
    if (fd < 0)
        return rc_error_set(err, RC_E_IO, "cannot create %s: %s", path, strerror(errno));
    return fd;
}

int maildir_commit(const char *dir, const char *name, int fd, const char *flags, int ok,
                   rc_error *err)
{
    char from[PATH_MAX], to[PATH_MAX];
    snprintf(from, sizeof from, "%s/tmp/%s", dir, name);
    snprintf(to, sizeof to, "%s/cur/%s:2,%s", dir, name, flags ? flags : "");
    if (ok && fsync(fd) != 0)
        ok = 0, rc_error_set(err, RC_E_IO, "cannot write %s: %s", from, strerror(errno));
    if (close(fd) != 0 && ok)
        ok = 0, rc_error_set(err, RC_E_IO, "cannot write %s: %s", from, strerror(errno));
    if (ok && rename(from, to) != 0)
        ok = 0, rc_error_set(err, RC_E_IO, "cannot move %s into %s/cur: %s", name, dir,
                             strerror(errno));
    if (!ok) {
        unlink(from);
        return -1;
    }
    return 0;
}

int mailbox_expand(char *out, size_t outlen, const char *path, const char *folder,
                   rc_error *err)
{
    const char *home = getenv("HOME");
    char base[PATH_MAX];
    int n;
    if ((path[0] == '=' || path[0] == '+')) {
        if (!folder || !*folder)
            return rc_error_set(err, RC_E_INVALID,
                                "%s names a folder relative to $folder, and no --folder "
                                "was given",
                                path);
        if (folder[0] == '=' || folder[0] == '+')
            return rc_error_set(err, RC_E_INVALID, "--folder %s is itself relative", folder);
        if (mailbox_expand(base, sizeof base, folder, NULL, err))
            return -1;
        n = snprintf(out, outlen, "%s/%s", base, path + 1);
    } else if (path[0] == '~' && (path[1] == '/' || path[1] == '\0')) {
        if (!home || !*home)
            return rc_error_set(err, RC_E_INVALID, "cannot expand %s: $HOME is not set", path);
        n = snprintf(out, outlen, "%s%s", home, path + 1);
    } else if (strstr(path, "://")) {
        return rc_error_set(err, RC_E_INVALID,
                            "%s is a remote folder; recrypt can keep the sealed copy only in a "
                            "local maildir or mbox",
                            path);
    } else {
        n = snprintf(out, outlen, "%s", path);
    }
    if (n < 0 || (size_t)n >= outlen)
        return rc_error_set(err, RC_E_INVALID, "the folder path %s is too long", path);
    return 0;
}

/* Copy fd (from 0) to out, mboxrd-quoting lines that start with
 * ">*From " and making sure the message ends with a blank line. */
static int mbox_copy(int fd, FILE *out)
{
    FILE *in = fdopen(dup(fd), "r");
    if (!in || fseek(in, 0, SEEK_SET) != 0) {
        if (in)
            fclose(in);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int last_nl = 1, bad = 0;
    while ((len = getline(&line, &cap, in)) > 0) {
        const char *p = line;
        while (*p == '>')
            p++;
        if (strncmp(p, "From ", 5) == 0)
            bad |= fputc('>', out) == EOF;
        bad |= fwrite(line, 1, (size_t)len, out) != (size_t)len;
        last_nl = line[len - 1] == '\n';
    }
    free(line);
    bad |= ferror(in);
    fclose(in);
    if (!last_nl)
        bad |= fputc('\n', out) == EOF;
    bad |= fputc('\n', out) == EOF;
    return bad ? -1 : 0;
}

int mailbox_append(const char *path, const char *folder, int fd, rc_error *err)
{
    char full[PATH_MAX], cur[PATH_MAX + 8], name[256];
    struct stat sb;
    if (mailbox_expand(full, sizeof full, path, folder, err))
        return -1;
    snprintf(cur, sizeof cur, "%s/cur", full);
    if (stat(full, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        if (stat(cur, &sb) != 0)
            return rc_error_set(err, RC_E_INVALID, "%s is a directory but not a maildir", full);
        int out = maildir_begin(full, NULL, name, sizeof name, err);
        if (out < 0)
            return -1;
        uint8_t buf[65536];
        ssize_t n;
        int ok = lseek(fd, 0, SEEK_SET) == 0;
        while (ok && (n = read(fd, buf, sizeof buf)) != 0) {
            if (n < 0 && errno == EINTR)
                continue;
            ok = n > 0 && rc_fd_sink(&out, buf, (size_t)n) == 0;
        }
        if (!ok)
            rc_error_set(err, RC_E_IO, "cannot write the copy into %s", full);
        return maildir_commit(full, name, out, "S", ok, err);
    }
    int mfd = open(full, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (mfd < 0)
        return rc_error_set(err, RC_E_IO, "cannot open %s: %s", full, strerror(errno));
    struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    while (fcntl(mfd, F_SETLKW, &lk) != 0) {
        if (errno != EINTR) {
            close(mfd);
            return rc_error_set(err, RC_E_IO, "cannot lock %s: %s", full, strerror(errno));
        }
    }
    struct stat before;
    FILE *out = fstat(mfd, &before) == 0 ? fdopen(mfd, "a") : NULL;
    if (!out) {
        close(mfd);
        return rc_error_set(err, RC_E_IO, "cannot write %s", full);
    }
    time_t now = time(NULL);
    char when[64];
    struct tm tm;
    strftime(when, sizeof when, "%a %b %e %H:%M:%S %Y", gmtime_r(&now, &tm));
    int bad = fprintf(out, "From recrypt@localhost %s\n", when) < 0 || mbox_copy(fd, out) != 0;
    bad |= fflush(out) != 0 || fsync(mfd) != 0;
    if (bad) /* no half message in the mbox: back to where it ended */
        (void)!ftruncate(mfd, before.st_size);
    bad |= fclose(out) != 0; /* also drops the lock */
    if (bad)
        return rc_error_set(err, RC_E_IO, "cannot append the copy to %s", full);
    return 0;
}
