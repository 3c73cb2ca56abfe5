# Shared set-up of the milter tests: sourced (after `set -euo pipefail`) by
# tests/milter/test_miltertest.sh and tests/milter/test_daemon.sh.
#
# On sourcing it sets HERE (tests/milter) and makes RECRYPT, RECRYPTCTL,
# RC_HARNESS and RECRYPT_MILTER (default: the binaries of <repo>/build)
# absolute paths, as the tests run in their own directory; if one is not
# an executable it prints "FAIL - ..." and "0 passed, 1 failed" and exits 1;
# without miltertest, python3 or timeout it prints "SKIP: ..." and exits 77.
# Then it offers:
#
#   mt_tmpdir PREFIX       make $T (PREFIX.XXXXXX under $TMPDIR) and cd into
#                          it; at exit, kill the pids in STARTED and remove
#                          $T (RC_KEEP=1 keeps it and says where)
#   STARTED                the background processes the test started
#   pass TEXT / failed TEXT   an "ok -" / "FAIL -" line, counted in
#                          passes / fails
#   free_port              a free TCP port on 127.0.0.1
#   listening PORT         something accepts connections on 127.0.0.1:PORT now
#   wait_for CMD...        up to 10 s for CMD to succeed
#   ctl ARGS...            recryptctl as the list owner ($T/owner)
#   dev DEVICE ARGS...     recrypt as device DEVICE ($T/dev-DEVICE)
#   make_store "LISTS" "DEVICES"   the store $T/db (see below)
#   store_ok SHOW          SHOW (recryptctl show of list@) has the members
#                          make_store enrols as it left them
#   plain NAME [TO] [FROM] [DATE]   a plaintext post NAME.txt (below)
#   sealed NAME KEYFILE [TO] [FROM] [DATE] [DEVICE]   and NAME.eml, sealed
#   MARKERS                the plaintext markers of those posts
#   MID_TAG                the prefix of their Message-IDs (set it)
# shellcheck shell=bash

_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC2034 # HERE: for the sourcing scripts
HERE=$_root/tests/milter
RECRYPT=${RECRYPT:-$_root/build/src/client/recrypt}
RECRYPTCTL=${RECRYPTCTL:-$_root/build/src/ctl/recryptctl}
RC_HARNESS=${RC_HARNESS:-$_root/build/tests/rc-harness}
RECRYPT_MILTER=${RECRYPT_MILTER:-$_root/build/src/milter/recrypt-milter}

# Absolute paths: the test runs in its own directory.
for v in RECRYPT RECRYPTCTL RC_HARNESS RECRYPT_MILTER; do
  [ -x "${!v}" ] || { echo "FAIL - $v: ${!v} is not an executable"; echo "0 passed, 1 failed"; exit 1; }
  printf -v "$v" '%s' "$(readlink -f "${!v}")"
done
for tool in miltertest python3 timeout; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done

STARTED=() # every background process this test started
mt_tmpdir() {
  T=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  trap _mt_cleanup EXIT
  cd "$T" || exit 1
}
_mt_cleanup() {
  for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${RC_KEEP:-}" ]; then echo "kept: $T"; else rm -rf "$T"; fi
}

fails=0
passes=0
pass() { passes=$((passes + 1)); echo "ok - $*"; }
failed() { fails=$((fails + 1)); echo "FAIL - $*"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# listening PORT: something accepts connections on 127.0.0.1:PORT now.
listening() {
  python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
    "$1" 2>/dev/null
}
# wait_for CMD...: up to 10 s for CMD to succeed.
wait_for() {
  for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done
  return 1
}

ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }
dev() { local d=$1; shift; RECRYPT_HOME="$T/dev-$d" "$RECRYPT" "$@"; }

# make_store "LISTS" "DEVICES": the store $T/db with a service key and an
# owner (owner.pub); LIST@example.org for each of LISTS (its key in
# LIST.key), a device for each of DEVICES (its key in DEVICE.pub), each
# pinning every list's signing key; on
# list@example.org: alice (device alice), bob (bob-laptop, bob-phone) and
# carol (carol), suspended. DEVICES must name those four.
make_store() {
  local svc l d
  svc=$("$RECRYPTCTL" server init --db "$T/db" 2>/dev/null)
  ctl init >owner.pub 2>/dev/null
  for l in $1; do
    ctl list create "$l@example.org" --service-key "$svc" --apply "$T/db" 2>/dev/null
    ctl list key "$l@example.org" >"$l.key" 2>"$l.fp"
  done
  for d in $2; do dev "$d" keygen >"$d.pub" 2>/dev/null; done
  # Every device pins every list's signing key, as the owner hands the
  # fingerprint over at enrolment (a message never pins: FORMAT.md §4).
  for l in $1; do
    local fp
    fp=$(grep -oE 'M[A-Z2-7]{3}(-[A-Z2-7]{4}){6}' "$l.fp" | head -n 1)
    for d in $2; do dev "$d" list pin "$l@example.org" "$fp" >/dev/null 2>&1 || failed "$d pins $l@example.org"; done
  done
  ctl member add list@example.org alice@example.org --device "$(cat alice.pub)" --apply "$T/db" 2>/dev/null
  ctl member add list@example.org bob@example.org --device "$(cat bob-laptop.pub)" \
    --device "$(cat bob-phone.pub)" --apply "$T/db" 2>/dev/null
  ctl member add list@example.org carol@example.org --device "$(cat carol.pub)" --apply "$T/db" 2>/dev/null
  ctl member suspend list@example.org carol@example.org --apply "$T/db" 2>/dev/null
}
# store_ok SHOW: SHOW (`recryptctl show` of list@example.org) has alice and
# bob active, carol suspended.
store_ok() {
  grep -q '^  member alice@example.org active$' <<<"$1" && grep -q '^  member bob@example.org active$' <<<"$1" &&
    grep -q '^  member carol@example.org suspended$' <<<"$1"
}

# ---- posts ----
MID_TAG=post # the Message-IDs' prefix (<MID_TAG N.PID.RANDOM@example.org>)
MARKERS=()   # the plaintext markers of every post made
_mt_posts=0
# plain NAME [TO] [FROM] [DATE]: a plaintext message NAME.txt with a unique
# marker (added to MARKERS); BODYFILL=N adds N bytes of filler lines.
plain() {
  _mt_posts=$((_mt_posts + 1))
  local marker="PLAINTEXT-MARKER-$1-$$-$RANDOM$RANDOM"
  MARKERS+=("$marker")
  {
    printf 'From: %s\nTo: %s\nSubject: %s subject %s\nDate: %s\nMessage-ID: <%s%s.%s.%s@example.org>\n\n%s\nsecond line of %s\n' \
      "${3:-Alice <alice@example.org>}" "${2:-list@example.org}" "$1" "$marker" "${4:-$(date -R)}" \
      "$MID_TAG" "$_mt_posts" "$$" "$RANDOM" "$marker" "$1"
    if [ -n "${BODYFILL:-}" ]; then
      head -c "$BODYFILL" /dev/zero | tr '\0' 'x' | fold -w 76
      echo
    fi
  } >"$1.txt"
}
# sealed NAME KEYFILE [TO] [FROM] [DATE] [DEVICE]: plain NAME TO FROM DATE,
# then NAME.eml: that sealed by DEVICE (default alice) to the key in KEYFILE.
sealed() {
  plain "$1" "${3:-list@example.org}" "${4:-}" "${5:-}"
  dev "${6:-alice}" seal --to "$2" <"$1.txt" >"$1.eml" 2>/dev/null || { failed "seal $1"; return 1; }
}
