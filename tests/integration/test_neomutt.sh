# A subscriber's day in neomutt (and the same in mutt), in a pseudo-terminal,
# with the shipped contrib/neomutt/recrypt.rc (contrib/mutt/recrypt.muttrc), against a real Postfix on loopback with
# recrypt-milter (SMTP and local submission):
#   - alice posts a MIME message (RFC 2047 Subject, quoted-printable UTF-8
#     text, a binary attachment) with recrypt sendmail; the gateway delivers
#     it to bob's maildir;
#   - in bob's neomutt, Esc o shows the decrypted Subject and body on the
#     screen; the attachment is saved and compared byte for byte;
#   - r (reply to alice alone) is refused by recrypt sendmail: it would
#     carry the post in plaintext;
#   - L (list-reply) goes through the gateway: alice opens it with
#     recrypt open, signed by bob, quoting the post, in the thread;
#   - bob's sent folder (Fcc) holds the sealed reply only; no plaintext
#     marker ever reaches the Postfix queue or the milter spool; leaving the
#     view removes it.
# Needs root, Postfix, neomutt and python3-pexpect/pyte (install-deps.sh).
# Exit 77 (skipped) otherwise.

_here=$(cd "$(dirname "$0")" && pwd)
source "$_here/preflight.sh" # skip(), root, Postfix and its users, the milter binary
command -v neomutt >/dev/null || skip "neomutt is not installed (scripts/install-deps.sh)"
/usr/bin/python3 -c 'import pexpect, pyte' 2>/dev/null || skip "python3-pexpect or python3-pyte missing"

source "$_here/../cli/lib.sh"
source "$_here/postfix-lib.sh"
PF_RECEIPTS=yes
pf_deadline 300

LIST=list@example.org
D=example.org
gateway_up alice bob carol || { finish || exit 1; }
dev alice list import list.key >/dev/null 2>&1 || failed "alice imports the list key"

MARK="rcnm$RANDOM$RANDOM"
SUBJ="Treffen am Früh ${MARK}s"
BODY="Café ${MARK}b-joined"
head -c 3000 /dev/urandom >secret.bin
cat >post.eml <<EOF
From: Alice <alice@$D>
To: $LIST
Subject: =?UTF-8?Q?Treffen_am_Fr=C3=BCh_${MARK}s?=
Date: $(date -R)
Message-ID: <nm1.$$.$RANDOM@$D>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b-$MARK"

--b-$MARK
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 ${MARK}b=
-joined
--b-$MARK
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="secret.bin"

$(base64 secret.bin)
--b-$MARK--
EOF
POST_ID=$(sed -n 's/^Message-ID: <\(.*\)>$/\1/p' post.eml)
leak_watch_start "$MARK"
rc=0; dev alice sendmail -t -oi <post.eml >/dev/null 2>sm.err || rc=$?
[ $rc -eq 0 ] && pf_wait_delivered 1 bob@$D 20 && pf_wait_delivered 1 carol@$D 20 &&
  pass "alice's post reached bob's and carol's maildirs through the gateway" ||
  failed "alice's post: exit $rc, bob has $(pf_count bob@$D): $(cat sm.err)"
pf_queue_empty_wait 20 || true

