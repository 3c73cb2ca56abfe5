# shellcheck shell=bash
# Shared by tests/integration/sendmail-chroot.sh and
# packaging/stock-chroot.sh: a minimal Debian bookworm chroot with some
# packages installed, made once and reused.
#
#   source tests/integration/chroot-lib.sh
#   chroot_make DIR MIRROR PACKAGE...
#
# Runs debootstrap --variant=minbase (skipped when DIR/.recrypt-debootstrap-done
# exists), keeps package scripts from starting daemons (policy-rc.d) while
# it installs, mounts /proc only for apt-get and unmounts it again, and
# installs the packages missing from DIR's dpkg lists. Debconf answers go
# in DEBCONF_SELECTIONS (lines for debconf-set-selections), if set. Needs
# root and debootstrap; prints what it does through say().

chroot_installed() { # chroot_installed DIR PACKAGE...: all in DIR's dpkg lists
  local dir=$1 p; shift
  for p in "$@"; do [ -f "$dir/var/lib/dpkg/info/$p.list" ] || return 1; done
}

chroot_make() {
  local dir=$1 mirror=$2 mounted=0 rc=0; shift 2
  command -v debootstrap >/dev/null || { say "debootstrap is missing (apt-get install -y debootstrap)"; return 1; }
  mkdir -p "$dir"
  if [ ! -f "$dir/.recrypt-debootstrap-done" ]; then
    say "debootstrap --variant=minbase bookworm $dir $mirror (a few minutes)"
    debootstrap --variant=minbase bookworm "$dir" "$mirror" || return 1
    touch "$dir/.recrypt-debootstrap-done"
  fi
  chroot_installed "$dir" "$@" && return 0
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 755 "$dir/usr/sbin/policy-rc.d"
  if ! mountpoint -q "$dir/proc"; then mount -t proc proc "$dir/proc" && mounted=1; fi
  say "installing $* in the chroot"
  {
    if [ -n "${DEBCONF_SELECTIONS:-}" ]; then
      printf '%s\n' "$DEBCONF_SELECTIONS" | chroot "$dir" debconf-set-selections
    fi &&
      chroot "$dir" env DEBIAN_FRONTEND=noninteractive apt-get update &&
      chroot "$dir" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
  } || rc=$?
  if [ "$mounted" = 1 ]; then umount "$dir/proc" 2>/dev/null || umount -l "$dir/proc"; fi
  return $rc
}
