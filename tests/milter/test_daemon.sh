#!/bin/bash
# Tests of recrypt-milter as a daemon: its policy settings and its
# operational behaviour (the companion of test_miltertest.sh, which covers
# the milter protocol's edge cases).
#
#  1. -n: a good configuration is usable (exit 0); an unknown setting, a bad
#     value, a setting given twice, no Socket, no Database, a Database that
#     is not a store, a world-readable KeyFile, FreshnessWindow or
#     FutureSkew over 1h: exit 78 naming file:line or the problem; as
#     root without UserID or -u: exit 78 (-u root runs as root);
#     nothing listens afterwards. With UserID, -n opens the store as that
#     user (a store it cannot open fails; its lock file is that user's).
#  2. MaxMessageSize: a larger post gets 552 5.3.4.
#  3. PostingPolicy members: a non-member's post gets 550 5.7.1; members'
#     posts are recrypted.
#  4. PlaintextPolicy fanout: a plaintext post is delivered as it came; a
#     sealed post behind 17 KB of header is recrypted, and one with "!" in
#     its data part gets 554 5.6.0 (never fanned out as plaintext).
#  5. MaxFanout: over the cap, 552 5.5.3.
#  6. FreshnessWindow/FutureSkew: a Date too old or too far ahead, 550 5.7.0.
#  7. An epoch past its grace (rotation with --grace 0): 550 5.7.0 naming
#     the current epoch.
#  8. A stale unix socket is replaced; a live one is not stolen (exit 75).
#  9. SIGUSR1 reloads (a broken configuration is refused, the old kept);
#     SIGUSR2 logs the counters; SIGTERM stops with exit 0.
# 10. No core dumps, not dumpable.
# 11. No log line holds a post's plaintext or a key string; every line
#     matches its format and level in admin guide §10
#     (tests/docs/check_log_formats.py).
# 12. An internal error is a tempfail (451 4.3.0), never a delivery.
# 13. StatsInterval (on the milter of case 12, with StatsInterval 1): the
#     counters line comes by itself every second, with the traffic in it
#     (tempfail=1); SIGUSR1s every 0.3 s do not postpone it; after a reload
#     to StatsInterval 0 no periodic line comes, the stop still logs one.
#     -n refuses StatsInterval -1, abc and 8d (case 1).
# 14. Without -f: the daemon (after fork) holds the POSIX locks on the
#     store's lock.mdb, and SIGTERM stops it.
# 15. A data.mdb cut short: -n and recryptctl show exit 78 naming mdb_copy;
#     a running daemon tempfails (451 4.3.0) with the reason in its log and
#     keeps running.
#
# Each policy case runs its own milter (on a free loopback port, log on
# stderr) behind the relay of test_miltertest.sh (miltertest cannot take a
# replaced body; see README.md), with tests/milter/daemon_post.lua.
#
# Environment (CTest sets them): RECRYPT, RECRYPTCTL, RC_HARNESS,
# RECRYPT_MILTER (default: the binaries of <repo>/build); RC_KEEP=1 keeps
# the temporary directory for a look.
set -euo pipefail

# shellcheck source=tests/milter/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mt_tmpdir recrypt-daemon

finish() {
  if [ "$fails" -ne 0 ]; then
    for f in m-*.log; do
      [ -e "$f" ] || continue
      echo "--- $f (last 15 lines)"
      tail -n 15 "$f"
    done
  fi
  echo "$passes passed, $fails failed"
  [ "$fails" -eq 0 ]
}

# unix_listening PATH: something accepts connections on the unix socket PATH.
unix_listening() {
  python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(1); s.connect(sys.argv[1]); s.close()' "$1" 2>/dev/null
}
# wait_log FILE PATTERN: up to 10 s for FILE to hold a line matching PATTERN.
wait_log() { wait_for grep -qE -- "$2" "$1"; }
# wait_exit PID: up to 10 s for PID (a child) to end; its exit status in
# RC (999 if it is still running).
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_exit() {
  RC=0
  if ! wait_for gone "$1"; then RC=999; return; fi
  wait "$1" 2>/dev/null || RC=$?
}

# core_limit PID: "SOFT HARD" of its core file size limit (prlimit, or
# /proc/PID/limits where prlimit may not look at another user's process).
core_limit() {
  local l
  if l=$(prlimit --pid "$1" --core --output SOFT,HARD --noheadings 2>/dev/null); then
    echo $l
  else
    awk '/^Max core file size/ {print $5, $6}' "/proc/$1/limits" 2>/dev/null || echo "unknown"
  fi
}

# ---- the store ----
make_store "list rot" "alice bob-laptop bob-phone carol mallory"
ctl member add rot@example.org alice@example.org --device "$(cat alice.pub)" --apply "$T/db" 2>/dev/null
show=$("$RECRYPTCTL" show --db "$T/db" list@example.org)
if store_ok "$show"; then
  pass "store: list@ with alice and bob active, carol suspended; rot@ with alice"
else
  failed "store set-up: $show"
  finish
  exit 1
fi
sleep 1 # devices get stanzas only for posts dated after their enrolment

