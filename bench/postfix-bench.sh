#!/usr/bin/env bash
# postfix-bench.sh: figures for recrypt-milter behind a real Postfix on
# loopback. A benchmark, not a test: CTest does not run it; run it by hand,
# as root:
#
#   bash bench/postfix-bench.sh [BUILD_DIR]      (default BUILD_DIR: <repo>/build)
#
# 1. Throughput: sealed posts per second through Postfix, for lists of 1,
#    100, 1,000 and 10,000 devices, in three modes: the milter's inline
#    delivery (one rewritten message for all members), split delivery (the
#    milter hands the post to recrypt-fanout, one copy per member, admin
#    guide 5.6), and the same Postfix with no milter fanning the same posts
#    out to the same member addresses. Posts/s, copies/s, bytes through the
#    queue per post, the milter's and the fan-out's peak memory. Postfix
#    relays everything to smtp-sink on loopback (no local delivery).
# 2. The milter's peak memory (VmHWM) for a large post against a 1 MiB post:
#    the body is spooled to a file, so the peak must not grow with the size.
# 3. One post to a list of 100,000 devices (50,000 members of 2), split
#    delivery, end to end: the fan-out's time for the plan, the recryption
#    and the copies, its peak memory, and the time until smtp-sink has every
#    copy.
#
# A private Postfix instance (tests/integration/postfix-lib.sh's, relaying
# to smtp-sink), the milter, the store and smtp-sink live in a temporary
# directory removed at the end; everything listens on 127.0.0.1 only.
# Parameters (environment; all printed at the start):
#
#   PFB_POSTS          posts per run for 1 and 100 devices        (200)
#   PFB_POSTS_1000     posts per run for 1000 devices             (50)
#   PFB_POSTS_10000    posts per run for 10000 devices            (5)
#   PFB_SIZES          device counts of part 1            (1,100,1000,10000)
#   PFB_HUGE           devices of part 3; 0 skips it               (100000)
#   PFB_CONC           parallel SMTP connections of the sender     (4)
#   PFB_BODY           plaintext body of each post, bytes          (4096)
#   PFB_SMALL_MIB      plaintext size of the small memory post     (1)
#   PFB_BIG_MIB        plaintext size of the large memory post     (50)
#   PFB_SLACK_MIB      allowed growth of the peak, large vs small  (4)
#   PFB_SOCKET         milter socket: inet (loopback TCP) or unix   (inet)
#   PFB_RUN_TIMEOUT    seconds allowed for one run                 (300)
#   PFB_DEADLINE       seconds allowed for the whole bench         (3600)
#
# Exit status: 0 all runs complete and the memory check passes; 1 a run
# failed or timed out, or the peak grows with the size; 2 bad usage;
# 77 something needed is missing (root, postfix, smtp-sink, python3, the
# build).
set -euo pipefail

BENCH=postfix-bench
# shellcheck source=bench/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
bench_args "$@"
bench_setup "$@"
export RECRYPT_FANOUT=$BUILD/src/milter/recrypt-fanout
BIG_LIST=$BUILD/bench/big-list
bench_need "$RECRYPT" "$RECRYPTCTL" "$RECRYPT_MILTER" "$RECRYPT_FANOUT" "$BIG_LIST"

POSTS=${PFB_POSTS:-200};          num PFB_POSTS "$POSTS"
POSTS_1000=${PFB_POSTS_1000:-50}; num PFB_POSTS_1000 "$POSTS_1000"
POSTS_10000=${PFB_POSTS_10000:-5}; num PFB_POSTS_10000 "$POSTS_10000"
IFS=, read -r -a SIZES <<<"${PFB_SIZES:-1,100,1000,10000}"
for n in "${SIZES[@]}"; do
  case $n in 1 | 100 | 1000 | 10000) ;; *) echo "postfix-bench: PFB_SIZES takes 1, 100, 1000, 10000" >&2; exit 2 ;; esac
