#!/usr/bin/env bash
# ordinary-bench.sh: what recrypt-milter costs mail that is not for a list.
# A benchmark, not a test: CTest does not run it; run it by hand, as root:
#
#   bash bench/ordinary-bench.sh [BUILD_DIR]     (default BUILD_DIR: <repo>/build)
#
# Ordinary messages (a sender, ORD_RCPTS ordinary recipients, no list
# named anywhere) are sent by SMTP to a private Postfix instance that
# relays them to smtp-sink, in these modes:
#
#   none   smtpd without milters
#   inet   smtpd with recrypt-milter on a loopback TCP socket
#   unix   smtpd with recrypt-milter on a unix-domain socket
#   finet  smtpd with floor-milter on a loopback TCP socket
#   funix  smtpd with floor-milter on a unix-domain socket
#
# floor-milter (bench/floor-milter.c) is the yardstick: the cheapest milter
# the protocol allows, with recrypt-milter's negotiation and answers for
# ordinary mail and nothing else (no libmilter, no store, no log). What
# ordinary mail costs with it is what the MTA's milter client and the two
# round trips cost, whatever the milter; inet/finet and unix/funix are
# what recrypt-milter adds to that. ORD_FLOOR=no leaves those modes out.
#
# The recrypt-milters use a real store with one list (so every recipient
# is looked up) that the mail never names. One Postfix instance serves all
# modes: master.cf has one smtpd listener per mode, identical but for
# "-o smtpd_milters=", so a mode is a port and nothing is restarted or
# reloaded between runs. One milter process per milter mode runs for the
# whole bench. The modes are interleaved (none, inet, unix, finet, funix,
# none, ...) for ORD_ROUNDS rounds; a run is timed from the first SMTP
# connection until smtp-sink has received every message of the run. Each
# run checks that the mode was the one asked for: the milter of the mode
# must have read from its socket during the run (/proc/PID/io), the other
# ones must not have read anything, and in mode none none of them.
#
# Printed: a table per round (messages/s per mode, the ratios to none and
# recrypt-milter's to the floor), the median ratios against the target
# ORD_TARGET (printed, not enforced); the whole machine's CPU time per
# message in each mode (from /proc/stat: everything but idle and iowait,
# the sender and smtp-sink included), which load from outside the bench
# disturbs less than the rates; and the milters' traffic and CPU time per
# message.
#
# A private Postfix instance (tests/integration/postfix-lib.sh's, relaying
# to smtp-sink), the milters, the store and smtp-sink live in a temporary
# directory under $TMPDIR (or /tmp), removed at the end; everything listens
# on 127.0.0.1 only. TMPDIR=/dev/shm puts Postfix's queue in memory: no
# fsync waits, the runs bound by the CPU alone, steadier and strictest.
# Parameters (environment; all printed at the start):
#
#   ORD_MESSAGES      messages per run                            (400)
#   ORD_CONC          parallel SMTP connections of the sender     (4)
#   ORD_ROUNDS        rounds of none, inet, unix (at least 3)     (5)
#   ORD_RCPTS         recipients per message (one transaction)    (1)
#   ORD_BODY          body of each message, bytes                 (4096)
#   ORD_TARGET        target for the median ratios                (0.95)
#   ORD_FLOOR         also run floor-milter (finet, funix): yes|no (yes)
#   ORD_RUN_TIMEOUT   seconds allowed for one run                 (120)
#   ORD_DEADLINE      seconds allowed for the whole bench         (900)
#
# Exit status: 0 every run complete and in the mode asked for (whatever
# the ratios); 1 a run failed, timed out or was not in its mode; 2 bad
# usage; 77 something needed is missing (root, postfix, smtp-sink,
# python3, the build).
set -euo pipefail

BENCH=ordinary-bench
# shellcheck source=bench/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
bench_args "$@"
bench_setup "$@"
bench_need "$RECRYPTCTL" "$RECRYPT" "$RECRYPT_MILTER"
FLOOR=${ORD_FLOOR:-yes}
[[ $FLOOR =~ ^(yes|no)$ ]] || { echo "ordinary-bench: ORD_FLOOR must be yes or no, not '$FLOOR'" >&2; exit 2; }
FLOOR_MILTER=$BUILD/bench/floor-milter
[ "$FLOOR" = no ] || bench_need "$FLOOR_MILTER"

