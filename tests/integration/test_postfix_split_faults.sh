# Split delivery under kill -9, behind a real Postfix on loopback: a list
# of 200 members; posts in flight while the milter or recrypt-fanout is
# killed at each stage: before the post is durable, in the middle of the
# copies, right after the last copy. Afterwards, with Postfix's retries
# done, every member must hold the post exactly once, or twice (a copy the
# MTA queued but the killed fan-out had not recorded yet: at most one batch,
# FANOUT_BATCH = 64, plus the copies the other FanoutConnections (4) had
# finished sending), nothing is lost, and no plaintext
# is in the queue or the spool. The figures go into the admin guide's
# fault table (§5.6). Needs root, Debian's postfix, python3.

_here=$(cd "$(dirname "$0")" && pwd)
source "$_here/preflight.sh" # skip(), root, Postfix and its users, the milter binary
command -v script >/dev/null || skip "script (util-linux) is not installed"
command -v python3 >/dev/null || skip "no python3"

source "$_here/../cli/lib.sh"
source "$_here/postfix-lib.sh"
PF_FANOUT=yes
pf_deadline 600
[ -x "$RECRYPT_FANOUT" ] || { failed "no recrypt-fanout at $RECRYPT_FANOUT"; finish; exit 1; }

LIST=list@example.org
D=example.org
N=200
BATCH=64 # FANOUT_BATCH in src/milter/fanout.h
CONNS=4  # FanoutConnections' default
MAXDUP=$((BATCH + CONNS - 1))
ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }

# --- the store: 200 members, one device each (m001 .. m200).
svc=$("$RECRYPTCTL" server init --db "$T/db" 2>/dev/null)
ctl init >owner.pub 2>/dev/null
ctl list create "$LIST" --service-key "$svc" --apply "$T/db" 2>/dev/null
boxes=()
for i in $(seq -f '%03g' 1 $N); do
  newdev "m$i"
  ctl member add "$LIST" "m$i@$D" --device "$(cat "m$i.pub")" --apply "$T/db" 2>/dev/null ||
    failed "member m$i@$D"
  boxes+=("m$i@$D")
done
newdev poster
ctl list key "$LIST" >list.key 2>list.err
pin_devices "$LIST" "$(fp_in list.err)" poster $(ls m*.pub | sed "s/\\.pub$//")

active=$("$RECRYPTCTL" show --db "$T/db" "$LIST" | grep -c '^  member .* active$' || true)
[ "$active" -eq $N ] && pass "store: $N active members" || failed "store: $active active members"
sleep 1

PROXY_PORT=$(free_port)
FANOUT_RELAY=127.0.0.1:$PROXY_PORT
pf_mailbox "${boxes[@]}" "$LIST" poster@$D
milter_config "$T/milter.conf"
milter_start "$T/milter.conf" || { failed "milter starts"; finish || exit 1; }
pf_start || { failed "postfix starts"; finish || exit 1; }

_proxy_pid=
proxy_start() { # KILL_AT
  proxy_stop
  python3 "$_here/smtp_kill_proxy.py" "$PROXY_PORT" "$PF_FANOUT_PORT" "$1" "$RECRYPT_FANOUT" \
    "$T/proxy.count" >"$T/proxy.log" 2>&1 &
  _proxy_pid=$!
  local i
  for i in $(seq 1 50); do _port_open "$PROXY_PORT" && return 0; sleep 0.1; done
  failed "the proxy does not listen"
}
proxy_stop() {
  if [ -n "$_proxy_pid" ]; then
    kill "$_proxy_pid" 2>/dev/null || true
    wait "$_proxy_pid" 2>/dev/null || true
  fi
  _proxy_pid=
}
pf_at_exit proxy_stop

