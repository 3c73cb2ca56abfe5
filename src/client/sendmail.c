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
 * Which recipients are lists is decided fail-closed: every list this
 * keystore has a pin file for counts (even a damaged one), every argument
 * and recipient field is parsed as an address list, and the raw text is
 * also searched for each list's address (as local@domain, domain!local and
 * local%domain, quotes and white space removed): a list mentioned in a
 * form the parser did not yield refuses the message. Any failure to seal
 * sends nothing. The real sendmail is --sendmail CMD,
 * else $RECRYPT_SENDMAIL, else /usr/sbin/sendmail (CMD is split at spaces:
 * "/usr/sbin/sendmail -C /etc/postfix-out"); its exit status is passed
 * through, as mail programs expect sendmail's.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>
#include <recrypt/recrypt.h>
#include "keystore.h"
#include "mailbox.h"
#include "seal.h"
#include "sendmail.h"
#include "spool.h"

#define DEFAULT_SENDMAIL "/usr/sbin/sendmail"

/* A growing array of strings (not owned unless said so). */
typedef struct {
    const char **v;
    size_t n, cap;
} strv;

static int strv_add(strv *a, const char *s)
{
    if (a->n + 1 >= a->cap) {
        size_t nc = a->cap ? 2 * a->cap : 16;
        const char **nv = realloc(a->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
    return 0;
}

typedef struct {
    strv pass;   /* options passed on to the real sendmail (never -t) */
    strv rcpt;   /* recipients given as arguments, as given */
    char **flags; /* "-c" strings made for split option clusters (owned) */
    size_t n_flags;
    int extract; /* -t */
    int split;
    int allow_plain_reply;
    const char *sendmail;
    const char *home;
    const char *fcc, *folder; /* where the sealed copy goes (mutt's $record, $folder) */
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
"written, separately. Nothing is sent when sealing fails, or when a list is\n"
"named in a form recrypt cannot take apart.\n"
"\n"
"  --split          send list posts and the rest separately (see above)\n"
"  --fcc=MAILBOX    keep the sealed copy of each list post in MAILBOX (a maildir\n"
"                   or mbox; '~/', and '=' or '+' for --folder, as in mutt);\n"
"                   empty: keep none. The copy is written once sendmail took it\n"
"  --folder=DIR     what '=' and '+' in --fcc stand for (mutt's $folder)\n"
"                   (defaults: $RECRYPT_FCC and $RECRYPT_FOLDER, which the shipped\n"
"                   mutt rc files set with setenv)\n"
"  --allow-plaintext-reply\n"
"                   send a reply to a list post to people outside the list\n"
"                   unencrypted; without it such a reply is refused (exit 77)\n"
"  --sendmail CMD   the real sendmail (default $RECRYPT_SENDMAIL, else\n"
"                   " DEFAULT_SENDMAIL "); split at spaces\n"
"  --home DIR       the keystore (default as for recrypt)\n"
"  -t               recipients from To, Cc, Bcc (and Resent-*, Apparently-To) too\n"
"Other options (-i, -oi, -f SENDER, -F NAME, -r SENDER, -N DSN, -R RET, -B TYPE,\n"
"-V ENVID, -X LOG, -C CONFIG, -o...; clusters such as -ti) are passed to the\n"
"real sendmail, without -t. Exit status: the real sendmail's; 77 when refused\n"
"(a list and other recipients), 64 for bad arguments, 65 when a list is named\n"
"in a form recrypt cannot take apart or the message does not parse, others as\n"
"recrypt's when sealing fails.\n"
"\n"
"mutt/neomutt: source the recrypt.rc shipped with recrypt (it sets sendmail,\n"
"  RECRYPT_FCC and RECRYPT_FOLDER).\n");
}

/* sendmail options that take a value: attached (-fme) or the next word. */
static int takes_arg(char c)
{
    return c && strchr("ABCFfNORrVXLpheoqdM", c) != NULL;
}

/* Pass "-c" (or "-cVALUE") on to the real sendmail; the string is kept
 * in a->flags until sm_args_free. */
static int pass_option(sm_args *a, char c, const char *attached)
{
    char **nf = realloc(a->flags, (a->n_flags + 1) * sizeof *nf);
    if (!nf)
        return fprintf(stderr, "recrypt sendmail: out of memory\n"), -1;
    a->flags = nf;
    char *opt = malloc(3 + (attached ? strlen(attached) : 0));
    if (!opt)
        return fprintf(stderr, "recrypt sendmail: out of memory\n"), -1;
    opt[0] = '-', opt[1] = c, opt[2] = '\0';
    if (attached)
        strcat(opt, attached);
    a->flags[a->n_flags++] = opt;
    return strv_add(&a->pass, opt) ? (fprintf(stderr, "recrypt sendmail: out of memory\n"), -1)
                                   : 0;
}

static int parse(sm_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    int opts = 1;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (opts && strcmp(s, "--") == 0) {
            opts = 0;
            continue;
        }
        if (!opts || s[0] != '-' || !s[1]) {
            if (strv_add(&a->rcpt, s))
                return fprintf(stderr, "recrypt sendmail: out of memory\n"), -1;
            continue;
        }
        if (s[1] == '-') {
            const char *eq = strchr(s, '=');
            size_t nl = eq ? (size_t)(eq - s) : strlen(s);
            if (!strcmp(s, "--split")) {
                a->split = 1;
            } else if (!strcmp(s, "--allow-plaintext-reply")) {
                a->allow_plain_reply = 1;
            } else if ((nl == 5 && !strncmp(s, "--fcc", 5)) ||
                       (nl == 8 && !strncmp(s, "--folder", 8))) {
                const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
                if (!v)
                    return fprintf(stderr, "recrypt sendmail: %.*s needs a value\n", (int)nl, s),
                           -1;
                *(nl == 5 ? &a->fcc : &a->folder) = v;
            } else if (!strcmp(s, "--sendmail") || !strcmp(s, "--home")) {
                if (i + 1 >= argc)
                    return fprintf(stderr, "recrypt sendmail: %s needs a value\n", s), -1;
                *(!strcmp(s, "--home") ? &a->home : &a->sendmail) = argv[++i];
            } else if (!strcmp(s, "--help")) {
                sm_usage(stdout);
                return 1;
            } else {
                return fprintf(stderr, "recrypt sendmail: unknown option %s\n", s), -1;
            }
            continue;
        }
        /* A cluster of one-letter options, as getopt reads it: -ti, -oi,
         * -fme, -f me. */
        for (const char *c = s + 1; *c; c++) {
            if (*c == 't') {
                a->extract = 1;
                continue;
            }
            if (!takes_arg(*c)) {
                if (pass_option(a, *c, NULL))
                    return -1;
                continue;
            }
            /* Passed on as given: -oi stays -oi, -f me stays two words. */
            int attached = c[1] != '\0';
            const char *val = attached ? c + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!val)
                return fprintf(stderr, "recrypt sendmail: -%c needs a value\n", *c), -1;
            if (pass_option(a, *c, attached ? val : NULL) ||
                (!attached && strv_add(&a->pass, val)))
                return fprintf(stderr, "recrypt sendmail: out of memory\n"), -1;
            break;
        }
    }
    return 0;
}