# A subscriber's mail program: their maildir, a sent folder, the shipped
# rc file. neomutt for bob, mutt for carol; the same session for both.
mkdir -p bin run && chmod 700 run
ln -sf "$RECRYPT" bin/recrypt
cat >editor.sh <<EOF
#!/bin/sh
printf '\nAgreed, see you there. ${MARK}r\n' >>"\$1"
EOF
chmod +x editor.sh
VIEW="$T/run/recrypt-view"
replies=1 # alice's maildir holds her own post
session() { # session PROG USER RCFILE
  local prog=$1 u=$2 rcfile=$3 rc=0
  mkdir -p "$u-mail/sent/cur" "$u-mail/sent/new" "$u-mail/sent/tmp" "$u-hcache"
  cat >"$u.rc" <<EOF
set folder="$T/$u-mail"
set spoolfile="$(dirname "$(pf_maildir "$u@$D")")"
set mbox_type=Maildir
set record="+sent"
set from="$u@$D"
set realname="$u"
set use_from=yes
set editor="$T/editor.sh"
set edit_headers=yes
set autoedit=yes
set fast_reply=yes
set include=yes
set postpone=no
set quit=yes
set help=yes
set header_cache="$T/$u-hcache/"
set sort=date
set send_charset="utf-8"
# As Debian's /etc/neomuttrc and /etc/Muttrc do (-n skips them): the pager
# shows only the fields unignored, so the rc file must unignore recrypt's.
ignore *
unignore from: subject to cc date
source $rcfile
EOF
  echo "# --- $prog, as $u"
  env HOME="$T" T="$T" PATH="$T/bin:$PATH" RECRYPT_HOME="$T/dev-$u" XDG_RUNTIME_DIR="$T/run" \
    /usr/bin/python3 "$_here/neomutt_session.py" "$T/$u.rc" "prog=$prog" \
    "subject=$SUBJ" "body=$BODY" "attachment=secret.bin" "save=$T/$u-saved.bin" \
    "view=$VIEW" "list=$LIST" >session.out 2>session.err || rc=$?
  sed "s/^\(ok\|FAIL\) - /&$prog: /" session.out
  cat neomutt.screen.log >>screens.log
  passes=$((passes + $(grep -c '^ok - ' session.out || true)))
  fails=$((fails + $(grep -c '^FAIL - ' session.out || true)))
  [ $rc -eq 0 ] || failed "$prog: the session (exit $rc): $(tail -3 session.err)"
  cmp -s secret.bin "$u-saved.bin" && pass "$prog: the saved attachment is byte for byte the one alice sent" ||
    failed "$prog: the saved attachment differs ($(wc -c <"$u-saved.bin" 2>/dev/null) bytes)"

  # The list-reply went through the gateway to alice (and only that).
  replies=$((replies + 1))
  pf_wait_delivered $replies alice@$D 20 && pass "$prog: $u's list-reply reached alice" ||
    failed "$prog: nothing reached alice"
  pf_queue_empty_wait 20 || true
  local f
  f=$(ls -t "$(pf_maildir alice@$D)"/* 2>/dev/null | head -1)
  rc=0; [ -n "$f" ] && dev alice open <"$f" >reply.eml 2>open.err || rc=$?
  if [ $rc -eq 0 ] && [ -n "$f" ]; then
    grep -q "$MARK" "$f" && failed "$prog: alice's copy holds plaintext" || pass "$prog: alice's copy of the reply is sealed"
    head -1 reply.eml | grep -q "^Recrypt-Verdict: signed; member=$u@$D;" &&
      pass "$prog: alice opens it: signed by $u" || failed "$prog: verdict: $(head -1 reply.eml)"
    grep -q "^> Café ${MARK}b-joined" reply.eml && grep -q "${MARK}r" reply.eml &&
      pass "$prog: the reply quotes the decrypted post and carries $u's text" ||
      failed "$prog: reply body: $(sed -n '/^$/,$p' reply.eml | head -8 | tr '\n' '|')"
    grep -qi "^In-Reply-To: <$POST_ID>" reply.eml && pass "$prog: and keeps the thread (In-Reply-To the post)" ||
      failed "$prog: In-Reply-To: $(grep -i '^In-Reply-To' reply.eml)"
  else
    failed "$prog: alice cannot open $u's reply (exit $rc): $(cat open.err 2>/dev/null)"
  fi
  [ "$(pf_count alice@$D)" -eq $replies ] && pass "$prog: the refused reply to alice alone was never submitted" ||
    failed "$prog: alice got $(pf_count alice@$D) messages, expected $replies"

  # The header cache is on (the inbox is cached) but holds nothing decrypted.
  if [ -n "$(find "$u-hcache" -type f)" ] && ! grep -rqa "${MARK}s" "$u-hcache"; then
    pass "$prog: the header cache holds no decrypted Subject"
  else
    failed "$prog: header cache: $(find "$u-hcache" -type f | wc -l) files, $(grep -rla "${MARK}s" "$u-hcache" | head -2)"
  fi

  # The sent folder: the sealed reply, never the plaintext.
  local n
  n=$(find "$u-mail/sent" -type f | wc -l)
  if [ "$n" -eq 1 ] && grep -q 'multipart/encrypted' "$u-mail"/sent/cur/* && ! grep -rq "$MARK" "$u-mail/sent"; then
    pass "$prog: $u's Fcc holds the sealed reply and no plaintext"
  else
    failed "$prog: $u's Fcc: $n messages, plaintext: $(grep -rl "$MARK" "$u-mail/sent" | head -2)"
  fi
}
session neomutt bob "$_root/contrib/neomutt/recrypt.rc"
if command -v mutt >/dev/null; then
  session mutt carol "$_root/contrib/mutt/recrypt.muttrc"
else
  echo "# mutt is not installed: its session skipped"
fi
[ "$(pf_count "$LIST")" -eq 0 ] && pass "nothing reached the list mailbox" || failed "the list mailbox got mail"

leak_watch_stop
[ ! -s "$T/leaks" ] && pass "no plaintext marker in the Postfix queue or the milter spool" ||
  failed "plaintext seen in: $(sort -u "$T/leaks" | head -5 | tr '\n' ' ')"
pf_stop
milter_stop
# NEOMUTT_SCREENS=FILE keeps every screen the session looked at.
[ -z "${NEOMUTT_SCREENS:-}" ] || cp screens.log "$NEOMUTT_SCREENS"
if [ "$fails" -ne 0 ]; then
  echo "# --- screens (last 60 lines)"; grep -v '^ *$' screens.log | tail -60 | sed 's/^/# /'
  echo "# --- postfix log (last 20 lines)"; tail -20 "$PF_LOG" | sed 's/^/# /'
fi
if finish; then exit 0; else exit 1; fi
