/*
 * init.c - rc_init: library start-up (libsodium; GMime's type system).
 */
#include <gmime/gmime.h>
#include "internal.h"

int rc_init(rc_error *err)
{
    if (sodium_init() < 0)
        return rc_error_set(err, RC_E_INTERNAL, "libsodium failed to initialise");
    g_mime_init(); /* reference-counted by GMime; safe to call again */
    return 0;
}
