/*
 * tempfail-milter - a test-only milter that stands after recrypt-milter in
 * Postfix's smtpd_milters, where a DKIM signer would be, and answers
 * tempfail at end of message once each time the test asks it to.
 *
 *   tempfail-milter inet:PORT@127.0.0.1 TRIGGER_FILE
 *
 * At end of message: if TRIGGER_FILE exists, it is removed and the message
 * gets "451 4.7.0 tempfail-milter: try again later"; otherwise continue.
 * Every end of message is logged on stderr ("eom: tempfail" / "eom:
 * continue") with the queue id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libmilter/mfapi.h>

static const char *trigger;

static sfsistat eom(SMFICTX *ctx)
{
    const char *qid = smfi_getsymval(ctx, "i");
    if (unlink(trigger) == 0) {
        fprintf(stderr, "tempfail-milter: %s: eom: tempfail\n", qid ? qid : "-");
        smfi_setreply(ctx, "451", "4.7.0", "tempfail-milter: try again later");
        return SMFIS_TEMPFAIL;
    }
    fprintf(stderr, "tempfail-milter: %s: eom: continue\n", qid ? qid : "-");
    return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    .xxfi_name = "tempfail-milter",
    .xxfi_version = SMFI_VERSION,
    .xxfi_eom = eom,
};

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tempfail-milter SOCKET TRIGGER_FILE\n");
        return 64;
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    trigger = argv[2];
    if (smfi_setconn(argv[1]) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS ||
        smfi_opensocket(1) != MI_SUCCESS) {
        fprintf(stderr, "tempfail-milter: cannot listen on %s\n", argv[1]);
        return 71;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 70;
}
