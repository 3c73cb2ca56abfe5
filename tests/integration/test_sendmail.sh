# recrypt-milter behind a real Sendmail on loopback. Debian's sendmail-bin
# conflicts with postfix, so Sendmail runs in a bookworm chroot made by
# tests/integration/sendmail-chroot.sh (cached in $SENDMAIL_CHROOT, default
# <repo>/build-sendmail-chroot); the milter runs outside it, on a TCP port
# on 127.0.0.1. A store made with recryptctl (alice with 1 device, bob with
# 2), a sealed post and a plaintext post sent by SMTP, and what the members'
# mailboxes inside the chroot hold afterwards. Needs root, swaks or python3,
# and the chroot (made here if missing: needs debootstrap and a Debian
# mirror). Exit 77 (skipped) when those or the milter are missing.

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
SM_LOG=$T/sendmail.log
SM_PID=
_sm_proc=0
_sm_syslog_pid=

# Stop Sendmail and everything else running inside the chroot, and unmount
# /proc if this test mounted it; then postfix-lib.sh's cleanup (milter, $T).
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
  if [ "$_sm_proc" = 1 ]; then
    umount "$SM_ROOT/proc" 2>/dev/null || umount -l "$SM_ROOT/proc" 2>/dev/null || true
    _sm_proc=0
  fi
}
pf_at_exit sm_stop
pf_deadline 180

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
ctl list key "$LIST" >list.key 2>/dev/null
"$RECRYPTCTL" show --db "$T/db" "$LIST" >show.txt
BOUNCE=$(sed -n 's/^list .* bounce \([^ ]*\).*/\1/p' show.txt)
if [ "$(grep -c '^  member .* active$' show.txt)" -eq 2 ] && [ -n "$BOUNCE" ]; then
  pass "store: 2 active members, bounce address $BOUNCE"
else
  failed "store set-up: $(cat show.txt)"
fi
sleep 1 # stanzas go to devices enrolled before the post's Date

# --- Sendmail's configuration inside the chroot, rebuilt for this run.
# Local users for the members, the poster and a list master that the list
# and bounce addresses are aliased to (so that RCPT accepts them; the milter
# replaces the list recipient before delivery).
USERS=(alice bob poster listmaster)
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
EOA
{
  # The packaged sendmail.mc without its listeners (the daemon is told its
  # port on the command line), with local delivery by mail.local (the
  # packaged sensible-mda is not installed), a fixed host name and no DNS
  # check of sender domains; the milter last.
  grep -v '^DAEMON_OPTIONS' "$SM_ROOT/etc/mail/sendmail.mc.dist" | sed '/^MAILER_DEFINITIONS/,$d'
  echo "define(\`confDOMAIN_NAME', \`mx.$D')dnl"
  echo "FEATURE(\`accept_unresolvable_domains')dnl"
  echo "define(\`LOCAL_MAILER_PATH', \`/usr/libexec/sendmail/mail.local')dnl"
  echo "define(\`LOCAL_MAILER_ARGS', \`mail.local -d \$u')dnl"
  sed -n '/^MAILER_DEFINITIONS/,$p' "$SM_ROOT/etc/mail/sendmail.mc.dist"
  echo "INPUT_MAIL_FILTER(\`recrypt', \`S=inet:$MILTER_PORT@127.0.0.1, F=T')dnl"
} >"$SM_ROOT/etc/mail/sendmail.mc"
if ! mountpoint -q "$SM_ROOT/proc"; then mount -t proc proc "$SM_ROOT/proc" && _sm_proc=1; fi
if sm sh -c 'cd /etc/mail && m4 /usr/share/sendmail/cf/m4/cf.m4 sendmail.mc >sendmail.cf.new && mv sendmail.cf.new sendmail.cf' 2>"$T/m4.err" &&
  grep -q "^Xrecrypt, S=inet:$MILTER_PORT@127.0.0.1" "$SM_ROOT/etc/mail/sendmail.cf"; then
  pass "sendmail.cf rebuilt with m4, with the milter on inet:$MILTER_PORT@127.0.0.1"
else
  failed "sendmail.cf: $(head -c 400 "$T/m4.err")"
fi
sm newaliases >"$T/newaliases.out" 2>&1 || failed "newaliases: $(cat "$T/newaliases.out")"
sm sh -c 'makemap hash /etc/mail/access < /etc/mail/access' >/dev/null 2>&1 || true

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
chroot "$SM_ROOT" /usr/sbin/sendmail-mta -bD -q10s \
  -ODaemonPortOptions="Port=$SM_PORT,Addr=127.0.0.1,Name=MTA" >>"$T/sendmail.out" 2>&1 &
SM_PID=$!
ok=0
for i in $(seq 1 100); do
  kill -0 "$SM_PID" 2>/dev/null || break
  _port_open "$SM_PORT" && { ok=1; break; }
  sleep 0.1
done
if [ $ok = 1 ]; then pass "sendmail starts in the chroot on 127.0.0.1:$SM_PORT"; else
  failed "sendmail starts: $(tail -5 "$T/sendmail.out" "$SM_LOG" 2>/dev/null | tr '\n' '|')"
  finish || exit 1
fi

# mbox USER: the mailbox file; mbox_split USER PREFIX: one file per message
# (PREFIX.1, PREFIX.2, ...), prints how many.
mbox() { echo "$SM_ROOT/var/mail/$1"; }
mbox_count() {
  [ -s "$(mbox "$1")" ] || { echo 0; return; }
  python3 -c 'import mailbox,sys; print(len(mailbox.mbox(sys.argv[1], create=False)))' "$(mbox "$1")"
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
  v=$(tr -d '\r' <alice.msg.1 | sed -n '/^$/q; s/^Return-Path: *//Ip' | head -1)
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

sm_stop
[ "$_sm_proc" = 0 ] && ! mountpoint -q "$SM_ROOT/proc" && pass "sendmail stopped, /proc unmounted" ||
  failed "/proc still mounted in the chroot"
milter_stop
if [ "$fails" -ne 0 ]; then
  echo "# --- sendmail log (last 40 lines)"
  tail -40 "$SM_LOG" 2>/dev/null | sed 's/^/# /'
  tail -10 "$T/sendmail.out" 2>/dev/null | sed 's/^/# /'
  echo "# --- milter log (last 40 lines)"
  tail -40 "$MILTER_LOG" | sed 's/^/# /'
fi
if finish; then exit 0; else exit 1; fi