done
HUGE=${PFB_HUGE:-100000}
[[ $HUGE =~ ^(0|[1-9][0-9]*)$ ]] && [ $((HUGE % 2)) -eq 0 ] || { echo "postfix-bench: PFB_HUGE is an even number of devices or 0" >&2; exit 2; }
CONC=${PFB_CONC:-4};              num PFB_CONC "$CONC"
BODY=${PFB_BODY:-4096};           num PFB_BODY "$BODY"
SMALL_MIB=${PFB_SMALL_MIB:-1};    num PFB_SMALL_MIB "$SMALL_MIB"
BIG_MIB=${PFB_BIG_MIB:-50};       num PFB_BIG_MIB "$BIG_MIB"
SLACK_MIB=${PFB_SLACK_MIB:-4};    num PFB_SLACK_MIB "$SLACK_MIB"
SOCKET=${PFB_SOCKET:-inet}
case "$SOCKET" in inet | unix) ;; *) echo "postfix-bench: PFB_SOCKET must be inet or unix" >&2; exit 2 ;; esac
RUN_TIMEOUT=${PFB_RUN_TIMEOUT:-300}; num PFB_RUN_TIMEOUT "$RUN_TIMEOUT"
DEADLINE=${PFB_DEADLINE:-3600};   num PFB_DEADLINE "$DEADLINE"
# Postfix's message_size_limit and the milter's MaxMessageSize: room for the
# large post sealed (base64, about 4/3) with some margin.
SIZE_LIMIT=$(( (BIG_MIB * 2 + 16) * 1048576 ))

bench_tmp pfbench

SINK_PORT=$(new_port)
D=example.org          # the lists' domain (virtual alias domain)
MD=sink.example.net    # the members' domain (relayed to smtp-sink)
# The private instance of postfix-lib.sh, but relaying everything to
# smtp-sink: list and bounce addresses are virtual aliases in $D (valid at
# RCPT, map $PF_ALIASES), member addresses are in $MD, a relay domain;
# relayhost is the sink. Room for the large post, time for the milter.
PF_DOMAIN=$D PF_RELAYHOST="[127.0.0.1]:$SINK_PORT" PF_RELAY_DOMAINS=$MD
PF_MAIN_CF_SET=(
  "smtpd_banner = \$myhostname ESMTP recrypt-bench"
  "message_size_limit = $SIZE_LIMIT"
  "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination"
  "milter_command_timeout = 30s"
  "milter_content_timeout = 300s"
  "virtual_alias_expansion_limit = 1000000"
)
CONF=$T/milter.conf
MILTER_CONF=$CONF # the fan-out transport of postfix-lib.sh reads it
if [ "$SOCKET" = unix ]; then
  # Postfix's smtpd and cleanup run unchrooted here and as user postfix.
  mkdir -p "$T/sock"
  chown postfix "$T/sock"
  MILTER_SOCKET=unix:$T/sock/milter.sock PF_MILTER=unix:$T/sock/milter.sock
else
  MILTER_SOCKET=inet:$MILTER_PORT@127.0.0.1 PF_MILTER=inet:127.0.0.1:$MILTER_PORT
fi
PY=$T/pfb.py
fails=0

