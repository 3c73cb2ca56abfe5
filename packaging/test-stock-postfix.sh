#!/bin/bash
# packaging/test-stock-postfix.sh [DEB]: the Debian package on a stock
# Debian 12 Postfix, the way a mail admin follows the guides.
#
# In a copy of the bookworm chroot made by packaging/stock-chroot.sh (stock
# "Local only" Postfix: smtpd and cleanup chrooted in /var/spool/postfix):
#   1. `apt-get install ./recrypt_VERSION_amd64.deb` (the guide's command);
#   2. only the main.cf lines of docs/admin-guide.md section 5.2 (the test
#      checks that the guide holds each of them word for word) and the
#      list's aliases of section 5.3; the packaged recrypt-milter.conf as
#      it is;
#   3. the store, a list and two members (recryptctl, as guide sections 3-4);
#   4. the daemon started with the init script (no systemd as PID 1 here),
#      Postfix with its own;
#   5. a plaintext post is refused at SMTP (550); a sealed post over SMTP
#      and one by local submission (sendmail) reach both members, and each
#      opens with `recrypt open` to the text that was sealed;
#   6. the init script's status, reload and stop; the socket's directory
#      and mode; the daemon's log (no syslog daemon here: it says so once
#      and writes to the init script's log file).
# Everything of the second stage runs in private network, PID and mount
# namespaces (Postfix listens on the namespace's own loopback; every
# process ends with the test).
#
# Needs root, debootstrap and a Debian mirror the first time (the chroot is
# cached in $STOCK_CHROOT, default <repo>/build-stock-chroot).
# RC_KEEP=1 keeps the copy for a look. Exit: 0 all checks passed, 1 not.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "${1:-}" = --inside ]; then
  W=$2 GUIDE=$3
  ch() { chroot "$W" "$@"; }
  FAILS=0 N=0
  ok()  { N=$((N + 1)); echo "ok $N - $*"; }
  bad() { N=$((N + 1)); FAILS=$((FAILS + 1)); echo "not ok $N - $*"; }
  check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
  finish() { echo "1..$N"; [ "$FAILS" -eq 0 ] || { echo "# $FAILS check(s) failed"; exit 1; }; exit 0; }

  ip link set lo up
  mount -t proc proc "$W/proc"
  mount -t devpts devpts "$W/dev/pts" 2>/dev/null || true

  # ---- 2. main.cf: the guide's lines, nothing else --------------------
  MAINCF=(
    "smtpd_milters = unix:recrypt/recrypt-milter.sock"
    'non_smtpd_milters = $smtpd_milters'
    "milter_default_action = tempfail"
  )
  for l in "${MAINCF[@]}"; do
    check "admin guide 5.2 holds the line: $l" grep -qFx "$l" "$GUIDE"
    ch postconf -e "$l"
  done
  printf 'team: postmaster\nteam-bounces: root\n' >>"$W/etc/aliases"
  ch newaliases
  check "the packaged recrypt-milter.conf is untouched" \
    ch sh -c 'dpkg-query --control-show recrypt conffiles >/dev/null 2>&1 || true; md5sum /etc/recrypt/recrypt-milter.conf | cut -d" " -f1 | grep -qx "$(dpkg-query -W -f="\${Conffiles}" recrypt | awk "\$1==\"/etc/recrypt/recrypt-milter.conf\"{print \$2}")"'

  # ---- 3. store, list, members ------------------------------------------
  SVC=$(ch recryptctl server init --db /var/lib/recrypt --user recrypt 2>/dev/null)
  check "server init printed the service key" test -n "$SVC"
  own() { ch env RECRYPT_HOME=/root/owner recryptctl "$@"; }
  own init >/dev/null 2>&1
  own list create team@stock.test --service-key "$SVC" --out /root/create.req 2>/dev/null
  for u in alice bob; do
    ch useradd -m "$u"
    ch runuser -u "$u" -- env HOME="/home/$u" recrypt keygen >"$W/root/$u.pub" 2>/dev/null
    own member add team@stock.test "$u@stock.test" --device "$(cat "$W/root/$u.pub")" \
      --out "/root/$u.req" 2>/dev/null
  done
  check "recryptctl apply (create, two members)" \
    ch recryptctl apply --db /var/lib/recrypt /root/create.req /root/alice.req /root/bob.req
  own list key team@stock.test >"$W/tmp/list.key" 2>/dev/null
  chmod 644 "$W/tmp/list.key"
  for u in alice bob; do
    ch runuser -u "$u" -- env HOME="/home/$u" recrypt list import /tmp/list.key --yes \
      >/dev/null 2>&1 ||
      ch runuser -u "$u" -- env HOME="/home/$u" recrypt list import /tmp/list.key >/dev/null 2>&1
  done
  sleep 1 # posts are dated after the enrolment

  # ---- 4. start both the documented way --------------------------------
  check "init script: start" ch /etc/init.d/recrypt-milter start
  check "init script: status says running" ch /etc/init.d/recrypt-milter status
  check "postfix starts (its init script)" ch /etc/init.d/postfix start
  for _ in $(seq 50); do [ -S "$W/var/spool/postfix/recrypt/recrypt-milter.sock" ] && break; sleep 0.1; done
  # (stat inside the chroot: its users and groups are not the host's)
  d=$(ch stat -c '%a %U:%G' /var/spool/postfix/recrypt 2>&1)
  check "socket directory /var/spool/postfix/recrypt is 2750 recrypt:postfix ($d)" \
    test "$d" = "2750 recrypt:postfix"
  d=$(ch stat -c '%a %G' /var/spool/postfix/recrypt/recrypt-milter.sock 2>&1)
  check "socket is group postfix, mode 0770 ($d)" test "$d" = "770 postfix"
  for _ in $(seq 50); do python3 -c 'import socket; socket.create_connection(("127.0.0.1", 25), 1)' 2>/dev/null && break; sleep 0.2; done

  # ---- 5. posts -----------------------------------------------------------
  smtp() { # smtp FROM TO FILE -> prints the final reply
    python3 - "$@" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", 25, "client.stock.test", timeout=60)
s.ehlo()
c, m = s.mail(sys.argv[1])
c, m = s.rcpt(sys.argv[2])
if c not in (250, 251):
    print(c, m.decode()); sys.exit(0)
data = open(sys.argv[3], "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
try:
    c, m = s.docmd("DATA")
    lines = [b"." + l if l.startswith(b".") else l for l in data.split(b"\r\n")]
    body = b"\r\n".join(lines)
    if not body.endswith(b"\r\n"): body += b"\r\n"
    s.send(body + b".\r\n")
    c, m = s.getreply()
except smtplib.SMTPException as e:
    print("exception", e); sys.exit(0)
print(c, m.decode())
s.quit()
PY
  }
  printf 'From: alice@stock.test\nTo: team@stock.test\nSubject: plain\nDate: %s\nMessage-ID: <plain.1@stock.test>\n\nplaintext\n' \
    "$(date -R)" >"$W/tmp/plain.eml"
  r=$(smtp alice@stock.test team@stock.test "$W/tmp/plain.eml")
  check "a plaintext post over SMTP is refused: $r" sh -c "echo '$r' | grep -q '^550 5.7'"

  TEXT1="stock postfix over smtp $RANDOM$RANDOM"
  TEXT2="stock postfix by sendmail $RANDOM$RANDOM"
  printf 'From: alice@stock.test\nTo: team@stock.test\nSubject: s1\n\n%s\n' "$TEXT1" >"$W/tmp/p1.eml"
  printf 'From: bob@stock.test\nTo: team@stock.test\nSubject: s2\n\n%s\n' "$TEXT2" >"$W/tmp/p2.eml"
  chmod 644 "$W/tmp/p1.eml" "$W/tmp/p2.eml"
  ch runuser -u alice -- env HOME=/home/alice sh -c 'recrypt seal --to team@stock.test </tmp/p1.eml >/tmp/s1.eml'
  ch runuser -u bob -- env HOME=/home/bob sh -c 'recrypt seal --to team@stock.test </tmp/p2.eml >/tmp/s2.eml'
  r=$(smtp alice@stock.test team@stock.test "$W/tmp/s1.eml")
  check "a sealed post over SMTP is accepted: $r" sh -c "echo '$r' | grep -q '^250 '"
  check "a sealed post by local submission (sendmail) is accepted" \
    ch runuser -u bob -- /usr/sbin/sendmail -f bob@stock.test -oi team@stock.test </dev/null <"$W/tmp/s2.eml"

  count() { grep -c '^From ' "$W/var/mail/$1" 2>/dev/null || echo 0; }
  for _ in $(seq 150); do
    [ "$(count alice)" -ge 2 ] && [ "$(count bob)" -ge 2 ] && break
    sleep 0.2
  done
  for u in alice bob; do
    check "$u's mailbox holds 2 messages ($(count "$u"))" test "$(count "$u")" = 2
    python3 - "$W/var/mail/$u" "$W/tmp/$u" <<'PY'
import mailbox, sys
for i, m in enumerate(mailbox.mbox(sys.argv[1])):
    open("%s.%d.eml" % (sys.argv[2], i), "wb").write(m.as_bytes())
PY
    chmod 644 "$W/tmp/$u".*.eml 2>/dev/null || true
    got=""
    for f in "$W/tmp/$u".*.eml; do
      [ -f "$f" ] || continue
      check "$u: $(basename "$f") is sealed, not plaintext" sh -c "! grep -q 'stock postfix' '$f'"
      out=$(ch runuser -u "$u" -- env HOME="/home/$u" sh -c "recrypt open <'/tmp/$(basename "$f")'" 2>&1) ||
        { bad "$u opens $(basename "$f"): $(echo "$out" | tail -n 2)"; continue; }
      got="$got$out"
      check "$u: $(basename "$f") opens with a verdict of list team@stock.test" \
        sh -c "printf '%s\n' \"\$1\" | grep -q '^Recrypt-Verdict: .*list=team@stock.test'" _ "$out"
    done
    check "$u read the SMTP post's text" sh -c "printf '%s' \"\$1\" | grep -qF '$TEXT1'" _ "$got"
    check "$u read the sendmail post's text" sh -c "printf '%s' \"\$1\" | grep -qF '$TEXT2'" _ "$got"
  done
  check "nothing reached the list address's alias (postmaster/root)" \
    sh -c "! grep -q 'stock postfix' '$W/var/mail/root' 2>/dev/null"

  # ---- 6. init script, log -------------------------------------------------
  check "init script: reload" ch /etc/init.d/recrypt-milter reload
  sleep 0.5
  check "init script: stop" ch /etc/init.d/recrypt-milter stop
  st=0; ch /etc/init.d/recrypt-milter status >/dev/null || st=$?
  check "init script: status after stop is 3 (LSB: not running; got $st)" test "$st" = 3
  check "socket and pid file removed at stop" \
    sh -c "! test -e '$W/var/spool/postfix/recrypt/recrypt-milter.sock' && ! test -e '$W/run/recrypt/recrypt-milter.pid'"
  LOG=$W/var/log/recrypt-milter.log
  check "log: syslog absent said once ($(grep -c 'nothing listens on /dev/log' "$LOG" 2>/dev/null || echo 0))" \
    test "$(grep -c 'nothing listens on /dev/log' "$LOG" 2>/dev/null)" = 1
  check "log: listening on the packaged socket" grep -q 'listening on unix:/var/spool/postfix/recrypt/recrypt-milter.sock' "$LOG"
  check "log: two posts recrypted" test "$(grep -c 'verdict=recrypted' "$LOG")" = 2
  check "log: the plaintext post rejected" grep -q 'verdict=rejected' "$LOG"
  check "log: reload and stop logged" sh -c "grep -q 'reload' '$LOG' && grep -q 'stopped' '$LOG'"
  ch /etc/init.d/postfix stop >/dev/null 2>&1 || true
  [ "$FAILS" -eq 0 ] || { echo "# the daemon's log:"; sed 's/^/#   /' "$LOG" | tail -n 40; echo "# the Postfix queue:"; ch postqueue -p 2>&1 | sed "s/^/#   /" || true; }
  finish
fi

# ---- first stage (host) -------------------------------------------------
[ "$(id -u)" -eq 0 ] || { echo "test-stock-postfix: needs root" >&2; exit 1; }
DEB=${1:-$(ls "$root"/build-deb/recrypt_*_amd64.deb 2>/dev/null | head -n 1)}
[ -f "${DEB:-}" ] || { echo "test-stock-postfix: no package (packaging/build-deb.sh makes build-deb/recrypt_*.deb)" >&2; exit 1; }
BASE=${STOCK_CHROOT:-$root/build-stock-chroot}
STOCK_CHROOT=$BASE bash "$root/packaging/stock-chroot.sh"

W=$(mktemp -d "$root/build-stock-run.XXXXXX")
cleanup() {
  mountpoint -q "$W/proc" && umount -l "$W/proc"
  if [ "${RC_KEEP:-}" = 1 ]; then echo "# kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
echo "# copying the stock chroot ($BASE) to $W"
cp -a "$BASE/." "$W/"
cp "$DEB" "$W/root/"
mount -t proc proc "$W/proc"
echo "# 1. apt-get install ./$(basename "$DEB")"
if ! chroot "$W" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
     "/root/$(basename "$DEB")" >"$W/root/apt.log" 2>&1; then
  echo "not ok 1 - apt-get install of the package"; sed 's/^/#   /' "$W/root/apt.log" | tail -n 20
  exit 1
fi
echo "ok - apt-get install ./$(basename "$DEB") (Postfix stock, chrooted smtpd and cleanup)"
umount "$W/proc"
unshare --net --pid --fork --mount --propagation private -- \
  bash "$0" --inside "$W" "$root/docs/admin-guide.md"