# ---- the posts ----
MID_TAG=dt # plain and sealed (lib.sh): Message-IDs <dtN.PID.RANDOM@example.org>
sealed size-small list.key
BODYFILL=20000 sealed size-big list.key
sealed nonmember list.key list@example.org "Mallory <mallory@example.net>" "" mallory
sealed member list.key
sealed member-from list.key
plain fanout-plain
sealed fanout-sealed list.key
# Issue 13 item 8: 17 KB of header in front of a sealed post (the padded
# replay: 0.2.0 looked at the first 16 KB only and fanned it out as
# plaintext); and the same with "!" in its data part (malformed).
python3 - <<'PY' || failed "writing the padded posts"
src = open("fanout-sealed.eml", "rb").read()
eol = b"\r\n" if b"\r\n" in src[:200] else b"\n"
pad = b"".join(b"X-Pad-%d: " % i + b"p" * 1000 + eol for i in range(18))
open("fanout-padded.eml", "wb").write(pad + src)
i = src.index(b'filename="message.rcx"' + eol + eol) + len(b'filename="message.rcx"' + eol + eol)
open("fanout-padded-bad.eml", "wb").write(pad + src[:i] + b"!" + src[i + 1:])
PY
sealed maxfanout list.key
sealed fresh-now list.key
sealed internal list.key
sealed fresh-old list.key list@example.org "" "$(date -R -d '2 days ago')"
sealed fresh-future list.key list@example.org "" "$(date -R -d '3 hours')"
sealed rot-old rot.key rot@example.org
plain reload-before
plain reload-after
plain reload-broken
old_date=$(sed -n 's/^Date: //p' fresh-old.eml | head -n 1)
[ "$old_date" = "$(sed -n 's/^Date: //p' fresh-old.txt)" ] ||
  failed "recrypt seal did not keep the Date of the input ($old_date)"
[ "$(wc -c <size-big.eml)" -gt 16384 ] && [ "$(wc -c <size-small.eml)" -lt 8192 ] ||
  failed "post sizes: size-big.eml $(wc -c <size-big.eml) bytes, size-small.eml $(wc -c <size-small.eml) bytes"

# The rotation of rot@ (case 7): the old key refused at once.
ctl list rotate rot@example.org --grace 0 --apply "$T/db" >/dev/null 2>&1 || failed "list rotate --grace 0"
ctl list key rot@example.org >rot2.key 2>/dev/null
sleep 1 # the rotation may re-date the continuing devices' entries
sealed rot-new rot2.key rot@example.org

# ---- running milters ----
mkdir -p spool out

export MT_LIB="$HERE/lib.lua" MT_OUT="$T/out" MT_DIR="$T"
milter_pid='' relay_pid='' inst=''

