/*
 * recrypt - the subscriber's and sender's tool: device keys, sealing a
 * message to a list's key, opening what the list delivered.
 *
 * It reads mail on standard input and writes mail on standard output so
 * that it fits a mail program's filters (mutt's display_filter, a
 * sendmail wrapper). On any failure it writes nothing on standard output,
 * says why on standard error and exits with a sysexits(3) code.
 */
#include <dirent.h>
#include <sodium.h>
#include <strings.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <recrypt/recrypt.h>
#include "keystore.h"
#include "mailbox.h"
#include "nativehost.h"
#include "open.h"
#include "seal.h"
#include "sendmail.h"
#include "spool.h"

static const char *progname = "recrypt";

static void usage(FILE *f)
{
    fprintf(f,
"Usage: recrypt [--home DIR] COMMAND [OPTIONS]\n"
"\n"
"End-to-end encrypted mailing lists: seal mail to a list's key, open what\n"
"the list delivers. The list's server recrypts each post for every member\n"
"device without being able to read it.\n"
"\n"
"Commands:\n"
"  keygen [--force]       Create this device's key in the keystore and print\n"
"                         its public key line. Send that line to the list\n"
"                         owner to be enrolled.\n"
"  pubkey                 Print this device's public key line again, and its\n"
"                         fingerprint on standard error.\n"
"  seal --to LISTKEY      Read a message (RFC 5322) on standard input, write it\n"
"                         sealed to the list on standard output. LISTKEY is the\n"
"                         list key line the owner published ('recrypt1.listkey.…'),\n"
"                         a file holding it, or the list's address: then the\n"
"                         newest list key this keystore accepted (opening list\n"
"                         mail keeps it current across rotations). The Subject and every header\n"
"                         field go inside the encryption; the outer Subject is\n"
"                         a placeholder. Signed when this device holds a\n"
"                         membership certificate for the list (it arrives with\n"
"                         the first list message this device opens).\n"
"       [--signer FPR]    Require the list key to be signed by the list signing\n"
"                         key with this fingerprint (else: pinned on first use).\n"
"       [--no-sign]       Do not sign even when a certificate is held. A signed\n"
"                         post must be From the certificate's member (readers\n"
"                         refuse any other): seal refuses one From elsewhere.\n"
"  sendmail [OPTIONS] [--] [RCPT...]\n"
"                         A drop-in for 'sendmail -t -oi' for mail programs:\n"
"                         seals posts to encrypted lists, passes other mail\n"
"                         through ('recrypt sendmail --help').\n"
"  list show              Every list this keystore knows: its signing key's\n"
"                         fingerprint, when it was pinned, and each accepted\n"
"                         epoch's list key with its validity.\n"
"  list import SOURCE     Accept a list key: SOURCE is the key line, a file\n"
"                         holding it, a message the list delivered (its\n"
"                         Recrypt-List-Key), or - for standard input. Pinned on\n"
"                         first use (compare the printed fingerprint with the\n"
"                         owner's), else checked against the pin.\n"
"       [--signer FPR]    Require this list signing key.\n"
"  open                   Read a message delivered by the list on standard\n"
"                         input, write the decrypted message on standard output\n"
"                         with one added header field:\n"
"                           Recrypt-Verdict: signed; member=ADDR; device=FPR; …\n"
"                           Recrypt-Verdict: unsigned; list=ADDR; epoch=N\n"
"                         Nothing is written unless the whole message\n"
"                         authenticated.\n"
"                         A copy that did not come through the list (no valid\n"
"                         Recrypt-Service-Signature) is refused: anyone who\n"
"                         knows the list key can write one. With a list key of\n"
"                         version 1 the verdict ends in \"; path=unverified\".\n"
"       [--list-key LISTKEY]  Use this list key instead of the one the message\n"
"                         carries in its Recrypt-List-Key header.\n"
"       [--signer FPR]    As for seal.\n"
"       [--allow-direct]  Show such a copy anyway, with the verdict\n"
"                           Recrypt-Verdict: direct; list=ADDR; epoch=N\n"
"                         (never \"signed\", whatever it carries).\n"
"       [--maildir DIR]   Deliver the decrypted message into the maildir DIR\n"
"                         (created 0700, must be private) instead.\n"
"  view                   For mail programs: open the message on standard input\n"
"                         into the private one-message view folder (replacing\n"
"                         the one before), or a notice saying why not. neomutt\n"
"                         and mutt then open that folder read-only, with real\n"
"                         MIME: attachments, charsets, replies that thread.\n"
"       [--path]          Print the view folder's path (creating it).\n"
"       [--clear]         Remove the view folder and what it holds.\n"
"       [--dir DIR]       Use DIR (default $XDG_RUNTIME_DIR/recrypt-view, else\n"
"                         $TMPDIR or /tmp, /recrypt-view-UID).\n"
"  mutt-config [--dir DIR] [--lists]\n"
"                         Print the keystore-dependent mutt/neomutt lines\n"
"                         (the contrib rc file sources them): each list as\n"
"                         'subscribe', no plaintext Fcc, no header cache in\n"
"                         the view, view clean-up (--lists: the lists only).\n"
"  archive --maildir DEST SOURCE...\n"
"                         Opt-in search: keep a decrypted copy of every list\n"
"                         post in the SOURCE maildirs (or files) in the private\n"
"                         maildir DEST, for notmuch or mutt. Run again to add\n"
"                         new posts; nothing is copied twice. Decrypted mail\n"
"                         then lies on disk: see recrypt(1).\n"
"  native-host            The native messaging host of the Thunderbird add-on\n"
"                         (docs/NATIVE-HOST.md): JSON frames on standard\n"
"                         input and output. Also run as recrypt-native-host.\n"
"  pins                   List the lists this keystore knows, with the pinned\n"
"                         signing key and the highest epoch seen.\n"
"\n"
"Options:\n"
"  --home DIR             Keystore directory (default: $RECRYPT_HOME, else\n"
"                         $XDG_DATA_HOME/recrypt, else ~/.local/share/recrypt).\n"
"  -h, --help             This help.   -V, --version   Version.\n"
"\n"
"Trust: the first list key seen for a list pins its signing key; later keys\n"
"must be signed by the same key and may not go back to an older epoch.\n"
"Compare the fingerprint printed on first use with the one your list owner\n"
"gives you, or pass --signer.\n"
"\n"
"Exit status: 0 success, 64 usage, 65 malformed or tampered input,\n"
"67 not addressed to this device, 74 I/O error, 77 refused by trust or\n"
"permission rules, 70 internal error. See recrypt(1).\n");
}

