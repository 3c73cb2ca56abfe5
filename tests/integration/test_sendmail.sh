# recrypt-milter behind a real Sendmail on loopback. Debian's sendmail-bin
# conflicts with postfix, so Sendmail runs in a bookworm chroot made by
# tests/integration/sendmail-chroot.sh (cached in $SENDMAIL_CHROOT, default
# <repo>/build-sendmail-chroot); the milter runs outside it, on a TCP port
# on 127.0.0.1. A store made with recryptctl (alice with 1 device, bob with
# 2), a sealed post and a plaintext post sent by SMTP, and what the members'
# mailboxes inside the chroot hold afterwards. Then split delivery (admin
# guide §5.6 and §6), with the sendmail.mc lines the guide gives: the milter
# restarted with FanoutDomain, a second list (4 members, dave with 3
# devices, and a revoked one), the recrypt-fanout mailer routed by
# mailertable, and a second daemon port without milters that the copies
# come back through: one copy per member with its own devices' stanzas
# only, opened by every device, nothing for the revoked member, a replay
# discarded, no plaintext in the queue or the spool. Needs root, swaks or
# python3, and the chroot (made here if missing: needs debootstrap and a
# Debian mirror). Exit 77 (skipped) when those or the milter are missing.

_here=$(cd "$(dirname "$0")" && pwd)
skip() { echo "skip - $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (chroot, mount, Sendmail)"
PATH=$PATH:/usr/sbin:/sbin
command -v swaks >/dev/null || command -v python3 >/dev/null || skip "neither swaks nor python3"
command -v python3 >/dev/null || skip "python3 is needed to read the mailboxes"
_m=${RECRYPT_MILTER:-$_here/../../build/src/milter/recrypt-milter}
[ -x "$_m" ] || skip "no milter binary at $_m (build target recrypt-milter)"
SM_ROOT=${SENDMAIL_CHROOT:-$(cd "$_here/../.." && pwd)/build-sendmail-chroot}
if [ ! -f "$SM_ROOT/.recrypt-sendmail-ready" ]; then
  command -v debootstrap >/dev/null || skip "no Sendmail chroot in $SM_ROOT and no debootstrap to make one"
  SENDMAIL_CHROOT=$SM_ROOT "$_here/sendmail-chroot.sh" >&2 || skip "could not make the Sendmail chroot (see above)"
fi

source "$_here/../cli/lib.sh"
# PF_PORT is the port send_mail talks to: here Sendmail's.
source "$_here/postfix-lib.sh"
SM_PORT=$PF_PORT
# Split delivery: the daemon port without milters (FanoutRelay) and the
# fan-out domain, as milter_config writes them once PF_FANOUT=yes.
SM_FANOUT_PORT=$PF_FANOUT_PORT
SM_FANOUT_DOMAIN=$PF_FANOUT_DOMAIN
SM_LOG=$T/sendmail.log
SM_PID=
_sm_proc=0
_sm_bind=0
_sm_syslog_pid=
[ -x "$RECRYPT_FANOUT" ] || { failed "no recrypt-fanout at $RECRYPT_FANOUT (build target recrypt-fanout)"; finish; exit 1; }
# leak_watch_start (postfix-lib.sh) looks into the queue through
# pf_grep_queue: here Sendmail's queue directories in the chroot.
pf_grep_queue() {
  grep -rlaF -D skip -- "$1" "$SM_ROOT/var/spool/mqueue" "$SM_ROOT/var/spool/mqueue-client" 2>/dev/null
}

# Stop Sendmail and everything else running inside the chroot, and unmount
# /proc and $T if this test mounted them there; then postfix-lib.sh's
# cleanup (milter, $T).
sm_stop() {
  if [ -n "$SM_PID" ]; then
    kill -TERM "$SM_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do kill -0 "$SM_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SM_PID" 2>/dev/null || true
    wait "$SM_PID" 2>/dev/null || true
    SM_PID=
  fi
  # Delivery children Sendmail forked (their root is the chroot).
  local p r
  for p in /proc/[0-9]*; do
    r=$(readlink "$p/root" 2>/dev/null) || continue
    [ "$r" = "$SM_ROOT" ] && kill -KILL "${p#/proc/}" 2>/dev/null || true
  done
  if [ -n "$_sm_syslog_pid" ]; then
    kill "$_sm_syslog_pid" 2>/dev/null || true
    wait "$_sm_syslog_pid" 2>/dev/null || true
    _sm_syslog_pid=
  fi
  rm -f "$SM_ROOT/dev/log"
  if [ "$_sm_bind" = 1 ]; then
    umount "$SM_ROOT$T" 2>/dev/null || umount -l "$SM_ROOT$T" 2>/dev/null || true
    rmdir "$SM_ROOT$T" 2>/dev/null || true
    _sm_bind=0
  fi
  if [ "$_sm_proc" = 1 ]; then
    umount "$SM_ROOT/proc" 2>/dev/null || umount -l "$SM_ROOT/proc" 2>/dev/null || true
    _sm_proc=0
  fi
}
pf_at_exit sm_stop
pf_deadline 240

sm() { chroot "$SM_ROOT" "$@"; }
D=example.org
LIST=list@$D
ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }

