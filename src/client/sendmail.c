/*
 * sendmail.c - `recrypt sendmail`: a drop-in for `sendmail -t -oi` that mail
 * programs call ($sendmail of mutt and neomutt, aerc, git send-email).
 *
 * It reads the message, finds the recipients (the arguments, and with -t
 * the To, Cc and Bcc fields), and asks the keystore which of them are
 * encrypted lists (a list this device has a pin for). Then:
 *   - no list: the message goes to the real sendmail unchanged, with the
 *     same arguments;
 *   - one list and nothing else: sealed for the list with the newest list
 *     key the keystore accepted (signed when this device holds the
 *     certificate), submitted to the list alone;
 *   - a list and other recipients: refused, nothing sent, unless --split:
 *     then each list gets its sealed post and the other recipients the
 *     message as written, in separate submissions (lists first); never the
 *     plaintext to a list.
 * Any failure to seal sends nothing. The real sendmail is --sendmail CMD,
 * else $RECRYPT_SENDMAIL, else /usr/sbin/sendmail (CMD is split at spaces:
 * "/usr/sbin/sendmail -C /etc/postfix-out"); its exit status is passed
 * through, as mail programs expect sendmail's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>
#include <recrypt/recrypt.h>
#include "keystore.h"
#include "seal.h"
#include "sendmail.h"
#include "spool.h"

#define MAX_ARGS 256
#define DEFAULT_SENDMAIL "/usr/sbin/sendmail"

typedef struct {
    const char *pass[MAX_ARGS]; /* options passed on to the real sendmail (not -t) */
    size_t n_pass;
    const char *rcpt[MAX_ARGS]; /* recipients given as arguments */
    size_t n_rcpt;
    int extract; /* -t */
    int split;
    const char *sendmail;
    const char *home;
} sm_args;

static void sm_usage(FILE *f)
{
    fprintf(f,
"Usage: recrypt sendmail [--split] [--sendmail CMD] [--home DIR] [SENDMAIL-OPTIONS]\n"
"                        [--] [RECIPIENT...] < message\n"
"\n"
"A drop-in for 'sendmail -t -oi' that seals posts to encrypted lists. Mail to\n"
"no list this keystore knows goes to the real sendmail unchanged. A message to\n"
"a list is sealed with the newest list key the keystore accepted and sent to\n"
"the list alone. A message to a list and other recipients is refused, unless\n"
"--split: then the list gets the sealed post and the others the message as\n"
"written, separately. Nothing is sent when sealing fails.\n"
"\n"
"  --split          send list posts and the rest separately (see above)\n"
"  --sendmail CMD   the real sendmail (default $RECRYPT_SENDMAIL, else\n"
"                   " DEFAULT_SENDMAIL "); split at spaces\n"
"  --home DIR       the keystore (default as for recrypt)\n"
"  -t               recipients from To, Cc and Bcc too\n"
"Other options (-i, -oi, -f SENDER, -F NAME, -N DSN, -R RET, -B TYPE, -V ENVID,\n"
"-X LOG, -C CONFIG, -o...) are passed to the real sendmail. Exit status: the\n"
"real sendmail's; 77 when refused (a list and other recipients), 64 for\n"
"bad arguments, 65 and others as recrypt's when sealing fails.\n"
"\n"
"mutt/neomutt: set sendmail=\"recrypt sendmail -oi\"   (mutt adds -- RECIPIENTS)\n");
}

/* sendmail options that take a separate argument when given alone. */
static int takes_arg(char c)
{
    return strchr("fFNRBVXCLOh", c) != NULL;
}

static int parse(sm_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    int i = 0, opts = 1;
    for (; i < argc; i++) {
        const char *s = argv[i];
        if (opts && strcmp(s, "--") == 0) {
            opts = 0;
            continue;
        }
        if (opts && s[0] == '-' && s[1]) {
            if (!strcmp(s, "--split")) {
                a->split = 1;
            } else if (!strcmp(s, "--sendmail") || !strcmp(s, "--home")) {
                if (i + 1 >= argc)
                    return fprintf(stderr, "recrypt sendmail: %s needs a value\n", s), -1;
                *(!strcmp(s, "--home") ? &a->home : &a->sendmail) = argv[++i];
            } else if (!strcmp(s, "--help")) {
                sm_usage(stdout);
                return 1;
            } else if (s[1] == '-') {
                return fprintf(stderr, "recrypt sendmail: unknown option %s\n", s), -1;
            } else if (!strcmp(s, "-t")) {
                a->extract = 1;
            } else {
                if (a->n_pass + 2 >= MAX_ARGS)
                    return fprintf(stderr, "recrypt sendmail: too many arguments\n"), -1;
                a->pass[a->n_pass++] = s;
                if (takes_arg(s[1]) && s[2] == '\0' && i + 1 < argc)
                    a->pass[a->n_pass++] = argv[++i];
            }
            continue;
        }
        if (a->n_rcpt + 1 >= MAX_ARGS)
            return fprintf(stderr, "recrypt sendmail: too many recipients\n"), -1;
        a->rcpt[a->n_rcpt++] = s;
    }
    return 0;
}

