# Helpers for the integration tests against a real Postfix on loopback.
# Sourced by tests/integration/test_*.sh (bash), after tests/cli/lib.sh if
# the test wants its helpers (then $T is that one's directory).
#
# Everything lives under one temporary directory $T, removed at exit: a
# private Postfix instance (its own config directory, queue, data directory,
# log file and maildirs), the milter's config, store and spool. Servers
# listen on 127.0.0.1 only, on free ports picked at random; nothing is sent
# off the machine (default_transport is error:) and no DNS lookup is made.
#
# Needs: root (Postfix starts as root), Debian's postfix (postfix, postconf,
# smtp-sink), swaks or python3, script (util-linux).
#
#   pf_mailbox ADDRESS...      give these addresses a maildir (call before pf_start)
#   pf_start [nomilter]        start the instance (with smtpd_milters unless nomilter)
#   pf_stop                    stop it and wait until its master is gone
#   pf_maildir ADDRESS         the maildir new/ directory of an address
#   pf_count ADDRESS           messages in that new/ directory
#   pf_wait_delivered N ADDRESS TIMEOUT   wait until it holds >= N messages
#   pf_queue_empty_wait TIMEOUT           wait until no message is in flight
#   pf_grep_queue PATTERN      files of the queue that hold PATTERN (status 0 if any)
#   pf_log                     the instance's log file
#   milter_start CONFIG        run recrypt-milter -f -c CONFIG, wait for its socket
#   milter_config FILE [Name value]...    write a config (defaults below)
#   milter_stop                SIGTERM, wait
#   gateway_up MEMBER... [-- MAILBOX...]   a list, its members, milter + Postfix
#   send_mail FROM RCPT... FILE           SMTP to the instance; transcript in $SMTP_OUT
#   smtp_replied PATTERN       the last transcript has a server reply matching PATTERN
#   leak_watch_start PATTERN / leak_watch_stop   poll queue and milter spool
#                              (and the milter's open files) for PATTERN meanwhile
#   free_port                  a free TCP port on 127.0.0.1
#
# Set after sourcing, these change the main.cf pf_start writes:
#   PF_RELAYHOST=[HOST]:PORT   relay every message there instead of
#                              delivering to maildirs: $PF_DOMAIN is a
#                              virtual alias domain (map: $PF_ALIASES, to be
#                              written by the caller) and the domains of
#                              PF_RELAY_DOMAINS are relayed
#   PF_MILTER                  smtpd_milters (inet:127.0.0.1:$MILTER_PORT)
#   PF_RECEIPTS=yes            delivery receipts (admin guide §5.5): main.cf
#                              routes $PF_RECEIPT_DOMAIN to a pipe(8)
#                              service "recrypt-receipt" that runs
#                              recrypt-milter -r as user nobody (its log
#                              lines also in $RECEIPT_LOG), milter_config
#                              writes ReceiptDomain, and milter_start makes
#                              the store nobody's
#   PF_FANOUT=yes              split delivery (admin guide §5.6): main.cf
#                              routes $PF_FANOUT_DOMAIN to a pipe(8) service
#                              "recrypt-fanout" that runs recrypt-fanout as
#                              user nobody (its log lines: $FANOUT_LOG), and
#                              master.cf has the milter-free listener
#                              127.0.0.1:$PF_FANOUT_PORT the copies go to;
#                              milter_config writes FanoutDomain and
#                              FanoutRelay ($FANOUT_RELAY if set, such as a
#                              proxy in front of that listener), milter_start
#                              makes the store and the spool nobody's
#   FANOUT_TIME_LOG=FILE       with PF_FANOUT: each fan-out run's wall time
#                              and peak RSS (/usr/bin/time "%e %M") go there
#   pf_fanouts                 fan-out runs Postfix finished so far (its log)
#   pf_receipts                receipts Postfix delivered so far (its log)
#   pf_wait_receipts N TIMEOUT wait until it delivered >= N
#   check_log_formats [-l FILE]... KIND[:VERDICT]...
#                              the milter's, receipts' and fan-out's log
#                              lines are as admin guide §10 says (a pass or
#                              a failed line)
#   PF_MAIN_CF_SET=("name = value" ...)   settings in place of those written
#                              (or added)

