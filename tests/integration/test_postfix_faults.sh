# A post is never lost: failures late in the transaction, through a real
# Postfix on loopback with the real milter and its delivery receipts
# (docs/admin-guide.md §5.5 and the fault table in §9.1). Each case ends
# with every member holding the post exactly once after the sender's
# retry, and a replay after the receipt delivered to nobody:
#   1. the milter killed (SIGKILL) while it writes the recrypted copy of a
#      20 MiB post; restarted; the sender retries;
#   2. a milter after recrypt-milter in smtpd_milters (where a DKIM signer
#      goes) answers tempfail at end of message, once; the sender retries;
#   3. the client's connection drops after the final dot, before the reply:
#      Postfix committed the post, so the retry (after the receipt) is a
#      duplicate, accepted and discarded.
# Needs root, Debian's postfix, python3, and the tempfail-milter test tool
# (TEMPFAIL_MILTER). Exit 77 (skipped) when those are missing.

_here=$(cd "$(dirname "$0")" && pwd)
source "$_here/preflight.sh" # skip(), root, Postfix and its users, the milter binary
command -v script >/dev/null || skip "script (util-linux) is not installed"
command -v python3 >/dev/null || skip "python3 is needed (the fault injection)"
TEMPFAIL_MILTER=${TEMPFAIL_MILTER:-$_here/../../build/tests/tempfail-milter}
[ -x "$TEMPFAIL_MILTER" ] || skip "no tempfail-milter at $TEMPFAIL_MILTER (build target tempfail-milter)"

source "$_here/../cli/lib.sh"
source "$_here/postfix-lib.sh"
PF_RECEIPTS=yes
pf_deadline 400
echo "# binaries: $RECRYPT, $RECRYPTCTL, $RECRYPT_MILTER"

LIST=list@example.org
D=example.org
MEMBERS=(alice bob carol)
ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }

# --- the store: alice (1 device), bob (2), carol (1).
svc=$("$RECRYPTCTL" server init --db "$T/db" 2>/dev/null)
ctl init >owner.pub 2>/dev/null
ctl list create "$LIST" --service-key "$svc" --apply "$T/db" 2>/dev/null
for d in alice bob-laptop bob-phone carol poster; do newdev "$d"; done
ctl member add "$LIST" alice@$D --device "$(cat alice.pub)" --apply "$T/db" 2>/dev/null
ctl member add "$LIST" bob@$D --device "$(cat bob-laptop.pub)" --device "$(cat bob-phone.pub)" --apply "$T/db" 2>/dev/null
ctl member add "$LIST" carol@$D --device "$(cat carol.pub)" --apply "$T/db" 2>/dev/null
ctl list key "$LIST" >list.key 2>list.err
pin_devices "$LIST" "$(fp_in list.err)" alice bob-laptop bob-phone carol poster
"$RECRYPTCTL" show --db "$T/db" "$LIST" >show.txt
BOUNCE=$(sed -n 's/^list .* bounce \([^ ]*\).*/\1/p' show.txt)
[ "$(grep -c '^  member .* active$' show.txt)" -eq 3 ] && [ -n "$BOUNCE" ] &&
  pass "store: alice, bob and carol active" || failed "store set-up: $(cat show.txt)"
sleep 1 # stanzas go to devices enrolled before the post's Date