# The SMTP sender and log watcher: sends the given files (read and converted
# to CRLF before the clock starts) over CONC connections, one transaction
# each, then follows Postfix's log until EXPECT deliveries (status=sent
# lines) have been logged since the start, or the timeout.
{ bench_py_sender; cat <<'EOF'; } >"$PY"
port, sender, rcpt, conc, log, expect, timeout = sys.argv[1:8]
port, conc, expect, timeout = int(port), int(conc), int(expect), float(timeout)
datas = []
for f in sys.argv[8:]:
    with open(f, "rb") as fh:
        datas.append(fh.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
off = os.path.getsize(log) if os.path.exists(log) else 0
t0, accepted, errors, t_smtp = send_all(port, conc, timeout, sender, [([rcpt], d) for d in datas])
sent = deferred = bounced = postmaster = 0
chunk = b""
pos, rest = off, b""
while True:
    if os.path.exists(log):
        with open(log, "rb") as fh:
            fh.seek(pos)
            chunk = fh.read()
        pos += len(chunk)
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for l in lines:
            if b" status=sent " in l:
                sent += 1
                if b"to=<postmaster@" in l:
                    postmaster += 1
            elif b" status=deferred " in l:
                deferred += 1
            elif b" status=bounced " in l:
                bounced += 1
    now = time.monotonic() - t0
    if sent >= expect or now > timeout or (accepted == 0 and not chunk):
        break
    time.sleep(0.01)
print("accepted=%d refused=%d delivered=%d deferred=%d bounced=%d postmaster=%d smtp_s=%.3f total_s=%.3f"
      % (accepted, len(errors), sent, deferred, bounced, postmaster, t_smtp, now))
print_errors(errors)
EOF

ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }
dev() { local d=$1; shift; RECRYPT_HOME="$T/dev/$d" "$RECRYPT" "$@"; }

# milter_conf [split]: the milter's (and recrypt-fanout's) config; split:
# with FanoutDomain (PF_FANOUT must then be yes when Postfix starts).
milter_conf() {
  { bench_milter_conf "$MILTER_SOCKET" info "(bench/postfix-bench.sh)"
    echo "MaxMessageSize $SIZE_LIMIT"
    echo "MaxFanout 1000000"
  } >"$CONF"
  if [ "${1:-}" = split ]; then
    printf 'FanoutDomain %s\nFanoutRelay 127.0.0.1:%s\n' "$PF_FANOUT_DOMAIN" "$PF_FANOUT_PORT" >>"$CONF"
  fi
  # (unix socket: the milter runs as root here; let Postfix's user in)
  [ "$SOCKET" = inet ] || echo "UMask 000" >>"$CONF"
}

# status_kib FIELD: FIELD (VmHWM, VmRSS) of the running milter, in KiB.
status_kib() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$MILTER_PID/status"; }

# milter_counters: the milter's counters (SIGUSR2 logs them).
milter_counters() {
  local before
  before=$(grep -c 'counters:' "$MILTER_LOG" || true)
  kill -USR2 "$MILTER_PID"
  local i
  for i in $(seq 1 50); do
    [ "$(grep -c 'counters:' "$MILTER_LOG" || true)" -gt "$before" ] && break
    sleep 0.1
  done
  grep 'counters:' "$MILTER_LOG" | tail -1 | sed 's/.*counters: //'
}

# aliases MODE LIST [MEMBER...]: the list address resolves to postmaster
# (mode milter: the milter replaces the list recipient by the members) or
# to the members themselves (mode plain: Postfix fans out, no milter).
aliases() {
  local mode=$1 list=$2; shift 2
  {
    if [ "$mode" = milter ]; then
      echo "$list postmaster@$MD"
    else
      local IFS=,
      echo "$list $*"
    fi
    echo "${list%@*}-bounces@$D owner@$MD"
  } >"$PF_ALIASES"
}

