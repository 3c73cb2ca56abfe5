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
#include "passlock.h"
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
"       [--protect]       Lock the key with a passphrase (asked twice on the\n"
"                         terminal, or the first line of $RECRYPT_PASSPHRASE_FILE);\n"
"                         every command that uses the key then asks for it.\n"
"  key protect            Lock the existing device key with a passphrase.\n"
"  key unprotect          Store the device key in the clear again.\n"
"  key status             Say whether the device key is locked.\n"
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
"                         key with this fingerprint (pins a list not pinned yet).\n"
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
"  list pin LIST FPR      Pin LIST to the list signing key with fingerprint FPR,\n"
"                         the one your list owner gave you at enrolment. List\n"
"                         keys signed by it are then accepted from list mail.\n"
"       [--replace]       Replace a pin to another key (the owner says the\n"
"                         list's signing key changed).\n"
"  list import SOURCE     Accept a list key: SOURCE is the key line, a file\n"
"                         holding it, a message the list delivered (its\n"
"                         Recrypt-List-Key), or - for standard input. Checked\n"
"                         against the pin; a list not pinned yet is pinned only\n"
"                         when you confirm its fingerprint on the terminal, or:\n"
"       [--signer FPR]    Require this list signing key (and pin it).\n"
"       [--yes]           Pin the key shown without asking.\n"
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
"                         carries in its Recrypt-List-Key header (without the\n"
"                         header: the key this keystore accepted for its epoch).\n"
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
"Trust: a message never pins a list by itself. Pin each list once with the\n"
"fingerprint your list owner gives you ('recrypt list pin LIST FPR'); until\n"
"then its mail is refused, and the refusal shows the fingerprint its key is\n"
"signed by. Later keys must be signed by the pinned key and may not go back\n"
"to an older epoch.\n"
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

static void announce_pin(const char *list, const char *fp)
{
    fprintf(stderr, "%s: %s: pinned its signing key %s (the fingerprint you gave)\n", progname,
            list, fp);
}

static void announce_first_use(const rc_statement *st)
{
    char fp[RC_UDF_MAX];
    rc_key_fingerprint(fp, sizeof fp, "list-signer", st->signer_pk, 32, NULL);
    announce_pin(st->address, fp);
}

static int cmd_keygen(keystore *ks, int force, int protect)
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
    char line[RC_KEYSTR_MAX], fp[RC_UDF_MAX], *pass = NULL;
    int rc = dev ? keystore_prepare(ks, &err) : rc_error_set(&err, RC_E_NOMEM, "out of memory");
    /* The passphrase first: an empty or mistyped one writes nothing. */
    if (rc == 0 && protect)
        rc = (pass = rc_secret_alloc(PASSLOCK_MAX)) == NULL
                 ? rc_error_set(&err, RC_E_NOMEM, "out of memory")
                 : keystore_device_ask(pass, 1, &err);
    if (rc == 0 && (rc = rc_device_generate(dev, &err)) == 0 &&
        (rc = keystore_device_store(ks, dev, pass, &err)) == 0 &&
        (rc = rc_device_public_encode(line, sizeof line, &dev->pub, &err)) == 0) {
        rc_key_fingerprint(fp, sizeof fp, RC_FP_DEVICE_SIGNER, dev->pub.sign_pk, 32, NULL);
        printf("%s\n", line);
        fprintf(stderr, "%s: device key created in %s (fingerprint %s)%s\n", progname, ks->dir,
                fp, protect ? ", locked with a passphrase" : "");
    }
    rc_secret_free(pass);
    rc_secret_free(dev);
    return rc ? fail(&err) : 0;
}

/* recrypt key protect|unprotect|status: lock the device key with a
 * passphrase, or store it in the clear again. */