MARK="rcmark$RANDOM$RANDOM$RANDOM"
leak_watch_start "$MARK"
k=0
# new_post: a sealed post in post.eml; its Message-ID in $MID
new_post() {
  k=$((k + 1))
  MID="fault$k.$$.$RANDOM@$D"
  printf 'From: poster@%s\nTo: %s\nSubject: fault %s\nDate: %s\nMessage-ID: <%s>\n\nSecret %s.\n' \
    "$D" "$LIST" "$k" "$(date -R)" "$MID" "$MARK" >plain.eml
  dev poster seal --to "$(cat list.key)" <plain.eml >post.eml 2>/dev/null || failed "seal"
}
# tally: over all members, how many hold the post $MID 0, 1, 2, more times
tally() {
  local counts
  counts=$(grep -rlF -- "<$MID>" "$PF_MAIL/$D" 2>/dev/null | sed 's|/new/.*||; s|.*/||' |
    sort | uniq -c | awk '{print $1}' || true)
  ONE=$(printf '%s\n' "$counts" | awk '$1 == 1' | wc -l)
  TWO=$(printf '%s\n' "$counts" | awk '$1 == 2' | wc -l)
  MORE=$(printf '%s\n' "$counts" | awk '$1 > 2' | wc -l)
  HELD=$(printf '%s\n' "$counts" | awk 'NF' | wc -l)
  MISSING=$((N - HELD))
}
# wait_all TIMEOUT: until every member holds the post and the queue is
# empty (a deferred rerun of the fan-out may still add copies: the tally is
# taken once nothing is in flight)
wait_all() {
  local end=$((SECONDS + $1))
  while :; do
    tally
    if [ "$MISSING" -eq 0 ] && pf_queue_empty_wait 60; then
      sleep 1
      tally
      return 0
    fi
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 1
  done
}
# check_marks STAGE: for every member holding the post twice, its device
# opens both copies; the one opened second says "; duplicate", the first not.
MARKED=0
check_marks() {
  local m files f1 f2 bad=0 n=0
  for m in $(grep -rlF -- "<$MID>" "$PF_MAIL/$D" 2>/dev/null | sed 's|/new/.*||; s|.*/||' | sort | uniq -d); do
    mapfile -t files < <(grep -lF -- "<$MID>" "$PF_MAIL/$D/$m/new/"* | head -2)
    f1=${files[0]} f2=${files[1]}
    dev "$m" open <"$f1" >o1.eml 2>/dev/null || bad=$((bad + 1))
    dev "$m" open <"$f2" >o2.eml 2>/dev/null || bad=$((bad + 1))
    head -n1 o1.eml | grep -q '; duplicate$' && bad=$((bad + 1))
    head -n1 o2.eml | grep -q '; duplicate$' || bad=$((bad + 1))
    n=$((n + 1))
  done
  MARKED=$((MARKED + n))
  [ "$bad" -eq 0 ] && pass "$1: each of the $n members with two copies opens both, and the second is marked '; duplicate'" ||
    failed "$1: $bad problems opening or marking the $n duplicates"
}
TABLE=()
record() { # STAGE
  TABLE+=("| $1 | $N | $ONE | $TWO | $MORE | $MISSING |")
  echo "# $1: once $ONE, twice $TWO, more $MORE, missing $MISSING"
  if [ "$MISSING" -eq 0 ] && [ "$MORE" -eq 0 ] && [ "$TWO" -le "$MAXDUP" ]; then
    pass "$1: every member holds the post ($ONE once, $TWO twice; at most $MAXDUP twice), nothing lost"
  else
    failed "$1: once $ONE, twice $TWO, more $MORE, missing $MISSING"
  fi
}
signal9() { grep -c "relay=recrypt-fanout.*signal 9\|relay=recrypt-fanout.*died\|Command died with signal 9" "$PF_LOG" 2>/dev/null || true; }

# --- 0. no fault: the control.
proxy_start 0
new_post
send_mail poster@$D "$LIST" post.eml || failed "0: send"
wait_all 120 || failed "0: not every member got the post within 120 s"
record "no fault (control)"
[ "$ONE" -eq $N ] && pass "0: without a fault every member holds exactly one copy" || failed "0: duplicates without a fault"