static int exit_code(int rc)
{
    switch (rc) {
    case RC_OK: return EX_OK;
    case RC_E_INVALID: return EX_USAGE;
    case RC_E_FORMAT:
    case RC_E_VERSION:
    case RC_E_CRYPTO:
    case RC_E_AUTH:
    case RC_E_SIGNATURE: return EX_DATAERR;
    case RC_E_NOT_FOR_US: return EX_NOUSER;
    case RC_E_POLICY:
    case RC_E_PERMISSION: return EX_NOPERM;
    case RC_E_IO: return EX_IOERR;
    case RC_E_NOT_FOUND: return EX_NOINPUT;
    default: return EX_SOFTWARE;
    }
}

static int fail(const rc_error *err)
{
    fprintf(stderr, "%s: %s\n", progname, err->msg[0] ? err->msg : rc_strerror(err->code));
    return exit_code(err->code);
}

static int stdout_sink(void *ctx, const uint8_t *p, size_t len)
{
    (void)ctx;
    return fwrite(p, 1, len, stdout) == len ? 0 : -1;
}

static int fd_sink(void *ctx, const uint8_t *p, size_t len)
{
    return rc_fd_sink(ctx, p, len);
}

static void announce_first_use(const rc_statement *st)
{
    char fp[RC_UDF_MAX];
    rc_key_fingerprint(fp, sizeof fp, "list-signer", st->signer_pk, 32, NULL);
    fprintf(stderr,
            "%s: first use of list %s: pinned its signing key %s\n"
            "%s: compare that fingerprint with the one your list owner published\n",
            progname, st->address, fp, progname);
}

static int cmd_keygen(keystore *ks, int force)
{
    rc_error err;
    rc_error_clear(&err);
    if (keystore_device_exists(ks) && !force) {
        fprintf(stderr, "%s: this keystore (%s) already has a device key; 'recrypt pubkey' "
                        "prints it, --force replaces it (the old key's lists stop working)\n",
                progname, ks->dir);
        return EX_CANTCREAT;
    }
    rc_device_secret *dev = rc_secret_alloc(sizeof *dev);
    char line[RC_KEYSTR_MAX], fp[RC_UDF_MAX];
    int rc = dev ? keystore_prepare(ks, &err) : rc_error_set(&err, RC_E_NOMEM, "out of memory");
    if (rc == 0 && (rc = rc_device_generate(dev, &err)) == 0 &&
        (rc = keystore_device_save(ks, dev, &err)) == 0 &&
        (rc = rc_device_public_encode(line, sizeof line, &dev->pub, &err)) == 0) {
        rc_key_fingerprint(fp, sizeof fp, RC_FP_DEVICE_SIGNER, dev->pub.sign_pk, 32, NULL);
        printf("%s\n", line);
        fprintf(stderr, "%s: device key created in %s (fingerprint %s)\n", progname, ks->dir, fp);
    }
    rc_secret_free(dev);
    return rc ? fail(&err) : 0;
}

static int cmd_pubkey(keystore *ks)
{
    rc_error err;
    rc_error_clear(&err);
    rc_device_secret *dev = rc_secret_alloc(sizeof *dev);
    char line[RC_KEYSTR_MAX], fp[RC_UDF_MAX];
    int rc = dev ? keystore_device_load(ks, dev, &err)
                 : rc_error_set(&err, RC_E_NOMEM, "out of memory");
    if (rc == 0 && (rc = rc_device_public_encode(line, sizeof line, &dev->pub, &err)) == 0) {
        rc_key_fingerprint(fp, sizeof fp, RC_FP_DEVICE_SIGNER, dev->pub.sign_pk, 32, NULL);
        printf("%s\n", line);
        fprintf(stderr, "%s: fingerprint %s\n", progname, fp);
    }
    rc_secret_free(dev);
    return rc ? fail(&err) : 0;
}