# --- Postfix with two milters: recrypt-milter, then the tempfail milter
# (it answers tempfail at end of message once each time $TRIGGER exists).
TF_PORT=$(free_port)
while [ "$TF_PORT" = "$PF_PORT" ] || [ "$TF_PORT" = "$MILTER_PORT" ]; do TF_PORT=$(free_port); done
TRIGGER=$T/tempfail-once
TF_LOG=$T/tempfail-milter.log
"$TEMPFAIL_MILTER" "inet:$TF_PORT@127.0.0.1" "$TRIGGER" 2>"$TF_LOG" &
TF_PID=$!
stop_tf() { [ -z "$TF_PID" ] || { kill "$TF_PID" 2>/dev/null; wait "$TF_PID" 2>/dev/null; TF_PID=; }; }
pf_at_exit stop_tf
PF_MILTER="inet:127.0.0.1:$MILTER_PORT, inet:127.0.0.1:$TF_PORT"
pf_mailbox alice@$D bob@$D carol@$D "$LIST" "$BOUNCE" poster@$D
milter_config "$T/milter.conf" MaxMessageSize 67108864
milter_start "$T/milter.conf" || { failed "milter starts"; stop_tf; finish || exit 1; }
for i in $(seq 1 50); do _port_open "$TF_PORT" && break; sleep 0.1; done
_port_open "$TF_PORT" || { failed "tempfail-milter listens: $(cat "$TF_LOG")"; stop_tf; finish || exit 1; }
pf_start || { failed "postfix starts"; stop_tf; finish || exit 1; }
pass "postfix starts with smtpd_milters = recrypt-milter, tempfail-milter and the receipt transport"

