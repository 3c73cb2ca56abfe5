# preflight.sh: the checks every integration test with a real Postfix and
# the milter starts with. Sourced (bash) by the test right after it has
# set _here (its own directory); the test's own checks (a client, python3,
# script, ...) follow it.
#
# Defines skip MESSAGE ("skip - MESSAGE", exit 77: skipped, as CTest's
# SKIP_RETURN_CODE), adds /usr/sbin and /sbin to PATH, and skips unless
# the test runs as root (Postfix starts as root), Postfix is installed,
# the users postfix and nobody exist and the milter binary is there
# (RECRYPT_MILTER, or the build tree's); sets _m to that binary.
skip() { echo "skip - $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (Postfix starts as root)"
PATH=$PATH:/usr/sbin:/sbin
command -v postfix >/dev/null || skip "postfix is not installed (scripts/install-deps.sh)"
getent passwd postfix >/dev/null && getent passwd nobody >/dev/null || skip "no postfix or nobody user"
_m=${RECRYPT_MILTER:-$_here/../../build/src/milter/recrypt-milter}
[ -x "$_m" ] || skip "no milter binary at $_m (build target recrypt-milter)"
