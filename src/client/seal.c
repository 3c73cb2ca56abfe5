/*
 * seal.c - see seal.h.
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "seal.h"

int client_is_key_line(const char *s)
{
    /* recrypt<version>.<kind>.<data>: never an address or a path (a list
     * may well be called recrypt-users@example.org). */
    return strncmp(s, "recrypt", 7) == 0 && isdigit((unsigned char)s[7]) && strchr(s, '.') &&
           !strchr(s, '@') && !strchr(s, '/');
}

int client_load_statement(const keystore *ks, rc_statement *st, const char *arg, rc_error *err)
{
    if (client_is_key_line(arg))
        return rc_statement_decode(st, arg, err); /* decode says if it is not a list key */
    char line[RC_KEYSTR_MAX * 2];
    /* An address: the keystore's key, never a file that happens to be
     * called like it in the current directory. */
    if (strchr(arg, '@') && !strchr(arg, '/')) {
        char addr[RC_ADDR_MAX + 1], path[PATH_MAX];
        rc_pin pin;
        int rc;
        if (rc_address_canonical(addr, arg, NULL) != 0)
            return rc_error_set(err, RC_E_INVALID, "'%s' is not a list address", arg);
        if ((rc = keystore_pin_load(ks, addr, &pin, err)) < 0)
            return rc;
        if (rc == 0) {
            char fp[RC_UDF_MAX];
            if (keystore_pin_state(ks, addr, fp, err) == KS_PIN_FINGERPRINT)
                return rc_error_set(err, RC_E_NOT_FOUND,
                                    "%s is pinned to %s, but this keystore holds no list key "
                                    "of it yet: open a message from the list first, or give "
                                    "the list key line (or a file holding it)",
                                    addr, fp);
            return rc_error_set(err, RC_E_NOT_FOUND,
                                "%s is not pinned on this device and this keystore knows no "
                                "list key for it: ask the list owner for the list's signing "
                                "key fingerprint and run 'recrypt list pin %s FINGERPRINT', "
                                "then open a message from the list, or give the list key line",
                                addr, addr);
        }
        if (keystore_path(path, ks, "lists/%s/epoch-%llu.listkey", addr,
                          (unsigned long long)pin.highest_epoch) != 0 ||
            keystore_read_file(path, line, sizeof line) != 0)
            return rc_error_set(err, RC_E_IO,
                                "the keystore has %s pinned at epoch %llu but not its list key "
                                "(%s): give the list key line",
                                addr, (unsigned long long)pin.highest_epoch, path);
        return rc_statement_decode(st, line, err);
    }
    FILE *f = fopen(arg, "r");
    if (!f)
        return rc_error_set(err, RC_E_IO,
                            "'%s' is neither a list key line, a readable file, nor a list "
                            "address",
                            arg);
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    return rc_statement_decode(st, line, err);
}

int client_seal(const keystore *ks, const char *to, const char *signer_fp, int no_sign, int in_fd,
                rc_sink_fn sink, void *ctx, rc_statement *st, int *first_use, rc_error *err)
{
    rc_cert cert;
    int rc;
    uint64_t now = (uint64_t)time(NULL);
    rc_device_secret *dev = NULL;
    *first_use = 0;
    if ((rc = client_load_statement(ks, st, to, err)) ||
        (rc = keystore_trust(ks, st, signer_fp, now, 0, first_use, err)))
        return rc;
    int have_cert = !no_sign && keystore_cert_load(ks, st->address, st->epoch, &cert);
    if (have_cert) {
        dev = rc_secret_alloc(sizeof *dev);
        if (!dev)
            return rc_error_set(err, RC_E_NOMEM, "out of memory");
        if ((rc = keystore_device_load(ks, dev, err)) != 0) {
            rc_secret_free(dev);
            return rc;
        }
        if (memcmp(cert.device_sign_pk, dev->pub.sign_pk, 32) != 0) {
            rc_secret_free(dev);
            return rc_error_set(err, RC_E_SIGNATURE,
                                "the membership certificate for %s epoch %llu is not this "
                                "device's",
                                st->address, (unsigned long long)st->epoch);
        }
    } else if (!no_sign) {
        fprintf(stderr,
                "recrypt: note: not signed: this device holds no membership certificate for %s "
                "epoch %llu yet\n",
                st->address, (unsigned long long)st->epoch);
    }
    rc = rc_mail_seal(in_fd, st, have_cert ? dev : NULL, have_cert ? &cert : NULL, now, sink, ctx,
                      err);
    rc_secret_free(dev);
    if (rc)
        return rc;
    if ((rc = keystore_prepare(ks, err)) || (rc = keystore_remember(ks, st, err)))
        return rc;
    return 0;
}
