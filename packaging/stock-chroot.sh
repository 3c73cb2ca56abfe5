#!/bin/bash
# Create (or reuse) a Debian bookworm chroot holding a stock Postfix, as
# Debian's own postfix package sets it up ("Local only": chrooted smtpd and
# cleanup, loopback-only listener), for packaging/test-stock-postfix.sh.
#
#   STOCK_CHROOT=DIR packaging/stock-chroot.sh
#
# DIR defaults to <repo>/build-stock-chroot. Idempotent: a marker file
# records the finished chroot, and each step is skipped when done already.
# Needs root, debootstrap, and access to a Debian mirror (DEBIAN_MIRROR,
# default http://deb.debian.org/debian). /proc is mounted inside only while
# packages are installed. Nothing of recrypt is installed here: the test
# installs the package it is given into a copy-on-use of this tree.
set -euo pipefail
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${STOCK_CHROOT:-$_root/build-stock-chroot}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
READY=$DIR/.recrypt-stock-ready
PACKAGES="postfix ca-certificates"

say() { echo "stock-chroot: $*"; }

[ "$(id -u)" -eq 0 ] || { say "needs root"; exit 1; }
if [ -f "$READY" ] && [ -f "$DIR/var/lib/dpkg/info/postfix.list" ]; then
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
fi

# Package scripts must not start daemons while the chroot is being made.
printf '#!/bin/sh\nexit 101\n' >"$DIR/usr/sbin/policy-rc.d"
chmod 755 "$DIR/usr/sbin/policy-rc.d"
if ! mountpoint -q "$DIR/proc"; then
  mount -t proc proc "$DIR/proc"
  _mounted=1
fi

if [ ! -f "$DIR/var/lib/dpkg/info/postfix.list" ]; then
  say "installing $PACKAGES (debconf: Local only, mail name stock.test)"
  chroot "$DIR" debconf-set-selections <<'SEL'
postfix postfix/main_mailer_type select Local only
postfix postfix/mailname string stock.test
SEL
  chroot "$DIR" env DEBIAN_FRONTEND=noninteractive apt-get update
  # shellcheck disable=SC2086
  chroot "$DIR" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES
fi
# The package's own daemon may be started by the test: allow it again.
rm -f "$DIR/usr/sbin/policy-rc.d"
touch "$READY"
say "chroot ready in $DIR"
