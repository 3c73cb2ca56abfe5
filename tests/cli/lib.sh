# Shared helpers for the command-line tests. Sourced by tests/cli/test_*.sh;
# CTest sets RECRYPT (the recrypt binary) and RC_HARNESS (the owner/service
# stand-in). Each test works in its own temporary directory, removed at exit.
set -euo pipefail

# Run by hand, the tests use the default build directory.
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RECRYPT=${RECRYPT:-$_root/build/src/client/recrypt}
RC_HARNESS=${RC_HARNESS:-$_root/build/tests/rc-harness}
RECRYPTCTL=${RECRYPTCTL:-$_root/build/src/ctl/recryptctl}
T=$(mktemp -d "${TMPDIR:-/tmp}/recrypt-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
fails=0
passes=0

pass() { passes=$((passes + 1)); echo "ok - $*"; }
failed() { fails=$((fails + 1)); echo "FAIL - $*"; }

# The recrypt client with the keystore of device $1.
dev() { local d=$1; shift; RECRYPT_HOME="$T/dev-$d" "$RECRYPT" "$@"; }

# newdev NAME: create a device; its public key line in NAME.pub
newdev() { dev "$1" keygen >"$1.pub" 2>/dev/null; }

# newlist DIR ADDRESS: a list; its key line in DIR.key, its address in DIR.addr
newlist() { "$RC_HARNESS" list-create "$1" "$2" >"$1.key"; echo "$2" >"$1.addr"; }

# pin LIST DEVICE: the device pins the list's signing key fingerprint, as
# the owner hands it over at enrolment (a message never pins: issue 13).
pin() { dev "$2" list pin "$(cat "$1.addr")" "$("$RC_HARNESS" signer "$1")" >/dev/null; }

# fp_in FILE: the first list signing key fingerprint (140-bit UDF) in FILE,
# e.g. what recryptctl printed on standard error.
fp_in() { grep -oE 'M[A-Z2-7]{3}(-[A-Z2-7]{4}){6}' "$1" | head -n1; }

# pin_devices ADDRESS FINGERPRINT DEVICE...: each device pins the list (the
# fingerprint the owner gives at enrolment; recryptctl prints it).
pin_devices() {
  local addr=$1 fp=$2; shift 2
  [ -n "$fp" ] || { failed "no list signing key fingerprint for $addr"; return 1; }
  for d in "$@"; do dev "$d" list pin "$addr" "$fp" >/dev/null || failed "$d pins $addr"; done
}

# enrol LIST MEMBER DEVICE: enrol the device, and pin the list on it.
enrol() {
  "$RC_HARNESS" enrol "$1" "$2" "$(cat "$3.pub")" --at $(( $(date +%s) - 2 * 86400 ))
  pin "$1" "$3"
}

# post LIST FROM_DEVICE INFILE OUTFILE: seal as FROM_DEVICE to the list's
# current key and recrypt.
post() {
  dev "$2" seal --to "$("$RC_HARNESS" list-key "$1")" <"$3" >"$T/.sealed" 2>/dev/null
  "$RC_HARNESS" recrypt "$1" <"$T/.sealed" >"$4" 2>/dev/null
}

# recording_sendmail: $T/record.sh stands in for the real sendmail of
# recrypt sendmail (RECRYPT_SENDMAIL): each submission goes to $T/sub.N, a
# first line "ARGS: <its arguments>" and then the message; it exits 0.
recording_sendmail() {
  cat >"$T/record.sh" <<REC
#!/bin/sh
n=\$(ls "$T"/sub.* 2>/dev/null | wc -l)
{ echo "ARGS: \$*"; cat; } >"$T/sub.\$n"
exit 0
REC
  chmod +x "$T/record.sh"
  export RECRYPT_SENDMAIL="$T/record.sh"
}

# expect_ok NAME CMD...: exit 0
expect_ok() {
  local name=$1; shift
  if "$@" >"$T/.out" 2>"$T/.err"; then pass "$name"; else
    failed "$name (exit $?: $(head -c 300 "$T/.err"))"; fi
}

# expect_fail NAME EXIT STDERR_PATTERN CMD... (stdin from the caller):
# the command fails with that exit code, says something matching the pattern
# (grep -E) on stderr, and writes nothing on stdout.
expect_fail() {
  local name=$1 code=$2 pattern=$3; shift 3
  local rc=0
  "$@" >"$T/.out" 2>"$T/.err" || rc=$?
  if [ "$rc" -ne "$code" ]; then
    failed "$name: exit $rc, expected $code ($(head -c 300 "$T/.err"))"
  elif ! grep -qE -- "$pattern" "$T/.err"; then
    failed "$name: stderr does not match /$pattern/: $(head -c 300 "$T/.err")"
  elif [ -s "$T/.out" ]; then
    failed "$name: wrote $(wc -c <"$T/.out") bytes on stdout"
  else
    pass "$name"
  fi
}

# same_inner NAME ORIGINAL OPENED: OPENED is ORIGINAL plus a first line
# "Recrypt-Verdict: ..." and nothing else; but for a second line
# "Recrypt-Outer-From: ..." when the gateway rewrote the outer From
# (FromRewrite, the default).
same_inner() {
  local from=2
  sed -n 2p "$3" | grep -q '^Recrypt-Outer-From: ' && from=3
  if head -n1 "$3" | grep -q '^Recrypt-Verdict: ' && tail -n +$from "$3" | cmp -s - "$2"; then
    pass "$1"
  else
    failed "$1: opened message differs from the original"
  fi
}

finish() {
  echo "$passes passed, $fails failed"
  [ "$fails" -eq 0 ]
}