static void sm_args_free(sm_args *a)
{
    for (size_t i = 0; i < a->n_flags; i++)
        free(a->flags[i]);
    free(a->flags);
    free(a->pass.v);
    free(a->rcpt.v);
}

/* Run the real sendmail with the passed options, "-t" when with_t, "-i",
 * and the given recipients, the message on fd as its standard input.
 * Returns its exit status. */
static int run_sendmail(const sm_args *a, int fd, const char *const *rcpt, size_t n_rcpt,
                        int with_t)
{
    const char *cmd = a->sendmail ? a->sendmail : getenv("RECRYPT_SENDMAIL");
    if (!cmd || !*cmd)
        cmd = DEFAULT_SENDMAIL;
    char *copy = strdup(cmd);
    strv argv = {0};
    int bad = !copy;
    for (char *tok = copy ? strtok(copy, " ") : NULL; tok && !bad; tok = strtok(NULL, " "))
        bad = strv_add(&argv, tok);
    if (!bad && argv.n == 0) {
        free(copy);
        fprintf(stderr, "recrypt sendmail: the sendmail command is empty\n");
        return EX_CONFIG;
    }
    for (size_t i = 0; i < a->pass.n && !bad; i++)
        bad = strv_add(&argv, a->pass.v[i]);
    if (with_t && !bad)
        bad = strv_add(&argv, "-t");
    if (!bad)
        bad = strv_add(&argv, "-i");
    if (n_rcpt && !bad)
        bad = strv_add(&argv, "--");
    for (size_t i = 0; i < n_rcpt && !bad; i++)
        bad = strv_add(&argv, rcpt[i]);
    if (bad || lseek(fd, 0, SEEK_SET) != 0) {
        free(copy);
        free(argv.v);
        fprintf(stderr, "recrypt sendmail: %s\n", bad ? "out of memory" : "cannot read the message");
        return bad ? EX_OSERR : EX_IOERR;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        free(copy);
        free(argv.v);
        fprintf(stderr, "recrypt sendmail: fork: %s\n", strerror(errno));
        return EX_OSERR;
    }
    if (pid == 0) {
        if (dup2(fd, STDIN_FILENO) < 0)
            _exit(EX_OSERR);
        execv(argv.v[0], (char *const *)argv.v);
        fprintf(stderr, "recrypt sendmail: cannot run %s: %s\n", argv.v[0], strerror(errno));
        _exit(errno == ENOENT ? EX_UNAVAILABLE : EX_OSERR);
    }
    free(copy);
    free(argv.v);
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

/* Every list this keystore has a pin file for (damaged or not). */
static int known_lists(const keystore *ks, char ***out, size_t *n)
{
    char dir[PATH_MAX + 8], pin[PATH_MAX];
    struct stat sb;
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    snprintf(dir, sizeof dir, "%s/lists", ks->dir);
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    int bad = 0;
    while (!bad && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || keystore_path(pin, ks, "lists/%s/pin", e->d_name) != 0 ||
            stat(pin, &sb) != 0)
            continue;
        if (*n == cap) {
            size_t nc = cap ? 2 * cap : 8;
            char **nv = realloc(*out, nc * sizeof *nv);
            if (!nv) {
                bad = 1;
                break;
            }
            *out = nv;
            cap = nc;
        }
        if (!((*out)[*n] = strdup(e->d_name)))
            bad = 1;
        else
            (*n)++;
    }
    closedir(d);
    return bad ? -1 : 0;
}