/* Run the real sendmail with the passed options, "-i", and the given
 * recipients ("-t" instead when rcpt is NULL), the message on fd as its
 * standard input. Returns its exit status. */
static int run_sendmail(const sm_args *a, int fd, const char *const *rcpt, size_t n_rcpt,
                        int with_t)
{
    const char *cmd = a->sendmail ? a->sendmail : getenv("RECRYPT_SENDMAIL");
    if (!cmd || !*cmd)
        cmd = DEFAULT_SENDMAIL;
    char *copy = strdup(cmd);
    const char *argv[MAX_ARGS * 2 + 8];
    size_t n = 0;
    if (!copy)
        return EX_OSERR;
    for (char *tok = strtok(copy, " "); tok && n < MAX_ARGS; tok = strtok(NULL, " "))
        argv[n++] = tok;
    if (n == 0) {
        free(copy);
        fprintf(stderr, "recrypt sendmail: the sendmail command is empty\n");
        return EX_CONFIG;
    }
    for (size_t i = 0; i < a->n_pass; i++)
        argv[n++] = a->pass[i];
    if (with_t)
        argv[n++] = "-t";
    argv[n++] = "-i";
    if (n_rcpt)
        argv[n++] = "--";
    for (size_t i = 0; i < n_rcpt; i++)
        argv[n++] = rcpt[i];
    argv[n] = NULL;
    if (lseek(fd, 0, SEEK_SET) != 0) {
        free(copy);
        return EX_IOERR;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        free(copy);
        fprintf(stderr, "recrypt sendmail: fork: %s\n", strerror(errno));
        return EX_OSERR;
    }
    if (pid == 0) {
        if (dup2(fd, STDIN_FILENO) < 0)
            _exit(EX_OSERR);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "recrypt sendmail: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(errno == ENOENT ? EX_UNAVAILABLE : EX_OSERR);
    }
    free(copy);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return EX_OSERR;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    fprintf(stderr, "recrypt sendmail: the real sendmail died (signal %d)\n", WTERMSIG(status));
    return EX_SOFTWARE;
}

static int fd_sink(void *ctx, const uint8_t *p, size_t n)
{
    return rc_fd_sink(ctx, p, n);
}

/* The message without its Bcc fields (the recipients of the copy for the
 * others must not learn them), in a new private file. */
