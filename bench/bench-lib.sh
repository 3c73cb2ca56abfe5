# bench-lib.sh: the set-up that bench/ordinary-bench.sh and
# bench/postfix-bench.sh share. Sourced (bash) by those scripts right after
# their "set -euo pipefail", not run on its own. Sourcing it only defines
# the functions below and sets _root (the top of the source tree); the
# script calls them.
#
# Before sourcing, the script sets BENCH, its name in messages
# ("ordinary-bench"): every message of these functions starts with "$BENCH: ".
#
#   bench_args "$@"        -h / --help: print the script's header comment
#                          (its lines from 2 up to "set -euo") and exit 0;
#                          more than one argument: usage line, exit 2
#   bench_setup [BUILD_DIR]
#                          BUILD (absolute; default <repo>/build), BUILD_SHOWN
#                          (as given, "build" by default: for the log),
#                          PATH with /usr/sbin:/sbin; skips (exit 77) unless
#                          root, postfix, smtp-sink, python3, script and the
#                          users postfix and nobody are there; sets
#                          SMTP_SINK, PYTHON, RECRYPT, RECRYPTCTL and
#                          exports RECRYPT_MILTER (paths in BUILD)
#   bench_need FILE...     skip unless every FILE is executable
#   skip MESSAGE           "$BENCH: MESSAGE" on stderr, exit 77
#   num NAME VALUE         exit 2 unless VALUE (of parameter NAME) is a
#                          positive integer
#   bench_tmp TAG          T, a new directory ${TMPDIR:-/tmp}/recrypt-TAG.XXXXXX;
#                          sources tests/integration/postfix-lib.sh (its
#                          private Postfix lives in $T) and sets the EXIT
#                          trap: sink_stop, the functions in BENCH_AT_EXIT
#                          (in order), then postfix-lib.sh's cleanup (the
#                          milter in MILTER_PID, Postfix, $T), which takes
#                          the exit status
#   new_port               a free port on 127.0.0.1 that is none of
#                          postfix-lib.sh's (PF_PORT, MILTER_PORT,
#                          PF_FANOUT_PORT) nor one new_port gave before
#   bench_banner BUILD_AS_SHOWN
#                          the first lines of the output: Postfix and milter
#                          versions, the machine, the build and its type
#                          (needs BUILD, RECRYPT_MILTER)
#   bench_store_init       svc: the service key of a new store $T/db
#                          (recryptctl server init); exit 1 if that fails
#                          (needs RECRYPTCTL, T)
#   bench_milter_conf SOCKET LOGLEVEL NOTE
#                          on stdout, the milter config lines both benches
#                          start with ("# recrypt-milter benchmark config
#                          NOTE", Socket SOCKET, Database $T/db, Syslog no,
#                          LogLevel LOGLEVEL, TemporaryDirectory
#                          $MILTER_SPOOL); makes the spool (after bench_tmp)
#   sink_start             smtp-sink on 127.0.0.1:$SINK_PORT (stopping one
#                          already started; pid in SINK_PID), its output in
#                          $T/sink.out; waits until it answers (status 1 and
#                          a message if it does not); needs SMTP_SINK,
#                          SINK_PORT (the script's, e.g. from new_port), T
#   sink_stop              stop it (nothing if none runs; also at exit)
#   sink_msgs              transactions smtp-sink has received (its last -c
#                          counter in $T/sink.out)
#   div A B                A / B with 4 decimals (0 if B is 0)
#   kv KEY LINE            the value of KEY=value in LINE
#   bench_py_sender        on stdout, the start of the benches' Python SMTP
#                          sender: the imports, send_all() and
#                          print_errors() (see below); the script appends
#                          its own main part

# (SC2034: the variables set here are the sourcing script's.)
# shellcheck shell=bash disable=SC2034
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bench_args() {
  case "${1:-}" in
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0 ;;
  esac
  [ $# -le 1 ] || { echo "usage: bash bench/$BENCH.sh [BUILD_DIR]" >&2; exit 2; }
}

skip() { echo "$BENCH: $*" >&2; exit 77; }

bench_need() {
  local b
  for b in "$@"; do
    [ -x "$b" ] || skip "missing $b (build the project first)"
  done
}

bench_setup() {
  BUILD=${1:-$_root/build}
  BUILD_SHOWN=${1:-build} # as given (the log should not show where the tree is)
  [ -d "$BUILD" ] || skip "no build directory $BUILD"
  BUILD=$(cd "$BUILD" && pwd)
  PATH=$PATH:/usr/sbin:/sbin
  [ "$(id -u)" -eq 0 ] || skip "needs root (Postfix starts as root)"
  command -v postfix >/dev/null || skip "postfix is not installed"
  SMTP_SINK=$(command -v smtp-sink || true)
  [ -n "$SMTP_SINK" ] || skip "smtp-sink (ships with postfix) not found"
  PYTHON=$(command -v python3 || true)
  [ -n "$PYTHON" ] || skip "python3 is needed"
  command -v script >/dev/null || skip "script (util-linux) is needed"
  getent passwd postfix >/dev/null && getent passwd nobody >/dev/null || skip "no postfix or nobody user"
  RECRYPT=$BUILD/src/client/recrypt
  RECRYPTCTL=$BUILD/src/ctl/recryptctl
  export RECRYPT_MILTER=$BUILD/src/milter/recrypt-milter
}

num() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "$BENCH: $1 must be a positive integer, not '$2'" >&2; exit 2; }; }