/* text, lower-cased, without quotes, backslashes and white space. */
static char *squeeze(const char *text)
{
    char *o = malloc(strlen(text) + 1), *q = o;
    if (!o)
        return NULL;
    for (const char *p = text; *p; p++)
        if (*p != '"' && *p != '\\' && !isspace((unsigned char)*p))
            *q++ = (char)tolower((unsigned char)*p);
    *q = '\0';
    return o;
}

static int addr_char(char c)
{
    return c && (isalnum((unsigned char)c) || strchr("._+-=/'*&#$^`{|}~", c) != NULL);
}

/* Does the squeezed text name list (local@domain) as local@domain,
 * domain!local or local%domain, as a whole address? */
static int mentions(const char *text, const char *list)
{
    const char *at = strchr(list, '@');
    if (!at)
        return 0;
    size_t ll = (size_t)(at - list), dl = strlen(at + 1);
    char forms[3][2 * RC_ADDR_MAX + 4];
    snprintf(forms[0], sizeof forms[0], "%s", list);
    snprintf(forms[1], sizeof forms[1], "%s!%.*s", at + 1, (int)ll, list);
    snprintf(forms[2], sizeof forms[2], "%.*s%%%s", (int)ll, list, at + 1);
    (void)dl;
    for (int f = 0; f < 3; f++) {
        size_t fl = strlen(forms[f]);
        for (const char *p = strstr(text, forms[f]); p; p = strstr(p + 1, forms[f])) {
            char before = p > text ? p[-1] : '\0', after = p[fl];
            if (!addr_char(before) && !(isalnum((unsigned char)after) || after == '-'))
                return 1;
        }
    }
    return 0;
}

/* The header of the message in `in`, unfolded: one line per field, in a
 * new string (NULL when it cannot be read). */
static char *unfolded_header(int in)
{
    FILE *f = fdopen(dup(in), "r");
    if (!f || fseek(f, 0, SEEK_SET) != 0) {
        if (f)
            fclose(f);
        return NULL;
    }
    char *line = NULL, *out = NULL;
    size_t cap = 0, len = 0;
    ssize_t n;
    int bad = 0;
    while (!bad && (n = getline(&line, &cap, f)) > 0) {
        if (line[0] == '\n' || (line[0] == '\r' && line[1] == '\n'))
            break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        int cont = line[0] == ' ' || line[0] == '\t';
        char *no = realloc(out, len + (size_t)n + 3);
        if (!no) {
            bad = 1;
            break;
        }
        out = no;
        if (cont && len > 0 && out[len - 1] == '\n')
            out[--len] = ' '; /* unfold onto the field before */
        memcpy(out + len, line, (size_t)n);
        len += (size_t)n;
        out[len++] = '\n';
        out[len] = '\0';
    }
    free(line);
    bad |= ferror(f) != 0;
    fclose(f);
    if (bad || !out) {
        free(out);
        return bad ? NULL : strdup("");
    }
    return out;
}

