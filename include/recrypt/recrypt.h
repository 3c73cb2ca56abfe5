/*
 * recrypt/recrypt.h - the whole public API of librecrypt.
 * Call rc_init() once before anything else (it initialises libsodium).
 */
#ifndef RECRYPT_RECRYPT_H
#define RECRYPT_RECRYPT_H

#include <recrypt/error.h>
#include <recrypt/udf.h>
#include <recrypt/keys.h>
#include <recrypt/list.h>
#include <recrypt/stream.h>
#include <recrypt/service.h>
#include <recrypt/message.h>
#include <recrypt/request.h>
#include <recrypt/svcsig.h>

#define RC_VERSION_STRING "0.3.0" /* = project(VERSION) in CMakeLists.txt (checked there) */

int rc_init(rc_error *err);

#endif