static int cmd_key(keystore *ks, const char *sub)
{
    rc_error err;
    rc_error_clear(&err);
    if (!sub || (strcmp(sub, "protect") && strcmp(sub, "unprotect") && strcmp(sub, "status"))) {
        fprintf(stderr, "%s: key needs 'protect', 'unprotect' or 'status' (try 'recrypt "
                        "--help')\n",
                progname);
        return EX_USAGE;
    }
    if (!keystore_device_exists(ks)) {
        rc_error_set(&err, RC_E_NOT_FOUND, "this keystore (%s) has no device key: run 'recrypt "
                                           "keygen'",
                     ks->dir);
        return fail(&err);
    }
    int locked = keystore_device_is_protected(ks), protect = strcmp(sub, "protect") == 0;
    if (strcmp(sub, "status") == 0) {
        printf("%s\n", locked ? "locked with a passphrase" : "not locked");
        return 0;
    }
    if (locked == protect) {
        fprintf(stderr, "%s: the device key is %s\n", progname,
                locked ? "already locked with a passphrase ('recrypt key unprotect' first to "
                         "change it)"
                       : "not locked");
        return protect ? EX_CANTCREAT : 0;
    }
    rc_device_secret *dev = rc_secret_alloc(sizeof *dev);
    char *pass = NULL;
    int rc = dev ? keystore_device_load(ks, dev, &err)
                 : rc_error_set(&err, RC_E_NOMEM, "out of memory");
    if (rc == 0 && protect)
        rc = (pass = rc_secret_alloc(PASSLOCK_MAX)) == NULL
                 ? rc_error_set(&err, RC_E_NOMEM, "out of memory")
                 : keystore_device_ask(pass, 1, &err);
    if (rc == 0)
        rc = keystore_device_store(ks, dev, pass, &err);
    if (rc == 0)
        fprintf(stderr, "%s: the device key is %s\n", progname,
                protect ? "now locked with a passphrase" : "now stored in the clear");
    rc_secret_free(pass);
    rc_secret_free(dev);
    return rc ? fail(&err) : 0;
}

static int cmd_pubkey(keystore *ks)
{
    rc_error err;
    rc_error_clear(&err);
    rc_device_public pub;
    char line[RC_KEYSTR_MAX], fp[RC_UDF_MAX];
    int rc = keystore_device_public(ks, &pub, &err);
    if (rc == 0 && (rc = rc_device_public_encode(line, sizeof line, &pub, &err)) == 0) {
        rc_key_fingerprint(fp, sizeof fp, RC_FP_DEVICE_SIGNER, pub.sign_pk, 32, NULL);
        printf("%s\n", line);
        fprintf(stderr, "%s: fingerprint %s\n", progname, fp);
    }
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
        announce_pin(info.list, info.signer_fp);
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
        int state = e->d_name[0] == '.' ? 0 : keystore_pin_state(ks, e->d_name, fp, &err);
        if (state == KS_PIN_FINGERPRINT)
            printf("%s signer=%s epoch=none\n", e->d_name, fp);
        if (state != KS_PIN_KEY || keystore_pin_load(ks, e->d_name, &pin, &err) != 1) {
            any |= state == KS_PIN_FINGERPRINT;
            continue;
        }
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
        int pstate = keystore_pin_state(ks, names[i].name, fp, &err);
        if (pstate < 0)
            printf("%s\n  pin    damaged: %s\n", names[i].name, err.msg);
        if (pstate <= 0)
            continue;
        any = 1;
        uint64_t since = keystore_pin_since(ks, names[i].name);
        if (since)
            human_time(when, sizeof when, since);
        printf("%s\n  signer %s\n  pinned %s\n", names[i].name, fp,
               since ? when : "(date not recorded)");
        if (pstate == KS_PIN_FINGERPRINT) {
            printf("  no list key yet: the first message from the list signed by this key "
                   "brings it\n");
            continue;
        }
        if (keystore_pin_load(ks, names[i].name, &pin, &err) != 1)
            continue;
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
        fprintf(stderr, "%s: this keystore knows no list yet: pin one with 'recrypt list pin "
                        "LIST FINGERPRINT' (the fingerprint your list owner gave you)\n",
                progname);
    return 0;
}

/* recrypt list pin LIST FINGERPRINT: the explicit first pin (issue 13),
 * with the list signing key fingerprint the owner gives at enrolment. */
static int cmd_list_pin(keystore *ks, const char *list, const char *fpr, int replace)
{
    rc_error err;
    char addr[RC_ADDR_MAX + 1], fp[RC_UDF_MAX];
    int changed = 0;
    rc_error_clear(&err);
    if (!list || !fpr) {
        fprintf(stderr, "%s: list pin needs the list's address and its signing key's "
                        "fingerprint (recrypt list pin LIST FINGERPRINT)\n",
                progname);
        return EX_USAGE;
    }
    if (rc_address_canonical(addr, list, NULL) != 0) {
        fprintf(stderr, "%s: '%s' is not a list address\n", progname, list);
        return EX_USAGE;
    }
    if (keystore_fp_canonical(fp, fpr, &err) ||
        keystore_pin_fingerprint(ks, addr, fp, replace, &changed, &err))
        return fail(&err);
    if (changed)
        printf("%s pinned to %s: list keys signed by this key are accepted from list mail\n",
               addr, fp);
    else
        printf("%s is already pinned to %s\n", addr, fp);
    return 0;
}

