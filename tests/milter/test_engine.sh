#!/bin/bash
# Tests of recrypt-milter's milter protocol engine (src/milter/engine.c) on
# the wire, below what miltertest can do: a raw MTA side (Python) against
# the real daemon on a loopback port.
#
#  1. Negotiation sent one byte at a time gets one answer: protocol
#     version 6, the actions recrypt needs (and the macro list), the steps
#     it asks for, the queue-ID macro "i" for each stage.
#  2. Commands pipelined in one write (macros, connect, MAIL, RCPT) get
#     exactly the answers due (one "continue", for RCPT), then DATA of
#     mail for no list gets "accept"; on the same connection a second
#     transaction to the list and another recipient gets 452 4.5.3 as a
#     reply-code packet, logged with the queue ID sent as a macro.
#  3. A packet longer than 1 MiB, a packet of length 0 and an unknown
#     command each end that connection (and nothing else): the daemon
#     still negotiates on a new one, and its log names the problem.
#  4. The MTA going away in the middle of a list post (after part of the
#     body): no answer owed, the daemon goes on serving.
#  5. QUIT: the milter closes the connection.
#  6. SIGTERM with an idle MTA connection open stops the daemon (exit 0)
#     within seconds; SIGHUP stops it too (as libmilter did).
#
# Environment (CTest sets them): RECRYPT, RECRYPTCTL, RC_HARNESS,
# RECRYPT_MILTER (default: the binaries of <repo>/build).
set -euo pipefail

# shellcheck source=tests/milter/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mt_tmpdir recrypt-engine
fails=0
make_store "list" "alice bob-laptop bob-phone carol"
mkdir -p "$T/spool"

MPORT=$(free_port)
printf 'Socket inet:%s@127.0.0.1\nDatabase %s\nSyslog no\nLogLevel debug\nTemporaryDirectory %s\n' \
  "$MPORT" "$T/db" "$T/spool" >engine.conf
start_milter() {
  "$RECRYPT_MILTER" -f -c engine.conf -u "$(id -un)" 2>>engine.log &
  milter_pid=$!
  STARTED+=("$milter_pid")
  wait_for listening "$MPORT" || { failed "the milter does not listen: $(tail -n 5 engine.log | tr '\n' ' ')"; return 1; }
}
# stops_on SIGNAL WHAT: SIGNAL to the milter ends it with exit 0 within 10 s
stops_on() {
  kill "-$1" "$milter_pid"
  if wait_gone "$milter_pid" 10 && [ "$RC" -eq 0 ]; then
    pass "6: SIG$1 $2: stopped, exit 0"
  else
    failed "6: after SIG$1 $2: status $RC (999: still running after 10 s)"
    kill -KILL "$milter_pid" 2>/dev/null || true
  fi
}
# wait_gone PID SECONDS: the process has ended within SECONDS; its status in RC
wait_gone() {
  local i
  RC=999
  for i in $(seq 1 $(($2 * 10))); do
    if ! kill -0 "$1" 2>/dev/null; then
      RC=0
      wait "$1" 2>/dev/null || RC=$?
      return 0
    fi
    sleep 0.1
  done
  return 1
}

cat >mta.py <<'EOF'
# A raw MTA side of the milter protocol: one case per run, "ok"/"FAIL" lines.
import socket, struct, sys, time

port, case = int(sys.argv[1]), sys.argv[2]
ok = lambda m: print("ok - " + m)
bad = lambda m: print("FAIL - " + m)

def pkt(cmd, data=b""):
    return struct.pack("!I", len(data) + 1) + cmd + data

def conn():
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.settimeout(5)
    return s

def read_pkt(s):
    head = b""
    while len(head) < 4:
        b = s.recv(4 - len(head))
        if not b:
            return None
        head += b
    n = struct.unpack("!I", head)[0]
    body = b""
    while len(body) < n:
        b = s.recv(n - len(body))
        if not b:
            return None
        body += b
    return body[:1], body[1:]

def closed(s):
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        return False if sys.exc_info()[0] is socket.timeout else True

OPTNEG = pkt(b"O", struct.pack("!III", 6, 0x1FF, 0x1FFFFF))

