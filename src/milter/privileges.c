/*
 * privileges.c - see privileges.h.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include "privileges.h"

int drop_privileges(const char *spec, rc_error *err)
{
    char user[128], *group;
    snprintf(user, sizeof user, "%s", spec);
    group = strchr(user, ':');
    if (group)
        *group++ = '\0';
    struct passwd *pw = getpwnam(user);
    if (!pw)
        return rc_error_set(err, RC_E_NOT_FOUND, "UserID: no such user '%s'", user);
    gid_t gid = pw->pw_gid;
    if (group) {
        struct group *gr = getgrnam(group);
        if (!gr)
            return rc_error_set(err, RC_E_NOT_FOUND, "UserID: no such group '%s'", group);
        gid = gr->gr_gid;
    }
    if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid)
        return 0;
    if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(pw->pw_uid) != 0)
        return rc_error_set(err, RC_E_PERMISSION, "cannot become %s: %s", spec, strerror(errno));
    /* setuid clears dumpability on some kernels' paths; make sure. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    return 0;
}