static int without_bcc(int in, rc_error *err)
{
    int out = spool_tmpfile(err);
    FILE *f = out >= 0 ? fdopen(dup(in), "r") : NULL;
    if (out < 0)
        return -1;
    if (!f || fseek(f, 0, SEEK_SET) != 0) {
        if (f)
            fclose(f);
        close(out);
        rc_error_set(err, RC_E_IO, "cannot read the message");
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int in_header = 1, skipping = 0, bad = 0;
    while (!bad && (len = getline(&line, &cap, f)) > 0) {
        if (in_header) {
            if (line[0] == '\n' || (line[0] == '\r' && line[1] == '\n')) {
                in_header = 0;
                skipping = 0;
            } else if (line[0] == ' ' || line[0] == '\t') {
                if (skipping)
                    continue;
            } else {
                skipping = strncasecmp(line, "Bcc:", 4) == 0;
                if (skipping)
                    continue;
            }
        }
        bad = rc_fd_sink(&out, (const uint8_t *)line, (size_t)len) != 0;
    }
    free(line);
    fclose(f);
    if (bad) {
        close(out);
        rc_error_set(err, RC_E_IO, "cannot write a temporary file");
        return -1;
    }
    return out;
}

int client_sendmail(int argc, char **argv)
{
    sm_args a;
    rc_error err;
    keystore ks;
    char **hdr = NULL;
    size_t n_hdr = 0;
    int rc = parse(&a, argc, argv);
    if (rc)
        return rc > 0 ? 0 : EX_USAGE;
    rc_error_clear(&err);
    if (rc_init(&err) != 0 || keystore_open(&ks, a.home, &err) != 0) {
        fprintf(stderr, "recrypt sendmail: %s\n", err.msg);
        return EX_CONFIG;
    }
    int in = spool_stdin(STDIN_FILENO, &err);
    if (in < 0) {
        fprintf(stderr, "recrypt sendmail: %s\n", err.msg);
        return EX_IOERR;
    }
    if (a.extract && rc_mail_header_recipients(in, &hdr, &n_hdr, &err) != 0) {
        fprintf(stderr, "recrypt sendmail: %s: nothing sent\n", err.msg);
        close(in);
        return EX_DATAERR;
    }
    /* All recipients, each once: the arguments, then the header's. */
    const char *all[MAX_ARGS * 2];
    const char *lists[MAX_ARGS * 2], *others[MAX_ARGS * 2];
    size_t n_all = 0, n_lists = 0, n_others = 0;
    char canon[MAX_ARGS * 2][RC_ADDR_MAX + 1];
    for (size_t i = 0; i < a.n_rcpt + n_hdr && n_all < MAX_ARGS * 2; i++) {
        const char *r = i < a.n_rcpt ? a.rcpt[i] : hdr[i - a.n_rcpt];
        char c[RC_ADDR_MAX + 1];
        const char *key = rc_address_canonical(c, r, NULL) == 0 ? c : r;
        int dup = 0;
        for (size_t k = 0; k < n_all && !dup; k++)
            dup = strcasecmp(canon[k], key) == 0;
        if (dup)
            continue;
        snprintf(canon[n_all], sizeof canon[n_all], "%s", key);
        all[n_all++] = r;
    }
    for (size_t i = 0; i < n_all; i++) {
        rc_pin pin;
        rc_error e2;
        if (keystore_pin_load(&ks, canon[i], &pin, &e2) == 1)
            lists[n_lists++] = canon[i];
        else
            others[n_others++] = all[i];
    }
    if (n_lists == 0) { /* not ours: as it came */
        rc = run_sendmail(&a, in, (const char *const *)a.rcpt, a.n_rcpt, a.extract);
        goto done;
    }
    if ((n_lists > 1 || n_others > 0) && !a.split) {
        fprintf(stderr,
                "recrypt sendmail: this message goes to the encrypted list %s and also to %s%s: "
                "nothing sent. A list post must go to the list alone: send it to the list and "
                "the others separately, or use --split (the list gets the sealed post, the "
                "others the message as written)\n",
                lists[0], n_lists > 1 ? lists[1] : others[0],
                n_lists + n_others > 2 ? " and more" : "");
        rc = EX_NOPERM;
        goto done;
    }
    /* Seal every list's post first: nothing goes out unless all seal. */
    int sealed[MAX_ARGS * 2];
    size_t n_sealed = 0;
    rc = 0;
    for (size_t i = 0; i < n_lists && rc == 0; i++) {
        rc_statement st;
        int first = 0, out = spool_tmpfile(&err);
        if (out < 0 ||
            (rc = client_seal(&ks, lists[i], NULL, 0, in, fd_sink, &out, &st, &first, &err)) != 0) {
            if (out >= 0)
                close(out);
            fprintf(stderr, "recrypt sendmail: cannot seal the post for %s: %s: nothing sent\n",
                    lists[i], err.msg);
            rc = err.code == RC_E_POLICY ? EX_NOPERM : EX_DATAERR;
            break;
        }
        lseek(in, 0, SEEK_SET);
        sealed[n_sealed++] = out;
    }
    for (size_t i = 0; i < n_sealed && rc == 0; i++) {
        const char *one[1] = {lists[i]};
        rc = run_sendmail(&a, sealed[i], one, 1, 0);
    }
    if (rc == 0 && n_others > 0) {
        int plain = without_bcc(in, &err);
        if (plain < 0) {
            fprintf(stderr, "recrypt sendmail: %s: the list post%s went out, the copy for the "
                            "others did not\n",
                    err.msg, n_lists > 1 ? "s" : "");
            rc = EX_IOERR;
        } else {
            rc = run_sendmail(&a, plain, others, n_others, 0);
            close(plain);
        }
    }
    for (size_t i = 0; i < n_sealed; i++)
        close(sealed[i]);
done:
    close(in);
    rc_mail_addresses_free(hdr, n_hdr);
    return rc;
}