/* Ask on the terminal whether to pin list to fp; 1 yes. Only when standard
 * input is a terminal (and not the import's source). */
static int confirm_pin(const char *list, const char *fp)
{
    char answer[16];
    fprintf(stderr,
            "%s: %s is not pinned on this device. Its list key is signed by\n"
            "    %s\n"
            "Compare that with the fingerprint your list owner gave you.\n"
            "Pin %s to this key? [y/N] ",
            progname, list, fp, list);
    fflush(stderr);
    if (!fgets(answer, sizeof answer, stdin))
        return 0;
    return strcasecmp(answer, "y\n") == 0 || strcasecmp(answer, "yes\n") == 0;
}

/* recrypt list import SOURCE: a list key line, a file holding one, or a
 * message delivered by the list (its Recrypt-List-Key); "-" reads
 * standard input. A list that is not pinned yet is pinned only with
 * --signer FPR, --yes, or the user's confirmation on a terminal; a pinned
 * list checks the key against the pin (and --signer). */
static int cmd_list_import(keystore *ks, const char *source, const char *signer_fp, int yes)
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
    char own[RC_UDF_MAX];
    if (rc == 0 && !signer_fp && keystore_pin_state(ks, st.address, NULL, NULL) == KS_PIN_NONE) {
        rc_key_fingerprint(own, sizeof own, "list-signer", st.signer_pk, 32, NULL);
        int asked = !yes && strcmp(source, "-") != 0 && isatty(STDIN_FILENO);
        if (yes || (asked && confirm_pin(st.address, own)))
            signer_fp = own;
        else if (asked)
            rc = rc_error_set(&err, RC_E_POLICY,
                              "%s not pinned: you did not confirm its signing key %s (recrypt "
                              "list pin %s FINGERPRINT pins it with the owner's fingerprint)",
                              st.address, own, st.address);
        else
            rc = rc_error_set(&err, RC_E_POLICY,
                              "%s is not pinned on this device, and this list key is signed by "
                              "%s. Compare that with the fingerprint your list owner gave you; "
                              "only if they are the same, import again with --signer %s (or "
                              "--yes), or run: recrypt list pin %s %s",
                              st.address, own, own, st.address, own);
    }
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
    int no_sign, force, view_mode, lists_only, protect, yes, replace;
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
    case 'p': o->protect = 1; break;
    case 'y': o->yes = 1; break;
    case 'R': o->replace = 1; break;
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
        {"lists", no_argument, NULL, 'L'},       {"protect", no_argument, NULL, 'p'},
        {"yes", no_argument, NULL, 'y'},         {"replace", no_argument, NULL, 'R'},
        {"allow-direct", no_argument, NULL, 'A'},
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
    /* "list" and "key" take a sub-command, "list import" its source, "list
     * pin" the list and the fingerprint. Options may come between them too
     * (getopt stops at each word). */
    const char *sub = NULL, *source = NULL, *pin_fp = NULL;
    if ((strcmp(cmd, "list") == 0 || strcmp(cmd, "key") == 0) && optind < argc)
        sub = argv[optind++];
    for (int word = 0; sub && word < 2; word++) {
        while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1)
            if ((r = take_option(&o, c)) >= 0)
                return r;
        if (word == 0 && (strcmp(sub, "import") == 0 || strcmp(sub, "pin") == 0) && optind < argc)
            source = argv[optind++];
        else if (word == 1 && strcmp(sub, "pin") == 0 && optind < argc)
            pin_fp = argv[optind++];
    }
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
        return cmd_keygen(&ks, o.force, o.protect);
    if (strcmp(cmd, "key") == 0)
        return cmd_key(&ks, sub);
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
            return cmd_list_import(&ks, source, o.signer, o.yes);
        if (sub && strcmp(sub, "pin") == 0)
            return cmd_list_pin(&ks, source, pin_fp, o.replace);
        fprintf(stderr, "%s: list needs 'show', 'pin LIST FINGERPRINT' or 'import SOURCE' (try "
                        "'recrypt --help')\n",
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