/* The values of every field named `name` (with the colon, any case) of an
 * unfolded header, each followed by a comma (a new string). */
static char *fields(const char *hdr, const char *name)
{
    size_t nl = strlen(name), cap = 1, len = 0;
    char *out = calloc(1, 1);
    for (const char *p = hdr; out && *p;) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll >= nl && strncasecmp(p, name, nl) == 0) {
            char *no = realloc(out, cap + ll + 1);
            if (!no) {
                free(out);
                return NULL;
            }
            out = no;
            cap += ll + 1;
            memcpy(out + len, p + nl, ll - nl);
            len += ll - nl;
            out[len++] = ',';
            out[len] = '\0';
        }
        p += ll + (eol ? 1 : 0);
    }
    return out;
}

/* Does the message carry a list post this device opened: a reply to it
 * (In-Reply-To, References), or the post itself (its Message-ID or
 * Resent-Message-ID, as a bounce or resend does)? 1 and the post's list in
 * list_out; 0 when not; -1 when that cannot be told. */
static int carries_post(const keystore *ks, const char *hdr, char *list_out, size_t list_len)
{
    static const char *const names[] = {"In-Reply-To:", "References:", "Message-ID:",
                                        "Resent-Message-ID:"};
    int found = 0;
    for (size_t k = 0; k < sizeof names / sizeof *names && !found; k++) {
        char *v = fields(hdr, names[k]);
        if (!v)
            return -1;
        for (const char *p = v; (p = strchr(p, '<')) != NULL && !found; p++) {
            const char *end = strchr(p, '>');
            if (!end)
                break;
            char id[1000];
            size_t n = 0;
            for (const char *c = p + 1; c < end && n + 1 < sizeof id; c++)
                if (!isspace((unsigned char)*c))
                    id[n++] = *c;
            id[n] = '\0';
            found = keystore_post_lookup(ks, id, list_out, list_len, NULL);
            p = end;
        }
        free(v);
    }
    return found;
}