def negotiate(s, bytewise=False):
    if bytewise:
        for i in range(len(OPTNEG)):
            s.sendall(OPTNEG[i:i + 1])
            time.sleep(0.002)
    else:
        s.sendall(OPTNEG)
    return read_pkt(s)

def macros(stage, **kv):
    return pkt(b"D", stage + b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in kv.items()))

def connect_pkt():
    return pkt(b"C", b"client.example.net\x004" + struct.pack("!H", 40000) + b"192.0.2.7\0")

def no_more(s, what, wait=0.5):
    s.settimeout(wait)
    try:
        extra = s.recv(64)
        bad("%s: unexpected bytes %r" % (what, extra))
    except socket.timeout:
        ok("%s: nothing more was sent" % what)
    s.settimeout(5)

if case == "negotiate":
    s = conn()
    r = negotiate(s, bytewise=True)
    if not r or r[0] != b"O":
        bad("negotiation sent byte by byte: answer %r" % (r,))
        sys.exit(0)
    ver, act, steps = struct.unpack("!III", r[1][:12])
    rest = r[1][12:]
    lists = {}
    while len(rest) >= 5:
        idx = struct.unpack("!I", rest[:4])[0]
        end = rest.index(b"\0", 4)
        lists[idx] = rest[4:end]
        rest = rest[end + 1:]
    (ok if ver == 6 else bad)("negotiation byte by byte: version %d" % ver)
    (ok if act & 0x5F == 0x5F and act & 0x100 else bad)("actions 0x%x: headers, body, recipients, sender, macro list" % act)
    want = 0x2 | 0x100 | 0x1000 | 0x4000 | 0x80 | 0x40000
    (ok if steps == want else bad)("steps 0x%x (expected 0x%x: no HELO/unknown; no reply to connect, MAIL, headers, end of header)" % (steps, want))
    (ok if lists == {i: b"i" for i in range(7)} else bad)("macro lists: %r" % lists)
    no_more(s, "after the negotiation")

elif case == "pipeline":
    s = conn()
    negotiate(s)
    s.sendall(macros(b"C", j="mx.example.org") + connect_pkt() + macros(b"M", i="QID4PIPE") +
              pkt(b"M", b"<sender@example.net>\0") + macros(b"R", i="QID4PIPE") +
              pkt(b"R", b"<someone@example.net>\0"))
    r = read_pkt(s)
    (ok if r == (b"c", b"") else bad)("pipelined connect, MAIL, RCPT: one answer, continue (%r)" % (r,))
    no_more(s, "after RCPT")
    s.sendall(macros(b"T", i="QID4PIPE") + pkt(b"T"))
    r = read_pkt(s)
    (ok if r == (b"a", b"") else bad)("DATA of mail for no list: accept (%r)" % (r,))
    # the next transaction on the same connection: the list, then another
    # recipient, which is deferred with the text set by smfi_setreply
    s.sendall(pkt(b"A") + macros(b"M", i="QID4RCPT") + pkt(b"M", b"<alice@example.org>\0") +
              macros(b"R", i="QID4RCPT") + pkt(b"R", b"<list@example.org>\0"))
    r = read_pkt(s)
    (ok if r == (b"c", b"") else bad)("next transaction: RCPT list@example.org, continue (%r)" % (r,))
    s.sendall(pkt(b"R", b"<someone@example.net>\0"))
    r = read_pkt(s)
    (ok if r and r[0] == b"y" and r[1].startswith(b"452 4.5.3 ") and r[1].endswith(b"\0")
     else bad)("another recipient after the list: reply code packet 452 4.5.3 (%r)" % (r,))
    s.sendall(pkt(b"A") + pkt(b"Q"))
    (ok if closed(s) else bad)("QUIT: the milter closed the connection")

elif case in ("huge", "zero", "unknown"):
    s = conn()
    negotiate(s)
    if case == "huge":
        s.sendall(struct.pack("!I", 2 * 1024 * 1024) + b"B" + b"x" * 1000)
    elif case == "zero":
        s.sendall(struct.pack("!I", 0))
    else:
        s.sendall(pkt(b"Z", b"junk"))
    (ok if closed(s) else bad)("%s packet: the milter closed that connection" % case)
    s2 = conn()
    r = negotiate(s2)
    (ok if r and r[0] == b"O" else bad)("%s packet: a new connection still negotiates" % case)
    s2.close()

