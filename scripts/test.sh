#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. a release build with -Wall -Wextra -Werror, every CTest test
#      (cmocka unit tests and command-line tests of the real binaries);
#      the same build with clang, -Werror too (build only);
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build, every test again;
#   3. the systemd unit (systemd-analyze verify) and the AppArmor profile
#      (apparmor_parser) parse checks; the Debian package built, checked
#      with lintian, installed, run, removed and purged; then installed on
#      a stock Debian 12 Postfix in a chroot and run with its init script;
#   4. each libFuzzer target briefly (FUZZ_SECONDS, default 20).
# Installs missing Debian packages first (needs root on a fresh machine).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/scripts/install-deps.sh"

echo "== release build (-Werror)"
dir=$("$root/scripts/build.sh" release)
(cd "$dir" && ctest --output-on-failure -j"$(nproc)")

echo "== clang build (-Werror; the same sources, no tests: gcc's build ran them)"
CC=clang "$root/scripts/build.sh" release "$root/build-clang" >/dev/null

echo "== ASan/UBSan build"
adir=$("$root/scripts/build.sh" asan)
(cd "$adir" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure -j"$(nproc)")

echo "== systemd unit and AppArmor profile"
bash "$root/packaging/check-units.sh"

echo "== Debian package: build, lintian, install, run, remove, purge"
bash "$root/packaging/build-deb.sh"

echo "== Debian package on a stock Debian 12 Postfix (chroot, init script, no systemd)"
bash "$root/packaging/test-stock-postfix.sh"

if [ -x "$root/scripts/fuzz.sh" ]; then
  echo "== fuzz targets (${FUZZ_SECONDS:-20} s each)"
  "$root/scripts/fuzz.sh" "$root/build-fuzz"
fi
echo "== all tests passed"
