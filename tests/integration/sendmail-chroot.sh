#!/bin/bash
# Create (or reuse) a minimal Debian bookworm chroot holding Sendmail, for
# tests/integration/test_sendmail.sh. Debian's sendmail-bin conflicts with
# postfix, so Sendmail lives in its own root file system.
#
#   SENDMAIL_CHROOT=DIR tests/integration/sendmail-chroot.sh
#
# DIR defaults to <repo>/build-sendmail-chroot. Idempotent: each step is
# skipped when done already (a marker file records the finished chroot).
# Needs root, debootstrap, and access to a Debian mirror (DEBIAN_MIRROR,
# default http://deb.debian.org/debian). /proc is mounted inside only while
# packages are installed, and unmounted again before this script ends.
set -euo pipefail
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${SENDMAIL_CHROOT:-$_root/build-sendmail-chroot}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
READY=$DIR/.recrypt-sendmail-ready

say() { echo "sendmail-chroot: $*"; }

[ "$(id -u)" -eq 0 ] || { say "needs root"; exit 1; }
# shellcheck source=tests/integration/chroot-lib.sh
source "$_root/tests/integration/chroot-lib.sh"
# (sendmail-mta is an absolute symbolic link: look at dpkg's lists instead)
if [ -f "$READY" ] && chroot_installed "$DIR" sendmail-bin sendmail-cf m4; then
  say "reusing the chroot in $DIR"
  exit 0
fi
chroot_make "$DIR" "$MIRROR" sendmail-bin sendmail-cf m4
# Package scripts must not start daemons inside the chroot (the test runs
# Sendmail itself).
printf '#!/bin/sh\nexit 101\n' >"$DIR/usr/sbin/policy-rc.d"
chmod 755 "$DIR/usr/sbin/policy-rc.d"

# The packaged sendmail.mc, kept untouched: the test writes its own from it.
if [ ! -f "$DIR/etc/mail/sendmail.mc.dist" ]; then
  say "saving the packaged /etc/mail/sendmail.mc as sendmail.mc.dist"
  cp "$DIR/etc/mail/sendmail.mc" "$DIR/etc/mail/sendmail.mc.dist"
fi

touch "$READY"
say "chroot ready in $DIR"
