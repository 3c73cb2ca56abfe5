# A subscriber reads list mail in a real Thunderbird with the recrypt
# add-on, driven through Marionette (tests/integration/marionette.py):
#   - the gateway (Postfix + recrypt-milter on loopback) delivers two posts
#     of alice's to bob: one unsigned (her device held no certificate yet),
#     one signed, with a UTF-8 Subject and an attachment; a third message is
#     the signed post with one character of its ciphertext changed;
#   - bob's Thunderbird (a fresh profile; the add-on installed from the
#     .xpi the build made; the native host registered in ~/.mozilla) shows
#     each in its message pane: the real Subject, body and verdict, the
#     attachment; and for the tampered one a refusal with nothing of the
#     post. Bob's device has not pinned the list: the first post shows the
#     list and its signing key's fingerprint and opens nothing until bob
#     confirms it (issue 13: a message never pins); then it opens;
#   - the settings page lists the lists with their signing keys; a pasted
#     key of a new list shows its fingerprint and is pinned when bob
#     confirms it, one of another signer is refused;
#   - writing: a new post, Reply to List and Reply All on alice's posts
#     are sealed by the add-on (the reply quoting the decrypted post) and
#     sent through the gateway: alice's device opens each to what bob
#     wrote, signed by bob; the copies in Sent are sealed; a message to
#     the list and an outsider is refused, so is one to an address book
#     list holding the list; Save of a reply asks before storing a draft
#     unencrypted (refused: no draft); a reply to alice alone is sent
#     only when the user confirms it leaves the list's encryption;
#     ordinary mail goes (the control);
#   - a screenshot of the decrypted pane (under Xvfb; TB_SCREENSHOT=FILE
#     keeps it; without Xvfb, Thunderbird runs headless).
# Needs root, Postfix, Thunderbird and Xvfb (install-deps.sh). Exit 77
# (skipped) otherwise.

_here=$(cd "$(dirname "$0")" && pwd)
source "$_here/preflight.sh" # skip(), root, Postfix and its users, the milter binary
command -v thunderbird >/dev/null || skip "thunderbird is not installed (scripts/install-deps.sh)"
XPI=${RECRYPT_XPI:-$_here/../../build/clients/thunderbird/recrypt-thunderbird.xpi}
[ -f "$XPI" ] || skip "no add-on at $XPI (build target thunderbird-xpi)"

source "$_here/../cli/lib.sh"
source "$_here/postfix-lib.sh"
PF_RECEIPTS=yes
pf_deadline 480

