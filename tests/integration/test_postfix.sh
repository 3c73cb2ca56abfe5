# recrypt-milter behind a real Postfix on loopback: a store made with
# recryptctl, a private Postfix instance delivering to maildirs, posts sent
# by SMTP, and what each member's maildir, the queue and the milter's spool
# hold afterwards. Needs root, Debian's postfix and swaks (or python3).
# Exit 77 (skipped) when those or the milter are missing.

_here=$(cd "$(dirname "$0")" && pwd)
source "$_here/preflight.sh" # skip(), root, Postfix and its users, the milter binary
command -v script >/dev/null || skip "script (util-linux) is not installed"
command -v swaks >/dev/null || command -v python3 >/dev/null || skip "neither swaks nor python3"

source "$_here/../cli/lib.sh"
source "$_here/postfix-lib.sh"
PF_RECEIPTS=yes # delivery receipts: the replay test (3) needs them
pf_deadline 240
echo "# binaries: $RECRYPT, $RECRYPTCTL, $RECRYPT_MILTER"

LIST=list@example.org
OTHER=other@example.org
D=example.org
ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }

# --- the store: alice (1 device), bob (2), carol (1), dave suspended, erin
# revoked, frank active but undeliverable (no mailbox: test 7).
svc=$("$RECRYPTCTL" server init --db "$T/db" 2>/dev/null)
ctl init >owner.pub 2>/dev/null
ctl list create "$LIST" --service-key "$svc" --apply "$T/db" 2>/dev/null
ctl list create "$OTHER" --service-key "$svc" --apply "$T/db" 2>/dev/null
for d in alice bob-laptop bob-phone carol dave erin frank poster; do newdev "$d"; done
ctl member add "$LIST" alice@$D --device "$(cat alice.pub)" --apply "$T/db" 2>/dev/null
ctl member add "$LIST" bob@$D --device "$(cat bob-laptop.pub)" --device "$(cat bob-phone.pub)" --apply "$T/db" 2>/dev/null
for m in carol dave erin frank; do
  ctl member add "$LIST" $m@$D --device "$(cat $m.pub)" --apply "$T/db" 2>/dev/null
done
ctl member add "$OTHER" alice@$D --device "$(cat alice.pub)" --apply "$T/db" 2>/dev/null
ctl member suspend "$LIST" dave@$D --apply "$T/db" 2>/dev/null
ctl member revoke "$LIST" erin@$D --apply "$T/db" 2>/dev/null
ctl list key "$LIST" >list.key 2>list.err
pin_devices "$LIST" "$(fp_in list.err)" alice bob-laptop bob-phone carol dave erin frank poster
# The other list at the same epoch as this one: only its List-Id differs.
ctl list rotate "$OTHER" --grace 0 --apply "$T/db" 2>/dev/null
ctl list key "$OTHER" >other.key 2>other.err
pin_devices "$OTHER" "$(fp_in other.err)" alice bob-laptop bob-phone carol dave erin frank poster
# A third list still at epoch 1 (an epoch this list no longer accepts).
THIRD=third@example.org
ctl list create "$THIRD" --service-key "$svc" --apply "$T/db" 2>/dev/null
ctl list key "$THIRD" >third.key 2>third.err
pin_devices "$THIRD" "$(fp_in third.err)" alice bob-laptop bob-phone carol dave erin frank poster
"$RECRYPTCTL" show --db "$T/db" "$LIST" >show.txt
BOUNCE=$(sed -n 's/^list .* bounce \([^ ]*\).*/\1/p' show.txt)
if [ "$(grep -c '^  member .* active$' show.txt)" -eq 4 ] && grep -q "^  member dave@$D suspended" show.txt &&
  grep -q "^  member erin@$D revoked" show.txt && [ -n "$BOUNCE" ]; then
  pass "store: 4 active members, dave suspended, erin revoked, bounce address $BOUNCE"
else
  failed "store set-up: $(cat show.txt)"
fi
sleep 1 # stanzas go to devices enrolled before the post's Date

