#!/usr/bin/env bash
# Install the Debian 12 packages recrypt needs to build, test and demo.
# Only missing packages are installed; safe to run again.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libsodium-dev libgmime-3.0-dev liblmdb-dev libmilter-dev libcmocka-dev libdecaf-dev libjansson-dev
  clang libclang-rt-14-dev
  python3
  postfix swaks miltertest
  neomutt mutt python3-pexpect python3-pyte
  thunderbird xvfb
  debootstrap lintian
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or install them with apt-get)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Postfix is only a test instance here: install it without configuring a
# system mail service (the tests run private instances on loopback).
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