static int cmd_seal(keystore *ks, const char *to, const char *signer_fp, int no_sign)
{
    rc_error err;
    rc_statement st;
    int first = 0, in = -1, rc;
    rc_error_clear(&err);
    if (!to) {
        fprintf(stderr, "%s: seal needs --to LISTKEY (the list key line or a file)\n", progname);
        return EX_USAGE;
    }
    if ((in = spool_stdin(STDIN_FILENO, &err)) < 0)
        return fail(&err);
    rc = client_seal(ks, to, signer_fp, no_sign, in, stdout_sink, NULL, &st, &first, &err);
    close(in);
    if (rc == 0 && fflush(stdout) != 0)
        rc = rc_error_set(&err, RC_E_IO, "cannot write standard output");
    if (rc == RC_E_POLICY && strstr(err.msg, "this device signs as")) {
        fprintf(stderr, "%s: %s (recrypt seal --no-sign)\n", progname, err.msg);
        return exit_code(rc);
    }
    if (rc)
        return fail(&err);
    if (first)
        announce_first_use(&st);
    return 0;
}

/* --allow-direct: CLIENT_OPEN_ALLOW_DIRECT for open_post. */
static unsigned open_flags;

/* Open the post in `in` (see open.h) and announce a first pin. */
static int open_post(keystore *ks, int in, const char *list_key, const char *signer_fp,
                     rc_sink_fn sink, void *ctx, rc_error *err)
{
    client_open_info info;
    int rc = client_open_ex(ks, in, list_key, signer_fp, open_flags, sink, ctx, &info, err);
    if (rc == 0 && info.path == RC_PATH_DIRECT)
        fprintf(stderr,
                "%s: WARNING: this copy did not come through the list %s (no valid service "
                "signature): anyone who knows the list key can write such a message; it is "
                "marked \"direct\" and not shown as signed by a member\n",
                progname, info.list);
    if (rc == 0 && info.first_use)
        fprintf(stderr,
                "%s: first use of list %s: pinned its signing key %s\n"
                "%s: compare that fingerprint with the one your list owner published\n",
                progname, info.list, info.signer_fp, progname);
    return rc;
}

static int cmd_open(keystore *ks, const char *list_key, const char *signer_fp,
                    const char *maildir)
{
    rc_error err;
    char name[256];
    int in, out = -1, rc;
    rc_error_clear(&err);
    if ((in = spool_stdin(STDIN_FILENO, &err)) < 0)
        return fail(&err);
    if (!maildir) {
        rc = open_post(ks, in, list_key, signer_fp, stdout_sink, NULL, &err);
        if (rc == 0 && fflush(stdout) != 0)
            rc = rc_error_set(&err, RC_E_IO, "cannot write standard output");
    } else if ((rc = maildir_prepare(maildir, 1, &err)) == 0 &&
               (out = maildir_begin(maildir, NULL, name, sizeof name, &err)) >= 0) {
        rc = open_post(ks, in, list_key, signer_fp, fd_sink, &out, &err);
        if (maildir_commit(maildir, name, out, NULL, rc == 0, rc ? NULL : &err) && !rc)
            rc = err.code;
    } else {
        rc = err.code;
    }
    close(in);
    return rc ? fail(&err) : 0;
}

/* The notice the view folder shows when a message could not be opened: it
 * says why, and holds nothing of the message. */
static int write_notice(int fd, const rc_error *why)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", gmtime_r(&now, &tm));
    FILE *f = fdopen(dup(fd), "w");
    if (!f)
        return -1;
    const char *msg = why->msg[0] ? why->msg : rc_strerror(why->code);
    int bad = fprintf(f,
                      "From: recrypt <recrypt@localhost>\n"
                      "Subject: [recrypt] not opened: %.120s\n"
                      "Date: %s\n"
                      "Recrypt-Verdict: refused\n"
                      "MIME-Version: 1.0\n"
                      "Content-Type: text/plain; charset=utf-8\n"
                      "\n"
                      "recrypt did not open this message, and shows nothing of it:\n\n"
                      "  %s\n\n"
                      "A message that was tampered with, truncated, not addressed to this\n"
                      "device, or sealed to a list key you have not accepted is never shown.\n"
                      "See 'recrypt list show' for the lists and keys this device knows.\n",
                      msg, date, msg) < 0;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

/* The view folder carries a marker file, and only a folder with it is ever
 * emptied: `view --dir` pointed at a real mailbox refuses instead of
 * deleting its mail. */
#define VIEW_MARKER ".recrypt-view"

static int view_is_ours(const char *dir, rc_error *err)
{
    char mark[PATH_MAX + 16];
    struct stat sb;
    if (lstat(dir, &sb) != 0)
        return errno == ENOENT ? 0 : rc_error_set(err, RC_E_IO, "cannot read %s: %s", dir,
                                                  strerror(errno));
    snprintf(mark, sizeof mark, "%s/" VIEW_MARKER, dir);
    if (lstat(mark, &sb) != 0 || !S_ISREG(sb.st_mode))
        return rc_error_set(err, RC_E_PERMISSION,
                            "%s exists and is not a recrypt view folder (it has no " VIEW_MARKER
                            "): recrypt will not empty it; choose another with --dir",
                            dir);
    return 0;
}

