#!/bin/bash
# Milter-protocol tests of recrypt-milter with miltertest (Debian package
# `miltertest`): the edge cases that are hard to provoke through Postfix.
# Sets up a store with recryptctl, seals posts with recrypt, starts the
# milter on a loopback port and runs tests/milter/*.lua against it.
#
# miltertest 1.6.0 reads every reply of the filter into a 1024-byte stack
# buffer, so a replaced body (SMFIR_REPLBODY chunks of up to 64 KiB) makes
# it abort ("stack smashing detected"); it also cannot show reply codes
# given at RCPT. So the scripts talk to the milter through a small relay
# (python3, written below) that passes every packet on unchanged except the
# body chunks: it keeps those in $T/out/QID.body and hands miltertest a
# one-line stand-in. It also writes each packet the milter sent, one line
# each, to $T/out/QID.log (QID: the "i" macro), where the scripts read the
# reply codes and the sender change.
#
# Environment (CTest sets the first three): RECRYPT, RECRYPTCTL, RC_HARNESS,
# RECRYPT_MILTER (default: the binaries of <repo>/build); RC_KEEP=1 keeps
# the temporary directory (milter.log, out/, *.out) for a look.
set -euo pipefail

# shellcheck source=tests/milter/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mt_tmpdir recrypt-mt

# ---- the store: three lists, members, devices ----
make_store "list empty two" "alice bob-laptop bob-phone carol"
ctl member add two@example.org alice@example.org --device "$(cat alice.pub)" --apply "$T/db" 2>/dev/null
show=$("$RECRYPTCTL" show --db "$T/db" list@example.org)
if store_ok "$show"; then
  pass "store: alice and bob active, carol suspended"
else
  failed "store set-up: $show"
  echo "$passes passed, $fails failed"
  exit 1
fi
sleep 1 # devices get stanzas only for posts dated after their enrolment

# ---- the posts ----
MID_TAG=mt # plain and sealed (lib.sh): Message-IDs <mtN.PID.RANDOM@example.org>
sealed post1 list.key
sealed conn1 list.key
sealed conn2 list.key
plain ordinary nobody@example.org
sealed abort1 list.key
sealed abort2 list.key
sealed abort3 list.key
sealed processed list.key
"$RC_HARNESS" recrypt-store "$T/db" list@example.org <processed.eml >recrypted.eml 2>/dev/null ||
  failed "rc-harness recrypt-store (for the already-recrypted post)"
sealed noone empty.key empty@example.org
plain plaintext
sealed replay list.key
sealed other two.key
sealed version list.key
sed 's/^Version: 1$/Version: 2/' version.eml >garbled.eml
cmp -s version.eml garbled.eml && failed "garbled post: no 'Version: 1' line to change"
sealed structure list.key
sealed reload1 list.key
sealed reload2 list.key
python3 "$HERE/make_structure.py" structure.eml || failed "make_structure.py"

# ---- the milter, behind the relay ----
mkdir -p spool out
MPORT=$(free_port)
cat >milter.conf <<CONF
Socket inet:$MPORT@127.0.0.1
Database $T/db
Syslog no
LogLevel debug
TemporaryDirectory $T/spool
ReceiptDomain receipt.example.net
CONF
"$RECRYPT_MILTER" -f -c milter.conf -u "$(id -un)" 2>milter.log &
milter_pid=$!
STARTED+=("$milter_pid")
wait_for listening "$MPORT" || { failed "the milter does not listen: $(cat milter.log)"; echo "$passes passed, $fails failed"; exit 1; }

RPORT=$(free_port)
python3 "$HERE/relay.py" "$RPORT" "$MPORT" "$T/out" 2>relay.log &
relay_pid=$!
STARTED+=("$relay_pid")
wait_for listening "$RPORT" || failed "the relay does not listen: $(cat relay.log)"

export MT_SOCKET="inet:$RPORT@127.0.0.1" MT_LIB="$HERE/lib.lua" MT_OUT="$T/out" MT_DIR="$T"
# The receipt transport's command (replay.lua runs it as the MTA would).
export MT_RECEIPT_CMD="'$RECRYPT_MILTER' -c '$T/milter.conf'"
fds() { ls "/proc/$milter_pid/fd" 2>/dev/null | wc -l; }