MESSAGES=${ORD_MESSAGES:-400};       num ORD_MESSAGES "$MESSAGES"
CONC=${ORD_CONC:-4};                 num ORD_CONC "$CONC"
ROUNDS=${ORD_ROUNDS:-5};             num ORD_ROUNDS "$ROUNDS"
[ "$ROUNDS" -ge 3 ] || { echo "ordinary-bench: ORD_ROUNDS must be at least 3" >&2; exit 2; }
RCPTS=${ORD_RCPTS:-1};               num ORD_RCPTS "$RCPTS"
[ "$RCPTS" -le 50 ] || { echo "ordinary-bench: ORD_RCPTS is at most 50 (one transaction to smtp-sink)" >&2; exit 2; }
BODY=${ORD_BODY:-4096};              num ORD_BODY "$BODY"
TARGET=${ORD_TARGET:-0.95}
[[ $TARGET =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "ordinary-bench: ORD_TARGET must be a number, not '$TARGET'" >&2; exit 2; }
RUN_TIMEOUT=${ORD_RUN_TIMEOUT:-120}; num ORD_RUN_TIMEOUT "$RUN_TIMEOUT"
DEADLINE=${ORD_DEADLINE:-900};       num ORD_DEADLINE "$DEADLINE"
MILTERS=(inet unix)
[ "$FLOOR" = no ] || MILTERS+=(finet funix)
MODES=(none "${MILTERS[@]}")
# recrypt-milter's mode for each floor mode, and back
declare -A FLOOR_OF=([inet]=finet [unix]=funix)

bench_tmp ordbench

# Ports: the library's PF_PORT (its default listener, with no milter and
# unused here), the inet milter's MILTER_PORT, the inet floor-milter's,
# smtp-sink's, and one smtpd listener per mode.
declare -A PORT=()
SINK_PORT=$(new_port)
FLOOR_PORT=$(new_port)
for m in "${MODES[@]}"; do PORT[$m]=$(new_port); done
D=example.org          # the list's domain and the sender's
MD=sink.example.net    # the recipients' domain (relayed to smtp-sink)
LIST=crypt@$D
PF_DOMAIN=$D PF_RELAYHOST="[127.0.0.1]:$SINK_PORT" PF_RELAY_DOMAINS=$MD
PF_MAIN_CF_SET=(
  "smtpd_banner = \$myhostname ESMTP recrypt-ordinary-bench"
  "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination"
  # as postfix-lib.sh writes them with a milter; no smtpd_milters in main.cf
  "milter_default_action = tempfail"
  "milter_protocol = 6"
  "milter_connect_timeout = 10s"
  "milter_command_timeout = 30s"
  "milter_content_timeout = 60s"
)
mkdir -p "$T/sock"
chown postfix "$T/sock" # smtpd runs as postfix, unchrooted
declare -A MSOCK=([inet]="inet:$MILTER_PORT@127.0.0.1" [unix]="unix:$T/sock/milter.sock"
  [finet]="inet:$FLOOR_PORT@127.0.0.1" [funix]="unix:$T/sock/floor.sock")
declare -A PFMILTER=([none]="" [inet]="inet:127.0.0.1:$MILTER_PORT" [unix]="unix:$T/sock/milter.sock"
  [finet]="inet:127.0.0.1:$FLOOR_PORT" [funix]="unix:$T/sock/floor.sock")
declare -A MPID=() MLOG=()
PY=$T/ord.py
fails=0

# The milters but the one in MILTER_PID, which the library stops.
milters_stop() {
  local m pid i
  for m in "${MILTERS[@]}"; do
    pid=${MPID[$m]:-}
    if [ -z "$pid" ] || [ "$pid" = "${MILTER_PID:-}" ]; then continue; fi
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    MPID[$m]=
  done
}
# At exit (bench-lib.sh's trap), after smtp-sink, before the library's
# cleanup.
BENCH_AT_EXIT+=(milters_stop)

# The SMTP sender: makes MESSAGES ordinary messages (before the clock
# starts), sends them over CONC connections (one transaction each, the
# connections kept open), then follows smtp-sink's counter file until it
# has counted BASE + MESSAGES messages, or the timeout.
{ bench_py_sender; cat <<'EOF'; } >"$PY"
(port, conc, n, nrcpt, body, sinkout, base, timeout, tag, sender, rdom) = sys.argv[1:12]
port, conc, n, nrcpt, body, base, timeout = int(port), int(conc), int(n), int(nrcpt), int(body), int(base), float(timeout)
sdom = sender.split("@")[1]
line = (b"The quick brown fox jumps over the lazy dog; ordinary mail, no list here. " * 2)[:75] + b"\r\n"
text = (line * (body // len(line) + 1))[:body]
date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
work = []
for i in range(n):
    rc = ["user%03d@%s" % ((i * nrcpt + k) % 997, rdom) for k in range(nrcpt)]
    hdr = ("Received: from client.example.org (client.example.org [127.0.0.1])\r\n"
           "\tby mx.%s (recrypt-ordinary-bench) with ESMTP; %s\r\n"
           "From: Some Sender <%s>\r\nTo: %s\r\nSubject: ordinary message %s %d\r\n"
           "Date: %s\r\nMessage-ID: <%s.%d.%d@%s>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
           "User-Agent: ordinary-bench\r\n\r\n"
           % (sdom, date, sender, ", ".join(rc), tag, i, date, tag, i, os.getpid(), sdom))
    work.append((rc, hdr.encode() + text))
def sink_count():
    with open(sinkout, "rb") as fh:
        fh.seek(max(0, os.path.getsize(sinkout) - 200))
        tail = fh.read().split(b"\r")
    for t in reversed(tail):
        if b"mesg=" in t:
            return int(t.split(b"mesg=")[1].split()[0])
    return 0
t0, accepted, errors, t_smtp = send_all(port, conc, timeout, sender, work)
while True:
    got = sink_count() - base
    now = time.monotonic() - t0
    if got >= accepted or now > timeout:
        break
    time.sleep(0.002)
print("accepted=%d refused=%d received=%d smtp_s=%.3f total_s=%.3f"
      % (accepted, len(errors), got, t_smtp, now))
print_errors(errors)
EOF

# The whole machine's busy time so far, in clock ticks: every field of
# /proc/stat's "cpu" line but idle and iowait.
cpu_busy() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {if (NR % 2) printf "%.3f", a[(NR + 1) / 2]; else printf "%.3f", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# milter_io MODE: "rchar wchar syscr syscw cpu_ticks" of that mode's milter
# (bytes read and written, read and write calls, user + system CPU in clock
# ticks), all its threads, the ended ones included.
milter_io() {
  local pid=${MPID[$1]}
  awk '/^(rchar|wchar|syscr|syscw):/ {v[$1] = $2} END {printf "%s %s %s %s", v["rchar:"], v["wchar:"], v["syscr:"], v["syscw:"]}' "/proc/$pid/io"
  # fields 14 and 15 of /proc/PID/stat, after the ") " that ends the name
  sed 's/.*) //' "/proc/$pid/stat" | awk '{printf " %d\n", $12 + $13}'
}

bench_banner "$BUILD_SHOWN"
echo "parameters: ORD_MESSAGES=$MESSAGES ORD_CONC=$CONC ORD_ROUNDS=$ROUNDS ORD_RCPTS=$RCPTS ORD_BODY=$BODY ORD_TARGET=$TARGET ORD_RUN_TIMEOUT=$RUN_TIMEOUT ORD_DEADLINE=$DEADLINE"
echo "parameters: ORD_FLOOR=$FLOOR"
echo "postfix: one instance, relayhost [127.0.0.1]:sink, default limits; one smtpd listener per mode:"
echo "         none: smtpd_milters empty; inet: ${PFMILTER[inet]}; unix: unix:TMP/sock/milter.sock"
[ "$FLOOR" = no ] || echo "         finet: ${PFMILTER[finet]}; funix: unix:TMP/sock/floor.sock"
echo "milters: two recrypt-milter processes (inet, unix socket), LogLevel notice, one store with the list"
echo "         $LIST (1 member, 1 device) that no message names"
[ "$FLOOR" = no ] || echo "         two floor-milter processes (finet, funix): $FLOOR_MILTER"
echo
pf_deadline "$DEADLINE"

# --- the store: one list of one member with one device
bench_store_init
# (recryptctl and recrypt, as an owner and a member would)
owner() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }
{ owner init &&
  owner list create "$LIST" --service-key "$svc" --apply "$T/db" &&
  RECRYPT_HOME="$T/member" "$RECRYPT" keygen >"$T/member.pub" &&
  owner member add "$LIST" "member@$MD" --device "$(cat "$T/member.pub")" --apply "$T/db"
} >"$T/setup.log" 2>&1 || { echo "ordinary-bench: making the list failed:" >&2; tail -5 "$T/setup.log" >&2; exit 1; }
"$RECRYPTCTL" show --db "$T/db" >"$T/show.txt"
grep -q "^list $LIST" "$T/show.txt" || { echo "ordinary-bench: the store has no list $LIST:" >&2; cat "$T/show.txt" >&2; exit 1; }
echo "list $LIST postmaster@$MD" >"$PF_ALIASES"

# --- two milters on the same store
for m in inet unix; do
  MLOG[$m]=$T/milter-$m.log
  {
    bench_milter_conf "${MSOCK[$m]}" notice "(bench/ordinary-bench.sh), $m socket"
    [ "$m" = inet ] || echo "UMask 000" # the milter runs as root here; let Postfix's user in
  } >"$T/milter-$m.conf"
  MILTER_LOG=${MLOG[$m]}
  milter_start "$T/milter-$m.conf"
  MPID[$m]=$MILTER_PID
done
# The library stops the one in MILTER_PID at exit; milters_stop the others.
MILTER_PID=${MPID[inet]}

# --- the floor-milters
for m in finet funix; do
  [ "$FLOOR" = yes ] || break
  MLOG[$m]=$T/milter-$m.log
  "$FLOOR_MILTER" "${MSOCK[$m]}" >"${MLOG[$m]}" 2>&1 &
  MPID[$m]=$!
  for i in $(seq 1 100); do
    if [ "$m" = finet ]; then _port_open "$FLOOR_PORT" && break; else [ -S "$T/sock/floor.sock" ] && break; fi
    kill -0 "${MPID[$m]}" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "${MPID[$m]}" 2>/dev/null || { echo "ordinary-bench: floor-milter ($m) exited: $(cat "${MLOG[$m]}")" >&2; exit 1; }
done

# --- Postfix, then one listener per mode, identical but for the milter
pf_start nomilter
for m in "${MODES[@]}"; do
  cat >>"$PF_DIR/master.cf" <<EOF
127.0.0.1:${PORT[$m]} inet n - n - - smtpd
  -o syslog_name=postfix-$m
  -o smtpd_milters=${PFMILTER[$m]}
EOF
done
"$POSTFIX" -c "$PF_DIR" reload >/dev/null 2>&1
for m in "${MODES[@]}"; do
  for i in $(seq 1 100); do _port_open "${PORT[$m]}" && break; sleep 0.1; done
  _port_open "${PORT[$m]}" || { echo "ordinary-bench: no smtpd on 127.0.0.1:${PORT[$m]} ($m)" >&2; exit 1; }
done
sink_start

# one_run MODE MESSAGES TAG: send MESSAGES messages to MODE's listener and
# wait until smtp-sink has them all; sets RUN_RESULT (the sender's line),
# RUN_D[MILTER] (each milter's io deltas: "r w sr sw cpu"), RUN_CPU (the
# machine's busy clock ticks during the run) and RUN_OK (1 if complete
# and in its mode, else 0, with RUN_WHY).
RUN_RESULT='' RUN_OK=1 RUN_WHY='' RUN_CPU=0
declare -A RUN_D=()
one_run() {
  local mode=$1 n=$2 tag=$3 base m cpu0
  local -A before=()
  base=$(sink_msgs)
  base=${base:-0}
  for m in "${MILTERS[@]}"; do before[$m]=$(milter_io "$m"); done
  cpu0=$(cpu_busy)
  RUN_RESULT=$("$PYTHON" "$PY" "${PORT[$mode]}" "$CONC" "$n" "$RCPTS" "$BODY" "$T/sink.out" "$base" \
    "$RUN_TIMEOUT" "$tag" "sender@$D" "$MD")
  RUN_CPU=$(($(cpu_busy) - cpu0))
  RUN_OK=1 RUN_WHY=
  for m in "${MILTERS[@]}"; do
    # shellcheck disable=SC2046
    RUN_D[$m]=$(paste -d' ' <(tr ' ' '\n' <<<"${before[$m]}") <(milter_io "$m" | tr ' ' '\n') |
      awk '{printf "%s%d", (NR > 1 ? " " : ""), $2 - $1}')
  done
  if [ "$(kv accepted "$RUN_RESULT")" != "$n" ] || [ "$(kv received "$RUN_RESULT")" -lt "$n" ]; then
    RUN_OK=0 RUN_WHY="expected $n messages accepted and received by smtp-sink"
  fi
  for m in "${MILTERS[@]}"; do
    local r=${RUN_D[$m]%% *}
    if [ "$m" = "$mode" ] && [ "$r" -lt $((n * 100)) ]; then
      RUN_OK=0 RUN_WHY="${RUN_WHY:+$RUN_WHY; }the $m milter read only $r bytes for $n messages: mode $mode not in effect"
    elif [ "$m" != "$mode" ] && [ "$r" -ne 0 ]; then
      RUN_OK=0 RUN_WHY="${RUN_WHY:+$RUN_WHY; }the $m milter read $r bytes in mode $mode"
    fi
  done
  for m in "${MILTERS[@]}"; do
    kill -0 "${MPID[$m]}" 2>/dev/null || { RUN_OK=0 RUN_WHY="${RUN_WHY:+$RUN_WHY; }the $m milter is gone"; }
  done
}

# --- warm-up: smtpd processes for every listener, the milters' threads,
# Postfix's connections to the sink; not timed
for m in "${MODES[@]}"; do
  one_run "$m" $((CONC * 4)) "warm-$m"
  if [ "$RUN_OK" != 1 ]; then
    echo "ordinary-bench: warm-up in mode $m failed: $RUN_WHY: $RUN_RESULT" >&2
    exit 1
  fi
done

TICK=$(getconf CLK_TCK)
# The ratios: each milter mode to none, and recrypt-milter to the floor.
RATIOS=()
for m in "${MILTERS[@]}"; do RATIOS+=("$m/none"); done
for m in inet unix; do [ -z "${FLOOR_OF[$m]:-}" ] || [ "$FLOOR" = no ] || RATIOS+=("$m/${FLOOR_OF[$m]}"); done
echo "Ordinary messages ($RCPTS recipient(s), $BODY-byte body, 10 header fields) sent by SMTP over $CONC"
echo "connections to the listener of each mode; s = from the first connection until smtp-sink has"
echo "received every message of the run. Modes interleaved in each round: ${MODES[*]}."
echo
hdr=$(printf '   %5s |' round; for m in "${MODES[@]}"; do printf ' %8s' "$m/s"; done; printf ' |'
  for q in "${RATIOS[@]}"; do printf ' %11s' "$q"; done)
echo "$hdr"
line="   $(printf '%*s' $((${#hdr} - 3)) '' | tr ' ' -)"
echo "$line"
declare -A RATE=() CPUMS=() RATIO=()
declare -A IO_SUM=()
ratio_of() { local a=${1%/*} b=${1#*/}; div "${RATE[$2,$a]}" "${RATE[$2,$b]}"; }
# A failed run ends the measurements: its messages may still arrive and
# would be counted for the next run.
done_rounds=0
for r in $(seq 1 "$ROUNDS"); do
  for m in "${MODES[@]}"; do
    one_run "$m" "$MESSAGES" "r$r-$m"
    s=$(kv total_s "$RUN_RESULT")
    RATE[$r,$m]=$(div "$MESSAGES" "$s")
    CPUMS[$r,$m]=$(awk -v c="$RUN_CPU" -v t="$TICK" -v n="$MESSAGES" 'BEGIN {printf "%.3f", c * 1000 / t / n}')
    { printf 'round %d %s: [%s] cpu %d ticks; io' "$r" "$m" "$RUN_RESULT" "$RUN_CPU"
      for x in "${MILTERS[@]}"; do printf ' %s [%s]' "$x" "${RUN_D[$x]}"; done; echo; } >>"$T/details"
    if [ "$RUN_OK" != 1 ]; then
      fails=$((fails + 1))
      echo "   FAIL (round $r, $m): $RUN_WHY: $RUN_RESULT" | tr '\n' ' '
      echo
      echo "   (no further runs: the failed run's messages could be counted for the next one)"
      break 2
    fi
    if [ "$m" != none ]; then
      # per message: bytes read, bytes written, reads, writes, CPU ms
      read -r a b c d e <<<"${RUN_D[$m]}"
      IO_SUM[$m]="${IO_SUM[$m]:-} $(awk -v n="$MESSAGES" -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v e="$e" -v t="$TICK" \
        'BEGIN {printf "%.0f,%.0f,%.1f,%.1f,%.3f", a / n, b / n, c / n, d / n, e * 1000 / t / n}')"
    fi
  done
  done_rounds=$r
  printf '   %5d |' "$r"
  for m in "${MODES[@]}"; do printf ' %8.1f' "${RATE[$r,$m]}"; done
  printf ' |'
  for q in "${RATIOS[@]}"; do RATIO[$r,$q]=$(ratio_of "$q" "$r"); printf ' %10.3fx' "${RATIO[$r,$q]}"; done
  echo
done
if [ "$done_rounds" -gt 0 ]; then
  # med_of TABLE MODE: the median over the rounds of TABLE[round,MODE]
  med_of() { local -n _tab=$1; local r v=(); for r in $(seq 1 "$done_rounds"); do v+=("${_tab[$r,$2]}"); done; median "${v[@]}"; }
  declare -A MED=()
  echo "$line"
  printf '   %5s |' median
  for m in "${MODES[@]}"; do printf ' %8.1f' "$(med_of RATE "$m")"; done
  printf ' |'
  for q in "${RATIOS[@]}"; do MED[$q]=$(med_of RATIO "$q"); printf ' %10.3fx' "${MED[$q]}"; done
  echo
  echo
  verdict() { awk -v v="$1" -v t="$TARGET" 'BEGIN {print (v >= t ? "meets" : "BELOW")}'; }
  [ "$done_rounds" -eq "$ROUNDS" ] || echo "   (medians of the $done_rounds complete rounds only)"
  for q in "${RATIOS[@]}"; do
    case $q in
      */none) what="the rate without a milter" ;;
      *) what="the rate with the floor-milter on the same socket kind" ;;
    esac
    echo "   median $q ${MED[$q]}: $(verdict "${MED[$q]}") the target $TARGET ($what)"
  done
  echo
  echo "   the whole machine's CPU time per message (median over the rounds; /proc/stat, all but idle"
  echo "   and iowait; the sender, Postfix, smtp-sink and the milters), and against mode none:"
  cn=$(med_of CPUMS none)
  for m in "${MODES[@]}"; do
    c=$(med_of CPUMS "$m")
    printf '     %-5s %.3f ms  (%s)\n' "$m" "$c" "$(awk -v c="$c" -v n="$cn" 'BEGIN {printf (c == n ? "-" : "%+.3f ms, none/this %.3f"), c - n, (c > 0 ? n / c : 0)}')"
  done
  echo
  echo "   the milters per message (median over the rounds; /proc/PID/io and /proc/PID/stat of the"
  echo "   mode's milter: bytes it read from and wrote to Postfix, read and write calls, CPU time):"
  for m in "${MILTERS[@]}"; do
    med=()
    for f in 1 2 3 4 5; do
      # shellcheck disable=SC2046,SC2086
      med+=("$(median $(printf '%s\n' ${IO_SUM[$m]} | cut -d, -f"$f"))")
    done
    printf '     %-5s read %.0f bytes in %.1f calls, wrote %.0f bytes in %.1f calls, CPU %.3f ms\n' \
      "$m:" "${med[0]}" "${med[2]}" "${med[1]}" "${med[3]}" "${med[4]}"
  done
fi
echo "   smtp-sink received $(sink_msgs) messages in all (warm-up included); details (smtp_s = until the"
echo "   last message was accepted, total_s = until smtp-sink had them all; the machine's busy CPU"
echo "   ticks; io deltas of each milter: bytes read, bytes written, read calls, write calls, CPU"
echo "   ticks; $TICK ticks per second):"
sed 's/^/     /' "$T/details"
milters_stop
milter_stop
pf_stop

echo
if [ "$fails" -eq 0 ]; then echo "RESULT: complete ($((ROUNDS * ${#MODES[@]})) runs)"; else echo "RESULT: FAIL (a run failed; $done_rounds of $ROUNDS rounds complete)"; fi
[ "$fails" -eq 0 ] || exit 1