_pf_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RECRYPT_MILTER=${RECRYPT_MILTER:-$_pf_root/build/src/milter/recrypt-milter}
RECRYPT_FANOUT=${RECRYPT_FANOUT:-$(dirname "$RECRYPT_MILTER")/recrypt-fanout}
POSTFIX=${POSTFIX:-$(command -v postfix || echo /usr/sbin/postfix)}
POSTCONF=${POSTCONF:-$(command -v postconf || echo /usr/sbin/postconf)}

if [ -z "${T:-}" ]; then
  T=$(mktemp -d "${TMPDIR:-/tmp}/recrypt-it.XXXXXX")
fi
# Postfix daemons (user postfix) and the virtual delivery agent (user
# nobody) must reach their directories under $T.
chmod 711 "$T"

PF_DIR=$T/postfix          # config directory: main.cf, master.cf
PF_QUEUE=$T/queue
PF_DATA=$T/pfdata
PF_LOGDIR=$T/log
PF_LOG=$PF_LOGDIR/postfix.log
PF_MAIL=$T/mail
PF_VMAILBOX=$T/vmailbox
PF_ACCESS=$T/rcpt_access
PF_DOMAIN=${PF_DOMAIN:-example.org}
PF_ALIASES=$T/virtual
PF_RELAYHOST='' PF_RELAY_DOMAINS='' PF_MILTER='' PF_RECEIPTS=''
PF_RECEIPT_DOMAIN=receipt.invalid
PF_FANOUT='' PF_FANOUT_DOMAIN=fanout.invalid
FANOUT_LOG=$T/fanout.log
RECEIPT_LOG=$T/receipt.log
PF_MAIN_CF_SET=()
MILTER_CONF=
MILTER_SPOOL=$T/spool
MILTER_LOG=$T/milter.log
SMTP_OUT=$T/smtp.out
MILTER_PID=
_pf_started=0
_leak_pid=

: >"$PF_VMAILBOX"
: >"$PF_ACCESS"

# pf_at_exit FUNCTION: run FUNCTION first when the test ends, however it
# ends (before the milter, Postfix and the watchers are stopped). One
# mechanism for every test: a test must not set its own EXIT trap (under
# set -e, a trap that re-raises the status ends before cleaning up).
_pf_at_exit=()
pf_at_exit() { _pf_at_exit+=("$1"); }

_pf_cleanup() {
  local rc=$? f
  set +e # every step runs, whatever the one before did
  # A test that stops through set -e says where (else it would end silently).
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -n "$_pf_err" ]; then
    echo "FAIL - the test stopped early (exit $rc) at $_pf_err"
  fi
  for f in "${_pf_at_exit[@]}"; do "$f"; done
  leak_watch_stop 2>/dev/null || true
  [ -n "$_deadline_pid" ] && kill "$_deadline_pid" 2>/dev/null
  milter_stop 2>/dev/null || true
  [ "$_pf_started" = 1 ] && { pf_stop >/dev/null 2>&1 || true; }
  if [ -n "${PF_KEEP:-}" ]; then echo "# kept $T" >&2; else rm -rf "$T"; fi
  exit $rc
}
_pf_err=
trap '_pf_err="line $LINENO: $BASH_COMMAND"' ERR
trap _pf_cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PF_PORT=${PF_PORT:-$(free_port)}
MILTER_PORT=${MILTER_PORT:-$(free_port)}
while [ "$MILTER_PORT" = "$PF_PORT" ]; do MILTER_PORT=$(free_port); done
PF_FANOUT_PORT=${PF_FANOUT_PORT:-$(free_port)}
while [ "$PF_FANOUT_PORT" = "$PF_PORT" ] || [ "$PF_FANOUT_PORT" = "$MILTER_PORT" ]; do
  PF_FANOUT_PORT=$(free_port)