elif case == "gone":
    s = conn()
    negotiate(s)
    s.sendall(macros(b"C") + connect_pkt() + macros(b"M", i="QID4GONE") +
              pkt(b"M", b"<alice@example.org>\0") + pkt(b"R", b"<list@example.org>\0"))
    r = read_pkt(s)
    (ok if r == (b"c", b"") else bad)("list post: RCPT list@example.org, continue (%r)" % (r,))
    s.sendall(pkt(b"T"))
    r = read_pkt(s)
    (ok if r == (b"c", b"") else bad)("list post: DATA, continue (%r)" % (r,))
    s.sendall(pkt(b"L", b"Subject\0half a post\0") + pkt(b"N") + pkt(b"B", b"first part of the body\r\n"))
    r = read_pkt(s)
    (ok if r == (b"c", b"") else bad)("list post: body chunk, continue (%r)" % (r,))
    s.close()
    time.sleep(0.3)
    s2 = conn()
    r = negotiate(s2)
    (ok if r and r[0] == b"O" else bad)("after the MTA went away mid-post: a new connection negotiates")
    s2.close()

elif case == "idle":
    s = conn()
    negotiate(s)
    s.sendall(macros(b"C") + connect_pkt())
    print("idle", flush=True)
    s.settimeout(30)
    try:
        got = s.recv(1)
    except Exception as e:
        got = repr(e)
    print("# the idle connection ended: %r" % (got,))
EOF

# counts the ok/FAIL lines of mta.py's output
mta() {
  local out
  out=$(python3 mta.py "$MPORT" "$@" 2>&1) || true
  printf '%s\n' "$out"
  passes=$((passes + $(grep -c '^ok - ' <<<"$out" || true)))
  fails=$((fails + $(grep -c '^FAIL - ' <<<"$out" || true)))
  [ -n "$out" ] || failed "mta.py $* printed nothing"
}

start_milter || { echo "$passes passed, $fails failed"; exit 1; }
mta negotiate
mta pipeline
grep -q 'QID4RCPT: list=list@example.org .*verdict=deferred-rcpt' engine.log &&
  pass "2: the queue ID from the macro is in the milter's log line" ||
  failed "2: no deferred-rcpt line with the queue ID QID4RCPT: $(tail -n 3 engine.log | tr '\n' ' ')"
mta huge
grep -q 'milter packet of 2097152 bytes' engine.log && pass "3: the log names the oversized packet" ||
  failed "3: no log line about the 2 MiB packet"
mta zero
mta unknown
grep -q 'unknown milter command 0x5a' engine.log && pass "3: the log names the unknown command" ||
  failed "3: no log line about command 0x5a"
mta gone
kill -0 "$milter_pid" 2>/dev/null && pass "4: the daemon runs on after all that" || failed "4: the daemon is gone"

# 6. SIGTERM with an idle MTA connection open
python3 mta.py "$MPORT" idle >idle.out 2>&1 &
idle_pid=$!
STARTED+=("$idle_pid")
wait_for grep -q '^idle' idle.out || failed "6: the idle connection did not start"
stops_on TERM "with an idle MTA connection open"
wait "$idle_pid" 2>/dev/null || true
grep -q 'the idle connection ended' idle.out && pass "6: the idle connection was closed by the stop" ||
  failed "6: idle connection: $(cat idle.out)"
start_milter || { echo "$passes passed, $fails failed"; exit 1; }
stops_on HUP "(as libmilter-based milters do)"
grep -q 'stopping on signal 1' engine.log && pass "6: the log says it stopped on SIGHUP" ||
  failed "6: no 'stopping on signal 1' line"

python3 "$_root/tests/docs/check_log_formats.py" --log engine.log --expect protocol >formats.out 2>&1 &&
  pass "every log line of the engine's daemon matches admin guide 10" ||
  failed "log lines against admin guide 10: $(tail -n 5 formats.out | tr '\n' ' ')"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