# --- Postfix and the milter. frank has no mailbox; held@ is put on hold
# (the queue grep's positive control).
pf_mailbox alice@$D bob@$D carol@$D dave@$D erin@$D "$LIST" "$BOUNCE" "$OTHER" \
  poster@$D outsider@$D held@$D
echo "held@$D HOLD" >"$PF_ACCESS"
milter_config "$T/milter.conf"
milter_start "$T/milter.conf" || { failed "milter starts"; finish || exit 1; }
pass "milter starts and listens on 127.0.0.1:$MILTER_PORT"
pf_start || { failed "postfix starts"; finish || exit 1; }
pass "postfix starts on 127.0.0.1:$PF_PORT with smtpd_milters"

MARK="rcmark$RANDOM$RANDOM$RANDOM" # in every sealed post's plaintext only
n=0
# msg FILE [MARKER]: a fresh plaintext post from poster@ to the list.
msg() {
  n=$((n + 1))
  printf 'From: poster@%s\nTo: %s\nSubject: post %s %s\nDate: %s\nMessage-ID: <post%s.%s.%s@%s>\n\nThe secret of post %s is %s.\n' \
    "$D" "$LIST" "$n" "${2:-$MARK}" "$(date -R)" "$n" "$$" "$RANDOM" "$D" "$n" "${2:-$MARK}" >"$1"
}
seal() { dev poster seal --to "$1" <"$2" >"$3" 2>"$T/.seal" || failed "seal $2: $(cat "$T/.seal")"; }
# headers FILE: the header block, one unfolded field per line.
headers() {
  # (awk reads to the end: an early exit would SIGPIPE tr under pipefail)
  tr -d '\r' <"$1" | awk 'body {next} /^$/ {body = 1; next} /^[ \t]/ {sub(/^[ \t]+/, " "); h = h $0; next}
    {if (h != "") print h; h = $0} END {if (h != "") print h}'
}
hval() { { headers "$1" | grep -i "^$2:" | sed 's/^[^:]*:[ \t]*//'; } || true; }
# (not the bounce mailbox: every post bounces for frank)
ALL=("alice@$D" "bob@$D" "carol@$D" "dave@$D" "erin@$D" "$LIST" "$OTHER" "poster@$D" "outsider@$D")
counts() { local a; for a in "${ALL[@]}"; do echo "$a $(pf_count "$a")"; done; }
settle() { pf_queue_empty_wait 20 || echo "  (queue not empty after 20 s)"; sleep 0.5; }
# newest ADDRESS: the newest file in the address's maildir
newest() { ls -t "$(pf_maildir "$1")"/* 2>/dev/null | head -1 || true; }
expect_reply() { # NAME PATTERN
  if smtp_replied "$2"; then pass "$1"; else failed "$1: no reply /$2/; got: $(smtp_replies | tail -4 | tr '\n' '|')"; fi
}

# Positive control for the queue grep: a plaintext message put on hold
# (no protected list: the milter must pass it untouched).
CTRL="rcctrl$RANDOM$RANDOM"
printf 'From: poster@%s\nTo: held@%s\nSubject: control\nDate: %s\nMessage-ID: <ctrl%s@%s>\n\ncontrol %s\n' \
  "$D" "$D" "$(date -R)" "$$" "$D" "$CTRL" >ctrl.eml
send_mail poster@$D held@$D ctrl.eml && pass "a message to an ordinary address is accepted" ||
  failed "ordinary message: exit $?: $(smtp_replies | tail -3 | tr '\n' '|')"
sleep 0.5
pf_grep_queue "$CTRL" >/dev/null && pass "control: pf_grep_queue finds a held message's text in the queue" ||
  failed "control: pf_grep_queue does not see the held message (the leak checks below would prove nothing)"

leak_watch_start "$MARK"

# --- 1. a sealed post reaches every active member, and opens on each device.
msg m1.eml
seal list.key m1.eml s1.eml
grep -q "$MARK" s1.eml && failed "the sealed post shows the marker (test is wrong)"
rc=0; send_mail poster@$D "$LIST" s1.eml || rc=$?
[ $rc -eq 0 ] && smtp_replied '^250 .*queued' && pass "1: sealed post accepted by SMTP" ||
  failed "1: sealed post: swaks exit $rc: $(smtp_replies | tail -3 | tr '\n' '|')"
qid=$(smtp_replies | sed -n 's/^250 .*queued as \([0-9A-Za-z]*\).*/\1/p' | tail -1)
for a in alice bob carol; do
  pf_wait_delivered 1 $a@$D 20 && pass "1: delivered to $a" || failed "1: nothing delivered to $a within 20 s"
done
settle
before=$(counts)
for a in alice bob carol; do
  [ "$(pf_count $a@$D)" -eq 1 ] || failed "1: $a has $(pf_count $a@$D) messages, expected 1"
done
for a in dave erin "$LIST" poster outsider "$OTHER"; do
  [[ $a == *@* ]] || a=$a@$D
  [ "$(pf_count "$a")" -eq 0 ] && pass "1: nothing delivered to $a" || failed "1: $a got $(pf_count "$a") messages"
done
for pair in alice:alice bob:bob-laptop bob:bob-phone carol:carol; do
  a=${pair%%:*} d=${pair#*:}
  f=$(newest $a@$D)
  [ -n "$f" ] || { failed "1: no file for $a"; continue; }
  rc=0; dev "$d" open <"$f" >"o-$d.eml" 2>"$T/.open" || rc=$?
  if [ $rc -eq 0 ]; then same_inner "1: $d opens $a's copy to the original message" m1.eml "o-$d.eml"; else
    failed "1: $d cannot open $a's copy (exit $rc: $(head -c 300 "$T/.open"))"; fi
done
f=$(newest alice@$D)
if [ -n "$f" ]; then
  for d in dave erin; do
    rc=0; dev $d open <"$f" >/dev/null 2>&1 || rc=$?
    [ $rc -eq 67 ] && pass "1: $d's device has no stanza (exit 67)" || failed "1: $d's device: exit $rc, expected 67"
  done
  s=$(tr -d '\r' <"$f" | grep -c '^Stanza:' || true)
  [ "$s" -eq 5 ] && pass "1: 5 stanzas (alice, bob x2, carol, frank)" || failed "1: $s stanzas, expected 5"
  # The milter signed the copy (FORMAT.md §8.1): one Recrypt-Service-Signature,
  # the verdict without "path=" (verified); the same copy with one stanza
  # dropped after signing is refused as not from the list.
  [ "$(tr -d '\r' <"$f" | grep -c '^Recrypt-Service-Signature: ')" -eq 1 ] &&
    head -n1 o-alice.eml | grep -qE "^Recrypt-Verdict: unsigned; list=$LIST; epoch=[0-9]+\$" &&
    pass "1: the inline copy carries the service signature, which verifies" ||
    failed "1: service signature: $(grep -c '^Recrypt-Service-Signature' "$f") fields, $(head -n1 o-alice.eml)"
  /usr/bin/python3 - "$f" cut.eml <<'EOF2'
import sys, re
t = open(sys.argv[1], newline="").read()
# drop the last Stanza field (one stanza of five) with its continuation lines
m = list(re.finditer(r"^Stanza: .*\r?\n(?:[ \t].*\r?\n)*", t, re.M))[-1]
open(sys.argv[2], "w", newline="").write(t[:m.start()] + t[m.end():])
EOF2
  bad=0
  for d in alice bob-laptop bob-phone carol; do
    rc=0; dev "$d" open <cut.eml >/dev/null 2>"$T/.open" || rc=$?
    [ $rc -eq 0 ] && bad=1
    [ $rc -eq 77 ] && ! grep -q 'did not come through the list' "$T/.open" && bad=1
  done
  [ $bad = 0 ] && pass "1: a copy whose stanzas changed after signing opens for nobody" ||
    failed "1: a changed copy opened or failed otherwise"
  grep -q "$MARK" "$f" && failed "1: the delivered copy holds the plaintext marker" ||
    pass "1: the delivered copy holds no plaintext"
  v=$(hval "$f" List-Id)
  [[ $v == *"<list.example.org>"* ]] && pass "1: List-Id: $v" || failed "1: List-Id is '$v'"
  v=$(hval "$f" List-Post)
  [[ $v == *"<mailto:$LIST>"* ]] && pass "1: List-Post: $v" || failed "1: List-Post is '$v'"
  v=$(hval "$f" Recrypt-List-Key | tr -d ' \t')
  [ -n "$v" ] && [ "$v" = "$(tr -d ' \t\n' <list.key)" ] && pass "1: Recrypt-List-Key is the list's current key" ||
    failed "1: Recrypt-List-Key '${v:0:40}...' differs from the list key"
  [ -n "$(hval "$f" Recrypt-Processed)" ] && pass "1: Recrypt-Processed present" || failed "1: no Recrypt-Processed"
  v=$(hval "$f" Return-Path)
  [ "$v" = "<$BOUNCE>" ] && pass "1: envelope sender is the bounce address ($v)" || failed "1: Return-Path is '$v', expected <$BOUNCE>"
  [ "$(headers "$f" | grep -ci '^Recrypt-List-Key:')" -eq 1 ] && pass "1: exactly one Recrypt-List-Key" ||
    failed "1: Recrypt-List-Key count"
fi

if [ -n "$qid" ] && grep -q "$qid.*list=$LIST" "$MILTER_LOG"; then
  pass "1: the milter logs the post with its queue id: $(grep "$qid" "$MILTER_LOG" | tail -1 | cut -c1-150)"
else
  failed "1: no milter log line with queue id '$qid' and list=$LIST"
fi
# The queue ID above came through the one macro the milter asks for
# (admin guide 7.5): Postfix offers SMFIF_SETSYMLIST, so the milter must
# have taken it (0x100 in the actions asked) and said so.
l=$(grep -m1 'protocol=negotiated' "$MILTER_LOG" || true)
if [[ $l =~ actions=0x[0-9a-f]+/0x([0-9a-f]+)\ .*\ macros=i$ ]] && (( 0x${BASH_REMATCH[1]} & 0x100 )); then
  pass "1: the milter asked Postfix for the queue ID macro only: ${l##*: }"
else
  failed "1: no protocol=negotiated line with SMFIF_SETSYMLIST and macros=i: '$l'"
fi

# --- 3. the same sealed post again: accepted, delivered to nobody (once
# Postfix delivered the post's receipt: until then it could be a retry).
pf_wait_receipts 1 20 && pass "3: Postfix delivered the first post's receipt to recrypt-milter -r" ||
  failed "3: no receipt delivered: $(grep recrypt-receipt "$PF_LOG" | tail -2 | tr '\n' '|')"
rc=0; send_mail poster@$D "$LIST" s1.eml || rc=$?
[ $rc -eq 0 ] && smtp_replied '^250 ' && pass "3: repeated post accepted by SMTP" ||
  failed "3: repeated post: swaks exit $rc: $(smtp_replies | tail -3 | tr '\n' '|')"
settle
after=$(counts)
[ "$after" = "$before" ] && pass "3: repeated post delivered to nobody" ||
  failed "3: repeated post delivered: $(diff <(echo "$before") <(echo "$after") | grep '^>' | tr '\n' ' ')"
grep -q "verdict=duplicate" "$MILTER_LOG" && pass "3: the milter logs the repeated post as a duplicate" ||
  failed "3: no verdict=duplicate in the milter log"

# --- 4. a re-post with another E (the proof fails), and a post for another list.
msg m4.eml
seal list.key m4.eml s4.eml
msg m4b.eml
seal list.key m4b.eml s4b.eml
e1=$(tr -d '\r' <s4.eml | sed -n 's/^Ephemeral-Key: *//p')
e2=$(tr -d '\r' <s4b.eml | sed -n 's/^Ephemeral-Key: *//p')
sed "s/^Ephemeral-Key: *$e1/Ephemeral-Key: $e2/" s4.eml >s4x.eml
if [ -n "$e1" ] && [ "$e1" != "$e2" ] && ! cmp -s s4.eml s4x.eml; then
  rc=0; send_mail poster@$D "$LIST" s4x.eml || rc=$?
  [ $rc -ne 0 ] && pass "4: post with a replaced E refused (swaks exit $rc)" || failed "4: post with a replaced E accepted"
  expect_reply "4: replaced E gets 554 5.7.1" '^554[ -]5\.7\.1'
else
  failed "4: could not replace Ephemeral-Key (test is wrong)"
fi
settle
[ "$(counts)" = "$before" ] && pass "4: the replaced-E post reached nobody" || failed "4: the replaced-E post was delivered"
# The untouched post is fine (the refusal was for E, and did not burn this E).
rc=0; send_mail poster@$D "$LIST" s4.eml || rc=$?
[ $rc -eq 0 ] && pf_wait_delivered 2 alice@$D 20 && pass "4: the same post with its own E is delivered" ||
  failed "4: the untouched post: exit $rc, alice has $(pf_count alice@$D)"
settle
before=$(counts)
msg m4o.eml
seal other.key m4o.eml s4o.eml
rc=0; send_mail poster@$D "$LIST" s4o.eml || rc=$?
[ $rc -ne 0 ] && pass "4: post sealed for $OTHER sent to $LIST refused (swaks exit $rc)" ||
  failed "4: post sealed for another list accepted"
expect_reply "4: post sealed for another list (same epoch) gets 550 5.7.1" '^550[ -]5\.7\.1'
# The refusal's log line names the epoch the post is sealed for: $OTHER's
# 2 (rotated above), where $LIST is at 1 (admin guide 10, field epoch).
l=$(grep "list=$LIST .*verdict=rejected" "$MILTER_LOG" | tail -1)
[[ $l == *" epoch=2 stanzas=0 recipients=0 "*"reply=\"550 5.7.1 "* ]] &&
  pass "4: the milter's rejected line names the post's epoch (2)" || failed "4: rejected line: '$l'"
msg m4t.eml
seal third.key m4t.eml s4t.eml
rc=0; send_mail poster@$D "$LIST" s4t.eml || rc=$?
[ $rc -ne 0 ] && pass "4: post sealed for $THIRD (epoch 1) sent to $LIST refused (swaks exit $rc)" ||
  failed "4: post sealed for another list at another epoch accepted"
expect_reply "4: post sealed for another list (other epoch) gets 550 5.7.1" '^550[ -]5\.7\.1'
settle
[ "$(counts)" = "$before" ] && pass "4: the other lists' posts reached nobody" || failed "4: another list's post was delivered"

# --- 5. a plaintext post to the list.
PMARK="rcplain$RANDOM$RANDOM"
msg m5.eml "$PMARK"
rc=0; send_mail poster@$D "$LIST" m5.eml || rc=$?
[ $rc -ne 0 ] && pass "5: plaintext post refused (swaks exit $rc)" || failed "5: plaintext post accepted"
expect_reply "5: plaintext post gets 550 5.7.1" '^550[ -]5\.7\.1'
expect_reply "5: the reply says to seal it with recrypt seal" 'recrypt seal'
l=$(grep "list=$LIST .*verdict=rejected" "$MILTER_LOG" | tail -1)
[[ $l == *" epoch=- stanzas=0 recipients=0 "*"reply=\"550 5.7.1 "* ]] &&
  pass "5: the milter's rejected line has epoch=- (a plaintext post is sealed for none)" ||
  failed "5: rejected line: '$l'"
settle
[ "$(counts)" = "$before" ] && pass "5: the plaintext post reached nobody" || failed "5: plaintext post delivered"
grep -rlF "$PMARK" "$PF_MAIL" >/dev/null 2>&1 && failed "5: a maildir holds the plaintext post" ||
  pass "5: no maildir holds the plaintext post"
pf_grep_queue "$PMARK" >/dev/null && failed "5: the refused plaintext post is still in the queue" ||
  pass "5: the refused plaintext post is not left in the queue"

# --- 6. one body per transaction.
msg m6.eml
seal list.key m6.eml s6.eml
a0=$(pf_count alice@$D)
rc=0; send_mail poster@$D "$LIST" outsider@$D s6.eml || rc=$?
expect_reply "6: the list is accepted as first recipient" '^250 2\.1\.5'
expect_reply "6: an ordinary recipient after the list gets 452 4.5.3" '^452[ -]4\.5\.3'
pf_wait_delivered $((a0 + 1)) alice@$D 20 && pass "6: the post still reaches the members" || failed "6: members got nothing"
settle
[ "$(pf_count outsider@$D)" -eq 0 ] && pass "6: the ordinary recipient got nothing" || failed "6: the ordinary recipient got the post"
msg m6b.eml
seal list.key m6b.eml s6b.eml
rc=0; send_mail poster@$D outsider@$D "$LIST" s6b.eml || rc=$?
expect_reply "6: the list after an ordinary recipient gets 452 4.5.3" '^452[ -]4\.5\.3'
msg m6c.eml
seal list.key m6c.eml s6c.eml
rc=0; send_mail poster@$D "$LIST" "$OTHER" s6c.eml || rc=$?
expect_reply "6: a second protected list in the same transaction gets 452 4.5.3" '^452[ -]4\.5\.3'
settle
f=$(newest outsider@$D)
if [ -n "$f" ] && [ "$(pf_count outsider@$D)" -eq 1 ]; then
  [ -z "$(hval "$f" Recrypt-Processed)" ] && [ -z "$(hval "$f" List-Id)" ] &&
    pass "6: without a protected list the post passes untouched" || failed "6: the ordinary copy was rewritten"
else
  failed "6: outsider has $(pf_count outsider@$D) messages, expected 1 (the transaction without the list)"
fi
[ "$(pf_count "$OTHER")" -eq 0 ] && pass "6: nothing reached the other list's mailbox" || failed "6: $OTHER got mail"

# --- 7. bounces go to the list's bounce address, not to the poster.
if pf_wait_delivered 1 "$BOUNCE" 20; then
  f=$(newest "$BOUNCE")
  grep -q "frank@$D" "$f" && pass "7: frank's bounce reached $BOUNCE" || failed "7: the bounce does not name frank"
  grep -qF "$MARK" "$f" && failed "7: the bounce holds plaintext" || pass "7: the bounce holds no plaintext"
else
  failed "7: no bounce at $BOUNCE within 20 s"
fi
settle
[ "$(pf_count poster@$D)" -eq 0 ] && pass "7: the poster got no bounce" || failed "7: the poster got $(pf_count poster@$D) messages"
grep -q "from=<$BOUNCE>" "$PF_LOG" && pass "7: Postfix logs the bounce address as envelope sender" ||
  failed "7: no from=<$BOUNCE> in the Postfix log"

# --- 8. issue 13 item 8: "a sealed post with a 64 KiB visible header is
# recrypted" (sealed or plaintext is decided on the whole message, not its
# first 16 KiB): a Cc of 3400 addresses in front of the Content-Type; and
# item 7: a structural refusal through Postfix is a 554 5.6.0 that says
# what is wrong ("!" in the data part), delivered to nobody.
settle
n=$((n + 1))
{
  printf 'From: poster@%s
To: %s
Cc: ' "$D" "$LIST"
  for i in $(seq 1 3400); do printf '%sr%04d@example.net' "$([ "$i" -gt 1 ] && printf ',\n ')" "$i"; done
  printf '
Subject: post %s %s
Date: %s
Message-ID: <post%s.%s.%s@%s>

The secret of post %s is %s.
' \
    "$n" "$MARK" "$(date -R)" "$n" "$$" "$RANDOM" "$D" "$n" "$MARK"
} >m8.eml
seal list.key m8.eml s8.eml
off=$(grep -abo 'application/vnd.recrypt.control' s8.eml | head -1 | cut -d: -f1)
[ "${off:-0}" -gt 65536 ] && pass "8: the sealed post's control type starts at byte $off (after 64 KiB of header)" ||
  failed "8: the control type is at byte ${off:-none} (test is wrong)"
a0=$(pf_count alice@$D)
rc=0; send_mail poster@$D "$LIST" s8.eml || rc=$?
[ $rc -eq 0 ] && smtp_replied '^250 .*queued' && pass "8: the post with a 64 KiB header is accepted" ||
  failed "8: the post with a 64 KiB header: exit $rc: $(smtp_replies | tail -3 | tr '\n' '|')"
if pf_wait_delivered $((a0 + 1)) alice@$D 20; then
  f=$(newest alice@$D)
  rc=0; dev alice open <"$f" >o8.eml 2>"$T/.open" || rc=$?
  [ $rc -eq 0 ] && same_inner "8: alice opens the recrypted post with the 64 KiB header" m8.eml o8.eml ||
    failed "8: alice cannot open it (exit $rc: $(head -c 300 "$T/.open"))"
else
  failed "8: the post with a 64 KiB header was not delivered to alice"
fi
settle
before=$(counts)
msg m8b.eml
seal list.key m8b.eml s8b.eml
awk 'done == 0 && /^Content-Disposition: inline; filename="message.rcx"/ {hit = 1; print; next}
     hit == 1 && /^[A-Za-z0-9+\/]/ {sub(/^./, "!"); hit = 2; done = 1} {print}' s8b.eml >s8x.eml
rc=0; send_mail poster@$D "$LIST" s8x.eml || rc=$?
[ $rc -ne 0 ] && pass "8: a post with '!' in its data part is refused (swaks exit $rc)" || failed "8: the post with '!' was accepted"
expect_reply "8: it gets 554 5.6.0 saying the data part is not base64" '^554[ -]5\.6\.0.*not base64 \(0x21'
settle
[ "$(counts)" = "$before" ] && pass "8: the malformed post reached nobody" || failed "8: the malformed post was delivered"

# --- 2. plaintext never in the queue or the milter's spool (checked all along).
leak_watch_stop
[ ! -s "$T/leaks" ] && pass "2: the queue and the milter spool never held the plaintext (polled throughout)" ||
  failed "2: plaintext seen in: $(sort -u "$T/leaks" | head -5 | tr '\n' ' ')"
pf_grep_queue "$MARK" >/dev/null && failed "2: the queue holds the plaintext at the end" ||
  pass "2: the queue holds no plaintext at the end"
_milter_grep "$MARK" >/dev/null && failed "2: the milter spool holds the plaintext" || pass "2: the milter spool holds no plaintext"
grep -rlF "$MARK" "$PF_MAIL" >/dev/null && failed "2: a maildir holds the plaintext" || pass "2: no maildir holds the plaintext"
grep -qF "$MARK" "$MILTER_LOG" "$PF_LOG" && failed "2: a log holds the plaintext" || pass "2: no log holds the plaintext"
[ -z "$(find "$MILTER_SPOOL" -type f)" ] && pass "2: the milter spool directory is empty" ||
  failed "2: files left in the milter spool: $(ls "$MILTER_SPOOL")"

pf_stop
milter_stop # which logs the counters

# --- the log lines (admin guide §10): every line the milter and the
# receipt command wrote matches its documented format and level.
check_log_formats post:recrypted post:rejected post:duplicate post:deferred-rcpt \
  receipt:delivered counters
if [ "$fails" -ne 0 ]; then
  echo "# --- postfix log (last 40 lines)"
  tail -40 "$PF_LOG" | sed 's/^/# /'
  echo "# --- milter log (last 40 lines)"
  tail -40 "$MILTER_LOG" | sed 's/^/# /'
fi
if finish; then exit 0; else exit 1; fi
