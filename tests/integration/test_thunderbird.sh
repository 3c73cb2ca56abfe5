# A subscriber reads list mail in a real Thunderbird with the recrypt
# add-on, driven through Marionette (tests/integration/marionette.py):
#   - the gateway (Postfix + recrypt-milter on loopback) delivers two posts
#     of alice's to bob: one unsigned (her device held no certificate yet),
#     one signed, with a UTF-8 Subject and an attachment; a third message is
#     the signed post with one character of its ciphertext changed;
#   - bob's Thunderbird (a fresh profile; the add-on installed from the
#     .xpi the build made; the native host registered in ~/.mozilla) shows
#     each in its message pane: the real Subject, body and verdict, the
#     first-use pin of the list signing key, the attachment; and for the
#     tampered one a refusal with nothing of the post;
#   - the settings page lists the lists with their signing keys; a pasted
#     key of a new list is pinned, one of another signer refused;
#   - sending: plaintext to the list, and a reply to alice alone of her
#     post, are refused by the add-on (nothing reaches SMTP); ordinary mail
#     goes (the control);
#   - a screenshot of the decrypted pane (under Xvfb; TB_SCREENSHOT=FILE
#     keeps it; without Xvfb, Thunderbird runs headless).
# Needs root, Postfix, Thunderbird and Xvfb (install-deps.sh). Exit 77
# (skipped) otherwise.

