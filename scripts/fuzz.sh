#!/usr/bin/env bash
# Build recrypt's libFuzzer targets (tests/fuzz) and fuzz each one for
# FUZZ_SECONDS (default 20) on a copy of its seed corpus.
#
#   scripts/fuzz.sh [BUILD_DIR]      (default: build-fuzz in the repository)
#
# Environment: FUZZ_SECONDS (per target), FUZZ_TIMEOUT (seconds per input,
# default 30), FUZZ_TARGETS (space-separated subset), CC (default clang).
# Exits non-zero if the build fails or any target crashes, leaks, runs out of
# memory or times out; the offending input and the log are kept under
# BUILD_DIR/fuzz-artifacts/<target>/. The committed corpus is never written.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build-fuzz}
mkdir -p "$build"
build=$(cd "$build" && pwd)
seconds=${FUZZ_SECONDS:-20}
timeout=${FUZZ_TIMEOUT:-30}
fuzzdir=$root/tests/fuzz

if [[ -n ${FUZZ_TARGETS:-} ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    targets=()
    for src in "$fuzzdir"/fuzz_*.c; do
        name=$(basename "$src" .c)
        targets+=("$name")
    done
fi
if ((${#targets[@]} == 0)); then
    echo "fuzz.sh: no fuzz targets under $fuzzdir" >&2
    exit 1
fi

echo "fuzz.sh: configuring and building in $build"
CC=${CC:-clang} cmake -S "$root" -B "$build" -DRECRYPT_FUZZ=ON -DRECRYPT_SANITIZE=ON \
    -DRECRYPT_WERROR=ON -DBUILD_TESTING=ON >"$build/fuzz-configure.log" 2>&1 || {
    cat "$build/fuzz-configure.log" >&2
    echo "fuzz.sh: configure failed" >&2
    exit 1
}
# Only the fuzzers: the rest of the tree needs not build for this.
cmake --build "$build" --parallel "$(nproc 2>/dev/null || echo 2)" --target "${targets[@]}"

work=$(mktemp -d "${TMPDIR:-/tmp}/recrypt-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
for t in "${targets[@]}"; do
    bin=$build/tests/fuzz/$t
    seeds=$fuzzdir/corpus/$t
    corpus=$work/$t
    artifacts=$build/fuzz-artifacts/$t
    log=$artifacts/fuzz.log
    mkdir -p "$corpus" "$artifacts"
    if [[ -d $seeds ]]; then
        cp -R "$seeds"/. "$corpus"/
    fi
    status=0
    "$bin" -max_total_time="$seconds" -timeout="$timeout" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    units=$(find "$corpus" -type f | wc -l)
    if ((status == 0)); then
        printf '%-16s ok     %10s executions in %ss, corpus %s inputs\n' "$t" \
            "${execs:-?}" "$seconds" "$units"
    else
        failed=1
        printf '%-16s FAILED %10s executions (exit %s); log and input in %s\n' "$t" \
            "${execs:-?}" "$status" "$artifacts" >&2
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*invariant violated|.*Test unit written)' \
            "$log" | head -n 20 >&2 || true
    fi
done
exit "$failed"