# --- the store: alice (1 device), bob (2).
svc=$("$RECRYPTCTL" server init --db "$T/db" 2>/dev/null)
ctl init >owner.pub 2>/dev/null
ctl list create "$LIST" --service-key "$svc" --apply "$T/db" 2>/dev/null
for d in alice bob-laptop bob-phone poster; do newdev "$d"; done
ctl member add "$LIST" alice@$D --device "$(cat alice.pub)" --apply "$T/db" 2>/dev/null
ctl member add "$LIST" bob@$D --device "$(cat bob-laptop.pub)" --device "$(cat bob-phone.pub)" --apply "$T/db" 2>/dev/null
ctl list key "$LIST" >list.key 2>list.err
pin_devices "$LIST" "$(fp_in list.err)" alice bob-laptop bob-phone poster
"$RECRYPTCTL" show --db "$T/db" "$LIST" >show.txt
BOUNCE=$(sed -n 's/^list .* bounce \([^ ]*\).*/\1/p' show.txt)
if [ "$(grep -c '^  member .* active$' show.txt)" -eq 2 ] && [ -n "$BOUNCE" ]; then
  pass "store: 2 active members, bounce address $BOUNCE"
else
  failed "store set-up: $(cat show.txt)"
fi
# The list for split delivery (part 3): carol (1 device), dave (3), erin
# (1), frank (1), and gina revoked (which rotates the list to epoch 2).
SLIST=team@$D
ctl list create "$SLIST" --service-key "$svc" --apply "$T/db" 2>/dev/null
for d in carol dave-laptop dave-phone dave-tablet erin frank gina; do newdev "$d"; done
ctl member add "$SLIST" carol@$D --device "$(cat carol.pub)" --apply "$T/db" 2>/dev/null
ctl member add "$SLIST" dave@$D --device "$(cat dave-laptop.pub)" --device "$(cat dave-phone.pub)" \
  --device "$(cat dave-tablet.pub)" --apply "$T/db" 2>/dev/null
for m in erin frank gina; do
  ctl member add "$SLIST" $m@$D --device "$(cat $m.pub)" --apply "$T/db" 2>/dev/null
done
ctl member revoke "$SLIST" gina@$D --apply "$T/db" 2>/dev/null
ctl list key "$SLIST" >team.key 2>team.err
pin_devices "$SLIST" "$(fp_in team.err)" carol dave-laptop dave-phone dave-tablet erin frank gina poster
"$RECRYPTCTL" show --db "$T/db" "$SLIST" >show-team.txt
SBOUNCE=$(sed -n 's/^list .* bounce \([^ ]*\).*/\1/p' show-team.txt)
if [ "$(grep -c '^  member .* active$' show-team.txt)" -eq 4 ] && grep -q "^  member gina@$D revoked" show-team.txt &&
  [ -n "$SBOUNCE" ]; then
  pass "store: a second list $SLIST, 4 active members (dave with 3 devices), gina revoked"
else
  failed "store set-up of $SLIST: $(cat show-team.txt)"
fi
SMEMBERS=(carol dave erin frank)
declare -A SDEVICES=([carol]="carol" [dave]="dave-laptop dave-phone dave-tablet" [erin]="erin" [frank]="frank")
sleep 1 # stanzas go to devices enrolled before the post's Date

# --- Sendmail's configuration inside the chroot, rebuilt for this run.
# Local users for the members, the poster and a list master that the list
# and bounce addresses are aliased to (so that RCPT accepts them; the milter
# replaces the list recipient before delivery).
USERS=(alice bob poster listmaster carol dave erin frank gina)
for u in "${USERS[@]}"; do
  sm getent passwd "$u" >/dev/null || sm useradd -M -d /nonexistent -s /usr/sbin/nologin "$u"
  rm -f "$SM_ROOT/var/mail/$u"