static int view_prepare(const char *dir, rc_error *err)
{
    char mark[PATH_MAX + 16];
    if (maildir_prepare(dir, 1, err))
        return -1;
    snprintf(mark, sizeof mark, "%s/" VIEW_MARKER, dir);
    int fd = open(mark, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return rc_error_set(err, RC_E_IO, "cannot create %s: %s", mark, strerror(errno));
    close(fd);
    return 0;
}

/* recrypt view: the one-message folder a mail program opens to show a
 * decrypted post. --path prints (and creates) it, --clear removes it. */
static int cmd_view(keystore *ks, const char *dir_opt, const char *list_key,
                    const char *signer_fp, int mode)
{
    rc_error err, why;
    char dir[PATH_MAX], name[256];
    rc_error_clear(&err);
    rc_error_clear(&why);
    if (mailbox_view_path(dir, sizeof dir, dir_opt, &err))
        return fail(&err);
    if (view_is_ours(dir, &err))
        return fail(&err);
    if (mode == 'c') {
        if (maildir_remove(dir) != 0) {
            fprintf(stderr, "%s: cannot remove the view folder %s\n", progname, dir);
            return EX_IOERR;
        }
        return 0;
    }
    if (mode == 'p') {
        if (view_prepare(dir, &err))
            return fail(&err);
        printf("%s\n", dir);
        return fflush(stdout) ? EX_IOERR : 0;
    }
    int in = spool_stdin(STDIN_FILENO, &err), out = -1, rc;
    if (in < 0)
        return fail(&err);
    /* One message at a time: the previous one goes first. */
    if (maildir_remove(dir) != 0) {
        close(in);
        fprintf(stderr, "%s: cannot empty the view folder %s\n", progname, dir);
        return EX_IOERR;
    }
    if (view_prepare(dir, &err) ||
        (out = maildir_begin(dir, NULL, name, sizeof name, &err)) < 0) {
        close(in);
        return fail(&err);
    }
    rc = open_post(ks, in, list_key, signer_fp, fd_sink, &out, &why);
    close(in);
    if (rc) { /* the file may hold a partial write: start it again */
        if (ftruncate(out, 0) != 0 || lseek(out, 0, SEEK_SET) != 0 ||
            write_notice(out, &why) != 0) {
            maildir_commit(dir, name, out, NULL, 0, NULL);
            return fail(&why);
        }
    }
    if (maildir_commit(dir, name, out, NULL, 1, &err))
        return fail(rc ? &why : &err);
    return rc ? fail(&why) : 0;
}

/* Does the file's header carry a Recrypt-List-Key field (is it list
 * mail at all)? Reads the header only. */
static int is_list_mail(int fd)
{
    FILE *f = fdopen(dup(fd), "r");
    char line[1024];
    int found = 0;
    size_t hl = strlen(RC_HDR_LIST_KEY);
    while (f && !found && fgets(line, sizeof line, f)) {
        if (line[0] == '\n' || (line[0] == '\r' && line[1] == '\n'))
            break;
        found = strncasecmp(line, RC_HDR_LIST_KEY, hl) == 0 && line[hl] == ':';
    }
    if (f)
        fclose(f);
    lseek(fd, 0, SEEK_SET);
    return found;
}

/* The archive name of a message: "recrypt-" and a BLAKE2b-128 of its
 * bytes, so that archiving the same folder again adds nothing twice. */
static int content_name(int fd, char *out, size_t outlen)
{
    crypto_generichash_state s;
    uint8_t buf[65536], h[16];
    ssize_t n;
    crypto_generichash_init(&s, NULL, 0, sizeof h);
    while ((n = read(fd, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        crypto_generichash_update(&s, buf, (size_t)n);
    }
    crypto_generichash_final(&s, h, sizeof h);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(out, outlen, "recrypt-%s", hex);
    return lseek(fd, 0, SEEK_SET) == 0 ? 0 : -1;
}

/* The message names (without their ":2,flags" info) in a maildir's cur and
 * new, sorted, for lookups. */
typedef struct {
    char **v;
    size_t n;
} name_set;

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int name_set_load(name_set *ns, const char *dir)
{
    static const char *const subs[] = {"cur", "new"};
    size_t cap = 0;
    ns->v = NULL;
    ns->n = 0;
    for (int i = 0; i < 2; i++) {
        char sub[PATH_MAX];
        snprintf(sub, sizeof sub, "%s/%s", dir, subs[i]);
        DIR *d = opendir(sub);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            if (ns->n == cap) {
                cap = cap ? 2 * cap : 256;
                char **nv = realloc(ns->v, cap * sizeof *nv);
                if (!nv) {
                    closedir(d);
                    return -1;
                }
                ns->v = nv;
            }
            if (!(ns->v[ns->n] = strndup(e->d_name, strcspn(e->d_name, ":")))) {
                closedir(d);
                return -1;
            }
            ns->n++;
        }
        if (d)
            closedir(d);
    }
    if (ns->n)
        qsort(ns->v, ns->n, sizeof *ns->v, by_str);
    return 0;
}

static int name_set_has(const name_set *ns, const char *name)
{
    return ns->n && bsearch(&name, ns->v, ns->n, sizeof *ns->v, by_str) != NULL;
}

static void name_set_free(name_set *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
}

/* recrypt archive --maildir DEST SOURCE...: keep a decrypted copy of every
 * list post in the SOURCE maildirs (or message files) in DEST. */
static int cmd_archive(keystore *ks, const char *dest, char **src, int n_src,
                       const char *signer_fp)
{
    rc_error err;
    size_t added = 0, had = 0, skipped = 0, failed = 0;
    rc_error_clear(&err);
    if (!dest || n_src == 0) {
        fprintf(stderr, "%s: archive needs --maildir DEST and at least one source folder\n",
                progname);
        return EX_USAGE;
    }
    name_set have;
    if (maildir_prepare(dest, 1, &err))
        return fail(&err);
    if (name_set_load(&have, dest) != 0) {
        fprintf(stderr, "%s: archive: cannot read %s\n", progname, dest);
        return EX_IOERR;
    }
    for (int i = 0; i < n_src; i++) {
        /* A maildir's cur and new, or the file itself. */
        char sub[2][PATH_MAX];
        struct stat sb;
        int n_sub = 0;
        if (stat(src[i], &sb) != 0) {
            fprintf(stderr, "%s: archive: %s: %s\n", progname, src[i], strerror(errno));
            failed++;
            continue;
        }
        if (S_ISDIR(sb.st_mode)) {
            snprintf(sub[n_sub++], PATH_MAX, "%s/cur", src[i]);
            snprintf(sub[n_sub++], PATH_MAX, "%s/new", src[i]);
            if (stat(sub[0], &sb) != 0 || !S_ISDIR(sb.st_mode)) {
                fprintf(stderr, "%s: archive: %s is a directory but not a maildir (no cur)\n",
                        progname, src[i]);
                failed++;
                continue;
            }
        }
        for (int k = 0; k <= n_sub; k++) {
            DIR *d = NULL;
            struct dirent *e = NULL;
            if (n_sub && k == n_sub)
                break;
            if (n_sub && !(d = opendir(sub[k])))
                continue;
            for (;;) {
                char file[PATH_MAX + NAME_MAX + 2], name[64];
                if (d) {
                    if (!(e = readdir(d)))
                        break;
                    if (e->d_name[0] == '.')
                        continue;
                    snprintf(file, sizeof file, "%s/%s", sub[k], e->d_name);
                } else {
                    snprintf(file, sizeof file, "%s", src[i]);
                }
                int in = open(file, O_RDONLY | O_CLOEXEC), out = -1;
                if (in < 0) {
                    fprintf(stderr, "%s: archive: %s: %s\n", progname, file, strerror(errno));
                    failed++;
                } else if (!is_list_mail(in)) {
                    skipped++;
                } else if (content_name(in, name, sizeof name)) {
                    fprintf(stderr, "%s: archive: cannot read %s\n", progname, file);
                    failed++;
                } else if (name_set_has(&have, name)) {
                    had++;
                } else if ((out = maildir_begin(dest, name, name, sizeof name, &err)) < 0) {
                    fprintf(stderr, "%s: archive: %s\n", progname, err.msg);
                    failed++;
                } else {
                    int rc = open_post(ks, in, NULL, signer_fp, fd_sink, &out, &err);
                    if (maildir_commit(dest, name, out, "S", rc == 0, rc ? NULL : &err))
                        rc = rc ? rc : err.code;
                    if (rc) {
                        fprintf(stderr, "%s: archive: %s: %s\n", progname, file, err.msg);
                        failed++;
                    } else {
                        added++;
                    }
                }
                if (in >= 0)
                    close(in);
                if (!d)
                    break;
            }
            if (d)
                closedir(d);
            if (!n_sub)
                break;
        }
    }
    name_set_free(&have);
    fprintf(stderr, "%s: archive %s: %zu added, %zu already there, %zu not list mail, %zu not "
                    "opened\n",
            progname, dest, added, had, skipped, failed);
    return failed ? EX_DATAERR : 0;
}

/* A list address as a mutt regular expression, anchored; 0 when it holds
 * a character that would need more quoting than mutt's single quotes
 * give. */
static int mutt_regex(char *out, size_t outlen, const char *addr)
{
    size_t o = 0;
    out[o++] = '^';
    for (const char *p = addr; *p; p++) {
        if (*p == '\'' || *p == '"' || *p == '\\' || *p == '$' || *p == '`' ||
            (unsigned char)*p < 0x21)
            return 0; /* quoting mutt would undo, or expand */
        if (strchr(".[]()*+?{}|^$", *p))
            out[o++] = '\\';
        out[o++] = *p;
        if (o + 4 >= outlen)
            return 0;
    }
    out[o++] = '$';
    out[o] = '\0';
    return 1;
}

/* Print re with every backslash doubled (for a pattern mutt reads twice:
 * inside double quotes, or a hook's pattern argument). */
static void put_doubled(const char *re)
{
    for (const char *p = re; *p; p++)
        fputs(*p == '\\' ? "\\\\" : (char[]){*p, 0}, stdout);
}

/* recrypt mutt-config: the part of the mutt/neomutt set-up that depends on
 * this keystore, for `source "recrypt mutt-config|"`. lists_only: just the
 * lists (the macro re-reads them after opening a post). */
static int cmd_mutt_config(keystore *ks, const char *dir_opt, int lists_only)
{
    rc_error err;
    char view[PATH_MAX], re[2 * PATH_MAX], lists[PATH_MAX + 8];
    rc_error_clear(&err);
    if (mailbox_view_path(view, sizeof view, dir_opt, &err))
        return fail(&err);
    printf("# Generated by 'recrypt mutt-config' from the keystore %s.\n", ks->dir);
    if (!lists_only) {
        const char *fcc = getenv("RECRYPT_FCC");
        printf("# The header cache is off in the decrypted view (it would keep the\n"
               "# decrypted Subject and From on disk); this is the one to restore.\n"
               "set my_recrypt_hcache = \"$header_cache\"\n");
        if (fcc && strstr(fcc, "://"))
            printf("echo \"recrypt: your sent folder is on a server; list posts get no sent "
                   "copy (set record to a local folder)\"\n");
    }
    printf("# Encrypted lists: list-reply knows them, and mutt keeps no plaintext\n"
           "# sent copy of a post to them (recrypt sendmail keeps the sealed one).\n");
    snprintf(lists, sizeof lists, "%s/lists", ks->dir);
    DIR *d = opendir(lists);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char pin[PATH_MAX];
        struct stat sb;
        if (e->d_name[0] == '.' || keystore_path(pin, ks, "lists/%s/pin", e->d_name) != 0 ||
            stat(pin, &sb) != 0)
            continue;
        if (!mutt_regex(re, sizeof re, e->d_name)) {
            printf("echo \"recrypt: the list address %s cannot be written in a mutt pattern: "
                   "mutt may keep a plaintext sent copy of posts to it\"\n",
                   e->d_name);
            continue;
        }
        printf("subscribe '%s'\n", re);
        /* mutt reads a hook's pattern twice: backslashes doubled. */
        printf("fcc-hook '~C ");
        put_doubled(re);
        printf("' /dev/null\n");
    }
    if (d)
        closedir(d);
    if (lists_only)
        return fflush(stdout) ? EX_IOERR : 0;
    /* folder-hook patterns are also expanded as paths: a leading '^' would
     * be the current mailbox and a quoted leading '!' the spool file, so
     * the pattern is "PATH/?$" with PATH's regex characters escaped (a
     * double backslash inside double quotes). */
    if (!mutt_regex(re, sizeof re, view)) {
        printf("echo \"recrypt: the view folder's path cannot be written in a mutt pattern: "
               "it is not removed when you leave it (recrypt view --dir)\"\n");
        return fflush(stdout) ? EX_IOERR : 0;
    }
    re[strlen(re) - 1] = '\0'; /* without the $ anchor */
    printf("# In the decrypted view: no header cache. Leaving it for another folder:\n"
           "# the header cache back, and the view removed.\n");
    printf("folder-hook \"");
    put_doubled(re + 1);
    printf("/?$\" 'set header_cache=\"\"'\n");
    printf("folder-hook !\"");
    put_doubled(re + 1);
    printf("/?$\" 'set header_cache=\"$my_recrypt_hcache\"; source \"recrypt%s%s view "
           "--clear|\"'\n",
           dir_opt ? " --dir " : "", dir_opt ? dir_opt : "");
    return fflush(stdout) ? EX_IOERR : 0;
}

static int cmd_pins(keystore *ks)
{
    char dir[PATH_MAX + 8];
    snprintf(dir, sizeof dir, "%s/lists", ks->dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    int any = 0;
    while (d && (e = readdir(d)) != NULL) {
        rc_pin pin;
        rc_error err;
        char fp[RC_UDF_MAX];
        if (e->d_name[0] == '.' || keystore_pin_load(ks, e->d_name, &pin, &err) != 1)
            continue;
        rc_key_fingerprint(fp, sizeof fp, "list-signer", pin.signer_pk, 32, NULL);
        printf("%s signer=%s epoch=%llu\n", e->d_name, fp, (unsigned long long)pin.highest_epoch);
        any = 1;
    }
    if (d)
        closedir(d);
    if (!any)
        fprintf(stderr, "%s: no list pinned yet\n", progname);
    return 0;
}

/* "2026-12-02 13:00 UTC" */
static void human_time(char *out, size_t cap, uint64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm) || strftime(out, cap, "%Y-%m-%d %H:%M UTC", &tm) == 0)
        snprintf(out, cap, "%llu", (unsigned long long)t);
}