_here=$(cd "$(dirname "$0")" && pwd)
skip() { echo "skip - $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (Postfix starts as root)"
PATH=$PATH:/usr/sbin:/sbin
command -v postfix >/dev/null || skip "postfix is not installed (scripts/install-deps.sh)"
command -v thunderbird >/dev/null || skip "thunderbird is not installed (scripts/install-deps.sh)"
getent passwd postfix >/dev/null && getent passwd nobody >/dev/null || skip "no postfix or nobody user"
_m=${RECRYPT_MILTER:-$_here/../../build/src/milter/recrypt-milter}
[ -x "$_m" ] || skip "no milter binary at $_m (build target recrypt-milter)"
XPI=${RECRYPT_XPI:-$_here/../../build/clients/thunderbird/recrypt-thunderbird.xpi}
[ -f "$XPI" ] || skip "no add-on at $XPI (build target thunderbird-xpi)"

source "$_here/../cli/lib.sh"
source "$_here/postfix-lib.sh"
PF_RECEIPTS=yes
pf_deadline 300

LIST=list@example.org
D=example.org
ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }
gateway_up alice bob -- outsider@$D || { finish || exit 1; }
dev alice list import list.key >/dev/null 2>&1 || failed "alice imports the list key"
newest() { ls -t "$(pf_maildir "$1")"/* 2>/dev/null | head -1; }

MARK="rctb$RANDOM$RANDOM"
# Post A: unsigned (alice's device has no certificate before it opens a post).
cat >a.eml <<EOM
From: alice@$D
To: $LIST
Subject: Agenda ${MARK}a
Date: $(date -R)
Message-ID: <tb-a.$$.$RANDOM@$D>

The agenda is ${MARK}-agenda.
EOM
rc=0; dev alice sendmail -t -oi <a.eml 2>sm.err || rc=$?
[ $rc -eq 0 ] && pf_wait_delivered 1 bob@$D 20 && pf_wait_delivered 1 alice@$D 20 &&
  pass "post A (unsigned) delivered through the gateway" || failed "post A: exit $rc: $(cat sm.err)"
pf_queue_empty_wait 20 || true
dev alice open <"$(newest alice@$D)" >/dev/null 2>&1 && pass "alice opens it: her device now holds its certificate" ||
  failed "alice cannot open post A"
# Post B: signed, a UTF-8 Subject, quoted-printable text, an attachment.
head -c 2000 /dev/urandom >a.bin
sleep 1
cat >b.eml <<EOM
From: Alice <alice@$D>
To: $LIST
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln_${MARK}b?=
Date: $(date -R)
Message-ID: <tb-b.$$.$RANDOM@$D>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b-$MARK"

--b-$MARK
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Sch=C3=B6ne Gr=C3=BC=C3=9Fe, ${MARK}-body.
--b-$MARK
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="minutes.bin"

$(base64 a.bin)
--b-$MARK--
EOM
rc=0; dev alice sendmail -t -oi <b.eml 2>sm.err || rc=$?
[ $rc -eq 0 ] && pf_wait_delivered 2 bob@$D 20 && pass "post B (signed) delivered through the gateway" ||
  failed "post B: exit $rc: $(cat sm.err)"
pf_queue_empty_wait 20 || true
A=$(ls -tr "$(pf_maildir bob@$D)"/* | head -1)
B=$(ls -tr "$(pf_maildir bob@$D)"/* | tail -1)
grep -q "$MARK" "$A" "$B" && failed "bob's copies hold plaintext" || pass "bob's copies are sealed"
# C: post B with one character of its ciphertext changed.
python3 - "$B" c.eml <<'PY'
import re, sys
text = open(sys.argv[1], 'rb').read().decode('latin-1')
m = re.search(r'filename="message.rcx"\r?\n\r?\n', text)
i = m.end() + 40
text = text[:i] + ('A' if text[i] != 'A' else 'B') + text[i + 1:]
open(sys.argv[2], 'wb').write(text.encode('latin-1'))
PY

# bob's Thunderbird profile: Local Folders, whose Inbox holds A, B, C.
PROFILE="$T/tb-profile"
mkdir -p "$PROFILE/Mail/Local Folders" "$PROFILE/Mail/bob" home/.mozilla/native-messaging-hosts
PORT=$(free_port)
cat >"$PROFILE/user.js" <<EOP
user_pref("marionette.port", $PORT);
user_pref("mail.shell.checkDefaultClient", false);
user_pref("mail.provider.suppress_dialog_on_startup", true);
user_pref("mail.spotlight.firstRunDone", true);
user_pref("mailnews.start_page.enabled", false);
user_pref("app.update.enabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
// The add-on's pages in the main process: Marionette's chrome context can
// then read the settings page (Thunderbird gives Marionette no handle for
// a remote extension tab). The add-on's code is the same either way.
user_pref("extensions.webextensions.remote", false);
user_pref("mail.accountmanager.accounts", "account2,account1");
user_pref("mail.accountmanager.defaultaccount", "account2");
user_pref("mail.account.account2.identities", "id1");
user_pref("mail.account.account2.server", "server2");
user_pref("mail.server.server2.type", "none");
user_pref("mail.server.server2.hostname", "bob.example.org");
user_pref("mail.server.server2.name", "bob");
user_pref("mail.server.server2.userName", "bob");
user_pref("mail.server.server2.directory-rel", "[ProfD]Mail/bob");
user_pref("mail.identity.id1.fullName", "Bob");
user_pref("mail.identity.id1.useremail", "bob@$D");
user_pref("mail.identity.id1.smtpServer", "smtp1");
user_pref("mail.identity.id1.valid", true);
user_pref("mail.smtpservers", "smtp1");
user_pref("mail.smtp.defaultserver", "smtp1");
user_pref("mail.smtpserver.smtp1.hostname", "127.0.0.1");
user_pref("mail.smtpserver.smtp1.port", $PF_PORT);
user_pref("mail.smtpserver.smtp1.authMethod", 1);
user_pref("mail.smtpserver.smtp1.try_ssl", 0);
user_pref("mail.accountmanager.localfoldersserver", "server1");
user_pref("mail.account.account1.server", "server1");
user_pref("mail.server.server1.type", "none");
user_pref("mail.server.server1.hostname", "Local Folders");
user_pref("mail.server.server1.name", "Local Folders");
user_pref("mail.server.server1.userName", "nobody");
user_pref("mail.server.server1.directory-rel", "[ProfD]Mail/Local Folders");
EOP
for f in "$A" "$B" c.eml; do printf 'From - %s\n' "$(date -u '+%a %b %e %H:%M:%S %Y')"; sed 's/\r$//; s/^>*From />&/' "$f"; echo; done \
  >"$PROFILE/Mail/Local Folders/Inbox"
# The native host, as the package registers it, with bob's keystore.
cat >host.sh <<EOH
#!/bin/sh
RECRYPT_HOME="$T/dev-bob" exec "$RECRYPT" native-host "\$@"
EOH
chmod +x host.sh
printf '{"name":"recrypt","description":"recrypt","path":"%s","type":"stdio","allowed_extensions":["recrypt@recrypt"]}\n' \
  "$T/host.sh" >home/.mozilla/native-messaging-hosts/recrypt.json

tb_args=(--marionette -remote-allow-system-access --no-remote --profile "$PROFILE")
XVFB_PID=
if command -v Xvfb >/dev/null; then
  # A private X server (it picks a free display and writes its number).
  Xvfb -displayfd 3 -screen 0 1280x900x24 -nolisten tcp 3>xvfb.display 2>xvfb.log &
  XVFB_PID=$!
  for _ in $(seq 1 100); do [ -s xvfb.display ] && break; sleep 0.1; done
  DISPLAY=":$(cat xvfb.display)" HOME="$T/home" thunderbird "${tb_args[@]}" >tb.log 2>&1 &
else
  echo "# no Xvfb: headless, no screenshot"
  HOME="$T/home" MOZ_HEADLESS=1 thunderbird --headless "${tb_args[@]}" >tb.log 2>&1 &
fi
TB_PID=$!
# Thunderbird and its X server stop with the test, however it ends.
tb_stop() {
  [ -z "${TB_PID:-}" ] || { kill "$TB_PID" 2>/dev/null || true; wait "$TB_PID" 2>/dev/null || true; }
  [ -z "${XVFB_PID:-}" ] || { kill "$XVFB_PID" 2>/dev/null || true; wait "$XVFB_PID" 2>/dev/null || true; }
  TB_PID= XVFB_PID=
}
trap 'rc=$?; tb_stop; (exit $rc); _pf_cleanup' EXIT
SHOT="$T/thunderbird.png"
expect=$(python3 - "$MARK" <<'PY'
import json, sys
m = sys.argv[1]
print(json.dumps([
  {"subject": "[recrypt] encrypted message",
   "pane": ["Unsigned.", "First message of this list on this device", "Agenda %sa" % m,
            "The agenda is %s-agenda." % m, "alice@example.org"]},
  {"subject": "[recrypt] encrypted message",
   "pane": ["Signed by alice@example.org", "Grüße aus Köln %sb" % m, "Schöne Grüße, %s-body." % m,
            "minutes.bin", "2.0 KiB"],
   "absent": ["First message of this list"]},
  {"subject": "[recrypt] encrypted message",
   "pane": ["Not opened.", "changed or cut short"],
   "absent": ["%sb" % m, "%s-body" % m]},
]))
PY
)
# The settings page: a second list's key is pasted and pinned; a key for
# list@ signed by another signing key is refused.
ctl list create list2@$D --service-key "$SVC" --apply "$T/db" >/dev/null 2>&1
ctl list key list2@$D >list2.key 2>/dev/null
"$RC_HARNESS" list-create evil "$LIST" >evil.key
options=$(python3 - "$(cat list2.key)" "$(cat evil.key)" <<'PY'
import json, sys
k2, evil = sys.argv[1].strip(), sys.argv[2].strip()
print(json.dumps([
  {"name": "before", "table": ["list@example.org", "this device holds its membership certificate"]},
  {"name": "paste list2", "paste": k2, "result": "Pinned list2@example.org", "cls": "ok",
   "table": ["list@example.org"]},
  {"name": "after", "table": ["list2@example.org"]},
  {"name": "paste a key of list@ by another signer", "paste": evil, "result": "Refused", "cls": "error"},
]))
PY
)
PMARK="${MARK}p" # in what Thunderbird tries to send
sends=$(python3 - "$PMARK" "$LIST" <<'PY'
import json, sys
m, lst = sys.argv[1], sys.argv[2]
print(json.dumps([
  {"name": "to someone outside the list (the control)", "to": "outsider@example.org",
   "subject": "hello", "body": "ordinary mail %s-control" % m, "want": "sent"},
  {"name": "in plaintext to the list", "to": lst, "subject": "plain", "body": "secret %s-list" % m,
   "want": "open"},
  {"name": "a reply to alice alone of her signed post", "to": "alice@example.org", "subject": "Re",
   "body": "secret %s-reply" % m, "reply": 1, "want": "open"},
]))
PY
)
leak_watch_start "$PMARK-list"
smtp_before=$(grep -c 'postfix/smtpd.*: connect from' "$PF_LOG" || true)
rc=0
/usr/bin/python3 "$_here/thunderbird_session.py" "port=$PORT" "xpi=$XPI" "shot=$SHOT" "shot_index=1" \
  "expect=$expect" "options=$options" "sends=$sends" >session.out 2>session.err || rc=$?
cat session.out
passes=$((passes + $(grep -c '^ok - ' session.out || true)))
fails=$((fails + $(grep -c '^FAIL - ' session.out || true)))
[ $rc -eq 0 ] || failed "the Thunderbird session (exit $rc): $(tail -3 session.err)"
tb_stop
pf_queue_empty_wait 20 || true
[ "$(pf_count outsider@$D)" -eq 1 ] && grep -q "$PMARK-control" "$(ls -t "$(pf_maildir outsider@$D)"/* | head -1)" &&
  pass "Thunderbird's ordinary mail reached outsider@ (the SMTP set-up works)" ||
  failed "outsider@ got $(pf_count outsider@$D) messages"
smtp_after=$(grep -c 'postfix/smtpd.*: connect from' "$PF_LOG" || true)
[ $((smtp_after - smtp_before)) -eq 1 ] && pass "the refused messages never reached the SMTP server (one connection: the control)" ||
  failed "Thunderbird made $((smtp_after - smtp_before)) SMTP connections, expected 1"
[ "$(pf_count alice@$D)" -eq 2 ] && [ "$(pf_count "$LIST")" -eq 0 ] &&
  pass "alice and the list got nothing from Thunderbird" ||
  failed "alice has $(pf_count alice@$D), the list $(pf_count "$LIST")"
leak_watch_stop
[ ! -s "$T/leaks" ] && pass "no plaintext list post in the Postfix queue" ||
  failed "plaintext seen in: $(sort -u "$T/leaks" | head -3 | tr '\n' ' ')"
if [ -s "$SHOT" ]; then
  [ "$(head -c 4 "$SHOT" | tail -c 3)" = PNG ] && pass "the screenshot is a PNG" || failed "the screenshot is not a PNG"
  [ -z "${TB_SCREENSHOT:-}" ] || cp "$SHOT" "$TB_SCREENSHOT"
fi

pf_stop
milter_stop
if [ "$fails" -ne 0 ]; then
  echo "# --- thunderbird log (last 20 lines)"; tail -20 tb.log | sed 's/^/# /'
fi
if finish; then exit 0; else exit 1; fi