# one_run MODE LIST EXPECT FILES...: (re)start Postfix (and the milter in
# modes inline and split, and the fan-out transport in split), send a
# warm-up message to an ordinary address, then the posts; sets RUN_RESULT
# (the sender's result line), RUN_COUNTERS and RUN_HWM (the milter's),
# RUN_LOG_AT (Postfix's log size before the run) and RUN_FANOUT_AT (the
# fan-out's time log's).
RUN_RESULT= RUN_COUNTERS= RUN_HWM= RUN_LOG_AT=0 RUN_FANOUT_AT=0
one_run() {
  local mode=$1 list=$2 expect=$3; shift 3
  pf_stop
  milter_stop
  PF_FANOUT=
  if [ "$mode" = split ]; then PF_FANOUT=yes; fi
  if [ "$mode" != plain ]; then
    milter_conf "$mode"
    : >"$MILTER_LOG"
    milter_start "$CONF"
    pf_start
  else
    pf_start nomilter
  fi
  RUN_LOG_AT=$(stat -c %s "$PF_LOG" 2>/dev/null || echo 0)
  RUN_FANOUT_AT=0
  if [ -n "${FANOUT_TIME_LOG:-}" ] && [ -f "$FANOUT_TIME_LOG" ]; then RUN_FANOUT_AT=$(wc -l <"$FANOUT_TIME_LOG"); fi
  local w
  printf 'From: poster@%s\nTo: warmup@%s\nSubject: warm-up\nDate: %s\nMessage-ID: <warm%s.%s@%s>\n\nwarm-up\n' \
    "$D" "$MD" "$(date -R)" "$$" "$RANDOM" "$D" >"$T/warm.eml"
  w=$(python3 "$PY" "$PF_PORT" "poster@$D" "warmup@$MD" 1 "$PF_LOG" 1 30 "$T/warm.eml")
  [ "$(kv delivered "$w")" = 1 ] || { echo "postfix-bench: warm-up message not relayed: $w" >&2; return 1; }
  RUN_RESULT=$(python3 "$PY" "$PF_PORT" "poster@$D" "$list" "$CONC" "$PF_LOG" "$expect" "$RUN_TIMEOUT" "$@")
  RUN_COUNTERS= RUN_HWM=
  if [ "$mode" != plain ]; then
    RUN_HWM=$(status_kib VmHWM)
    RUN_COUNTERS=$(milter_counters)
  fi
}

