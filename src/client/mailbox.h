/*
 * mailbox.h - the client's mail folders: the private view folder that a
 * mail program opens to show one decrypted post, the opt-in decrypted
 * archive (maildir), and the sent copy (Fcc) of a sealed post, appended to
 * the user's maildir or mbox.
 *
 * Private folders are directories of mode 0700 owned by the user; an
 * existing one that is anything else (a symlink, another owner, readable by
 * others) is refused, so a shared /tmp cannot be used to read or redirect
 * decrypted mail. Message files are 0600 and appear atomically (written
 * in tmp/, renamed into cur/), as maildir(5) asks.
 */
#ifndef RECRYPT_CLIENT_MAILBOX_H
#define RECRYPT_CLIENT_MAILBOX_H

#include <stddef.h>
#include <recrypt/recrypt.h>

/* The view folder: dir_opt, else $XDG_RUNTIME_DIR/recrypt-view, else
 * $TMPDIR (or /tmp)/recrypt-view-UID. Only computes the path. */
int mailbox_view_path(char *out, size_t outlen, const char *dir_opt, rc_error *err);

/* Create dir (and its parent when private=1 asks for it) as a maildir
 * (cur, new, tmp). With private=1 the directory must be the user's own and
 * 0700 (checked, not only set). */
int maildir_prepare(const char *dir, int private_dir, rc_error *err);

/* Remove every message of the maildir and the maildir itself. Missing is
 * fine. Returns 0, or -1 when something could not be removed. */
int maildir_remove(const char *dir);

/* A new message file in dir/tmp; returns its descriptor and its name (a
 * unique maildir name, or `name` when given) in name_out. */
int maildir_begin(const char *dir, const char *name, char *name_out, size_t name_len,
                  rc_error *err);
/* Move dir/tmp/name to dir/cur/name:2,<flags> after syncing fd (which is
 * closed). ok=0 removes the file instead. */
int maildir_commit(const char *dir, const char *name, int fd, const char *flags, int ok,
                   rc_error *err);

/* Append the message in fd (read from offset 0) to the mailbox at path: a
 * maildir when path is a directory holding cur/, else an mbox file
 * (mboxrd quoting, fcntl lock, created 0600). `folder` resolves a leading
 * '=' or '+' (mutt's shortcuts for $folder); '~/' is $HOME. */
int mailbox_append(const char *path, const char *folder, int fd, rc_error *err);

/* Expand mutt's shortcuts in path into out: "~/x", "=x"/"+x" (against
 * folder, itself expanded). */
int mailbox_expand(char *out, size_t outlen, const char *path, const char *folder,
                   rc_error *err);

#endif