done
find "$SM_ROOT/var/spool/mqueue" -type f -delete 2>/dev/null || true
echo "$D" >"$SM_ROOT/etc/mail/local-host-names"
cat >"$SM_ROOT/etc/mail/aliases" <<EOA
postmaster: root
MAILER-DAEMON: postmaster
root: listmaster
${LIST%@*}: listmaster
${BOUNCE%@*}: listmaster
${SLIST%@*}: listmaster
${SBOUNCE%@*}: listmaster
EOA
{
  # The packaged sendmail.mc with the test's two listeners in place of its
  # own, local delivery by mail.local (the packaged sensible-mda is not
  # installed), a fixed host name and no DNS check of sender domains; the
  # milter. Then split delivery as the admin guide (§6) sets it up: the
  # mailertable, the daemon port without milters (InputMailFilters= empty)
  # that recrypt-fanout submits the copies to, and the recrypt-fanout
  # mailer (here its program is the wrapper below, which runs it in the
  # chroot, and -c names the test's config). F=S: Sendmail runs it as
  # root, not as a local sender's uid, and recrypt-fanout becomes UserID.
  grep -v '^DAEMON_OPTIONS' "$SM_ROOT/etc/mail/sendmail.mc.dist" | sed '/^MAILER_DEFINITIONS/,$d'
  echo "DAEMON_OPTIONS(\`Port=$SM_PORT, Addr=127.0.0.1, Name=MTA')dnl"
  echo "DAEMON_OPTIONS(\`Port=$SM_FANOUT_PORT, Addr=127.0.0.1, Name=MTA-fanout, InputMailFilters=')dnl"
  echo "define(\`confDOMAIN_NAME', \`mx.$D')dnl"
  echo "FEATURE(\`accept_unresolvable_domains')dnl"
  echo "FEATURE(\`mailertable')dnl"
  echo "define(\`LOCAL_MAILER_PATH', \`/usr/libexec/sendmail/mail.local')dnl"
  echo "define(\`LOCAL_MAILER_ARGS', \`mail.local -d \$u')dnl"
  sed -n '/^MAILER_DEFINITIONS/,$p' "$SM_ROOT/etc/mail/sendmail.mc.dist"
  echo "INPUT_MAIL_FILTER(\`recrypt', \`S=inet:$MILTER_PORT@127.0.0.1, F=T')dnl"
  echo "MAILER_DEFINITIONS"
  echo "Mrecrypt-fanout, P=$T/fanout-wrapper, F=lsSnqu8, T=X-Unix/X-Unix/X-Unix,"
  echo "        A=recrypt-fanout -c $T/milter.conf -Q \$i \$u"
} >"$SM_ROOT/etc/mail/sendmail.mc"
printf '%s\trecrypt-fanout:%s\n' "$SM_FANOUT_DOMAIN" "$SM_FANOUT_DOMAIN" >"$SM_ROOT/etc/mail/mailertable"
if ! mountpoint -q "$SM_ROOT/proc"; then mount -t proc proc "$SM_ROOT/proc" && _sm_proc=1; fi
cf=$SM_ROOT/etc/mail/sendmail.cf
if sm sh -c 'cd /etc/mail && m4 /usr/share/sendmail/cf/m4/cf.m4 sendmail.mc >sendmail.cf.new && mv sendmail.cf.new sendmail.cf' 2>"$T/m4.err" &&
  grep -q "^Xrecrypt, S=inet:$MILTER_PORT@127.0.0.1" "$cf"; then
  pass "sendmail.cf rebuilt with m4, with the milter on inet:$MILTER_PORT@127.0.0.1"
else
  failed "sendmail.cf: $(head -c 400 "$T/m4.err")"
fi
# The daemon ports: exactly the test's two, the second with an empty
# filter list; the fan-out mailer as written; the mailertable map.
if [ "$(grep -c '^O DaemonPortOptions=' "$cf")" -eq 2 ] &&
  grep -qxF "O DaemonPortOptions=Port=$SM_PORT, Addr=127.0.0.1, Name=MTA" "$cf" &&
  grep -qxF "O DaemonPortOptions=Port=$SM_FANOUT_PORT, Addr=127.0.0.1, Name=MTA-fanout, InputMailFilters=" "$cf" &&
  grep -qxF "Mrecrypt-fanout, P=$T/fanout-wrapper, F=lsSnqu8, T=X-Unix/X-Unix/X-Unix," "$cf" &&
  grep -qxF "        A=recrypt-fanout -c $T/milter.conf -Q \$i \$u" "$cf" && grep -q '^Kmailertable ' "$cf"; then
  pass "sendmail.cf: listeners $SM_PORT and $SM_FANOUT_PORT (no milters), the recrypt-fanout mailer, the mailertable"
else
  failed "sendmail.cf lacks split delivery's lines: $(grep -e '^O DaemonPortOptions' -e '^Mrecrypt' -e '^Kmailertable' "$cf" | tr '\n' '|')"
fi
sm newaliases >"$T/newaliases.out" 2>&1 || failed "newaliases: $(cat "$T/newaliases.out")"
sm sh -c 'makemap hash /etc/mail/access < /etc/mail/access' >/dev/null 2>&1 || true
sm sh -c 'makemap hash /etc/mail/mailertable < /etc/mail/mailertable' >"$T/makemap.out" 2>&1 ||
  failed "makemap mailertable: $(cat "$T/makemap.out")"

# recrypt-fanout runs where Sendmail runs its mailers: in the chroot. The
# binary, the libraries it links and the host's dynamic loader go to
# $T/chroot-bin, and $T is bind-mounted at the same path inside the chroot,
# so that the config, the store, the spool and the fan-out's log have the
# same paths for the milter outside and for recrypt-fanout inside. The
# wrapper (the mailer's P=) runs it with those libraries and keeps its log
# lines (stderr, with Syslog no) in $FANOUT_LOG.
SMB=$T/chroot-bin
mkdir -p "$SMB/lib" "$SM_ROOT$T"
cp "$RECRYPT_FANOUT" "$SMB/recrypt-fanout"
ldd "$RECRYPT_FANOUT" >"$T/fanout-ldd"
LDSO=$(awk '$1 ~ /^\// {print $1; exit}' "$T/fanout-ldd")
awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' "$T/fanout-ldd" |
  while read -r l; do cp -L "$l" "$SMB/lib/"; done