LIST=list@example.org
D=example.org
ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }
GW_UNPINNED=bob # bob confirms the pin in Thunderbird
gateway_up alice bob -- outsider@$D || { finish || exit 1; }
ctl list key "$LIST" >/dev/null 2>lk.err
FP=$(fp_in lk.err)
[ -n "$FP" ] || failed "recryptctl list key printed no fingerprint"
# Alice pins with the fingerprint the owner gave her; bob does not (yet).
dev alice list import --signer "$FP" list.key >/dev/null 2>&1 || failed "alice imports the list key"
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
mkdir -p "$PROFILE/Mail/Local Folders" "$PROFILE/Mail/bob" home/.mozilla/native-messaging-hosts downloads
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
// An attachment saved from the pane goes to the test's folder, unasked.
user_pref("browser.download.useDownloadDir", true);
user_pref("browser.download.folderList", 2);
user_pref("browser.download.dir", "$T/downloads");
user_pref("browser.download.always_ask_before_handling_new_types", false);
user_pref("browser.download.start_downloads_in_tmp_dir", false);
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
pf_at_exit tb_stop
SHOT="$T/thunderbird.png"
expect=$(python3 - "$MARK" "$FP" "$T/dev-bob/lists/$LIST/pin" <<'PY'
import json, sys
m, fp, pin_file = sys.argv[1], sys.argv[2], sys.argv[3]
print(json.dumps([
  {"subject": "[recrypt] encrypted message",
   "pane": ["Not opened: this list is not pinned on this device", "List: list@example.org",
            "signed by: %s" % fp, "Compare this fingerprint with the one your list owner gave you"],
   "absent": ["Agenda %sa" % m, "%s-agenda" % m],
   "pin": {"pane": ["Unsigned.", "First message of this list on this device",
                    "signed by the list signing key you pinned: %s" % fp, "Agenda %sa" % m,
                    "The agenda is %s-agenda." % m, "alice@example.org"],
           "absent": ["not pinned"]},
   "pin_file": pin_file},
  {"subject": "[recrypt] encrypted message",
   "pane": ["Signed by alice@example.org", "Grüße aus Köln %sb" % m, "Schöne Grüße, %s-body." % m,
            "minutes.bin", "2.0 KiB"], "save": "minutes.bin",
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
ctl list key list2@$D >list2.key 2>lk2.err
"$RC_HARNESS" list-create evil "$LIST" >evil.key
options=$(python3 - "$(cat list2.key)" "$(cat evil.key)" "$(fp_in lk2.err)" <<'PY'
import json, sys
k2, evil, fp2 = sys.argv[1].strip(), sys.argv[2].strip(), sys.argv[3]
print(json.dumps([
  {"name": "before", "table": ["list@example.org", "this device holds its membership certificate"]},
  {"name": "paste list2", "paste": k2, "confirm": True,
   "prompt": ["list2@example.org is not pinned on this device", fp2, "Compare it with the fingerprint"],
   "result": "Pinned list2@example.org to %s" % fp2, "cls": "ok", "table": ["list@example.org"]},
  {"name": "after", "table": ["list2@example.org"]},
  {"name": "paste a key of list@ by another signer", "paste": evil, "result": "Refused", "cls": "error"},
]))
PY
)
PMARK="${MARK}p" # in what Thunderbird sends
sends=$(python3 - "$PMARK" "$LIST" "$MARK" <<'PY'
import json, sys
m, lst, mark = sys.argv[1], sys.argv[2], sys.argv[3]
quote_b = "Schöne Grüße, %s-body." % mark
print(json.dumps([
  {"name": "to someone outside the list (the control)", "to": "outsider@example.org",
   "subject": "hello", "body": "ordinary mail %s-control" % m, "want": "sent"},
  {"name": "a new post to the list", "to": lst, "subject": "New %s-list-new" % m,
   "body": "a new post %s-list-new-body" % m, "want": "sent"},
  {"name": "Reply to List on post B", "reply": 1, "reply_type": "ReplyToList", "quote": quote_b,
   "body": "my answer %s-list-reply" % m, "want": "sent", "save_draft": "cancel",
   "composed": {"to": lst, "subject": "Re: Grüße aus Köln %sb" % mark, "text": "> " + quote_b},
   "not_composed": {"to": "alice@", "cc": "@"}},
  {"name": "Reply All on post A", "reply": 0, "reply_type": "ReplyAll", "quote": "%s-agenda" % mark,
   "body": "to all %s-list-all" % m, "want": "sent",
   "composed": {"to": lst, "subject": "Re: Agenda %sa" % mark}, "not_composed": {"to": "alice@", "cc": "@"}},
  {"name": "to the list and someone outside it", "to": "%s, outsider@example.org" % lst,
   "subject": "both", "body": "secret %s-list-mixed" % m, "want": "open"},
  {"name": "to an address book list that holds the list", "to": "Team <team@example.org>",
   "subject": "team", "body": "secret %s-list-team" % m, "want": "open"},
  {"name": "Reply to alice alone of her post, not confirmed", "reply": 1, "reply_type": "ReplyToSender",
   "quote": quote_b, "body": "private %s-list-private" % m, "want": "open", "dialog": "cancel",
   "dialog_says": "outside the list", "composed": {"to": "alice@example.org"}},
  {"name": "Reply to alice alone, sent unencrypted on purpose", "reply": 1, "reply_type": "ReplyToSender",
   "quote": quote_b, "body": "on purpose %s-chosen" % m, "want": "sent", "dialog": "accept",
   "dialog_says": "unencrypted"},
]))
PY
)
leak_watch_start "$PMARK-list"
rejects_before=$(grep -c 'milter-reject' "$PF_LOG" || true)
rc=0
/usr/bin/python3 "$_here/thunderbird_session.py" "port=$PORT" "xpi=$XPI" "shot=$SHOT" "shot_index=1" "downloads=$T/downloads" \
  "expect=$expect" "options=$options" "sends=$sends" \
  "ablists={\"Team\": [\"team@$D\", [\"$LIST\", \"outsider@$D\"]]}" >session.out 2>session.err || rc=$?
cat session.out
passes=$((passes + $(grep -c '^ok - ' session.out || true)))
fails=$((fails + $(grep -c '^FAIL - ' session.out || true)))
[ $rc -eq 0 ] || failed "the Thunderbird session (exit $rc): $(tail -3 session.err)"
tb_stop
cmp -s a.bin downloads/minutes.bin && [ "$(stat -c %a downloads/minutes.bin)" = 600 ] &&
  pass "the attachment saved from the pane is the one alice sent, byte for byte, mode 0600" ||
  failed "the saved attachment differs from alice's, is missing or not 0600: $(ls -l downloads)"
pf_queue_empty_wait 20 || true
[ "$(pf_count outsider@$D)" -eq 1 ] && grep -q "$PMARK-control" "$(ls -t "$(pf_maildir outsider@$D)"/* | head -1)" &&
  pass "Thunderbird's ordinary mail reached outsider@ (the SMTP set-up works)" ||
  failed "outsider@ got $(pf_count outsider@$D) messages"
# The three list posts Thunderbird sealed reached alice and bob through the
# gateway; alice's device opens each to what bob wrote, signed by bob.
[ "$(pf_count alice@$D)" -eq 6 ] && [ "$(pf_count bob@$D)" -eq 5 ] && [ "$(pf_count "$LIST")" -eq 0 ] &&
  pass "alice got the 3 sealed posts and the reply sent on purpose, bob the 3 posts" ||
  failed "alice has $(pf_count alice@$D) messages (want 6), bob $(pf_count bob@$D) (want 5), the list $(pf_count "$LIST")"
opened_all=
for f in $(ls -tr "$(pf_maildir alice@$D)"/* | tail -4); do
  if grep -q "$PMARK-chosen" "$f"; then
    grep -q "^In-Reply-To: <tb-b\." "$f" && pass "the reply sent on purpose went to alice alone, in plaintext, as chosen" ||
      failed "the reply sent on purpose lacks In-Reply-To of post B"
    continue
  fi
  grep -q "$PMARK" "$f" && failed "a post from Thunderbird reached alice in plaintext: $f"
  dev alice open <"$f" >o.eml 2>o.err || { failed "alice cannot open a post Thunderbird sealed: $(cat o.err)"; continue; }
  grep -q "^Recrypt-Verdict: signed; member=bob@$D;" o.eml || failed "not signed by bob: $(grep -m1 Recrypt-Verdict o.eml)"
  opened_all="$opened_all $(grep -o "$PMARK-list-[a-z-]*" o.eml | sort -u | tr '\n' ' ' || true)"
  if grep -q "$PMARK-list-reply" o.eml; then
    grep -q "^> Sch.*Gr.*, ${MARK}-body\." o.eml && grep -q "^In-Reply-To: <tb-b\." o.eml &&
      grep -q "^References:.*<tb-b\." o.eml && grep -qi '^Subject: .*Re' o.eml &&
      pass "the list reply quotes post B's text and answers it (In-Reply-To, References, Subject)" ||
      failed "the list reply as alice opens it: $(head -c 1500 o.eml)"
  fi
done
for want in new-body reply all; do
  case " $opened_all " in *"$PMARK-list-$want "*) pass "alice opens the sealed $want post to what bob wrote" ;;
    *) failed "no post of alice's opens to $PMARK-list-$want (opened:$opened_all)" ;; esac
done
[ "$(grep -c 'milter-reject' "$PF_LOG" || true)" -eq "$rejects_before" ] &&
  pass "the gateway refused nothing from Thunderbird (no plaintext list post was even tried)" ||
  failed "the gateway refused: $(grep 'milter-reject' "$PF_LOG" | tail -2)"
leak_watch_stop
[ ! -s "$T/leaks" ] && pass "nothing of a list post reached the Postfix queue in plaintext" ||
  failed "plaintext seen in: $(sort -u "$T/leaks" | head -3 | tr '\n' ' ')"
! grep -rqs "$PMARK-list" "$(pf_maildir alice@$D)" "$(pf_maildir bob@$D)" "$(pf_maildir outsider@$D)" &&
  pass "no mailbox holds a list post's text in plaintext (the refused ones never went)" ||
  failed "a mailbox holds $PMARK-list"
sent="$PROFILE/Mail/bob/Sent"
[ "$(grep -c '^Content-Type: multipart/encrypted' "$sent" 2>/dev/null)" -ge 3 ] &&
  pass "Thunderbird's Sent folder holds the sealed posts" || failed "Sent holds $(grep -c '^Subject:' "$sent" 2>/dev/null) messages"
! grep -rqs "$PMARK-list" "$PROFILE/Mail" &&
  pass "no mail folder of the profile (Sent, Drafts) holds a list post's text" ||
  failed "plaintext of a list post in: $(grep -rls "$PMARK-list" "$PROFILE/Mail" | head -3 | tr '\n' ' ')"
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
