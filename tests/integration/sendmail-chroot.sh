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
# (sendmail-mta is an absolute symbolic link: look at dpkg's lists instead)
installed() {
  local p
  for p in sendmail-bin sendmail-cf m4; do
    [ -f "$DIR/var/lib/dpkg/info/$p.list" ] || return 1
  done
}
if [ -f "$READY" ] && installed; then
  say "reusing the chroot in $DIR"
  exit 0
fi
command -v debootstrap >/dev/null || { say "debootstrap is missing (apt-get install -y debootstrap)"; exit 1; }

_mounted=0
cleanup() {
  if [ "$_mounted" = 1 ]; then umount "$DIR/proc" 2>/dev/null || umount -l "$DIR/proc" || true; fi
}
trap cleanup EXIT

mkdir -p "$DIR"
if [ ! -f "$DIR/.recrypt-debootstrap-done" ]; then
  say "debootstrap --variant=minbase bookworm $DIR $MIRROR (a few minutes)"
  debootstrap --variant=minbase bookworm "$DIR" "$MIRROR"
  touch "$DIR/.recrypt-debootstrap-done"
else
  say "debootstrap already done in $DIR"
fi

# Package scripts must not start daemons inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$DIR/usr/sbin/policy-rc.d"
chmod 755 "$DIR/usr/sbin/policy-rc.d"

if ! mountpoint -q "$DIR/proc"; then
  say "mounting /proc in the chroot"
  mount -t proc proc "$DIR/proc"
  _mounted=1
fi

if ! installed; then
  say "installing sendmail-bin sendmail-cf m4 in the chroot"
  chroot "$DIR" env DEBIAN_FRONTEND=noninteractive apt-get update
  chroot "$DIR" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends sendmail-bin sendmail-cf m4
else
  say "sendmail-bin, sendmail-cf and m4 already installed"
fi

# The packaged sendmail.mc, kept untouched: the test writes its own from it.
if [ ! -f "$DIR/etc/mail/sendmail.mc.dist" ]; then
  say "saving the packaged /etc/mail/sendmail.mc as sendmail.mc.dist"
  cp "$DIR/etc/mail/sendmail.mc" "$DIR/etc/mail/sendmail.mc.dist"
fi

touch "$READY"
say "chroot ready in $DIR"