typedef struct {
    char name[RC_ADDR_MAX + 1];
} list_name;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const list_name *)a)->name, ((const list_name *)b)->name);
}

/* recrypt list show: every list this keystore knows, sorted, with its
 * signer, pin date, and each accepted epoch's validity. */
static int cmd_list_show(keystore *ks)
{
    char dir[PATH_MAX + 8];
    snprintf(dir, sizeof dir, "%s/lists", ks->dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    list_name *names = NULL;
    size_t n = 0, cap = 0;
    uint64_t now = (uint64_t)time(NULL);
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strlen(e->d_name) > RC_ADDR_MAX)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            list_name *nn = realloc(names, cap * sizeof *names);
            if (!nn) {
                free(names);
                closedir(d);
                fprintf(stderr, "%s: out of memory\n", progname);
                return EX_OSERR;
            }
            names = nn;
        }
        size_t len = strlen(e->d_name); /* <= RC_ADDR_MAX, checked above */
        memcpy(names[n].name, e->d_name, len + 1);
        n++;
    }
    if (d)
        closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        rc_pin pin;
        rc_error err;
        char fp[RC_UDF_MAX], when[64], from[64], until[64], path[PATH_MAX], line[RC_KEYSTR_MAX * 2];
        if (keystore_pin_load(ks, names[i].name, &pin, &err) != 1)
            continue;
        any = 1;
        rc_key_fingerprint(fp, sizeof fp, "list-signer", pin.signer_pk, 32, NULL);
        uint64_t since = keystore_pin_since(ks, names[i].name);
        if (since)
            human_time(when, sizeof when, since);
        printf("%s\n  signer %s\n  pinned %s\n", names[i].name, fp,
               since ? when : "(date not recorded)");
        /* Epochs, newest first. */
        for (uint64_t ep = pin.highest_epoch; ep >= 1; ep--) {
            rc_statement st;
            rc_cert cert;
            if (keystore_path(path, ks, "lists/%s/epoch-%llu.listkey", names[i].name,
                              (unsigned long long)ep) != 0 ||
                keystore_read_file(path, line, sizeof line) != 0 ||
                rc_statement_decode(&st, line, NULL) != 0)
                continue;
            human_time(from, sizeof from, st.not_before);
            if (st.not_after)
                human_time(until, sizeof until, st.not_after);
            const char *state = st.not_after && st.not_after < now   ? "expired"
                                : st.not_before > now                ? "not yet valid"
                                : ep == pin.highest_epoch            ? "current"
                                                                     : "older";
            printf("  epoch %llu  valid %s to %s  %s%s\n", (unsigned long long)ep, from,
                   st.not_after ? until : "(no expiry)", state,
                   keystore_cert_load(ks, names[i].name, ep, &cert)
                       ? ", this device holds its membership certificate"
                       : "");
            if (ep == 1)
                break;
        }
    }
    free(names);
    if (!any)
        fprintf(stderr, "%s: this keystore knows no list yet (open a list message, or "
                        "recrypt list import)\n",
                progname);
    return 0;
}