n=0
# msg FILE [SIZE]: a fresh plaintext post from poster@ to the list, with
# SIZE bytes of text (default a line).
msg() {
  n=$((n + 1))
  {
    printf 'From: poster@%s\nTo: %s\nSubject: fault post %s\nDate: %s\nMessage-ID: <fault%s.%s.%s@%s>\n\n' \
      "$D" "$LIST" "$n" "$(date -R)" "$n" "$$" "$RANDOM" "$D"
    echo "The text of fault post $n."
    if [ -n "${2:-}" ]; then head -c "$2" /dev/urandom | base64 -w 76; fi
  } >"$1"
}
seal() { dev poster seal --to "$(cat list.key)" <"$1" >"$2" 2>"$T/.seal" || failed "seal $1: $(cat "$T/.seal")"; }
counts() { local a; for a in "${MEMBERS[@]}"; do echo "$a $(pf_count $a@$D)"; done; }
settle() { pf_queue_empty_wait 30 || echo "  (queue not empty after 30 s)"; sleep 0.5; }
newest() { ls -t "$(pf_maildir "$1")"/* 2>/dev/null | head -1 || true; }
expect_reply() { # NAME PATTERN
  if smtp_replied "$2"; then pass "$1"; else failed "$1: no reply /$2/; got: $(smtp_replies | tail -4 | tr '\n' '|')"; fi
}
# each_once CASE N: every member holds exactly N posts, the newest opens on
# each of the member's devices to ORIGINAL ($3).
each_holds() {
  local c=$1 want=$2 orig=$3 a f d rc
  for a in "${MEMBERS[@]}"; do
    [ "$(pf_count $a@$D)" -eq "$want" ] && pass "$c: $a holds the post exactly once ($want in all)" ||
      failed "$c: $a holds $(pf_count $a@$D) messages, expected $want"
  done
  for d in alice bob-laptop bob-phone carol; do
    a=${d%%-*}
    f=$(newest $a@$D)
    [ -n "$f" ] || { failed "$c: no message for $a"; continue; }
    rc=0; dev "$d" open <"$f" >"$T/o-$d.eml" 2>"$T/.open" || rc=$?
    if [ $rc -eq 0 ]; then same_inner "$c: $d opens the delivered copy to the original" "$orig" "$T/o-$d.eml"; else
      failed "$c: $d cannot open its copy (exit $rc: $(head -c 200 "$T/.open"))"; fi
  done
}
# replay_discarded CASE FILE: the post again, after its receipt: 250, and
# delivered to nobody; the milter says duplicate.
replay_discarded() {
  local c=$1 before dups rc=0
  before=$(counts)
  dups=$(grep -c 'verdict=duplicate' "$MILTER_LOG" || true)
  send_mail poster@$D "$LIST" "$2" || rc=$?
  [ $rc -eq 0 ] && smtp_replied '^250 ' && pass "$c: a replay after the receipt is accepted (250)" ||
    failed "$c: replay: exit $rc: $(smtp_replies | tail -2 | tr '\n' '|')"
  settle
  [ "$(counts)" = "$before" ] && pass "$c: the replay reached nobody" || failed "$c: the replay was delivered: $(counts | tr '\n' ' ')"
  [ "$(grep -c 'verdict=duplicate' "$MILTER_LOG" || true)" -gt "$dups" ] &&
    pass "$c: the milter logs the replay as a duplicate" || failed "$c: no new verdict=duplicate in the milter log"
}

# --- 1. SIGKILL during end of message of a large post.
msg m1.eml $((15 * 1024 * 1024)) # 20 MiB of base64 text
seal m1.eml s1.eml
echo "# case 1: sealed post of $(stat -c %s s1.eml) bytes"
# The killer: SIGKILL once the milter holds two private spool files, the
# received post and the recrypted copy it is writing (end of message,
# after the post was recorded as pending in the replay cache).
cat >killer.py <<'EOF'
import os, signal, sys, time
pid, spool, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
end = time.time() + 120
while time.time() < end:
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        break
    files = set()  # distinct files: the parser may hold a second fd of the first
    for fd in fds:
        try:
            path = "/proc/%d/fd/%s" % (pid, fd)
            link = os.readlink(path)
            if link.startswith(spool + "/recrypt-milter.") and link.endswith("(deleted)"):
                files.add(os.stat(path).st_ino)
        except OSError:
            continue
    n = len(files)
    if n >= 2:
        os.kill(pid, signal.SIGKILL)
        open(out, "w").write("killed with %d spool files open\n" % n)
        sys.exit(0)
    time.sleep(0.001)
sys.exit(1)
EOF
python3 killer.py "$MILTER_PID" "$MILTER_SPOOL" "$T/killed" &
killer=$!
rc=0; send_mail poster@$D "$LIST" s1.eml || rc=$?
wait "$killer" 2>/dev/null || true
if [ -s "$T/killed" ]; then
  pass "1: the milter was killed during end of message ($(cat "$T/killed"))"
else
  failed "1: the killer never saw the milter at end of message"
fi
[ $rc -ne 0 ] && smtp_replied '^4[0-9][0-9] ' && pass "1: the sender got a temporary failure ($(smtp_replies | grep '^4' | tail -1))" ||
  failed "1: after the kill: exit $rc, replies $(smtp_replies | tail -2 | tr '\n' '|')"
if [ -s "$T/killed" ]; then
  wait "$MILTER_PID" 2>/dev/null || true
  MILTER_PID=
else
  milter_stop
fi
settle
[ "$(counts | awk '{s += $2} END {print s}')" -eq 0 ] && pass "1: nothing was delivered" || failed "1: delivered: $(counts | tr '\n' ' ')"
milter_start "$T/milter.conf" && pass "1: the milter restarts" || failed "1: the milter does not restart"
rc=0; send_mail poster@$D "$LIST" s1.eml || rc=$?
[ $rc -eq 0 ] && smtp_replied '^250 .*queued' && pass "1: the sender's retry is accepted (250)" ||
  failed "1: retry: exit $rc: $(smtp_replies | tail -3 | tr '\n' '|')"
for a in "${MEMBERS[@]}"; do pf_wait_delivered 1 $a@$D 60 || failed "1: nothing delivered to $a within 60 s"; done
settle
each_holds 1 1 m1.eml
grep -q 'verdict=recrypted (retry of a post first handed to the MTA at' "$MILTER_LOG" &&
  pass "1: the milter processed the retry as a retry of the pending post" ||
  failed "1: no 'retry of a post' line in the milter log"
pf_wait_receipts 1 20 && pass "1: the post's receipt was delivered (once the retry was committed)" ||
  failed "1: no receipt delivered"
replay_discarded 1 s1.eml

# --- 2. a later milter answers tempfail at end of message, once.
msg m2.eml
seal m2.eml s2.eml
: >"$TRIGGER"
r0=$(pf_receipts)
rc=0; send_mail poster@$D "$LIST" s2.eml || rc=$?
[ $rc -ne 0 ] && expect_reply "2: the tempfail milter's 451 4.7.0 reaches the sender" '^451[ -]4\.7\.0'
[ ! -e "$TRIGGER" ] && grep -q 'eom: tempfail' "$TF_LOG" && pass "2: tempfail-milter answered tempfail after recrypt-milter" ||
  failed "2: tempfail-milter did not tempfail: $(cat "$TF_LOG")"
settle
[ "$(counts | awk '{s += $2} END {print s}')" -eq 3 ] && pass "2: nothing new was delivered" || failed "2: delivered: $(counts | tr '\n' ' ')"
[ "$(pf_receipts)" -eq "$r0" ] && pass "2: no receipt for the uncommitted post" || failed "2: a receipt was delivered"
rc=0; send_mail poster@$D "$LIST" s2.eml || rc=$?
[ $rc -eq 0 ] && smtp_replied '^250 .*queued' && pass "2: the sender's retry is accepted (250)" ||
  failed "2: retry: exit $rc: $(smtp_replies | tail -3 | tr '\n' '|')"
for a in "${MEMBERS[@]}"; do pf_wait_delivered 2 $a@$D 30 || failed "2: nothing delivered to $a within 30 s"; done
settle
each_holds 2 2 m2.eml
pf_wait_receipts $((r0 + 1)) 20 && pass "2: the retry's receipt was delivered" || failed "2: no receipt delivered"
replay_discarded 2 s2.eml

# --- 3. the connection drops after the final dot, before the reply.
msg m3.eml
seal m3.eml s3.eml
r0=$(pf_receipts)
rc=0
python3 - "$PF_PORT" s3.eml >"$T/drop.out" 2>&1 <<'EOF' || rc=$?
import socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=30)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        print("<- " + line.decode().rstrip())
        if line[3:4] != b"-":
            return int(line[:3])
assert reply() == 220
for cmd, want in ((b"EHLO client.example.org", 250), (b"MAIL FROM:<poster@example.org>", 250),
                  (b"RCPT TO:<list@example.org>", 250), (b"DATA", 354)):
    s.sendall(cmd + b"\r\n")
    assert reply() == want, cmd
data = open(path, "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
data = b"\r\n".join(b"." + l if l.startswith(b".") else l for l in data.split(b"\r\n"))
if not data.endswith(b"\r\n"):
    data += b"\r\n"
s.sendall(data + b".\r\n")
# Gone before the reply: nothing unread, so a FIN, not a reset.
s.shutdown(socket.SHUT_WR)
s.close()
print("dropped after the final dot")
EOF
[ $rc -eq 0 ] && pass "3: the client dropped the connection after the final dot" || failed "3: the dropping client: $(cat "$T/drop.out")"
for a in "${MEMBERS[@]}"; do pf_wait_delivered 3 $a@$D 30 || failed "3: nothing delivered to $a within 30 s"; done
settle
pf_wait_receipts $((r0 + 1)) 20 && pass "3: Postfix committed the post: its receipt was delivered" || failed "3: no receipt delivered"
each_holds 3 3 m3.eml
# The sender never saw the 250, so it retries: a duplicate by this design
# (Postfix committed the first attempt, and its receipt came first).
replay_discarded 3 s3.eml
each_holds "3 (after the retry)" 3 m3.eml

# Nothing is left pending by mistake: the milter never tempfailed on its
# own account, and no receipt was refused or deferred.
grep -q 'verdict=receipt-\(deferred\|unknown\)' "$MILTER_LOG" "$PF_LOG" &&
  failed "a receipt was deferred or unknown: $(grep -h 'verdict=receipt-' "$MILTER_LOG" "$PF_LOG" | head -2)" ||
  pass "every receipt found its pending post"
grep -q 'relay=recrypt-receipt.*status=\(deferred\|bounced\)' "$PF_LOG" &&
  failed "Postfix deferred or bounced a receipt" || pass "Postfix never deferred or bounced a receipt"

pf_stop
milter_stop
stop_tf
if [ "$fails" -ne 0 ]; then
  echo "# --- postfix log (last 40 lines)"
  tail -40 "$PF_LOG" | sed 's/^/# /'
  echo "# --- milter log (last 40 lines)"
  tail -40 "$MILTER_LOG" | sed 's/^/# /'
  echo "# --- tempfail-milter log"
  sed 's/^/# /' "$TF_LOG"
fi
if finish; then exit 0; else exit 1; fi