chmod -R a+rX "$SMB"
printf '#!/bin/sh\nexec "%s" --library-path "%s" "%s" "$@" 2>>"%s"\n' \
  "$SMB/lib/${LDSO##*/}" "$SMB/lib" "$SMB/recrypt-fanout" "$FANOUT_LOG" >"$T/fanout-wrapper"
chmod 755 "$T/fanout-wrapper"
: >>"$FANOUT_LOG"
if [ -n "$LDSO" ] && mount --bind "$T" "$SM_ROOT$T"; then
  _sm_bind=1
  out=$(sm "$T/fanout-wrapper" -V 2>&1) || true
  [[ "$out" == "recrypt-fanout "* ]] && pass "recrypt-fanout runs inside the chroot ($out), with $T bind-mounted there" ||
    failed "recrypt-fanout does not run inside the chroot: $out $(tail -3 "$FANOUT_LOG")"
else
  failed "could not bind-mount $T at $SM_ROOT$T (loader: '$LDSO')"
fi

# Sendmail's syslog, caught on the chroot's /dev/log.
rm -f "$SM_ROOT/dev/log"
python3 - "$SM_ROOT/dev/log" "$SM_LOG" <<'EOP' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
EOP
_sm_syslog_pid=$!

milter_config "$T/milter.conf"
milter_start "$T/milter.conf" || { failed "milter starts"; finish || exit 1; }
pass "milter starts and listens on 127.0.0.1:$MILTER_PORT"

# -bD: -bd in the foreground, so that this shell holds its pid.
chroot "$SM_ROOT" /usr/sbin/sendmail-mta -bD -q10s >>"$T/sendmail.out" 2>&1 &
SM_PID=$!
ok=0
for i in $(seq 1 100); do
  kill -0 "$SM_PID" 2>/dev/null || break
  _port_open "$SM_PORT" && _port_open "$SM_FANOUT_PORT" && { ok=1; break; }
  sleep 0.1
done
if [ $ok = 1 ]; then pass "sendmail starts in the chroot on 127.0.0.1:$SM_PORT and 127.0.0.1:$SM_FANOUT_PORT"; else
  failed "sendmail starts: $(tail -5 "$T/sendmail.out" "$SM_LOG" 2>/dev/null | tr '\n' '|')"
  finish || exit 1
fi

# mbox USER: the mailbox file; mbox_count USER: how many messages it holds
# (mail.local starts each with a "From " line and quotes body lines that
# start so); mbox_split USER PREFIX: one file per message (PREFIX.1,
# PREFIX.2, ...), prints how many.
mbox() { echo "$SM_ROOT/var/mail/$1"; }
mbox_count() {
  [ -s "$(mbox "$1")" ] || { echo 0; return; }
  { grep -c '^From ' "$(mbox "$1")" || true; } | tail -1
}
mbox_split() {
  python3 - "$(mbox "$1")" "$2" <<'EOP'
import mailbox, sys
mb = mailbox.mbox(sys.argv[1], create=False)
n = 0
for key in mb.iterkeys():
    n += 1
    open("%s.%d" % (sys.argv[2], n), "wb").write(mb.get_bytes(key))
print(n)
EOP
}
# field FILE NAME: the value of the first NAME field of FILE's header. (The
# whole file is read: a reader that stops early would kill the writer with
# SIGPIPE, which pipefail reports.)
field() {
  tr -d '\r' <"$1" | awk -v n="$2" 'BEGIN {n = tolower(n) ":"} /^$/ {body = 1}
    !body && v == "" && tolower(substr($0, 1, length(n))) == n {v = substr($0, length(n) + 1); sub(/^[ \t]+/, "", v)}
    END {print v}'
}
wait_mail() { # USER N TIMEOUT
  local end=$((SECONDS + $3))
  while [ "$(mbox_count "$1")" -lt "$2" ]; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.2
  done
}
expect_reply() { # NAME PATTERN
  if smtp_replied "$2"; then pass "$1"; else failed "$1: no reply /$2/; got: $(smtp_replies | tail -4 | tr '\n' '|')"; fi
}
MARK="rcmark$RANDOM$RANDOM$RANDOM"
n=0
msg() {
  n=$((n + 1))
  printf 'From: poster@%s\nTo: %s\nSubject: post %s %s\nDate: %s\nMessage-ID: <post%s.%s.%s@%s>\n\nThe secret of post %s is %s.\n' \
    "$D" "$LIST" "$n" "${2:-$MARK}" "$(date -R)" "$n" "$$" "$RANDOM" "$D" "$n" "${2:-$MARK}" >"$1"
}

