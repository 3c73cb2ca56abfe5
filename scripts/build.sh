#!/usr/bin/env bash
# Configure and build one flavour of recrypt.
#   scripts/build.sh [release|asan] [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
flavour=${1:-release}
case "$flavour" in
  release) dir=${2:-$root/build}; opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan)    dir=${2:-$root/build-asan}; opts=(-DCMAKE_BUILD_TYPE=Debug -DRECRYPT_SANITIZE=ON) ;;
  *) echo "usage: $0 [release|asan] [BUILD_DIR]" >&2; exit 64 ;;
esac
mkdir -p "$dir"
log="$dir/build.log"
if ! { cmake -S "$root" -B "$dir" -DRECRYPT_WERROR=ON "${opts[@]}" &&
       cmake --build "$dir" -j"$(nproc)"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "build.sh: $flavour build failed (log above)" >&2
  exit 1
fi
echo "$dir"