int client_sendmail(int argc, char **argv)
{
    sm_args a;
    rc_error err;
    keystore ks;
    char **lists_known = NULL, **parsed = NULL, *hdr_text = NULL, *raw = NULL;
    size_t n_known = 0, n_parsed = 0, raw_len = 0;
    strv lists = {0}, others = {0};
    int sealed_fds[64], in = -1, rc = parse(&a, argc, argv);
    size_t n_sealed = 0, cap_parsed = 0;
    if (rc) {
        sm_args_free(&a);
        return rc > 0 ? 0 : EX_USAGE;
    }
    rc_error_clear(&err);
    /* mutt's $record and $folder, as the rc file passes them (setenv keeps
     * spaces, which $sendmail would split at). */
    if (!a.fcc)
        a.fcc = getenv("RECRYPT_FCC");
    if (!a.folder)
        a.folder = getenv("RECRYPT_FOLDER");
    if (rc_init(&err) != 0 || keystore_open(&ks, a.home, &err) != 0) {
        fprintf(stderr, "recrypt sendmail: %s\n", err.msg);
        sm_args_free(&a);
        return EX_CONFIG;
    }
    if (known_lists(&ks, &lists_known, &n_known) != 0) {
        fprintf(stderr, "recrypt sendmail: cannot read the keystore's lists in %s: nothing sent\n",
                ks.dir);
        rc = EX_CONFIG;
        goto done;
    }
    if ((in = spool_stdin(STDIN_FILENO, &err)) < 0) {
        fprintf(stderr, "recrypt sendmail: %s\n", err.msg);
        rc = EX_IOERR;
        goto done;
    }
    /* The recipients: every address of every argument, and with -t of
     * every recipient field; and all of that as raw text. */
    for (size_t i = 0; i < a.rcpt.n + (a.extract ? 1 : 0); i++) {
        char **got = NULL;
        size_t n_got = 0;
        const char *text;
        if (i < a.rcpt.n) {
            text = a.rcpt.v[i];
        } else {
            if (rc_mail_header_recipient_text(in, &hdr_text, &err) != 0) {
                fprintf(stderr, "recrypt sendmail: %s: nothing sent\n", err.msg);
                rc = EX_DATAERR;
                goto done;
            }
            text = hdr_text;
        }
        char *nr = realloc(raw, raw_len + strlen(text) + 2);
        if (!nr || rc_address_list_parse(text, &got, &n_got, &err) != 0) {
            fprintf(stderr, "recrypt sendmail: out of memory\n");
            rc = EX_OSERR;
            goto done;
        }
        raw = nr;
        memcpy(raw + raw_len, text, strlen(text));
        raw_len += strlen(text);
        raw[raw_len++] = '\n';
        raw[raw_len] = '\0';
        for (size_t k = 0; k < n_got; k++) {
            int dup = 0;
            for (size_t j = 0; j < n_parsed && !dup; j++)
                dup = strcmp(parsed[j], got[k]) == 0;
            if (dup) {
                free(got[k]);
                continue;
            }
            if (n_parsed == cap_parsed) {
                cap_parsed = cap_parsed ? 2 * cap_parsed : 16;
                char **np = realloc(parsed, cap_parsed * sizeof *np);
                if (!np) {
                    for (size_t j = k; j < n_got; j++)
                        free(got[j]);
                    free(got);
                    fprintf(stderr, "recrypt sendmail: out of memory\n");
                    rc = EX_OSERR;
                    goto done;
                }
                parsed = np;
            }
            parsed[n_parsed++] = got[k];
        }
        free(got);
    }
    /* Classify; every list the raw text mentions must be one of them. */
    for (size_t i = 0; i < n_parsed; i++) {
        char canon[RC_ADDR_MAX + 1];
        int is_list = 0;
        if (rc_address_canonical(canon, parsed[i], NULL) == 0)
            for (size_t k = 0; k < n_known && !is_list; k++)
                is_list = strcmp(canon, lists_known[k]) == 0;
        if (strv_add(is_list ? &lists : &others, parsed[i])) {
            fprintf(stderr, "recrypt sendmail: out of memory\n");
            rc = EX_OSERR;
            goto done;
        }
    }
    char *sq = raw ? squeeze(raw) : NULL;
    for (size_t k = 0; sq && k < n_known; k++) {
        int have = 0;
        for (size_t i = 0; i < lists.n && !have; i++)
            have = strcasecmp(lists.v[i], lists_known[k]) == 0;
        if (!have && mentions(sq, lists_known[k])) {
            fprintf(stderr,
                    "recrypt sendmail: the recipients name the encrypted list %s in a form "
                    "recrypt cannot take apart: nothing sent. Address the list as %s\n",
                    lists_known[k], lists_known[k]);
            free(sq);
            rc = EX_DATAERR;
            goto done;
        }
    }
    free(sq);
    char *hdr = unfolded_header(in);
    if (!hdr) {
        fprintf(stderr, "recrypt sendmail: cannot read the message's header: nothing sent\n");
        rc = EX_IOERR;
        goto done;
    }
    /* A list post names its list in To or Cc. A list reached only by Bcc
     * (or only by an argument) would get its sealed post while mutt keeps
     * a plaintext sent copy, and the readers would not see where it went. */
    static const char *const naming[] = {"To:", "Cc:", "Resent-To:", "Resent-Cc:"};
    char *both = strdup("");
    for (size_t k = 0; both && k < sizeof naming / sizeof *naming; k++) {
        char *v = fields(hdr, naming[k]), *nb = v ? realloc(both, strlen(both) + strlen(v) + 1)
                                                  : NULL;
        if (nb)
            strcat(nb, v);
        else
            free(both);
        both = nb;
        free(v);
    }
    char *sq_tocc = both ? squeeze(both) : NULL;
    free(both);
    for (size_t i = 0; i < lists.n; i++) {
        if (!sq_tocc || !mentions(sq_tocc, lists.v[i])) {
            fprintf(stderr,
                    "recrypt sendmail: the encrypted list %s is a recipient but not named in "
                    "To or Cc (Bcc?): nothing sent. Address a list post to the list in To\n",
                    lists.v[i]);
            free(sq_tocc);
            free(hdr);
            rc = EX_NOPERM;
            goto done;
        }
    }
    free(sq_tocc);
    /* A message that carries a list post (a reply quoting it, a bounce or
     * resend of it) and would reach anyone outside the list would take the
     * post there in plaintext: refused unless asked for. */
    char post_list[RC_ADDR_MAX + 1];
    int carries = others.n > 0 && (lists.n == 0 || a.split) && !a.allow_plain_reply
                      ? carries_post(&ks, hdr, post_list, sizeof post_list)
                      : 0;
    free(hdr);
    if (carries < 0) {
        fprintf(stderr, "recrypt sendmail: cannot read the record of opened posts in %s: "
                        "nothing sent (it tells replies to list posts from other mail)\n",
                ks.dir);
        rc = EX_IOERR;
        goto done;
    }
    if (carries) {
        fprintf(stderr,
                "recrypt sendmail: this message is a reply to (or a copy of) a post of the "
                "encrypted list %s, and it would go to %s%s unencrypted, with whatever it "
                "quotes: nothing sent. Reply to the list instead (list-reply, 'L' in mutt), or "
                "send it unencrypted on purpose with --allow-plaintext-reply\n",
                post_list, others.v[0], others.n > 1 ? " and others" : "");
        rc = EX_NOPERM;
        goto done;
    }
    if (lists.n == 0) { /* not ours: as it came */
        rc = run_sendmail(&a, in, a.rcpt.v, a.rcpt.n, a.extract);
        goto done;
    }
    if ((lists.n > 1 || others.n > 0) && !a.split) {
        fprintf(stderr,
                "recrypt sendmail: this message goes to the encrypted list %s and also to %s%s: "
                "nothing sent. A list post must go to the list alone: send it to the list and "
                "the others separately, or use --split (the list gets the sealed post, the "
                "others the message as written)\n",
                lists.v[0], lists.n > 1 ? lists.v[1] : others.v[0],
                lists.n + others.n > 2 ? " and more" : "");
        rc = EX_NOPERM;
        goto done;
    }
    if (lists.n > sizeof sealed_fds / sizeof sealed_fds[0]) {
        fprintf(stderr, "recrypt sendmail: more than %zu lists in one message: nothing sent\n",
                sizeof sealed_fds / sizeof sealed_fds[0]);
        rc = EX_USAGE;
        goto done;
    }
    /* Seal every list's post first: nothing goes out unless all seal. */
    rc = 0;
    for (size_t i = 0; i < lists.n; i++) {
        rc_statement st;
        int first = 0, out = spool_tmpfile(&err);
        if (out < 0 || lseek(in, 0, SEEK_SET) != 0 ||
            client_seal(&ks, lists.v[i], NULL, 0, in, fd_sink, &out, &st, &first, &err) != 0) {
            if (out >= 0)
                close(out);
            fprintf(stderr, "recrypt sendmail: cannot seal the post for %s: %s: nothing sent\n",
                    lists.v[i], err.msg);
            rc = err.code == RC_E_POLICY || err.code == RC_E_PERMISSION ? EX_NOPERM : EX_DATAERR;
            goto done;
        }
        sealed_fds[n_sealed++] = out;
    }
    for (size_t i = 0; i < n_sealed; i++) {
        rc = run_sendmail(&a, sealed_fds[i], &lists.v[i], 1, 0);
        /* The sent copy, once sendmail has taken the post: the sealed one. */
        if (rc == 0 && a.fcc && *a.fcc && mailbox_append(a.fcc, a.folder, sealed_fds[i], &err))
            fprintf(stderr, "recrypt sendmail: the post to %s went out, but its sealed copy was "
                            "not kept: %s\n",
                    lists.v[i], err.msg);
        if (rc) {
            if (i > 0 || others.n)
                fprintf(stderr,
                        "recrypt sendmail: the sealed post for %s was not sent (exit %d)%s; "
                        "%zu list post(s) before it went out\n",
                        lists.v[i], rc, others.n ? ", nor the copy for the others" : "", i);
            goto done;
        }
    }
    if (others.n > 0) {
        int plain = without_bcc(in, &err);
        if (plain < 0) {
            fprintf(stderr, "recrypt sendmail: %s: the list post%s went out, the copy for the "
                            "others did not\n",
                    err.msg, lists.n > 1 ? "s" : "");
            rc = EX_IOERR;
            goto done;
        }
        rc = run_sendmail(&a, plain, others.v, others.n, 0);
        close(plain);
        if (rc)
            fprintf(stderr, "recrypt sendmail: the list post%s went out, the copy for the others "
                            "did not (exit %d)\n",
                    lists.n > 1 ? "s" : "", rc);
    }
done:
    for (size_t i = 0; i < n_sealed; i++)
        close(sealed_fds[i]);
    if (in >= 0)
        close(in);
    rc_mail_addresses_free(parsed, n_parsed);
    rc_mail_addresses_free(lists_known, n_known);
    free(lists.v);
    free(others.v);
    free(hdr_text);
    free(raw);
    sm_args_free(&a);
    return rc;
}
