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
# shellcheck source=tests/integration/chroot-lib.sh
source "$_root/tests/integration/chroot-lib.sh"
if [ -f "$READY" ] && chroot_installed "$DIR" postfix; then
  say "reusing the chroot in $DIR"
  exit 0
fi
DEBCONF_SELECTIONS="postfix postfix/main_mailer_type select Local only
postfix postfix/mailname string stock.test"
# shellcheck disable=SC2086
chroot_make "$DIR" "$MIRROR" $PACKAGES
# The package's own daemon is started by the test: policy-rc.d goes again.
rm -f "$DIR/usr/sbin/policy-rc.d"
touch "$READY"
say "chroot ready in $DIR"