# run SCRIPT: run tests/milter/SCRIPT.lua; its "ok -"/"FAIL -" lines count.
run() {
  local script=$1 rc=0
  MT_NAME=$script timeout 120 miltertest -s "$HERE/$script.lua" >"$script.out" 2>"$script.err" || rc=$?
  local p f
  p=$(grep -c '^ok - ' "$script.out" || true)
  f=$(grep -c '^FAIL - ' "$script.out" || true)
  sed -n 's/^\(ok\|FAIL\) - /&'"$script"': /p' "$script.out"
  passes=$((passes + p))
  fails=$((fails + f))
  if [ "$rc" -ne 0 ]; then
    failed "$script: miltertest exit $rc: $(tail -c 400 "$script.err" | tr '\n' ' ')"
  elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
    failed "$script: no result"
  fi
  if ! kill -0 "$milter_pid" 2>/dev/null; then
    failed "$script: the milter is gone: $(tail -n 5 milter.log | tr '\n' ' ')"
    echo "$passes passed, $fails failed"
    exit 1
  fi
}

run recrypt            # 1
fd_base=$(fds)
run connection         # 2
run abort              # 3
run recipients         # 4
run processed          # 5
run no_member          # 6
run plaintext          # 7
run replay             # 8
run other_list         # 9
run version            # 10
run structure          # 11
run local_submission   # 12
cp milter.conf milter.conf.orig
MT_CONF=$T/milter.conf MT_MILTER_PID=$milter_pid MT_MILTER_LOG=$T/milter.log run reload # 13 (last: it lowers MaxMessageSize)

# The recrypted post opens for exactly alice's and bob's devices.
if [ -s out/recrypt-1.eml ]; then
  for d in alice bob-laptop bob-phone carol; do
    want=yes
    [ "$d" = carol ] && want=no
    if dev "$d" open <out/recrypt-1.eml >"open-$d.txt" 2>"open-$d.err"; then got=yes; else got=no; fi
    if [ "$got" != "$want" ]; then
      failed "delivered post: $d opens=$got, expected $want ($(head -c 200 "open-$d.err"))"
    elif [ "$got" = yes ] && ! tail -n +2 "open-$d.txt" | cmp -s - post1.txt; then
      failed "delivered post: $d does not get the original message back"
    else
      pass "delivered post: $d $([ "$want" = yes ] && echo opens it || echo cannot open it)"
    fi
  done
else
  failed "delivered post: recrypt.lua wrote no out/recrypt-1.eml"
fi

# No file descriptor left open by the transactions (spool files, store).
sleep 0.5
fd_end=$(fds)
[ "$fd_end" -le "$fd_base" ] && pass "no descriptor leaked ($fd_base after the first test, $fd_end at the end)" ||
  failed "descriptors: $fd_base after the first test, $fd_end at the end: $(ls -l /proc/$milter_pid/fd 2>&1 | tail -n +2 | tr '\n' ' ')"
leftover=$(ls spool | wc -l)
[ "$leftover" -eq 0 ] && pass "TemporaryDirectory empty" || failed "TemporaryDirectory holds $leftover files"

# Clean stop on SIGTERM.
kill -TERM "$milter_pid"
rc=0
for _ in $(seq 100); do kill -0 "$milter_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$milter_pid" 2>/dev/null; then
  failed "the milter is still running 10 s after SIGTERM"
  kill -KILL "$milter_pid" 2>/dev/null || true
else
  wait "$milter_pid" || rc=$?
  [ "$rc" -eq 0 ] && pass "SIGTERM: clean stop (exit 0)" || failed "SIGTERM: exit $rc"
fi
STARTED=("$relay_pid") # the milter has been waited for: not one to kill at exit
grep -q 'stopped' milter.log && pass "log says it stopped" || failed "no 'stopped' in the log"

# The log: a line with the queue id for the recrypted post, no plaintext.
grep -q 'recrypt-1.*list=list@example.org.*stanzas=3.*recipients=2' milter.log &&
  pass "log: one line with queue id, list, stanzas, recipients" ||
  failed "log: no line for recrypt-1 with list, stanzas=3, recipients=2"
leak=0
for m in "${MARKERS[@]}"; do
  if grep -qF "$m" milter.log; then leak=1; failed "the milter's log holds the plaintext marker $m"; fi
done
[ "$leak" -eq 0 ] && pass "the milter's log holds no plaintext of any post (${#MARKERS[@]} markers)"

if [ "$fails" -ne 0 ]; then
  echo "--- milter log (last 60 lines)"
  tail -n 60 milter.log
fi
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
