/*
 * error.c - rc_error: codes, their fixed descriptions, and formatted reports.
 */
#include <stdarg.h>
#include <stdio.h>
#include <recrypt/error.h>

const char *rc_strerror(int code)
{
    switch (code) {
    case RC_OK: return "success";
    case RC_E_INVALID: return "invalid input";
    case RC_E_FORMAT: return "malformed data";
    case RC_E_VERSION: return "unsupported version";
    case RC_E_CRYPTO: return "cryptographic check failed";
    case RC_E_AUTH: return "authentication failed";
    case RC_E_SIGNATURE: return "bad signature";
    case RC_E_NOT_FOR_US: return "not addressed to this device";
    case RC_E_POLICY: return "refused by policy";
    case RC_E_PERMISSION: return "unsafe permissions";
    case RC_E_IO: return "input/output error";
    case RC_E_NOMEM: return "out of memory";
    case RC_E_INTERNAL: return "internal error";
    case RC_E_NOT_FOUND: return "not found";
    case RC_E_EXISTS: return "already exists";
    case RC_E_DAMAGED: return "damaged, restore from a backup";
    }
    return "unknown error";
}

int rc_error_set(rc_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void rc_error_clear(rc_error *err)
{
    if (err) {
        err->code = RC_OK;
        err->msg[0] = '\0';
    }
}