# queue_kib POSTS: bytes through Postfix's queue per post since RUN_LOG_AT,
# from qmgr's "size=S, nrcpt=N (queue active)" lines: "QUEUED RELAYED" in
# KiB per post, QUEUED = the queue files' sizes (each message once),
# RELAYED = size x recipients (what leaves for the members); both include
# the run's one warm-up message (about 0.3 KiB).
queue_kib() {
  tail -c +$((RUN_LOG_AT + 1)) "$PF_LOG" | awk -v p="$1" '
    /qmgr\[/ && /\(queue active\)/ {
      s = $0; sub(/.*size=/, "", s); sub(/,.*/, "", s)
      n = $0; sub(/.*nrcpt=/, "", n); sub(/ .*/, "", n)
      q += s; r += s * n }
    END { printf "%.1f %.1f\n", q / 1024 / p, r / 1024 / p }'
}
# fanout_peak: the largest peak RSS (KiB) of the fan-out runs since RUN_FANOUT_AT
fanout_peak() {
  [ -s "$FANOUT_TIME_LOG" ] || { echo -; return; }
  tail -n +$((RUN_FANOUT_AT + 1)) "$FANOUT_TIME_LOG" | awk '$2 ~ /^[0-9]+$/ && $2 > m {m = $2} END {print (m ? m : "-")}'
}

bench_banner "$BUILD"
echo "parameters: PFB_SIZES=$(IFS=,; echo "${SIZES[*]}") PFB_HUGE=$HUGE PFB_POSTS=$POSTS PFB_POSTS_1000=$POSTS_1000 PFB_POSTS_10000=$POSTS_10000 PFB_CONC=$CONC PFB_BODY=$BODY PFB_SMALL_MIB=$SMALL_MIB PFB_BIG_MIB=$BIG_MIB PFB_SLACK_MIB=$SLACK_MIB PFB_SOCKET=$SOCKET PFB_RUN_TIMEOUT=$RUN_TIMEOUT PFB_DEADLINE=$DEADLINE"
echo "postfix: relayhost [127.0.0.1]:sink, message_size_limit $SIZE_LIMIT, default concurrency and recipient limits;"
echo "milter: LogLevel info, MaxMessageSize $SIZE_LIMIT, MaxFanout 1000000, spool in the temporary directory;"
echo "split delivery: recrypt-fanout as pipe(8) (process limit 2) as user nobody, copies to a second smtpd without milters"
echo
pf_deadline "$DEADLINE"

# --- the store: one list per size, plus one for the memory part, made by
# bench/big-list (signed requests applied to the store, like recryptctl
# apply, without a process per member).
t_setup=$SECONDS
bench_store_init
mkdir -p "$T/dev"
dev poster keygen >/dev/null 2>&1
# make_list LIST TAG MEMBERS DEVICES_PER_MEMBER: members m000001@$MD, ...
# (their list in $T/TAG/members.txt, the list key in $T/TAG.key)
make_list() {
  local list=$1 tag=$2 members=$3 per=$4
  "$BIG_LIST" "$T/db" "$list" "$members" "$per" "$MD" "$T/$tag" >/dev/null ||
    { echo "postfix-bench: big-list $list failed" >&2; exit 1; }
  cp "$T/$tag/list.key" "$T/$tag.key"
  # The poster accepts the key the bench itself just made (--yes: nothing
  # to compare it with here; a member compares the owner's fingerprint).
  dev poster list import --yes "$T/$tag.key" >/dev/null 2>&1 </dev/null ||
    { echo "postfix-bench: the poster cannot import $T/$tag.key" >&2; exit 1; }
}
declare -A MEMBERS=([1]=1 [100]=50 [1000]=500 [10000]=5000) PER=([1]=1 [100]=2 [1000]=2 [10000]=2)
declare -A NPOSTS=([1]=$POSTS [100]=$POSTS [1000]=$POSTS_1000 [10000]=$POSTS_10000)
for n in "${SIZES[@]}"; do make_list "d$n@$D" "d$n" "${MEMBERS[$n]}" "${PER[$n]}"; done
make_list "mem@$D" mem 1 1
"$RECRYPTCTL" show --db "$T/db" >"$T/show.txt"
for n in "${SIZES[@]}"; do
  got=$(awk -v l="d$n@$D" '$1 == "list" {cur = $2} $1 == "member" && $NF == "active" && cur == l {c++} END {print c + 0}' "$T/show.txt")
  [ "$got" -eq "${MEMBERS[$n]}" ] || { echo "postfix-bench: list d$n@$D has $got active members, expected ${MEMBERS[$n]}" >&2; exit 1; }
done
echo "store: lists of $(IFS=,; echo "${SIZES[*]}") devices (members x devices: $(for n in "${SIZES[@]}"; do printf '%s x %s ' "${MEMBERS[$n]}" "${PER[$n]}"; done)) and one of 1 device for part 2, made in $((SECONDS - t_setup)) s"
chown -R nobody "$T/db" # recrypt-fanout runs as nobody (pipe(8) never runs a command as root)
sleep 1 # stanzas go to devices enrolled before the post's Date

# --- the posts, each sealed separately (the milter discards a repeated E),
# one set per mode that uses the milter.
filler=$(head -c $((BODY * 3 / 4 + 64)) /dev/urandom | base64 -w 76)
t_seal=$SECONDS
sealed=0
for n in "${SIZES[@]}"; do
  for mode in inline split; do
    mkdir -p "$T/posts-$mode-$n"
    for i in $(seq 1 "${NPOSTS[$n]}"); do
      { printf 'From: poster@%s\nTo: d%s@%s\nSubject: bench post %s\nDate: %s\nMessage-ID: <bench%s.%s.%s.%s@%s>\n\n' \
          "$D" "$n" "$D" "$i" "$(date -R)" "$mode" "$n" "$i" "$$" "$D"
        head -c "$BODY" <<<"$filler"; echo; } >"$T/plain.eml"
      dev poster seal --to "$(cat "$T/d$n.key")" <"$T/plain.eml" >"$T/posts-$mode-$n/$i.eml" 2>"$T/seal.err" ||
        { echo "postfix-bench: seal failed: $(head -c 300 "$T/seal.err")" >&2; exit 1; }
      sealed=$((sealed + 1))
    done
  done
done
echo "posts: $sealed sealed in $((SECONDS - t_seal)) s; plaintext $(wc -c <"$T/plain.eml") bytes, sealed $(wc -c <"$T/posts-inline-${SIZES[0]}/1.eml") bytes each"

FANOUT_TIME_LOG=$T/fanout-time.log
sink_start

# --- 1. throughput
echo
echo "1. Throughput: sealed posts sent by SMTP over $CONC connections to the list address; time from"
echo "   the first connection until Postfix has logged every copy relayed to smtp-sink (status=sent)."
echo "   inline: recrypt-milter rewrites each post once and replaces the list by the members: every"
echo "           copy carries every device's stanza."
echo "   split:  recrypt-milter hands each post to recrypt-fanout (pipe(8)), which submits one copy"
echo "           per member, with that member's stanzas only, to a listener without the milter."
echo "   plain:  smtpd_milters unset; the list address is a virtual alias of the same members,"
echo "           so Postfix relays the same posts (without stanzas) to the same addresses."
echo "   copies = member recipients relayed (inline and plain: up to 50 recipients per SMTP"
echo "   transaction to smtp-sink). queue = KiB of queue files per post (each message once);"
echo "   relayed = KiB per post leaving Postfix (size x recipients). milter, fanout = peak RSS, KiB."
echo
printf '   %7s %7s %5s %-6s | %8s %8s %9s | %10s %11s | %9s %9s\n' \
  devices members posts mode "s" "posts/s" "copies/s" "queue KiB" "relayed KiB" "milter" "fanout"
printf '   %s\n' "------------------------------------------------------------------------------------------------------"
for n in "${SIZES[@]}"; do
  m=${MEMBERS[$n]} p=${NPOSTS[$n]}
  for mode in inline split plain; do
    files=()
    for i in $(seq 1 "$p"); do files+=("$T/posts-${mode/plain/inline}-$n/$i.eml"); done
    if [ "$mode" = inline ] && [ $((n * m)) -gt 1000000 ]; then
      printf '   %7d %7d %5d %-6s | refused by the milter (552 5.5.3): %s copies of %s stanzas each exceed MaxFanout\n' \
        "$n" "$m" "$p" "$mode" "$m" "$n"
      continue
    fi
    expect=$((m * p))
    if [ "$mode" = split ]; then
      expect=$((m * p + p)) # and one delivery to the fan-out transport per post
    fi
    if [ "$mode" = plain ]; then
      mapfile -t mem <"$T/d$n/members.txt"
      aliases plain "d$n@$D" "${mem[@]}"
    else
      aliases milter "d$n@$D"
    fi
    one_run "$mode" "d$n@$D" "$expect" "${files[@]}"
    s=$(kv total_s "$RUN_RESULT")
    ok=1
    if [ "$(kv accepted "$RUN_RESULT")" != "$p" ] || [ "$(kv delivered "$RUN_RESULT")" -lt "$expect" ] ||
      [ "$(kv postmaster "$RUN_RESULT")" != 0 ]; then
      ok=0
      echo "   FAIL ($n devices, $mode): expected $p posts accepted and $expect deliveries, got: $RUN_RESULT" | tr '\n' ' '
      echo
    fi
    if [ "$mode" = inline ]; then
      rec=$(kv recrypted "$RUN_COUNTERS") st=$(kv stanzas "$RUN_COUNTERS")
      if [ "$rec" != "$p" ] || [ "$st" != $((p * n)) ]; then
        ok=0
        echo "   FAIL ($n devices): milter counters: $RUN_COUNTERS (expected recrypted=$p stanzas=$((p * n)))"
      fi
    elif [ "$mode" = split ]; then
      spl=$(kv split "$RUN_COUNTERS")
      copies=$(grep -c "copies=$m stanzas=$n recipients=$m skipped=0 refused=0 .*verdict=delivered" "$FANOUT_LOG" || true)
      if [ "$spl" != "$p" ] || [ "$copies" -lt "$p" ]; then
        ok=0
        echo "   FAIL ($n devices): split=$spl, fan-out runs with $m copies and $n stanzas: $copies (expected $p)"
      fi
    fi
    [ "$ok" = 1 ] || fails=$((fails + 1))
    read -r qk rk < <(queue_kib "$p")
    hwm=${RUN_HWM:--} fpk=-
    [ "$mode" = split ] && fpk=$(fanout_peak)
    printf '   %7d %7d %5d %-6s | %8.2f %8.1f %9.1f | %10s %11s | %9s %9s\n' \
      "$n" "$m" "$p" "$mode" "$s" "$(div "$p" "$s")" "$(div $((m * p)) "$s")" "$qk" "$rk" "$hwm" "$fpk"
    echo "$n devices, $mode: [$RUN_RESULT] [$RUN_COUNTERS]" >>"$T/details"
  done
  if [ -s "$FANOUT_LOG" ]; then
    grep 'timing:' "$FANOUT_LOG" | tail -n "$p" | sed 's/.*timing: //' |
      awk -v n="$n" '{for (i = 1; i <= NF; i++) {split($i, kv, "="); sub(/s$/, "", kv[2]); t[kv[1]] += kv[2]; c[kv[1]]++}}
        END {if (c["plan"]) printf "%s devices, split: fan-out per post: plan %.3f s, recrypt %.3f s, copies %.3f s (mean of %d)\n",
             n, t["plan"] / c["plan"], t["recrypt"] / c["recrypt"], t["copies"] / c["copies"], c["plan"]}' >>"$T/details"
  fi
done
echo
echo "   (s: from the first connection until the last copy was relayed; a fresh milter per run, and"
echo "   recrypt-fanout is a new process per post; its peak from /usr/bin/time.)"
echo "   smtp-sink received $(sink_msgs) SMTP transactions in all (warm-up messages included)."
echo "   details (smtp_s = until the last post was accepted; total_s = until the last copy was relayed):"
sed 's/^/     /' "$T/details"
milter_conf
PF_FANOUT=

# --- 2. peak memory, small post against large post
echo
echo "2. The milter's peak memory (VmHWM of /proc/PID/status, KiB) for one post to a list of 1 device;"
echo "   a fresh milter per post; read after Postfix has relayed the rewritten post to smtp-sink."
echo
make_big() { # MIB FILE: a plaintext post of exactly MIB MiB (76-column base64 lines)
  python3 - "$1" "$2" "$D" "$(date -R)" "$$" <<'PYEOF'
import base64, os, sys
mib, out, dom, date, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
size = mib * 1048576
hdr = ("From: poster@%s\nTo: mem@%s\nSubject: %d MiB\nDate: %s\nMessage-ID: <mem%d.%s@%s>\n\n"
       % (dom, dom, mib, date, mib, pid, dom)).encode()
with open(out, "wb") as f:
    f.write(hdr)
    left = size - len(hdr)
    while left > 0:
        b = base64.encodebytes(os.urandom(57 * 1024))  # 76-column lines
        if len(b) >= left:
            b = b[:left - 1] + b"\n"
        f.write(b)
        left -= len(b)
PYEOF
}
printf '   %9s %12s %12s %10s %10s %10s %9s\n' "plaintext" "sealed bytes" "start KiB" "peak KiB" "over start" "relayed s" "result"
declare -A PEAK
aliases milter "mem@$D"
for mib in "$SMALL_MIB" "$BIG_MIB"; do
  make_big "$mib" "$T/big.eml"
  dev poster seal --to "$(cat "$T/mem.key")" <"$T/big.eml" >"$T/big.sealed" 2>"$T/seal.err" ||
    { echo "postfix-bench: seal failed: $(head -c 300 "$T/seal.err")" >&2; exit 1; }
  rm -f "$T/big.eml"
  pf_stop
  milter_stop
  : >"$MILTER_LOG"
  milter_start "$CONF"
  pf_start
  start=$(status_kib VmHWM)
  res=$(python3 "$PY" "$PF_PORT" "poster@$D" "mem@$D" 1 "$PF_LOG" 1 "$RUN_TIMEOUT" "$T/big.sealed")
  peak=$(status_kib VmHWM)
  PEAK[$mib]=$peak
  r=ok
  if [ "$(kv delivered "$res")" != 1 ] || ! kill -0 "$MILTER_PID" 2>/dev/null; then
    r=FAIL; fails=$((fails + 1))
  fi
  printf '   %6s MiB %12d %12s %10s %10s %10s %9s\n' "$mib" "$(wc -c <"$T/big.sealed")" "$start" "$peak" \
    "$((peak - start))" "$(kv total_s "$res")" "$r"
  [ "$r" = ok ] || echo "   $res"
  rm -f "$T/big.sealed"
done
milter_stop
pf_stop
growth=$((PEAK[$BIG_MIB] - PEAK[$SMALL_MIB]))
echo
if [ "$growth" -le $((SLACK_MIB * 1024)) ]; then
  echo "   PASS: the $BIG_MIB MiB peak is $growth KiB above the $SMALL_MIB MiB peak (allowed: $SLACK_MIB MiB)"
else
  echo "   FAIL: the $BIG_MIB MiB peak is $growth KiB above the $SMALL_MIB MiB peak (allowed: $SLACK_MIB MiB)"
  fails=$((fails + 1))
fi
echo "   (relayed s: from the first connection until Postfix logged the copy relayed to smtp-sink)"
# --- 3. one post to a list of $HUGE devices, split delivery, end to end
if [ "$HUGE" -gt 0 ]; then
  echo
  hm=$((HUGE / 2))
  echo "3. One post to a list of $HUGE devices ($hm members x 2), split delivery, end to end through"
  echo "   Postfix to smtp-sink. Inline delivery refuses such a list (552 5.5.3)."
  echo
  t_setup=$SECONDS
  make_list "huge@$D" huge "$hm" 2
  chown -R nobody "$T/db"
  echo "   list made in $((SECONDS - t_setup)) s (bench/big-list)"
  sleep 1
  printf 'From: poster@%s\nTo: huge@%s\nSubject: huge\nDate: %s\nMessage-ID: <huge.%s@%s>\n\n%s\n' \
    "$D" "$D" "$(date -R)" "$$" "$D" "$(head -c "$BODY" <<<"$filler")" >"$T/plain.eml"
  dev poster seal --to "$(cat "$T/huge.key")" <"$T/plain.eml" >"$T/huge.eml" 2>"$T/seal.err" ||
    { echo "postfix-bench: seal failed: $(head -c 300 "$T/seal.err")" >&2; exit 1; }
  aliases milter "huge@$D"
  RUN_TIMEOUT_SAVED=$RUN_TIMEOUT
  RUN_TIMEOUT=$((RUN_TIMEOUT * 4))
  one_run split "huge@$D" $((hm + 1)) "$T/huge.eml"
  RUN_TIMEOUT=$RUN_TIMEOUT_SAVED
  timing=$(grep 'timing:' "$FANOUT_LOG" | tail -1 | sed 's/.*timing: //')
  line=$(grep 'verdict=delivered' "$FANOUT_LOG" | tail -1 | sed 's/.*recrypt-fanout [a-z]*: //')
  read -r qk rk < <(queue_kib 1)
  wall=$(tail -n 1 "$FANOUT_TIME_LOG" | awk '{print $1}')
  echo "   recrypt-fanout: $line"
  echo "   its time: $timing (wall $wall s), peak RSS $(fanout_peak) KiB; the milter's peak $RUN_HWM KiB"
  echo "   until smtp-sink had every copy: $(kv total_s "$RUN_RESULT") s; through the queue: $qk KiB (relayed $rk KiB)"
  if [ "$(kv delivered "$RUN_RESULT")" -lt $((hm + 1)) ] || ! grep -q "copies=$hm stanzas=$HUGE recipients=$hm skipped=0 refused=0" <<<"$line"; then
    echo "   FAIL: $RUN_RESULT"
    fails=$((fails + 1))
  fi
  # Open the copies of the first, the middle and the last member? They went
  # to smtp-sink, which keeps nothing; the Postfix tests open copies.
  milter_stop
  pf_stop
fi

echo
if [ "$fails" -eq 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL ($fails)"; fi
[ "$fails" -eq 0 ]