# conf NAME [LINES...]: m-NAME.conf on a free loopback port (MPORT), with
# the store, log on stderr at debug, the spool; then LINES.
conf() {
  local name=$1; shift
  MPORT=$(free_port)
  {
    printf 'Socket inet:%s@127.0.0.1\nDatabase %s\nSyslog no\nLogLevel debug\nTemporaryDirectory %s\n' \
      "$MPORT" "$T/db" "$T/spool"
    if [ $# -gt 0 ]; then printf '%s\n' "$@"; fi
  } >"m-$name.conf"
}
# start NAME [LINES...]: a milter with conf NAME LINES (or an m-NAME.conf
# already written, when no LINES and it exists), log m-NAME.log, behind a
# relay; MT_SOCKET points at the relay. Returns 1 if either does not listen.
start() {
  local name=$1; shift
  if [ $# -gt 0 ] || [ ! -e "m-$name.conf" ]; then conf "$name" "$@"; fi
  MPORT=$(sed -n 's/^Socket inet:\([0-9]*\)@.*/\1/p' "m-$name.conf")
  inst=$name
  "$RECRYPT_MILTER" -f -c "m-$name.conf" -u "$(id -un)" 2>"m-$name.log" &
  milter_pid=$!
  STARTED+=("$milter_pid")
  if ! wait_for listening "$MPORT"; then
    failed "$name: the milter does not listen: $(tail -n 5 "m-$name.log" | tr '\n' ' ')"
    return 1
  fi
  local rport
  rport=$(free_port)
  python3 "$HERE/relay.py" "$rport" "$MPORT" "$T/out" 2>"relay-$name.log" &
  relay_pid=$!
  STARTED+=("$relay_pid")
  wait_for listening "$rport" || { failed "$name: the relay does not listen: $(cat "relay-$name.log")"; return 1; }
  export MT_SOCKET="inet:$rport@127.0.0.1"
}
# stop: SIGTERM to the milter, its exit status in RC; stops the relay.
stop() {
  kill -TERM "$milter_pid" 2>/dev/null || true
  wait_exit "$milter_pid"
  [ "$RC" = 999 ] && kill -KILL "$milter_pid" 2>/dev/null
  kill "$relay_pid" 2>/dev/null || true
  wait "$relay_pid" 2>/dev/null || true
  milter_pid='' relay_pid=''
}

# run LABEL [VAR=VALUE ...]: daemon_post.lua with those settings (the queue
# ids are LABEL-1, ...); its "ok -"/"FAIL -" lines count.
run() {
  local label=$1 rc=0 p f; shift
  env MT_NAME="$label" "$@" timeout 120 miltertest -s "$HERE/daemon_post.lua" >"$label.out" 2>"$label.err" || rc=$?
  p=$(grep -c '^ok - ' "$label.out" || true)
  f=$(grep -c '^FAIL - ' "$label.out" || true)
  grep -E '^(ok|FAIL) - ' "$label.out" || true
  passes=$((passes + p))
  fails=$((fails + f))
  if [ "$rc" -ne 0 ]; then
    failed "$label: miltertest exit $rc: $(tail -c 400 "$label.err" | tr '\n' ' ')"
  elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
    failed "$label: no result"
  fi
  kill -0 "$milter_pid" 2>/dev/null || failed "$label: the milter ($inst) is gone: $(tail -n 5 "m-$inst.log" | tr '\n' ' ')"
}
# stopped NAME: the current milter stops on SIGTERM with exit 0.
stopped() {
  stop
  [ "$RC" = 0 ] && pass "$1: SIGTERM, exit 0" || failed "$1: exit $RC after SIGTERM (999: still running after 10 s)"
}

# ==== 1. recrypt-milter -n ====
NPORT=$(free_port)
printf 'Socket inet:%s@127.0.0.1\nDatabase %s\nSyslog no\nLogLevel info\n' "$NPORT" "$T/db" >n-good.conf
rc=0
"$RECRYPT_MILTER" -n -c n-good.conf -u "$(id -un)" >n-good.out 2>n-good.err || rc=$?
if [ "$rc" -eq 0 ] && grep -q 'usable' n-good.out; then
  pass "-n good configuration: exit 0, says it is usable"
else
  failed "-n good configuration: exit $rc: $(cat n-good.out n-good.err | head -c 300)"
fi
if listening "$NPORT"; then failed "-n good configuration: something listens on its port afterwards"; else
  pass "-n good configuration: nothing listens on its port afterwards"; fi
grep -q 'warning: no ReceiptDomain' n-good.out && pass "-n without ReceiptDomain warns that posts stay pending" ||
  failed "-n without ReceiptDomain: no warning: $(cat n-good.out)"
{ cat n-good.conf; echo "ReceiptDomain Receipt.Example.INVALID"; } >n-receipt.conf
rc=0
"$RECRYPT_MILTER" -n -c n-receipt.conf -u "$(id -un)" >n-receipt.out 2>n-receipt.err || rc=$?
[ "$rc" -eq 0 ] && grep -q 'delivery receipts to @receipt.example.invalid' n-receipt.out &&
  ! grep -q 'warning' n-receipt.out && pass "-n with ReceiptDomain: exit 0, names the receipt domain (lower case)" ||
  failed "-n with ReceiptDomain: exit $rc: $(cat n-receipt.out n-receipt.err | head -c 300)"

mkdir -p notastore
cp db/service.key wr.key
chmod 644 wr.key
base() { printf 'Socket unix:%s\nSyslog no\n' "$T/n.sock"; }
{ base; printf 'Database %s\nFrobnicate yes\n' "$T/db"; } >n-unknown.conf
{ base; printf 'Database %s\nLogLevel loud\n' "$T/db"; } >n-loud.conf
{ base; printf 'Database %s\nMaxFanout 10\nmaxfanout 20\n' "$T/db"; } >n-twice.conf
printf 'Database %s\nSyslog no\n' "$T/db" >n-nosocket.conf
{ base; printf 'LogLevel info\n'; } >n-nodb.conf
{ base; printf 'Database %s\nKeyFile %s\n' "$T/notastore" "$T/db/service.key"; } >n-notastore.conf
{ base; printf 'Database %s\nKeyFile %s\n' "$T/db" "$T/wr.key"; } >n-worldkey.conf
{ base; printf 'Database %s\nStatsInterval -1\n' "$T/db"; } >n-statsneg.conf
{ base; printf 'Database %s\nStatsInterval abc\n' "$T/db"; } >n-statsabc.conf
{ base; printf 'Database %s\nStatsInterval 8d\n' "$T/db"; } >n-statsbig.conf
{ base; printf 'Database %s\nFreshnessWindow 3651d\n' "$T/db"; } >n-freshbig.conf
{ base; printf 'Database %s\nFutureSkew 99999999999999999d\n' "$T/db"; } >n-skewbig.conf
{ base; printf 'Database %s\nFutureSkew 3601\n' "$T/db"; } >n-skew3601.conf
{ base; printf 'Database %s\nFutureSkew 2h\n' "$T/db"; } >n-skew2h.conf
{ base; printf 'Database %s\nReceiptDomain nodots\n' "$T/db"; } >n-rcptnodot.conf
{ base; printf 'Database %s\nReceiptDomain a..invalid\n' "$T/db"; } >n-rcptdots.conf
{ base; printf 'Database %s\nReceiptDomain r@x.invalid\n' "$T/db"; } >n-rcptat.conf
{ base; printf 'Database %s\nFanoutDomain nodots\n' "$T/db"; } >n-fannodot.conf
{ base; printf 'Database %s\nFanoutRelay 127.0.0.1\n' "$T/db"; } >n-fanrelay.conf
{ base; printf 'Database %s\nFanoutRelay 127.0.0.1:70000\n' "$T/db"; } >n-fanport.conf
{ base; printf 'Database %s\nFanoutRelay unix:relative\n' "$T/db"; } >n-fanunix.conf
{ base; printf 'Database %s\nFanoutThreads 65\n' "$T/db"; } >n-fanthreads.conf
{ base; printf 'Database %s\nFanoutConnections 0\n' "$T/db"; } >n-fanconns.conf
{ base; printf 'Database %s\nFanoutDomain x.invalid\nReceiptDomain X.invalid\n' "$T/db"; } >n-fansame.conf
# nflag NAME PATTERN WHAT: -n on n-NAME.conf exits 78 saying PATTERN (grep -E)
nflag() {
  local rc=0
  "$RECRYPT_MILTER" -n -c "n-$1.conf" >"n-$1.out" 2>"n-$1.err" || rc=$?
  if [ "$rc" -ne 78 ]; then
    failed "-n $3: exit $rc, expected 78 ($(cat "n-$1.out" "n-$1.err" | head -c 300))"
  elif ! grep -qE -- "$2" "n-$1.err"; then
    failed "-n $3: the message does not match /$2/: $(head -c 300 "n-$1.err")"
  else
    pass "-n $3: exit 78, $(head -n 1 "n-$1.err" | sed "s|$T/||g")"
  fi
  if [ -e "$T/n.sock" ]; then failed "-n $3: the socket $T/n.sock exists afterwards"; rm -f "$T/n.sock"; fi
}
nflag unknown 'n-unknown\.conf:4: .*unknown setting' "unknown setting"
nflag loud 'n-loud\.conf:4: .*LogLevel' "LogLevel loud"
nflag twice 'n-twice\.conf:5: .*(twice|again|already)' "a setting given twice"
nflag nosocket 'n-nosocket\.conf.*Socket' "no Socket"
nflag nodb 'n-nodb\.conf.*Database' "no Database"
nflag notastore 'notastore.*(store|data\.mdb)|(store|data\.mdb).*notastore' "a Database that is not a store"
nflag worldkey 'wr\.key.*(group|others|world|mode)' "a world-readable KeyFile"
nflag statsneg 'n-statsneg\.conf:4: StatsInterval: .*StatsInterval' "StatsInterval -1"
nflag statsabc 'n-statsabc\.conf:4: StatsInterval: .*StatsInterval' "StatsInterval abc"
nflag statsbig 'n-statsbig\.conf:4: StatsInterval: .*7d' "StatsInterval 8d (over 7d)"
nflag freshbig 'n-freshbig\.conf:4: FreshnessWindow: .*3650d' "FreshnessWindow 3651d (over 3650d)"
nflag skewbig 'n-skewbig\.conf:4: FutureSkew: .*at most 1h' "FutureSkew beyond 64 bits"
# Issue 13 item 1: "FutureSkew capped at one hour" (the replay cache keeps
# a post until max(first attempt, Date) + FreshnessWindow).
nflag skew3601 'n-skew3601\.conf:4: FutureSkew: .*at most 1h \(3600 seconds\)' "FutureSkew 3601 (over 1h)"
nflag skew2h 'n-skew2h\.conf:4: FutureSkew: .*at most 1h' "FutureSkew 2h (over 1h)"
nflag rcptnodot 'n-rcptnodot\.conf:4: ReceiptDomain: .*domain name' "ReceiptDomain without a dot"
nflag rcptdots 'n-rcptdots\.conf:4: ReceiptDomain: .*domain name' "ReceiptDomain with an empty label"
nflag rcptat 'n-rcptat\.conf:4: ReceiptDomain: .*domain name' "ReceiptDomain with an @"
nflag fannodot 'n-fannodot\.conf:4: FanoutDomain: .*domain name' "FanoutDomain without a dot"
nflag fanrelay 'n-fanrelay\.conf:4: FanoutRelay: .*HOST:PORT' "FanoutRelay without a port"
nflag fanport 'n-fanport\.conf:4: FanoutRelay: .*HOST:PORT' "FanoutRelay with port 70000"
nflag fanunix 'n-fanunix\.conf:4: FanoutRelay: .*unix:/path' "FanoutRelay unix: with a relative path"
nflag fanthreads 'n-fanthreads\.conf:4: FanoutThreads: .*64' "FanoutThreads 65"
nflag fanconns 'n-fanconns\.conf:4: FanoutConnections: .*1 to 32' "FanoutConnections 0"
nflag fansame 'n-fansame\.conf: FanoutDomain and ReceiptDomain must differ' "FanoutDomain equal to ReceiptDomain"
# Issue 13 item 5: "It refuses to run as root without UserID, unless -u
# root is given explicitly, and says so" (one line, exit 78), as -n and as
# a start; nothing listens afterwards. (Every other start in this file
# gives -u "$(id -un)".)
if [ "$(id -u)" -eq 0 ]; then
  for mode in -n -f; do
    rc=0
    timeout 10 "$RECRYPT_MILTER" $mode -c n-good.conf >n-root.out 2>n-root.err || rc=$?
    if [ "$rc" -eq 78 ] && [ "$(wc -l <n-root.err)" -eq 1 ] &&
      grep -q 'refusing to run as root without UserID: set UserID .* or give -u root to run as root on purpose' n-root.err; then
      pass "as root without UserID, $mode: exit 78, $(sed 's/^[^ ]* //' n-root.err | cut -c1-80)"
    else
      failed "as root without UserID, $mode: exit $rc (124: still running): $(cat n-root.out n-root.err | head -c 300)"
    fi
    listening "$NPORT" && failed "as root without UserID, $mode: something listens on its port afterwards"
  done
  rc=0
  "$RECRYPT_MILTER" -n -c n-good.conf -u root >n-root.out 2>n-root.err || rc=$?
  [ "$rc" -eq 0 ] && pass "as root with -u root: -n exit 0" || failed "-n -u root: exit $rc: $(head -c 300 n-root.err)"
fi

# With split delivery, -n says where posts and copies go and does not warn
# about receipts (the fan-out marks split posts delivered).
{ cat n-good.conf; printf 'FanoutDomain Fanout.Example.INVALID\nFanoutRelay [::1]:10026\n'; } >n-split.conf
rc=0
"$RECRYPT_MILTER" -n -c n-split.conf -u "$(id -un)" >n-split.out 2>n-split.err || rc=$?
[ "$rc" -eq 0 ] && grep -q 'split delivery: checked posts go to @fanout.example.invalid.*\[::1\]:10026' n-split.out &&
  ! grep -q 'warning' n-split.out && pass "-n with FanoutDomain: exit 0, names the fan-out domain and relay, no receipt warning" ||
  failed "-n with FanoutDomain: exit $rc: $(cat n-split.out n-split.err | head -c 300)"
# recrypt-milter -r (the MTA's receipt transport): every failure the MTA can
# retry is exit 75 (EX_TEMPFAIL), so Postfix defers the receipt; -r with -n
# is a usage error.
ZERO=000000000000000000000000000000000000000000000000@receipt.invalid
for c in notastore:"a Database that is not a store" unknown:"a config that does not parse"; do
  rc=0
  "$RECRYPT_MILTER" -c "n-${c%%:*}.conf" -r "$ZERO" </dev/null >r.out 2>r.err || rc=$?
  [ "$rc" -eq 75 ] && [ -s r.err ] && pass "-r with ${c#*:}: exit 75, $(head -n 1 r.err | sed "s|$T/||g" | cut -c1-90)" ||
    failed "-r with ${c#*:}: exit $rc, expected 75: $(head -c 200 r.err)"
done
rc=0; "$RECRYPT_MILTER" -n -r "$ZERO" -c n-good.conf </dev/null >r.out 2>r.err || rc=$?
[ "$rc" -eq 64 ] && pass "-r with -n: usage error (64)" || failed "-r with -n: exit $rc, expected 64"
# -n opens the store as UserID, as a start does: a store that user cannot
# use fails the check, and the check leaves no root-owned lock file.
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
  cp -a "$T/db" "$T/db-n"
  chown -R nobody "$T/db-n"
  chown root "$T/db-n/service.key"
  rm -f "$T/db-n/lock.mdb"
  chmod 711 "$T"
  { base; printf 'Database %s\nUserID nobody\n' "$T/db-n"; } >n-usergood.conf
  { base; printf 'Database %s\nUserID nobody\n' "$T/db"; } >n-userbad.conf
  rc=0
  "$RECRYPT_MILTER" -n -c n-usergood.conf >n-usergood.out 2>n-usergood.err || rc=$?
  if [ "$rc" -eq 0 ] && [ "$(stat -c %U "$T/db-n/lock.mdb" 2>/dev/null)" = nobody ]; then
    pass "-n as root with UserID nobody: exit 0, the lock file it made belongs to nobody"
  else
    failed "-n with UserID nobody: exit $rc, lock.mdb owner $(stat -c %U "$T/db-n/lock.mdb" 2>&1): $(cat n-usergood.err)"
  fi
  nflag userbad 'permission denied' "UserID nobody on a store only root can open"
fi
[ -z "$(ls -A notastore)" ] && pass "-n on a directory that is not a store leaves it empty" ||
  failed "-n created files in a directory that is not a store: $(ls -A notastore | tr '\n' ' ')"
[ ! -e "$T/n.sock" ] && pass "-n: no socket left behind by any of the checks" || true

# ==== 2. MaxMessageSize ====
if start size "MaxMessageSize 8192"; then
  run size-small MT_POST=size-small.eml MT_EXPECT=recrypted MT_STANZAS=3
  run size-big MT_POST=size-big.eml MT_EXPECT="552 5.3.4" MT_STEP=body
  stopped size
fi

# ==== 3. PostingPolicy members ====
if start members "PostingPolicy members"; then
  run members-non MT_POST=nonmember.eml MT_SENDER="<mallory@example.net>" MT_EXPECT="550 5.7.1" \
    MT_TEXT="members only"
  run members-member MT_POST=member.eml MT_EXPECT=recrypted MT_STANZAS=3
  # The From is a member, the envelope sender not: "or" in the spec.
  run members-from MT_POST=member-from.eml MT_SENDER="<mallory@example.net>" MT_EXPECT=recrypted
  stopped members
fi

# ==== 4. PlaintextPolicy fanout ====
if start fanout "PlaintextPolicy fanout"; then
  run fanout MT_POST=fanout-plain.txt MT_EXPECT=fanout
  # "A post that carries the control part of a sealed post is never
  # treated as plaintext, under any policy."
  run fanout-padded MT_POST=fanout-padded.eml MT_EXPECT=recrypted MT_STANZAS=3
  run fanout-padded-bad MT_POST=fanout-padded-bad.eml MT_EXPECT="554 5.6.0" MT_TEXT="not base64"
  stopped fanout
fi

# ==== 5. MaxFanout ====
if start maxfanout "MaxFanout 2"; then
  run maxfanout MT_POST=maxfanout.eml MT_EXPECT="552 5.5.3"
  stopped maxfanout
fi

# ==== 6. FreshnessWindow and FutureSkew ====
if start fresh "FreshnessWindow 1d" "FutureSkew 1h"; then
  run fresh-old MT_POST=fresh-old.eml MT_EXPECT="550 5.7.0" MT_TEXT="Date"
  run fresh-future MT_POST=fresh-future.eml MT_EXPECT="550 5.7.0" MT_TEXT="Date"
  run fresh-now MT_POST=fresh-now.eml MT_EXPECT=recrypted MT_STANZAS=3
  stopped fresh
fi

# ==== 7. An epoch past its grace ====
if start epoch; then
  # The reply names the current key: one command seals the post again.
  run epoch-old MT_POST=rot-old.eml MT_RCPT="<rot@example.org>" MT_EXPECT="550 5.7.0" \
    MT_TEXT="epoch 2|Seal the message again with the current list key:|recrypt seal --to $(ctl list key rot@example.org 2>/dev/null)"
  run epoch-new MT_POST=rot-new.eml MT_RCPT="<rot@example.org>" MT_EXPECT=recrypted \
    MT_ADDED=alice@example.org MT_STANZAS=1
  stopped epoch
fi

# ==== 8. Stale and live unix sockets ====
SOCK=$T/m.sock
printf 'Socket unix:%s\nDatabase %s\nSyslog no\nLogLevel info\n' "$SOCK" "$T/db" >m-sock.conf
"$RECRYPT_MILTER" -f -c m-sock.conf -u "$(id -un)" 2>m-sock1.log &
p1=$!
STARTED+=("$p1")
if wait_for unix_listening "$SOCK"; then
  pass "unix socket: the milter listens on unix:\$T/m.sock"
  mode=$(stat -c %a "$SOCK")
  [ "$mode" = 770 ] && pass "unix socket: mode 0770 (UMask 007)" || failed "unix socket: mode $mode, expected 770"
  kill -KILL "$p1"
  wait "$p1" 2>/dev/null || true
  if [ -S "$SOCK" ] && ! unix_listening "$SOCK"; then
    pass "unix socket: kill -9 leaves a stale socket file"
    "$RECRYPT_MILTER" -f -c m-sock.conf -u "$(id -un)" 2>m-sock2.log &
    p2=$!
    STARTED+=("$p2")
    if wait_for unix_listening "$SOCK" && kill -0 "$p2" 2>/dev/null; then
      pass "stale socket: a new milter starts on it"
      if grep -q "stale socket" m-sock2.log; then pass "stale socket: its removal is logged: $(grep 'stale socket' m-sock2.log | sed "s|$T/||g; s/^[^ ]* //")"
      else failed "stale socket: not logged: $(head -n 5 m-sock2.log | tr '\n' ' ')"; fi
      # A second milter on the live socket must not steal it.
      rc=0
      timeout 10 "$RECRYPT_MILTER" -f -c m-sock.conf -u "$(id -un)" 2>m-sock3.log || rc=$?
      if [ "$rc" -eq 75 ] && grep -q 'another milter is listening' m-sock3.log; then
        pass "live socket: a second milter exits 75, 'another milter is listening'"
      else
        failed "live socket: a second milter: exit $rc (124: still running after 10 s): $(head -c 300 m-sock3.log)"
      fi
      if kill -0 "$p2" 2>/dev/null && unix_listening "$SOCK"; then
        pass "live socket: the first milter still runs and answers on it"
      else
        failed "live socket: the running milter lost its socket (or died)"
      fi
      kill -TERM "$p2"
      wait_exit "$p2"
      [ "$RC" = 0 ] && pass "unix socket: SIGTERM, exit 0" || failed "unix socket: exit $RC after SIGTERM"
      [ ! -e "$SOCK" ] && pass "unix socket: removed at a clean stop" || failed "unix socket: $SOCK left after a clean stop"
    else
      failed "stale socket: the milter does not start over it: $(head -n 5 m-sock2.log | tr '\n' ' ')"
    fi
  else
    failed "unix socket: no stale socket file after kill -9 (cannot test the stale case)"
  fi
else
  failed "unix socket: the milter does not listen on $SOCK: $(head -n 5 m-sock1.log | tr '\n' ' ')"
fi

# ==== 9. Signals: SIGUSR1 reload, SIGUSR2 counters, SIGTERM ====
conf reload "PlaintextPolicy reject" "PidFile $T/reload.pid"
sed -i 's/^LogLevel debug$/LogLevel notice/' m-reload.conf
if start reload; then
  rpid=$milter_pid
  [ "$(cat reload.pid 2>/dev/null)" = "$rpid" ] && pass "reload: pid file written" ||
    failed "reload: pid file holds '$(cat reload.pid 2>/dev/null)', not $rpid"
  run reload-before MT_POST=reload-before.txt MT_EXPECT="550 5.7.1" MT_TEXT="recrypt seal"

  # ---- 10. not dumpable, no core files (this milter runs as the invoking user) ----
  lim=$(core_limit "$rpid")
  [ "$lim" = "0 0" ] && pass "no core files: core size limit soft 0, hard 0" ||
    failed "core limit of the milter: '$lim', expected '0 0'"

  # A new configuration: LogLevel info (delivered posts are logged, they
  # were not at notice), PlaintextPolicy fanout; the PidFile changed too
  # (restart only: the old value must be kept, with a warning).
  sed -i 's/^LogLevel notice$/LogLevel info/; s/^PlaintextPolicy reject$/PlaintextPolicy fanout/; s|^PidFile .*|PidFile '"$T"'/reload-new.pid|' m-reload.conf
  kill -USR1 "$rpid"
  if wait_log m-reload.log 'reloaded'; then pass "SIGUSR1: the log says reloaded"; else failed "SIGUSR1: no 'reloaded' in the log"; fi
  run reload-after MT_POST=reload-after.txt MT_EXPECT=fanout
  wait_log m-reload.log 'reload-after-1: .*verdict=plaintext' &&
    pass "SIGUSR1: LogLevel info applies (the fanned-out post is logged)" ||
    failed "SIGUSR1: no info line for reload-after-1 (LogLevel not reloaded?)"
  grep -qiE 'restart' m-reload.log && pass "SIGUSR1: changing PidFile logs a restart-only warning" ||
    failed "SIGUSR1: PidFile changed on reload, but no warning that it needs a restart (admin guide section 11)"

  # A broken configuration: refused as a whole, the old one kept.
  cp m-reload.conf m-reload.good
  # PlaintextPolicy reject comes before the bad line: a partly applied
  # configuration would show in the next post.
  { grep -vE '^(PlaintextPolicy|LogLevel) ' m-reload.good; echo "PlaintextPolicy reject"; echo "LogLevel loud"; } >m-reload.conf
  kill -USR1 "$rpid"
  wait_log m-reload.log '(refused|kept|not reloaded).*m-reload\.conf:[0-9]+: .*LogLevel' &&
    pass "SIGUSR1 with a broken configuration: refused, logged: $(grep -E 'refused|kept' m-reload.log | tail -n 1 | sed "s|$T/||g; s/^[^ ]* //")" ||
    failed "SIGUSR1 with a broken configuration: nothing logged about it: $(tail -n 3 m-reload.log | tr '\n' ' ')"
  sleep 0.3
  kill -0 "$rpid" 2>/dev/null && pass "SIGUSR1 with a broken configuration: the milter keeps running" ||
    failed "SIGUSR1 with a broken configuration: the milter is gone"
  run reload-broken MT_POST=reload-broken.txt MT_EXPECT=fanout

  kill -USR2 "$rpid"
  if wait_log m-reload.log 'counters:'; then
    line=$(grep 'counters:' m-reload.log | tail -n 1)
    if grep -q 'refused=1 ' <<<"$line" && grep -q 'plaintext=3 ' <<<"$line" && grep -q 'recrypted=0 ' <<<"$line"; then
      pass "SIGUSR2: a counters line (recrypted=0 refused=1 plaintext=3)"
    else
      failed "SIGUSR2: counters line, expected recrypted=0 refused=1 plaintext=3: $line"
    fi
  else
    failed "SIGUSR2: no counters line in the log"
  fi
  stop
  [ "$RC" = 0 ] && pass "SIGTERM: exit 0" || failed "SIGTERM: exit $RC (999: still running after 10 s)"
  grep -q 'stopped' m-reload.log && pass "SIGTERM: the log says stopped" || failed "SIGTERM: no 'stopped' in the log"
  [ ! -e reload.pid ] && pass "SIGTERM: the pid file is removed" ||
    failed "SIGTERM: the pid file reload.pid is left (PidFile was changed by the reload; admin guide section 11 says it is kept until a restart)"
fi

# ==== 10. Not dumpable ====
# A non-dumpable process's /proc/PID files belong to root whatever its user:
# visible only when it runs as someone else than root. As root, the milter
# is started as nobody with setpriv (on a copy of the store that nobody
# owns), so that only its own prctl can make it non-dumpable (a setuid in
# the process, as with -u, clears the flag by itself); without setpriv,
# with -u nobody.
asuser=()
dumpdb=$T/db
if [ "$(id -u)" -eq 0 ]; then
  if ! id nobody >/dev/null 2>&1; then
    asuser=(skip)
  elif command -v setpriv >/dev/null; then
    asuser=(setpriv --reuid="$(id -u nobody)" --regid="$(id -g nobody)" --clear-groups)
    dumpdb=$T/db-nobody
    cp -a "$T/db" "$dumpdb"
    chown -R nobody "$dumpdb"
    chmod 711 "$T"
  else
    asuser=(-u nobody)
  fi
fi
if [ "${asuser[0]:-}" = skip ]; then
  echo "# no user 'nobody': the dumpable check needs a non-root user"
else
  conf dump
  sed -i "s|^Database .*|Database $dumpdb|" m-dump.conf
  if [ "${asuser[0]:-}" = setpriv ]; then
    "${asuser[@]}" "$RECRYPT_MILTER" -f -c m-dump.conf 2>m-dump.log &
  else
    "$RECRYPT_MILTER" -f -c m-dump.conf "${asuser[@]}" 2>m-dump.log &
  fi
  dpid=$!
  STARTED+=("$dpid")
  if wait_for listening "$MPORT"; then
    duid=$(awk '/^Uid:/ {print $2}' "/proc/$dpid/status")
    owner=$(stat -c %u "/proc/$dpid/status")
    if [ "$duid" -ne 0 ] && [ "$owner" -eq 0 ]; then
      pass "not dumpable: /proc/PID belongs to root while the milter runs as uid $duid"
    else
      failed "dumpable: the milter runs as uid $duid and /proc/PID/status belongs to uid $owner"
    fi
    lim=$(core_limit "$dpid")
    [ "$lim" = "0 0" ] && pass "no core files (as uid $duid): soft 0, hard 0" || failed "core limit (as uid $duid): '$lim'"
  else
    failed "not dumpable: the milter ${asuser[*]} does not listen: $(head -n 5 m-dump.log | tr '\n' ' ')"
  fi
  kill -TERM "$dpid" 2>/dev/null || true
  wait_exit "$dpid"
fi

# ==== 12. An internal error is a tempfail, never a delivery ====
# ==== 13. StatsInterval: periodic counters (on the same milter) ====
# 12: a service key that parses but is not the one r was sealed to: the
# entries cannot be opened at end of message. 13: no SIGUSR2 is sent to
# this milter: every counters line is a periodic one (or, last, the stop's).
# ncounters: the counters lines in m-internal.log; counters_ge N: at least N.
ncounters() { grep -c 'counters:' m-internal.log || true; }
counters_ge() { [ "$(ncounters)" -ge "$1" ]; }
"$RECRYPTCTL" server init --db "$T/otherdb" >/dev/null 2>&1
if start internal "KeyFile $T/otherdb/service.key" "StatsInterval 1"; then
  ipid=$milter_pid
  run internal MT_POST=internal.eml MT_EXPECT="451 4.3.0"
  if wait_for counters_ge 2; then
    pass "StatsInterval 1: two counters lines within 10 s of the start, no SIGUSR2 sent"
  else
    failed "StatsInterval 1: $(ncounters) counters lines 10 s after the start, expected 2"
  fi
  if wait_log m-internal.log 'counters: recrypted=0 .*tempfail=1 '; then
    pass "StatsInterval 1: a periodic line counts the post: $(grep 'counters:' m-internal.log | tail -n 1 | sed 's/.*counters: //')"
  else
    failed "StatsInterval 1: no periodic line with recrypted=0 tempfail=1: $(grep 'counters:' m-internal.log | tail -n 1)"
  fi
  # Signals do not postpone the line: a reload (same StatsInterval) every
  # 0.3 s for 3 s; a wait that restarted at each signal would never end.
  c0=$(ncounters)
  for _ in $(seq 10); do kill -USR1 "$ipid"; sleep 0.3; done
  c1=$(ncounters)
  if [ $((c1 - c0)) -ge 2 ]; then
    pass "StatsInterval 1: SIGUSR1 every 0.3 s for 3 s does not postpone it ($((c1 - c0)) lines)"
  else
    failed "StatsInterval 1: $((c1 - c0)) counters lines in 3 s of SIGUSR1 every 0.3 s, expected at least 2"
  fi
  # Reloaded with StatsInterval 0: no periodic line any more.
  r0=$(grep -c 'reloaded' m-internal.log || true)
  sed -i 's/^StatsInterval 1$/StatsInterval 0/' m-internal.conf
  kill -USR1 "$ipid"
  if wait_for eval '[ "$(grep -c reloaded m-internal.log || true)" -gt "$r0" ]'; then
    c0=$(ncounters)
    sleep 2
    c1=$(ncounters)
    [ "$c1" -eq "$c0" ] && pass "StatsInterval 0 (by SIGUSR1): no counters line in 2 s" ||
      failed "StatsInterval 0 (by SIGUSR1): $((c1 - c0)) counters lines in 2 s"
  else
    failed "StatsInterval 0: the reload is not logged: $(tail -n 3 m-internal.log | tr '\n' ' ')"
  fi
  c0=$(ncounters)
  stopped internal
  [ "$(ncounters)" -gt "$c0" ] && pass "StatsInterval 0: the stop still logs the counters" ||
    failed "StatsInterval 0: no counters line at stop"
fi

# ==== 14. Without -f: the daemon holds the store's locks ====
# An LMDB environment must not cross fork(): the daemon (the child) opens
# the store again, so it, not the parent that exited, holds the POSIX
# locks on lock.mdb (LMDB's sign that a process uses the store).
conf bg "PidFile $T/bg.pid"
rc=0
"$RECRYPT_MILTER" -c m-bg.conf -u "$(id -un)" 2>m-bg.err || rc=$?
if [ "$rc" -eq 0 ] && wait_for test -s "$T/bg.pid" && wait_for listening "$MPORT"; then
  bpid=$(cat "$T/bg.pid")
  STARTED+=("$bpid")
  ino=$(stat -c %i "$T/db/lock.mdb")
  if grep -E "POSIX +ADVISORY +[A-Z]+ +$bpid +[0-9a-f:]+:$ino " /proc/locks >/dev/null; then
    pass "without -f: the daemon (pid $bpid) holds the locks on lock.mdb"
  else
    failed "without -f: the daemon $bpid holds no lock on lock.mdb: $(grep ":$ino " /proc/locks | tr '\n' ' ')"
  fi
  kill -TERM "$bpid" 2>/dev/null || true
  wait_for gone "$bpid" && pass "without -f: SIGTERM stops the daemon" || failed "without -f: the daemon still runs after SIGTERM"
else
  failed "without -f: exit $rc, no pid file or no socket: $(cat m-bg.err)"
fi

# ==== 15. A damaged store: a message, never a Bus error ====
# data.mdb cut to 12 KiB (its metadata says the last transaction uses more):
# -n and recryptctl show exit 78 naming the recovery; a running daemon
# whose store is cut under it tempfails the next post with the reason in
# its log and keeps running (LMDB would have died of SIGBUS reading it).
cp -a "$T/db" "$T/db-cut"
sealed cut-before list.key
sealed cut-after list.key
conf cut
sed -i "s|^Database .*|Database $T/db-cut|" m-cut.conf
if start cut; then
  run cut-before MT_POST=cut-before.eml MT_EXPECT=recrypted
  truncate -s 12288 "$T/db-cut/data.mdb"
  run cut-after MT_POST=cut-after.eml MT_EXPECT="451 4.3.0" MT_STEP="rcpt <list@example.org>"
  if grep -q 'is damaged: data.mdb holds 12288 bytes but its last transaction uses .*mdb_copy' m-cut.log; then
    pass "cut store: the post's tempfail is logged with the reason and the recovery"
  else
    failed "cut store: no 'is damaged' line in the log: $(tail -n 3 m-cut.log | tr '\n' ' ')"
  fi
  stopped cut
fi
rc=0
out=$("$RECRYPT_MILTER" -n -c m-cut.conf 2>&1) || rc=$?
if [ "$rc" = 78 ] && printf '%s' "$out" | grep -q "store in $T/db-cut is damaged.*restore it from a backup made with mdb_copy"; then
  pass "cut store: -n exits 78 naming the damage and mdb_copy"
else
  failed "cut store: -n exit $rc (want 78): $out"
fi
rc=0
out=$("$RECRYPTCTL" show --db "$T/db-cut" 2>&1) || rc=$?
if [ "$rc" = 78 ] && printf '%s' "$out" | grep -q 'is damaged'; then
  pass "cut store: recryptctl show exits 78 with the message"
else
  failed "cut store: recryptctl show exit $rc (want 78): $out"
fi

# ==== 11. The logs: no plaintext, no key ====
cat m-*.log >all-logs.txt
leak=0
for m in "${MARKERS[@]}"; do
  if grep -qF "$m" all-logs.txt; then leak=1; failed "a milter log holds the plaintext marker $m"; fi
done
[ "$leak" -eq 0 ] && pass "no milter log holds the plaintext of any post (${#MARKERS[@]} markers, $(wc -l <all-logs.txt) lines)"
if grep -qF 'recrypt1.' all-logs.txt; then
  failed "a milter log holds a key string: $(grep -F 'recrypt1.' all-logs.txt | head -n 2 | cut -c 1-200)"
else
  pass "no milter log holds a key string (recrypt1.)"
fi
for f in $(cat db/service.key | tr -d '\n') $(cat list.key rot.key rot2.key | tr -d ' '); do
  if grep -qF "${f:20:40}" all-logs.txt; then failed "a milter log holds part of a key: ${f:0:30}..."; fi
done
# The log lines (admin guide §10): every line of every milter of this test
# matches its documented format and level.
rc=0
out=$(python3 "$HERE/../docs/check_log_formats.py" --log all-logs.txt \
  --expect post:recrypted,post:plaintext,post:rejected,post:tempfail,counters 2>&1) || rc=$?
if [ "$rc" -eq 0 ]; then
  pass "logs: every line as in the admin guide, section 10 ($(sed -n 's/^# \([0-9]* log lines\).*seen: /\1; seen: /p' <<<"$out"))"
else
  failed "logs: not as in the admin guide, section 10: $(grep -v '^#' <<<"$out" | head -n 10)"
fi
leftover=$(ls spool | wc -l)
[ "$leftover" -eq 0 ] && pass "TemporaryDirectory empty at the end" || failed "TemporaryDirectory holds $leftover files"

finish