# --- 1. a sealed post reaches alice and bob, and opens on every device.
msg m1.eml
dev poster seal --to list.key <m1.eml >s1.eml 2>"$T/.seal" || failed "seal: $(cat "$T/.seal")"
rc=0; send_mail poster@$D "$LIST" s1.eml || rc=$?
[ $rc -eq 0 ] && smtp_replied '^250 .*(queued|accepted)' && pass "1: sealed post accepted by SMTP" ||
  failed "1: sealed post: exit $rc: $(smtp_replies | tail -3 | tr '\n' '|')"
qid=$(smtp_replies | sed -n 's/^250 [0-9.]* *\([0-9A-Za-z]*\) Message accepted.*/\1/p' | tail -1)
for u in alice bob; do
  wait_mail $u 1 30 && pass "1: delivered to $u's mailbox in the chroot" || failed "1: nothing in $u's mailbox within 30 s"
done
sleep 1
for u in alice bob; do
  c=$(mbox_count $u)
  [ "$c" -eq 1 ] || failed "1: $u has $c messages, expected 1"
done
c=$(mbox_count listmaster)
[ "$c" -eq 0 ] && pass "1: nothing delivered to the list's own alias" || failed "1: the list master got $c messages"
[ "$(mbox_count poster)" -eq 0 ] && pass "1: nothing delivered to the poster" || failed "1: the poster got mail"
mbox_split alice alice.msg >/dev/null
mbox_split bob bob.msg >/dev/null
for pair in alice:alice bob:bob-laptop bob:bob-phone; do
  u=${pair%%:*} d=${pair#*:}
  f=$u.msg.1
  [ -s "$f" ] || { failed "1: no message for $u"; continue; }
  rc=0; dev "$d" open <"$f" >"o-$d.eml" 2>"$T/.open" || rc=$?
  if [ $rc -eq 0 ]; then same_inner "1: $d opens $u's copy to the original message" m1.eml "o-$d.eml"; else
    failed "1: $d cannot open $u's copy (exit $rc: $(head -c 300 "$T/.open"))"; fi
done
if [ -s alice.msg.1 ]; then
  grep -q "$MARK" alice.msg.1 && failed "1: the delivered copy holds the plaintext marker" ||
    pass "1: the delivered copy holds no plaintext"
  s=$(tr -d '\r' <alice.msg.1 | grep -c '^Stanza:' || true)
  [ "$s" -eq 3 ] && pass "1: 3 stanzas (alice, bob x2)" || failed "1: $s stanzas, expected 3"
  v=$(field alice.msg.1 Return-Path)
  [ "$v" = "<$BOUNCE>" ] && pass "1: envelope sender is the bounce address ($v)" ||
    failed "1: Return-Path is '$v', expected <$BOUNCE>"
fi
if [ -n "$qid" ] && grep -q "$qid.*list=$LIST" "$MILTER_LOG"; then
  pass "1: the milter logs the post with Sendmail's queue id $qid"
else
  failed "1: no milter log line with queue id '$qid' and list=$LIST"
fi

# --- 2. a plaintext post to the list.
PMARK="rcplain$RANDOM$RANDOM"
msg m2.eml "$PMARK"
rc=0; send_mail poster@$D "$LIST" m2.eml || rc=$?
[ $rc -ne 0 ] && pass "2: plaintext post refused (exit $rc)" || failed "2: plaintext post accepted"
expect_reply "2: plaintext post gets 550 5.7.1" '^550[ -]5\.7\.1'
sleep 1
for u in alice bob listmaster; do
  [ "$(mbox_count $u)" -eq $([ $u = listmaster ] && echo 0 || echo 1) ] || failed "2: $u's mailbox changed"
done
grep -rlF "$PMARK" "$SM_ROOT/var/mail" "$SM_ROOT/var/spool/mqueue" >/dev/null 2>&1 &&
  failed "2: the plaintext post is in a mailbox or Sendmail's queue" ||
  pass "2: the plaintext post is in no mailbox and not in Sendmail's queue"
grep -rlF "$MARK" "$SM_ROOT/var/mail" "$SM_ROOT/var/spool/mqueue" >/dev/null 2>&1 &&
  failed "2: the sealed post's plaintext is in a mailbox or the queue" || pass "2: no mailbox or queue file holds the sealed post's plaintext"

# --- 3. split delivery (admin guide §5.6, §6). The mailertable routes the
# fan-out domain to the recrypt-fanout mailer, whose $u is the whole
# address.
tok=$(printf '%048d' 0)
out=$(sm sendmail-mta -bv "$tok@$SM_FANOUT_DOMAIN" 2>&1) || true
[ "$out" = "$tok@$SM_FANOUT_DOMAIN... deliverable: mailer recrypt-fanout, host $SM_FANOUT_DOMAIN, user $tok@$SM_FANOUT_DOMAIN" ] &&
  pass "3: the mailertable routes $SM_FANOUT_DOMAIN to the recrypt-fanout mailer" || failed "3: sendmail -bv: $out"
# The milter again, now with FanoutDomain, FanoutRelay (the port without
# milters) and UserID nobody, which recrypt-fanout (run as root by
# Sendmail) becomes too; milter_start makes the store and the spool
# nobody's.
milter_stop
PF_FANOUT=yes
milter_config "$T/milter.conf" UserID nobody
if grep -qx "FanoutDomain $SM_FANOUT_DOMAIN" "$MILTER_CONF" && grep -qx "FanoutRelay 127.0.0.1:$SM_FANOUT_PORT" "$MILTER_CONF" &&
  milter_start "$MILTER_CONF"; then
  pass "3: the milter restarts with FanoutDomain $SM_FANOUT_DOMAIN, FanoutRelay 127.0.0.1:$SM_FANOUT_PORT, UserID nobody"
else
  failed "3: the milter restarts with FanoutDomain"
  finish || exit 1
fi

SMARK="rcsplit$RANDOM$RANDOM$RANDOM" # in the post's plaintext only
printf 'From: poster@%s\nTo: %s\nSubject: split %s\nDate: %s\nMessage-ID: <split%s.%s@%s>\n\nThe secret is %s.\n' \
  "$D" "$SLIST" "$SMARK" "$(date -R)" "$$" "$RANDOM" "$D" "$SMARK" >m3.eml
dev poster seal --to team.key <m3.eml >s3.eml 2>"$T/.seal" || failed "3: seal: $(cat "$T/.seal")"
grep -q "$SMARK" s3.eml && failed "3: the sealed post shows the marker (test is wrong)"
sm_queue_files() { find "$SM_ROOT/var/spool/mqueue" -type f -name 'qf*' | wc -l; }
sm_queue_empty_wait() { # TIMEOUT
  local end=$((SECONDS + $1))
  while [ "$(sm_queue_files)" -ne 0 ]; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.2
  done
}
leak_watch_start "$SMARK"
rc=0; send_mail poster@$D "$SLIST" s3.eml || rc=$?
[ $rc -eq 0 ] && smtp_replied '^250 .*(queued|accepted)' && pass "3: the sealed post to $SLIST is accepted (250)" ||
  failed "3: sealed post: exit $rc: $(smtp_replies | tail -3 | tr '\n' '|')"
sqid=$(smtp_replies | sed -n 's/^250 [0-9.]* *\([0-9A-Za-z]*\) Message accepted.*/\1/p' | tail -1)
for m in "${SMEMBERS[@]}"; do
  wait_mail $m 1 30 || failed "3: no copy for $m within 30 s"
done
sm_queue_empty_wait 30 || failed "3: Sendmail's queue did not empty within 30 s"
sleep 0.5
for m in "${SMEMBERS[@]}" gina; do echo "# $m: $(mbox_count $m) message(s)"; done
ok=1
for m in "${SMEMBERS[@]}"; do [ "$(mbox_count $m)" -eq 1 ] || ok=0; done
[ $ok = 1 ] && pass "3: each of the 4 active members holds exactly one copy" || failed "3: copies per member are not 1 each"
[ "$(mbox_count gina)" -eq 0 ] && pass "3: the revoked member gets nothing" || failed "3: gina got $(mbox_count gina)"
[ "$(mbox_count listmaster)" -eq 0 ] && [ "$(mbox_count poster)" -eq 0 ] &&
  pass "3: nothing for the list's alias, its bounce alias or the poster" ||
  failed "3: the list master has $(mbox_count listmaster), the poster $(mbox_count poster)"
[ -n "$sqid" ] && grep -q "$sqid: list=$SLIST epoch=2 stanzas=0 recipients=4 .*verdict=split" "$MILTER_LOG" &&
  pass "3: the milter hands the post ($sqid) to split delivery (recipients=4)" ||
  failed "3: no milter verdict=split line for '$sqid': $(grep "list=$SLIST" "$MILTER_LOG" | tail -2)"
n=$({ grep -c "list=$SLIST .*verdict=" "$FANOUT_LOG" || true; } | tail -1)
[ -n "$sqid" ] && [ "$n" -eq 1 ] && grep -q "$sqid: list=$SLIST epoch=2 copies=4 stanzas=6 recipients=4 skipped=0 refused=0 post=[0-9a-f]* verdict=delivered" "$FANOUT_LOG" &&
  pass "3: one fan-out run, with Sendmail's queue id: 4 copies, 6 stanzas in all" ||
  failed "3: fan-out log ($n runs): $(tail -3 "$FANOUT_LOG")"
n=$({ grep -cE "$sqid: to=<[0-9a-f]{48}@$SM_FANOUT_DOMAIN>, .*mailer=recrypt-fanout, .*stat=Sent" "$SM_LOG" || true; } | tail -1)
[ -n "$sqid" ] && [ "$n" -eq 1 ] && pass "3: Sendmail delivers the fan-out address through the recrypt-fanout mailer once (stat=Sent)" ||
  failed "3: $n recrypt-fanout deliveries of $sqid in Sendmail's log: $(grep 'recrypt-fanout' "$SM_LOG" | tail -2)"
n=$({ grep -c "from=<$SBOUNCE>, .*daemon=MTA-fanout," "$SM_LOG" || true; } | tail -1)
[ "$n" -eq 4 ] && pass "3: the 4 copies come in on the daemon port without milters (daemon=MTA-fanout)" ||
  failed "3: $n messages from $SBOUNCE on daemon MTA-fanout, expected 4"

# What each copy holds: its own devices' stanzas, nothing of others'.
# stanzas FILE: each Stanza field's value, unfolded, one per line.
stanzas() {
  tr -d '\r' <"$1" | awk '/^Stanza:/ {if (s != "") print s; s = $2; on = 1; next}
    on && /^[ \t]/ {sub(/^[ \t]+/, ""); s = s $0; next} {on = 0} END {if (s != "") print s}'
}
# w_check MEMBER...: from st-M.txt (stanzas) and flat-M.txt (the copy
# without white space) of each member: "W M HEX" for each stanza's W (the
# bytes after R and the 2-byte length), "LEAK M O" when M's copy holds O's
# W in base64url at any of the 3 byte alignments, and "OWN M" when it holds
# all of its own (the search works). One python for all.
w_check() {
  python3 - "$@" <<'EOP'
import base64, sys
def dec(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def forms(w):  # w's base64url text as it shows at each byte offset mod 3
    out = []
    for pad in range(3):
        e = base64.urlsafe_b64encode(b"\0" * pad + w).decode().rstrip("=")
        out.append(e[(pad * 4 + 2) // 3 + 1:-2])
    return out
ws = {m: [dec(l.strip())[34:] for l in open("st-%s.txt" % m) if l.strip()] for m in sys.argv[1:]}
for m in sys.argv[1:]:
    for w in ws[m]:
        print("W", m, w.hex())
for m in sys.argv[1:]:
    flat = open("flat-%s.txt" % m).read()
    if ws[m] and all(any(f in flat for f in forms(w)) for w in ws[m]):
        print("OWN", m)
    for o in sys.argv[1:]:
        if o != m and any(f in flat for w in ws[o] for f in forms(w)):
            print("LEAK", m, o)
EOP
}
for m in "${SMEMBERS[@]}"; do
  [ "$(mbox_split $m "copy-$m")" -ge 1 ] && mv "copy-$m.1" "copy-$m.eml" || : >"copy-$m.eml"
  stanzas "copy-$m.eml" >"st-$m.txt"
  tr -d '\r\n \t' <"copy-$m.eml" >"flat-$m.txt"
  want=$(echo ${SDEVICES[$m]} | wc -w)
  got=$(wc -l <"st-$m.txt")
  [ "$got" -eq "$want" ] && pass "3: $m's copy carries exactly $want stanza(s), its own devices'" ||
    failed "3: $m's copy carries $got stanzas, want $want"
done
w_check "${SMEMBERS[@]}" >w-check.txt
# W values compared decoded: 6 in all, no two alike.
nw=$({ grep -c '^W ' w-check.txt || true; } | tail -1)
dupw=$(awk '$1 == "W" {print $3}' w-check.txt | sort | uniq -d | wc -l)
[ "$dupw" -eq 0 ] && [ "$nw" -eq 6 ] && pass "3: the 6 W values (decoded) are all distinct: no copy holds another member's W" ||
  failed "3: W values shared between copies ($dupw) or not 6 in all ($nw)"
for m in "${SMEMBERS[@]}"; do
  leaked=
  for o in "${SMEMBERS[@]}" gina; do
    [ "$o" = "$m" ] && continue
    if grep -qi "$o@$D" "copy-$m.eml"; then leaked="$leaked $o"; fi
    if grep -qx "LEAK $m $o" w-check.txt; then leaked="$leaked W-of-$o"; fi
  done
  grep -qx "OWN $m" w-check.txt || leaked="$leaked (its own W not found: the search is broken)"
  [ -z "$leaked" ] && pass "3: $m's copy names no other member and holds no other member's W" ||
    failed "3: $m's copy leaks:$leaked"
done
# The copies differ only in their stanzas, their own service signature
# (FORMAT.md §8.1) and the delivery trace: the rest of the gateway header is the same.
# (mail.local adds Return-Path and Content-Length, Sendmail Received.)
gwhdr() { tr -d '\r' <"$1" | awk '/^$/ {body = 1} !body {print}' | grep -vi -e '^Return-Path:' -e '^Content-Length:' |
  awk '/^(Received|Recrypt-Service-Signature):/ {skip = 1; next} skip && /^[ \t]/ {next} {skip = 0; print}'; }
same=1
for m in dave erin frank; do cmp -s <(gwhdr copy-carol.eml) <(gwhdr "copy-$m.eml") || same=0; done
[ $same = 1 ] && [ -s copy-carol.eml ] && pass "3: every copy has the same gateway header" ||
  failed "3: gateway headers differ: $(diff <(gwhdr copy-carol.eml) <(gwhdr copy-dave.eml) | head -5 | tr '\n' '|')"
v=$(field copy-carol.eml Return-Path)
[ "$v" = "<$SBOUNCE>" ] && pass "3: a copy's envelope sender is the list's bounce address ($v)" ||
  failed "3: Return-Path is '$v', expected <$SBOUNCE>"

# Every device opens its member's copy to the original message.
for m in "${SMEMBERS[@]}"; do
  for d in ${SDEVICES[$m]}; do
    rc=0; dev "$d" open <"copy-$m.eml" >"o-$d.eml" 2>"$T/.open" || rc=$?
    if [ $rc -eq 0 ]; then same_inner "3: $d opens $m's copy to the original message" m3.eml "o-$d.eml"
    else failed "3: $d cannot open $m's copy (exit $rc: $(head -c 300 "$T/.open"))"; fi
  done
done
rc=0; dev carol open <copy-dave.eml >/dev/null 2>&1 || rc=$?
[ $rc -ne 0 ] && pass "3: carol's device cannot open dave's copy (exit $rc)" || failed "3: carol opened dave's copy"
rc=0; dev gina open <copy-carol.eml >/dev/null 2>&1 || rc=$?
[ $rc -ne 0 ] && pass "3: the revoked device opens no copy (exit $rc)" || failed "3: gina opened a copy"

# --- 4. the same post again: discarded by the milter, no second fan-out.
rc=0; send_mail poster@$D "$SLIST" s3.eml || rc=$?
[ $rc -eq 0 ] && smtp_replied '^250 ' && pass "4: a replay of the delivered post is answered 250" ||
  failed "4: replay: exit $rc: $(smtp_replies | tail -2 | tr '\n' '|')"
sleep 1
sm_queue_empty_wait 20 || failed "4: Sendmail's queue did not empty"
ok=1; for m in "${SMEMBERS[@]}"; do [ "$(mbox_count $m)" -eq 1 ] || ok=0; done
n=$({ grep -c "list=$SLIST .*verdict=" "$FANOUT_LOG" || true; } | tail -1)
dup=$({ grep -c "list=$SLIST epoch=2 .*verdict=duplicate" "$MILTER_LOG" || true; } | tail -1)
[ $ok = 1 ] && [ "$n" -eq 1 ] && [ "$dup" -eq 1 ] &&
  pass "4: the replay is discarded by the milter (verdict=duplicate): no fan-out run, still one copy each" ||
  failed "4: replay: one copy each: $ok, fan-out runs: $n, duplicate lines: $dup"

leak_watch_stop
if [ -s "$T/leaks" ]; then failed "4: plaintext seen in the queue or the spool: $(sort -u "$T/leaks" | head -3 | tr '\n' ' ')"
else pass "4: no plaintext in Sendmail's queue or the milter's spool while the posts were in flight"; fi
grep -rlF "$SMARK" "$SM_ROOT/var/mail" "$SM_ROOT/var/spool/mqueue" >/dev/null 2>&1 &&
  failed "4: a mailbox or the queue holds the split post's plaintext" || pass "4: no mailbox or queue file holds the split post's plaintext"
ls "$MILTER_SPOOL" | grep -q . && failed "4: the spool is not empty: $(ls "$MILTER_SPOOL")" || pass "4: the milter's spool is empty afterwards"

# --- 5. the fan-out port runs no milter: with the milter stopped, the
# main port refuses for now (F=T), the fan-out port accepts.
milter_stop
printf 'From: poster@%s\nTo: poster@%s\nSubject: no milter\nDate: %s\n\nhello\n' "$D" "$D" "$(date -R)" >m5.eml
rc=0; send_mail poster@$D poster@$D m5.eml || rc=$?
[ $rc -ne 0 ] && smtp_replied '^4[0-9][0-9][ -]' && pass "5: the milter down, the main port answers 4xx (exit $rc)" ||
  failed "5: the main port with the milter down: exit $rc: $(smtp_replies | tail -2 | tr '\n' '|')"
rc=0; PF_PORT=$SM_FANOUT_PORT send_mail poster@$D poster@$D m5.eml || rc=$?
[ $rc -eq 0 ] && smtp_replied '^250 .*accepted' && pass "5: the milter down, the fan-out port accepts (250): it has no milter" ||
  failed "5: the fan-out port with the milter down: exit $rc: $(smtp_replies | tail -2 | tr '\n' '|')"

sm_stop
[ "$_sm_proc" = 0 ] && ! mountpoint -q "$SM_ROOT/proc" && [ "$_sm_bind" = 0 ] && ! mountpoint -q "$SM_ROOT$T" &&
  pass "sendmail stopped, /proc and $T unmounted in the chroot" || failed "/proc or $T still mounted in the chroot"
milter_stop
if [ "$fails" -ne 0 ]; then
  echo "# --- sendmail log (last 40 lines)"
  tail -40 "$SM_LOG" 2>/dev/null | sed 's/^/# /'
  tail -10 "$T/sendmail.out" 2>/dev/null | sed 's/^/# /'
  echo "# --- milter log (last 40 lines)"
  tail -40 "$MILTER_LOG" | sed 's/^/# /'
  echo "# --- fan-out log (last 20 lines)"
  tail -20 "$FANOUT_LOG" 2>/dev/null | sed 's/^/# /'
fi
if finish; then exit 0; else exit 1; fi