/* recrypt list import SOURCE: a list key line, a file holding one, or a
 * message delivered by the list (its Recrypt-List-Key); "-" reads
 * standard input. Trusted as when opening: pinned on first use, or
 * checked against the pin (and --signer). */
static int cmd_list_import(keystore *ks, const char *source, const char *signer_fp)
{
    rc_error err;
    rc_statement st;
    rc_mail *m = NULL;
    int rc, first = 0, fd = -1;
    rc_error_clear(&err);
    if (!source) {
        fprintf(stderr, "%s: list import needs a list key line, a file, or - (standard input)\n",
                progname);
        return EX_USAGE;
    }
    if (client_is_key_line(source)) {
        rc = rc_statement_decode(&st, source, &err);
    } else {
        int in = strcmp(source, "-") == 0 ? STDIN_FILENO : open(source, O_RDONLY | O_CLOEXEC);
        if (in < 0)
            return fprintf(stderr, "%s: cannot read %s: %s\n", progname, source, strerror(errno)),
                   EX_NOINPUT;
        fd = spool_stdin(in, &err);
        if (in != STDIN_FILENO)
            close(in);
        if (fd < 0)
            return fail(&err);
        /* A key line (with white space around it), else a message. */
        char head[RC_KEYSTR_MAX * 2];
        ssize_t got = pread(fd, head, sizeof head - 1, 0);
        head[got > 0 ? got : 0] = '\0';
        char *k = head + strspn(head, " \t\r\n");
        if (strncmp(k, "recrypt1.listkey.", 17) == 0) {
            k[strcspn(k, " \t\r\n")] = '\0';
            rc = rc_statement_decode(&st, k, &err);
        } else if ((rc = rc_mail_parse(&m, fd, &err)) == 0) {
            rc = rc_mail_list_key(m) ? rc_statement_decode(&st, rc_mail_list_key(m), &err)
                                     : rc_error_set(&err, RC_E_FORMAT,
                                                    "the message carries no %s header (import a "
                                                    "message the list delivered, or the key line)",
                                                    RC_HDR_LIST_KEY);
        } else {
            char why[sizeof err.msg];
            snprintf(why, sizeof why, "%s", err.msg);
            rc = rc_error_set(&err, RC_E_FORMAT,
                              "%s is neither a list key line nor a message from the list (%s)",
                              source, why);
        }
        close(fd);
    }
    rc_mail_free(m);
    if (rc || (rc = keystore_trust(ks, &st, signer_fp, (uint64_t)time(NULL), 1, &first, &err)) ||
        (rc = keystore_prepare(ks, &err)) || (rc = keystore_remember(ks, &st, &err)))
        return fail(&err);
    if (first)
        announce_first_use(&st);
    char fp[RC_UDF_MAX];
    rc_key_fingerprint(fp, sizeof fp, "list-signer", st.signer_pk, 32, NULL);
    printf("%s epoch %llu imported (signer %s)\n", st.address, (unsigned long long)st.epoch, fp);
    return 0;
}