SINK_PID=
BENCH_AT_EXIT=()
# Our processes first, then the library's cleanup (milter, Postfix, $T);
# it takes the exit status from $?.
_bench_cleanup() {
  local rc=$? f
  trap - ERR
  set +e
  sink_stop
  for f in "${BENCH_AT_EXIT[@]}"; do "$f"; done
  (exit "$rc")
  _pf_cleanup
}
bench_tmp() {
  T=$(mktemp -d "${TMPDIR:-/tmp}/recrypt-$1.XXXXXX")
  # shellcheck source=../tests/integration/postfix-lib.sh
  source "$_root/tests/integration/postfix-lib.sh"
  trap _bench_cleanup EXIT
  _bench_ports=" $PF_PORT $MILTER_PORT $PF_FANOUT_PORT "
}

new_port() {
  local p
  p=$(free_port)
  while [[ $_bench_ports == *" $p "* ]]; do p=$(free_port); done
  _bench_ports="$_bench_ports$p "
  echo "$p"
}

bench_banner() {
  echo "recrypt $BENCH: $(postconf -d -h mail_version 2>/dev/null | sed 's/^/Postfix /'), $("$RECRYPT_MILTER" -V 2>&1 | head -1)"
  echo "machine: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) online CPUs, $(awk '/MemTotal/ {printf "%d MiB RAM", $2/1024}' /proc/meminfo)"
  echo "build: $1 (CMAKE_BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null))"
}

bench_store_init() {
  svc=$("$RECRYPTCTL" server init --db "$T/db" 2>/dev/null)
  [ -n "$svc" ] || { echo "$BENCH: recryptctl server init failed" >&2; exit 1; }
}

bench_milter_conf() {
  mkdir -p "$MILTER_SPOOL"
  chmod 700 "$MILTER_SPOOL"
  echo "# recrypt-milter benchmark config $3"
  echo "Socket $1"
  echo "Database $T/db"
  echo "Syslog no"
  echo "LogLevel $2"
  echo "TemporaryDirectory $MILTER_SPOOL"
}

sink_start() {
  sink_stop
  "$SMTP_SINK" -4 -c -u nobody -m 512 "127.0.0.1:$SINK_PORT" 1024 >"$T/sink.out" 2>&1 &
  SINK_PID=$!
  local i
  for i in $(seq 1 100); do
    _port_open "$SINK_PORT" && return 0
    kill -0 "$SINK_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$BENCH: smtp-sink does not answer on 127.0.0.1:$SINK_PORT: $(head -c 300 "$T/sink.out")" >&2
  return 1
}
sink_stop() {
  [ -n "$SINK_PID" ] || return 0
  kill -TERM "$SINK_PID" 2>/dev/null || true
  wait "$SINK_PID" 2>/dev/null || true
  SINK_PID=
}
# sink_msgs: transactions smtp-sink has received (its last -c counter).
sink_msgs() { tr '\r' '\n' <"$T/sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1; }

div() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.4f", (b > 0 ? a / b : 0)}'; }
# kv KEY LINE: the value of KEY=value in LINE.
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2" | head -1; }

# send_all(port, conc, timeout, sender, items): sends every (recipients,
# data) of items to 127.0.0.1:port over conc connections, one transaction
# each, the connections kept open; returns (t0, accepted, errors, t_smtp):
# the start (time.monotonic()), the transactions accepted, the errors, and
# the seconds until the last one was answered. print_errors(errors): the
# first three as "error=..." lines.
bench_py_sender() {
  cat <<'EOF'
import os, queue, smtplib, sys, threading, time
def send_all(port, conc, timeout, sender, items):
    work = queue.Queue()
    for it in items:
        work.put(it)
    lock = threading.Lock()
    accepted, errors = [0], []
    def worker():
        s = None
        while True:
            try:
                rc, d = work.get_nowait()
            except queue.Empty:
                break
            try:
                if s is None:
                    s = smtplib.SMTP("127.0.0.1", port, "client.example.org", timeout=min(timeout, 300))
                s.sendmail(sender, rc, d)
                with lock:
                    accepted[0] += 1
            except smtplib.SMTPServerDisconnected as e:
                errors.append("disconnected: %s" % e); s = None
            except smtplib.SMTPException as e:
                errors.append(str(e))
                try:
                    s.rset()
                except Exception:
                    s = None
            except OSError as e:
                errors.append("%s" % e); s = None
        if s is not None:
            try:
                s.quit()
            except Exception:
                pass
    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return t0, accepted[0], errors, time.monotonic() - t0
def print_errors(errors):
    for e in errors[:3]:
        print("error=" + e.replace("\n", " ")[:300])
EOF
}