done

# _port_open PORT: something accepts connections on 127.0.0.1:PORT.
_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pf_mailbox() {
  local a
  for a in "$@"; do
    a=${a,,}
    echo "$a ${a#*@}/${a%@*}/" >>"$PF_VMAILBOX"
  done
}
pf_maildir() { local a=${1,,}; echo "$PF_MAIL/${a#*@}/${a%@*}/new"; }
pf_count() {
  local d
  d=$(pf_maildir "$1")
  [ -d "$d" ] || { echo 0; return; }
  find "$d" -type f | wc -l
}
pf_log() { echo "$PF_LOG"; }

# _pf_write_config MILTER: main.cf and master.cf of the instance, with
# smtpd_milters if MILTER is yes (PF_RELAYHOST, PF_MILTER, PF_MAIN_CF_SET:
# see the header).
_pf_write_config() {
  local milter=$1 uid gid set
  uid=$(id -u nobody) gid=$(id -g nobody)
  mkdir -p "$PF_DIR" "$PF_QUEUE" "$PF_DATA" "$PF_LOGDIR" "$PF_MAIL"
  chown postfix "$PF_DATA"
  chmod 700 "$PF_DATA"
  chown "$uid:$gid" "$PF_MAIL"
  chmod 700 "$PF_MAIL"
  {
    cat <<EOF
# Private test instance (tests/integration/postfix-lib.sh).
compatibility_level = 3.6
queue_directory = $PF_QUEUE
data_directory = $PF_DATA
maillog_file = $PF_LOG
maillog_file_prefixes = $PF_LOGDIR
myhostname = mx.$PF_DOMAIN
mydomain = $PF_DOMAIN
myorigin = \$myhostname
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
EOF
    if [ -z "$PF_RELAYHOST" ]; then
      cat <<EOF
relayhost =
# Nothing leaves this machine, and nothing looks up DNS.
default_transport = error:5.7.0 test instance delivers to $PF_DOMAIN only
relay_transport = error:5.7.0 test instance delivers to $PF_DOMAIN only
EOF
    else
      cat <<EOF
# Everything goes to $PF_RELAYHOST (no local delivery, no DNS): $PF_DOMAIN
# is a virtual alias domain, ${PF_RELAY_DOMAINS:-no domain} relayed.
relayhost = $PF_RELAYHOST
default_transport = smtp
relay_transport = relay
relay_domains = $PF_RELAY_DOMAINS
virtual_alias_domains = $PF_DOMAIN
virtual_alias_maps = texthash:$PF_ALIASES
EOF
    fi
    cat <<EOF
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
notify_classes =
biff = no
smtpd_banner = \$myhostname ESMTP recrypt-test
EOF
    if [ -z "$PF_RELAYHOST" ]; then
      cat <<EOF
# Maildirs.
virtual_mailbox_domains = $PF_DOMAIN
virtual_mailbox_base = $PF_MAIL
virtual_mailbox_maps = texthash:$PF_VMAILBOX
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
EOF
    fi
    cat <<EOF
virtual_mailbox_limit = 0
mailbox_size_limit = 0
message_size_limit = 104857600
smtpd_recipient_restrictions = check_recipient_access texthash:$PF_ACCESS, permit_mynetworks, reject_unauth_destination
# Quick retries and bounces.
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
bounce_queue_lifetime = 1h
EOF
    if [ "$milter" = yes ]; then
      cat <<EOF
smtpd_milters = ${PF_MILTER:-inet:127.0.0.1:$MILTER_PORT}
non_smtpd_milters =
milter_default_action = tempfail
milter_protocol = 6
milter_connect_timeout = 10s
milter_command_timeout = 20s
milter_content_timeout = 30s
EOF
    fi
    local maps=()
    [ "$PF_RECEIPTS" != yes ] || maps+=("$PF_RECEIPT_DOMAIN=recrypt-receipt:")
    [ "$PF_FANOUT" != yes ] || maps+=("$PF_FANOUT_DOMAIN=recrypt-fanout:")
    if [ ${#maps[@]} -gt 0 ]; then
      echo "# recrypt's receipts and fan-out go to their pipe services."
      echo "transport_maps = inline:{$(IFS=,; echo "${maps[*]}")}"
    fi
  } >"$PF_DIR/main.cf"
  # Each "name = value" of PF_MAIN_CF_SET takes the place of the line that
  # sets name, or goes at the end (a second line would make Postfix warn).
  for set in "${PF_MAIN_CF_SET[@]}"; do
    SET=$set awk '
      BEGIN { set = ENVIRON["SET"]; name = set; sub(/[ \t]*=.*/, "", name) }
      { n = $0; sub(/[ \t]*=.*/, "", n) }
      n == name && !/^[ \t#]/ { if (!done) print set; done = 1; next }
      { print }
      END { if (!done) print set }' "$PF_DIR/main.cf" >"$PF_DIR/main.cf.new"
    mv "$PF_DIR/main.cf.new" "$PF_DIR/main.cf"
  done
  # Every service runs without chroot from this directory; only the smtp
  # listener on 127.0.0.1:PF_PORT.
  cat >"$PF_DIR/master.cf" <<EOF
127.0.0.1:$PF_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
  if [ "$PF_RECEIPTS" = yes ]; then
    # The receipt command's log lines (stderr with Syslog no) are kept in
    # $RECEIPT_LOG, and still handed to Postfix (its delivery line).
    cat >"$T/receipt-wrapper" <<EOF
#!/bin/sh
{ out=\$("$RECRYPT_MILTER" "\$@" 2>&1 1>&3); rc=\$?; } 3>&1
if [ -n "\$out" ]; then
  printf '%s\\n' "\$out" >>"$RECEIPT_LOG"
  printf '%s\\n' "\$out" >&2
fi
exit \$rc
EOF
    chmod 755 "$T/receipt-wrapper"
    : >>"$RECEIPT_LOG"
    chown nobody "$RECEIPT_LOG"
    cat >>"$PF_DIR/master.cf" <<EOF
recrypt-receipt unix -  n       n       -       -       pipe
  user=nobody argv=$T/receipt-wrapper -c $MILTER_CONF -r \${recipient} -Q \${queue_id}
EOF
  fi
  if [ "$PF_FANOUT" = yes ]; then
    # The fan-out's log lines (stderr with Syslog no) go to $FANOUT_LOG;
    # Postfix would keep them only in a bounce.
    # With FANOUT_TIME_LOG (a benchmark), /usr/bin/time appends each
    # run's wall time (s) and peak resident set (KiB) there.
    local timer=
    if [ -n "${FANOUT_TIME_LOG:-}" ] && [ -x /usr/bin/time ]; then
      timer="/usr/bin/time -a -o $FANOUT_TIME_LOG -f %e\\ %M"
      : >>"$FANOUT_TIME_LOG"
      chown nobody "$FANOUT_TIME_LOG"
    fi
    cat >"$T/fanout-wrapper" <<EOF
#!/bin/sh
exec $timer "$RECRYPT_FANOUT" "\$@" 2>>"$FANOUT_LOG"
EOF
    chmod 755 "$T/fanout-wrapper"
    : >>"$FANOUT_LOG"
    chown nobody "$FANOUT_LOG"
    # As in the admin guide: the fan-out transport, and the listener the
    # copies come back through, without milters (FILTER_README).
    cat >>"$PF_DIR/master.cf" <<EOF
recrypt-fanout unix -   n       n       -       2       pipe
  flags=q user=nobody argv=$T/fanout-wrapper -c $MILTER_CONF -Q \${queue_id} \${recipient}
127.0.0.1:$PF_FANOUT_PORT inet n - n - - smtpd
  -o smtpd_milters=
  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o mynetworks=127.0.0.0/8
EOF
  fi
}

# check_log_formats [-l FILE]... KIND[:VERDICT]...: every line the milter,
# the receipt command and the fan-out logged (and those of each FILE)
# matches the formats of the admin guide, section 10
# (tests/docs/check_log_formats.py), and each KIND[:VERDICT] was seen
# (post:recrypted, receipt:delivered, run:delivered, counters, ...).
check_log_formats() {
  local logs=() f out rc=0
  while [ "${1:-}" = -l ]; do logs+=(--log "$2"); shift 2; done
  for f in "$MILTER_LOG" "$RECEIPT_LOG" "$FANOUT_LOG"; do
    [ -s "$f" ] && logs+=(--log "$f")
  done
  out=$(python3 "$_pf_root/tests/docs/check_log_formats.py" "${logs[@]}" \
    --expect "$(IFS=,; echo "$*")" 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then
    pass "logs: every line as in the admin guide, section 10 ($(sed -n 's/^# \([0-9]* log lines\).*seen: /\1; seen: /p' <<<"$out"))"
  else
    failed "logs: not as in the admin guide, section 10:"
    grep -v '^#' <<<"$out" | head -n 10 | sed 's/^/  /'
  fi
}

# pf_receipts: how many delivery receipts Postfix delivered (its log).
pf_fanouts() {
  { grep -c 'relay=recrypt-fanout.* status=sent' "$PF_LOG" 2>/dev/null || true; } | tail -1
}
pf_receipts() {
  { grep -c 'relay=recrypt-receipt.* status=sent' "$PF_LOG" 2>/dev/null || true; } | tail -1
}
# pf_wait_receipts N TIMEOUT: 0 once Postfix delivered >= N receipts.
pf_wait_receipts() {
  local n=$1 end=$((SECONDS + ${2:-20}))
  while [ "$(pf_receipts)" -lt "$n" ]; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.2
  done
}

# pf_start [nomilter]: start the instance; on failure show why (Postfix
# prints its fatal: line only on a terminal, hence script) and return 1.
pf_start() {
  local milter=yes
  [ "${1:-}" = nomilter ] && milter=no
  _pf_write_config "$milter"
  local out=$T/pf-start.out rc=0
  script -qec "'$POSTFIX' -c '$PF_DIR' start" /dev/null >"$out" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] || grep -q 'fatal:' "$out"; then
    echo "pf_start: postfix refused to start (exit $rc):" >&2
    if grep -q 'fatal:' "$out"; then
      tr -d '\r' <"$out" | grep 'fatal:' | sed 's/^/  /' >&2
    else
      tr -d '\r' <"$out" | tail -15 | sed 's/^/  /' >&2
    fi
    [ -f "$PF_LOG" ] && grep -E 'fatal|error|panic' "$PF_LOG" | tail -5 | sed 's/^/  log: /' >&2
    return 1
  fi
  _pf_started=1
  local i
  for i in $(seq 1 100); do
    _port_open "$PF_PORT" && return 0
    sleep 0.1
  done
  echo "pf_start: nothing answers on 127.0.0.1:$PF_PORT after 10 s" >&2
  [ -f "$PF_LOG" ] && tail -20 "$PF_LOG" | sed 's/^/  log: /' >&2
  return 1
}

_pf_master_pid() {
  local f=$PF_QUEUE/pid/master.pid
  [ -f "$f" ] && tr -d ' \n' <"$f"
}

pf_stop() {
  [ "$_pf_started" = 1 ] || return 0
  local pid
  pid=$(_pf_master_pid || true)
  "$POSTFIX" -c "$PF_DIR" stop >/dev/null 2>&1 || true
  if [ -n "$pid" ]; then
    local i
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      "$POSTFIX" -c "$PF_DIR" abort >/dev/null 2>&1 || true
      sleep 0.5
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  _pf_started=0
}

# pf_wait_delivered N ADDRESS TIMEOUT: 0 once the maildir holds >= N messages.
pf_wait_delivered() {
  local n=$1 addr=$2 timeout=${3:-20} end
  end=$((SECONDS + timeout))
  while [ "$(pf_count "$addr")" -lt "$n" ]; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.2
  done
}

# Messages in flight (not counting the hold queue).
_pf_in_flight() {
  local d n=0
  for d in maildrop incoming active deferred; do
    [ -d "$PF_QUEUE/$d" ] && n=$((n + $(find "$PF_QUEUE/$d" -type f | wc -l)))
  done
  echo "$n"
}

# pf_queue_empty_wait TIMEOUT: 0 once no message is in flight.
pf_queue_empty_wait() {
  local timeout=${1:-20} end
  end=$((SECONDS + timeout))
  while [ "$(_pf_in_flight)" -ne 0 ]; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.2
  done
}

# pf_grep_queue PATTERN: print the queue files holding PATTERN (fixed
# string); status 0 if there is one. Sockets and FIFOs are skipped.
pf_grep_queue() {
  local d dirs=()
  for d in maildrop incoming active deferred hold corrupt saved bounce defer trace; do
    [ -d "$PF_QUEUE/$d" ] && dirs+=("$PF_QUEUE/$d")
  done
  [ ${#dirs[@]} -gt 0 ] || return 1
  grep -rlaF -D skip -- "$1" "${dirs[@]}" 2>/dev/null
}

# _milter_grep PATTERN: files in the milter's spool, or open in the milter
# (its spool files are unlinked at once), holding PATTERN.
_milter_grep() {
  local hit=1 f
  if [ -d "$MILTER_SPOOL" ] && grep -rlaF -D skip -- "$1" "$MILTER_SPOOL" 2>/dev/null; then hit=0; fi
  if [ -n "$MILTER_PID" ] && [ -d "/proc/$MILTER_PID/fd" ]; then
    for f in /proc/"$MILTER_PID"/fd/*; do
      [ -f "$f" ] || continue
      if grep -qaF -- "$1" "$f" 2>/dev/null; then
        echo "$f -> $(readlink "$f")"
        hit=0
      fi
    done
  fi
  return $hit
}

# leak_watch_start PATTERN: a background poller that records in
# $T/leaks every queue file or milter spool file seen holding PATTERN.
leak_watch_start() {
  leak_watch_stop
  : >"$T/leaks"
  (
    trap 'exit 0' TERM
    exec >/dev/null 2>&1
    while :; do
      pf_grep_queue "$1" >>"$T/leaks" 2>/dev/null || true
      _milter_grep "$1" >>"$T/leaks" 2>/dev/null || true
      sleep 0.05
    done
  ) &
  _leak_pid=$!
}
leak_watch_stop() {
  [ -n "$_leak_pid" ] || return 0
  kill "$_leak_pid" 2>/dev/null || true
  wait "$_leak_pid" 2>/dev/null || true
  _leak_pid=
}

# pf_deadline SECONDS: end this test (SIGTERM to this shell, so the EXIT
# trap cleans up) if it is still running after SECONDS.
_deadline_pid=
pf_deadline() {
  local end=$((SECONDS + $1)) me=$$
  (
    trap 'exit 0' TERM
    while [ "$SECONDS" -lt "$end" ]; do sleep 1; done
    echo "FAIL - deadline: still running after $1 s; stopping" >&2
    kill -TERM "$me"
  ) >/dev/null &
  _deadline_pid=$!
}

# milter_config FILE [Name value]...: the test config, plus or overriding
# the given settings.
milter_config() {
  local file=$1; shift
  mkdir -p "$MILTER_SPOOL"
  chmod 700 "$MILTER_SPOOL"
  {
    echo "# recrypt-milter test config (tests/integration/postfix-lib.sh)"
    echo "Socket inet:$MILTER_PORT@127.0.0.1"
    echo "Database ${MILTER_DB:-$T/db}"
    echo "Syslog no"
    echo "LogLevel debug"
    echo "TemporaryDirectory $MILTER_SPOOL"
    [ "$PF_RECEIPTS" != yes ] || echo "ReceiptDomain $PF_RECEIPT_DOMAIN"
    [ "$PF_FANOUT" != yes ] || printf 'FanoutDomain %s\nFanoutRelay %s\n' \
      "$PF_FANOUT_DOMAIN" "${FANOUT_RELAY:-127.0.0.1:$PF_FANOUT_PORT}"
    while [ $# -ge 2 ]; do echo "$1 $2"; shift 2; done
  } >"$file"
  MILTER_CONF=$file
}

# milter_start CONFIG: run the milter in the foreground (in the background
# of this shell), its stderr in $MILTER_LOG; wait until it accepts on
# 127.0.0.1:$MILTER_PORT, or until its unix socket is there if CONFIG says
# "Socket unix:PATH".
milter_start() {
  local conf=$1 sock
  [ -x "$RECRYPT_MILTER" ] || { echo "milter_start: no milter at $RECRYPT_MILTER" >&2; return 1; }
  # The receipt command runs as nobody (pipe(8) never runs one as root).
  [ "$PF_RECEIPTS" != yes ] && [ "$PF_FANOUT" != yes ] || chown -R nobody "${MILTER_DB:-$T/db}"
  # The fan-out stages the post it reads in the spool directory.
  [ "$PF_FANOUT" != yes ] || chown nobody "$MILTER_SPOOL"
  sock=$(sed -n 's/^Socket[[:space:]]\{1,\}unix://p' "$conf" | tail -n 1)
  # Started as root, the milter needs UserID or an explicit -u (-u root).
  local asuser=()
  grep -qi '^UserID[[:space:]]' "$conf" || asuser=(-u "$(id -un)")
  "$RECRYPT_MILTER" -f -c "$conf" "${asuser[@]}" >>"$MILTER_LOG" 2>&1 &
  MILTER_PID=$!
  local i
  for i in $(seq 1 100); do
    if ! kill -0 "$MILTER_PID" 2>/dev/null; then
      echo "milter_start: the milter exited:" >&2
      tail -20 "$MILTER_LOG" | sed 's/^/  milter: /' >&2
      MILTER_PID=
      return 1
    fi
    if [ -n "$sock" ]; then
      [ -S "$sock" ] && return 0
    else
      _port_open "$MILTER_PORT" && return 0
    fi
    sleep 0.1
  done
  echo "milter_start: nothing answers on ${sock:-127.0.0.1:$MILTER_PORT} after 10 s" >&2
  tail -20 "$MILTER_LOG" | sed 's/^/  milter: /' >&2
  return 1
}

milter_stop() {
  [ -n "$MILTER_PID" ] || return 0
  kill -TERM "$MILTER_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do
    kill -0 "$MILTER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$MILTER_PID" 2>/dev/null && { echo "milter_stop: still running after 10 s; SIGKILL" >&2; kill -KILL "$MILTER_PID" 2>/dev/null || true; }
  wait "$MILTER_PID" 2>/dev/null || true
  MILTER_PID=
}

# gateway_up MEMBER... [-- MAILBOX...]: a list served by the gateway, as the
# client tests need it. The store $T/db with its service key ($SVC), the
# owner keystore $T/owner with the list $LIST, a device (newdev) and a
# membership for each MEMBER (a local part in $D), the list key in list.key
# and the list's bounce address in $BOUNCE; mailboxes for the members, the
# extra MAILBOXes, the list and the bounce address; the milter, and Postfix
# with it for SMTP and local submission (non_smtpd_milters, admin guide
# 5.2); RECRYPT_SENDMAIL set to this Postfix's sendmail. Returns non-zero
# (having said why) when the milter or Postfix does not start.
gateway_up() {
  local owner=(env RECRYPT_HOME="$T/owner" "$RECRYPTCTL") m boxes=()
  SVC=$("$RECRYPTCTL" server init --db "$T/db" 2>/dev/null)
  "${owner[@]}" init >owner.pub 2>/dev/null
  "${owner[@]}" list create "$LIST" --service-key "$SVC" --apply "$T/db" 2>/dev/null
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    newdev "$1"
    "${owner[@]}" member add "$LIST" "$1@$D" --device "$(cat "$1.pub")" --apply "$T/db" 2>/dev/null
    boxes+=("$1@$D")
    shift
  done
  [ $# -eq 0 ] || shift
  "${owner[@]}" list key "$LIST" >list.key 2>list.err
  # Members pin the list's signing key as the owner hands it over at
  # enrolment (a message never pins); GW_UNPINNED: members who do not.
  LIST_FP=$(fp_in list.err)
  for m in "${boxes[@]}"; do
    case " ${GW_UNPINNED:-} " in *" ${m%@*} "*) continue ;; esac
    pin_devices "$LIST" "$LIST_FP" "${m%@*}"
  done
  BOUNCE=$(sed -n 's/^list .* bounce \([^ ]*\).*/\1/p' <("$RECRYPTCTL" show --db "$T/db" "$LIST"))
  sleep 1 # posts must be dated after the members' enrolment
  pf_mailbox "${boxes[@]}" "$@" "$LIST" "$BOUNCE"
  milter_config "$T/milter.conf"
  milter_start "$T/milter.conf" || { failed "milter starts"; return 1; }
  PF_MAIN_CF_SET=("non_smtpd_milters = inet:127.0.0.1:$MILTER_PORT")
  pf_start || { failed "postfix starts"; return 1; }
  export RECRYPT_SENDMAIL="/usr/sbin/sendmail -C $PF_DIR"
}

# send_mail FROM RCPT... FILE: one SMTP transaction to the instance. The
# transcript goes to $SMTP_OUT: server replies on lines starting "<- " (or
# "<** " for errors), as swaks writes them. Returns swaks' exit status
# (0 all well, 24 no recipient accepted, 25 DATA refused, 26 message
# refused after the final dot, ...).
send_mail() {
  local from=$1; shift
  local n=$#
  local file=${!n}
  local rcpts=("${@:1:$((n - 1))}")
  local rc=0
  if command -v swaks >/dev/null 2>&1; then
    local to
    to=$(IFS=,; echo "${rcpts[*]}")
    swaks --server 127.0.0.1 --port "$PF_PORT" --helo client.example.org \
      --from "$from" --to "$to" --data "@$file" --timeout 45 --suppress-data \
      >"$SMTP_OUT" 2>&1 || rc=$?
  else
    python3 - "$PF_PORT" "$from" "$file" "${rcpts[@]}" >"$SMTP_OUT" 2>&1 <<'EOF' || rc=$?
import smtplib, sys
port, sender, path, rcpts = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
def show(code, msg, good):
    for line in (msg.decode(errors="replace") or "").split("\n"):
        print(("<-  " if good else "<** ") + "%d %s" % (code, line))
s = smtplib.SMTP("127.0.0.1", port, "client.example.org", timeout=45)
c, m = s.ehlo(); show(c, m, c == 250)
c, m = s.mail(sender); show(c, m, c == 250)
if c != 250: sys.exit(23)
ok = 0
for r in rcpts:
    print(" -> RCPT TO:<%s>" % r)
    c, m = s.rcpt(r); show(c, m, c in (250, 251)); ok += c in (250, 251)
if not ok: sys.exit(24)
c, m = s.docmd("DATA"); show(c, m, c == 354)
if c != 354: sys.exit(25)
data = open(path, "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
data = b"\r\n".join(b"." + l if l.startswith(b".") else l for l in data.split(b"\r\n"))
if not data.endswith(b"\r\n"): data += b"\r\n"
s.send(data + b".\r\n")
c, m = s.getreply(); show(c, m, c == 250)
s.quit()
sys.exit(0 if c == 250 else 26)
EOF
  fi
  return $rc
}

# smtp_replied PATTERN: a server reply of the last transaction matches the
# extended regexp PATTERN (matched against "CODE TEXT").
smtp_replied() {
  # (grep reads all its input: no SIGPIPE for sed under pipefail)
  smtp_replies | grep -E -- "$1" >/dev/null
}
# smtp_replies: the server replies of the last transaction, one line each.
smtp_replies() { sed -n 's/^<[-*~][-*~ ]* *//p' "$SMTP_OUT"; }