/* recrypt native-host: serve the add-on on standard input and output. */
static int cmd_native_host(const char *home)
{
    rc_error err;
    nh_host *h = NULL;
    /* Thunderbird gone: a failed write ends the host with exit 76, not a
     * signal. */
    signal(SIGPIPE, SIG_IGN);
    if (rc_init(&err) != 0)
        return fail(&err);
    if (nh_host_new(&h, home, 0) != 0) {
        fprintf(stderr, "%s native-host: cannot open the keystore\n", progname);
        return EX_CONFIG;
    }
    int rc = nh_serve(h, STDIN_FILENO, STDOUT_FILENO);
    nh_host_free(h);
    return rc ? EX_PROTOCOL : 0;
}

struct cli_options {
    const char *home, *to, *signer, *list_key, *maildir, *dir;
    int no_sign, force, view_mode, lists_only;
};

/* Record one option; returns an exit code when the program should stop. */
static int take_option(struct cli_options *o, int c)
{
    switch (c) {
    case 'H': o->home = optarg; break;
    case 't': o->to = optarg; break;
    case 's': o->signer = optarg; break;
    case 'k': o->list_key = optarg; break;
    case 'n': o->no_sign = 1; break;
    case 'f': o->force = 1; break;
    case 'M': o->maildir = optarg; break;
    case 'D': o->dir = optarg; break;
    case 'P': o->view_mode = 'p'; break;
    case 'C': o->view_mode = 'c'; break;
    case 'L': o->lists_only = 1; break;
    case 'A': open_flags |= CLIENT_OPEN_ALLOW_DIRECT; break;
    case 'h': usage(stdout); return 0;
    case 'V': printf("recrypt %s\n", RC_VERSION_STRING); return 0;
    default: usage(stderr); return EX_USAGE;
    }
    return -1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'}, {"to", required_argument, NULL, 't'},
        {"signer", required_argument, NULL, 's'}, {"list-key", required_argument, NULL, 'k'},
        {"no-sign", no_argument, NULL, 'n'},      {"force", no_argument, NULL, 'f'},
        {"maildir", required_argument, NULL, 'M'}, {"dir", required_argument, NULL, 'D'},
        {"path", no_argument, NULL, 'P'},         {"clear", no_argument, NULL, 'C'},
        {"lists", no_argument, NULL, 'L'},        {"allow-direct", no_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    struct cli_options o = {0};
    int c, r;
    rc_error err;

    /* The Thunderbird add-on's native messaging host: Thunderbird runs it
     * by path (a link named recrypt-native-host) with the manifest path and
     * the add-on's id as arguments, which it does not need. */
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (strcmp(base, "recrypt-native-host") == 0 ||
        (argc >= 2 && strcmp(argv[1], "native-host") == 0))
        return cmd_native_host(getenv("RECRYPT_HOME"));

    /* The sendmail drop-in takes sendmail's options, not ours. */
    if (argc >= 2 && strcmp(argv[1], "sendmail") == 0)
        return client_sendmail(argc - 2, argv + 2);

    /* Options before the command word ("+": stop at the first non-option)… */
    while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1)
        if ((r = take_option(&o, c)) >= 0)
            return r;
    if (optind >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *cmd = argv[optind++];
    /* …and after it. */
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        if ((r = take_option(&o, c)) >= 0)
            return r;
    }
    /* "list" takes a sub-command, and "list import" its source. */
    const char *sub = NULL, *source = NULL;
    if (strcmp(cmd, "list") == 0 && optind < argc)
        sub = argv[optind++];
    if (sub && strcmp(sub, "import") == 0 && optind < argc)
        source = argv[optind++];
    /* "archive" takes its source folders. */
    char **sources = argv + optind;
    int n_sources = 0;
    if (strcmp(cmd, "archive") == 0)
        n_sources = argc - optind, optind = argc;
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", progname, argv[optind]);
        return EX_USAGE;
    }
    if (rc_init(&err) != 0)
        return fail(&err);
    keystore ks;
    if (keystore_open(&ks, o.home, &err) != 0)
        return fail(&err);
    if (strcmp(cmd, "keygen") == 0)
        return cmd_keygen(&ks, o.force);
    if (strcmp(cmd, "pubkey") == 0)
        return cmd_pubkey(&ks);
    if (strcmp(cmd, "seal") == 0)
        return cmd_seal(&ks, o.to, o.signer, o.no_sign);
    if (strcmp(cmd, "open") == 0)
        return cmd_open(&ks, o.list_key, o.signer, o.maildir);
    if (strcmp(cmd, "view") == 0)
        return cmd_view(&ks, o.dir, o.list_key, o.signer, o.view_mode);
    if (strcmp(cmd, "archive") == 0)
        return cmd_archive(&ks, o.maildir, sources, n_sources, o.signer);
    if (strcmp(cmd, "mutt-config") == 0)
        return cmd_mutt_config(&ks, o.dir, o.lists_only);
    if (strcmp(cmd, "pins") == 0)
        return cmd_pins(&ks);
    if (strcmp(cmd, "list") == 0) {
        if (sub && strcmp(sub, "show") == 0)
            return cmd_list_show(&ks);
        if (sub && strcmp(sub, "import") == 0)
            return cmd_list_import(&ks, source, o.signer);
        fprintf(stderr, "%s: list needs 'show' or 'import SOURCE' (try 'recrypt --help')\n",
                progname);
        return EX_USAGE;
    }
    if (strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "%s: unknown command '%s' (try 'recrypt --help')\n", progname, cmd);
    return EX_USAGE;
}