# --- 1. the milter killed before the post is durable: the client has sent
# the whole message but not the final dot; kill -9; the dot.
new_post
python3 - "$PF_PORT" "$LIST" post.eml "$MILTER_PID" >partial.out 2>&1 <<'EOF' || true
import os, signal, smtplib, sys, time
port, rcpt, path, mpid = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
s = smtplib.SMTP("127.0.0.1", port, "client.example.org", timeout=60)
s.ehlo(); s.mail("poster@example.org"); s.rcpt(rcpt)
c, m = s.docmd("DATA"); assert c == 354, (c, m)
data = open(path, "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
data = b"\r\n".join(b"." + l if l.startswith(b".") else l for l in data.split(b"\r\n"))
s.send(data if data.endswith(b"\r\n") else data + b"\r\n")
time.sleep(1)
os.kill(mpid, signal.SIGKILL)
time.sleep(0.5)
s.send(b".\r\n")
c, m = s.getreply()
print("reply %d %s" % (c, m.decode(errors="replace")))
EOF
wait "$MILTER_PID" 2>/dev/null || true
MILTER_PID=
grep -q '^reply 4[0-9][0-9] ' partial.out && pass "1: killed milter: the post gets a 4xx, so the sender keeps it" ||
  failed "1: reply with a dead milter: $(cat partial.out)"
sleep 2
tally
[ "$HELD" -eq 0 ] && pass "1: nothing was delivered from the refused attempt" || failed "1: $HELD members got the refused attempt"
milter_start "$T/milter.conf" || failed "1: milter restarts"
send_mail poster@$D "$LIST" post.eml || failed "1: the sender's retry: $(smtp_replies | tail -2 | tr '\n' '|')"
wait_all 120 || failed "1: not every member got the retried post"
record "milter killed before the post is durable (sender retries)"

# --- 2. the milter killed once the post is queued: the fan-out goes on.
new_post
send_mail poster@$D "$LIST" post.eml || failed "2: send"
kill -9 "$MILTER_PID"; wait "$MILTER_PID" 2>/dev/null || true; MILTER_PID=
wait_all 120 || failed "2: not every member got the post with the milter dead"
record "milter killed after the post is queued"
milter_start "$T/milter.conf" || failed "2: milter restarts"

# --- 3., 4., 5. recrypt-fanout killed after the 1st, the 100th and the
# last (200th) copy was queued; Postfix retries the fan-out.
for at in 1 100 $N; do
  s9=$(signal9)
  proxy_start "$at"
  new_post
  send_mail poster@$D "$LIST" post.eml || failed "fan-out $at: send"
  wait_all 180 || failed "fan-out killed at $at: not every member got the post within 180 s"
  [ "$(signal9)" -gt "$s9" ] && pass "fan-out killed after copy $at: Postfix saw the command die and retried it" ||
    failed "fan-out killed after copy $at: no kill seen in Postfix's log"
  case $at in
    1) stage="recrypt-fanout killed after the first copy" ;;
    $N) stage="recrypt-fanout killed after the last copy" ;;
    *) stage="recrypt-fanout killed in the middle ($at of $N copies)" ;;
  esac
  record "$stage"
  check_marks "$stage"
done
grep -q "skipped=[1-9]" "$FANOUT_LOG" && pass "a retried fan-out skipped the copies recorded before the kill" ||
  failed "no retry skipped recorded copies: $(grep verdict= "$FANOUT_LOG" | tail -3)"

# --- 6. the relay down: the fan-out exits 75, Postfix keeps the post.
proxy_stop
new_post
send_mail poster@$D "$LIST" post.eml || failed "6: send"
sleep 4
tally
grep -q "verdict=tempfail" "$FANOUT_LOG" && [ "$HELD" -eq 0 ] &&
  pass "6: relay down: the fan-out defers (verdict=tempfail) and nothing is delivered" ||
  failed "6: relay down: held $HELD, log $(tail -2 "$FANOUT_LOG")"
proxy_start 0
wait_all 120 || failed "6: the post did not go out once the relay was back"
record "relay down, then back (Postfix retries)"

leak_watch_stop
if [ -s "$T/leaks" ]; then failed "no plaintext in the queue or the spool: $(sort -u "$T/leaks" | head -3 | tr '\n' ' ')"
else pass "no plaintext in the queue or the spool during the faults"; fi
echo "# fault table (tests/integration/test_postfix_split_faults.sh):"
echo "# | stage | members | once | twice | more | missing |"
for r in "${TABLE[@]}"; do echo "# $r"; done
finish
