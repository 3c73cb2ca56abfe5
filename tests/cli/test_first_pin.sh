# Issue 13, "First pin from any mail": a new device used to pin the list
# signing key of the first message it opened. An attacker mailed a newly
# enrolled device first, with a statement for the list signed by the
# attacker's own key and a valid stanza for the device (anyone can make one
# from the device's public key): the device pinned it, refused the genuine
# posts, and `recrypt seal` sealed the member's reply to the attacker.
#
# Now (FORMAT.md 4, "Acceptance"): "A message never pins a list by itself";
# a first pin comes only from an explicit act (recrypt list pin, list
# import, --signer). Every refusal states the pin state.
source "$(dirname "$0")/lib.sh"

newlist list list@example.org          # the genuine list
newlist evil list@example.org          # the attacker's list of the same address
FP=$("$RC_HARNESS" signer list)
EVIL=$("$RC_HARNESS" signer evil)
[ "$FP" != "$EVIL" ] && pass "two signing keys for one list address" || failed "same signer?"

newdev victim
newdev alice
newdev mallory
# The genuine owner enrols the victim (and alice); the attacker "enrols"
# the victim in its own list from the victim's public key.
"$RC_HARNESS" enrol list victim@example.org "$(cat victim.pub)" --at $(( $(date +%s) - 86400 ))
enrol list alice@example.org alice
"$RC_HARNESS" enrol evil victim@example.org "$(cat victim.pub)" --at $(( $(date +%s) - 86400 ))
"$RC_HARNESS" enrol evil mallory@example.org "$(cat mallory.pub)" --at $(( $(date +%s) - 86400 ))
dev mallory list pin list@example.org "$EVIL" >/dev/null

msg() { printf 'From: %s\nTo: list@example.org\nSubject: %s\nDate: %s\nMessage-ID: <%s.%s@example.org>\n\n%s\n' \
  "$1" "$2" "$(date -R)" "$RANDOM$RANDOM" "$$" "$2"; }
msg mallory@example.org "please reply" >a.eml
post evil mallory a.eml attack.eml
grep -q '^Recrypt-List-Key: ' attack.eml && grep -q '^Stanza: ' attack.eml &&
  pass "the attacker's message carries its list key and stanzas" || failed "attack message not made"

# 1. The attacker's message arrives first: refused, nothing pinned.
expect_fail "the attacker's message to an unpinned device is refused" 77 \
  "list@example.org is not pinned on this device, and a message never pins a list by itself\. This list key is signed by $EVIL\..*run: recrypt list pin list@example.org $EVIL" \
  dev victim open <attack.eml
[ ! -e "$T/dev-victim/lists/list@example.org/pin" ] && pass "nothing was pinned" ||
  failed "the attacker's message pinned: $(cat "$T/dev-victim/lists/list@example.org/pin")"
[ -z "$(ls "$T/dev-victim/lists/list@example.org" 2>/dev/null)" ] &&
  pass "no list key or certificate of the attacker was kept" || failed "kept: $(ls "$T/dev-victim/lists/list@example.org")"
rc=0; dev victim view --dir "$T/view" <attack.eml >/dev/null 2>&1 || rc=$?
grep -rqs "not pinned on this device" "$T/view" && ! grep -rqs "please reply" "$T/view" &&
  pass "view shows a notice with the pin state, nothing of the message" || failed "view (exit $rc)"
expect_fail "seal --to the address of the unpinned list is refused" 66 \
  "list@example.org is not pinned on this device" dev victim seal --to list@example.org <a.eml
expect_fail "seal --to the attacker's key line is refused" 77 \
  "not pinned on this device.*signed by $EVIL" dev victim seal --to evil.key <a.eml
dev victim list show >show.txt 2>"$T/.err"
grep -q 'knows no list yet' "$T/.err" && [ ! -s show.txt ] &&
  pass "list show: no list pinned" || failed "list show: $(cat show.txt)"

# 2. The victim pins the genuine fingerprint the owner gave at enrolment.
expect_fail "list pin refuses what is not a fingerprint" 64 "is not a list signing key fingerprint" \
  dev victim list pin list@example.org MAAA-BBBB
expect_fail "list pin refuses what is not an address" 64 "is not a list address" \
  dev victim list pin not-an-address "$FP"
expect_ok "list pin with the genuine fingerprint" dev victim list pin list@example.org "$(echo "$FP" | tr A-Z- a-z\ )"
grep -qx "list@example.org pinned to $FP: list keys signed by this key are accepted from list mail" "$T/.out" &&
  pass "list pin normalises the fingerprint and says what it did" || failed "list pin output: $(cat "$T/.out")"
expect_ok "list pin again is a no-op" dev victim list pin list@example.org "$FP"
grep -q "already pinned to $FP" "$T/.out" && pass "pinning again says it is already pinned" || failed "repin: $(cat "$T/.out")"
mode=$(stat -c %a "$T/dev-victim/lists/list@example.org/pin")
[ "$(head -1 "$T/dev-victim/lists/list@example.org/pin")" = "fingerprint $FP" ] && [ "$mode" = 600 ] &&
  pass "the pin file holds the fingerprint (0600)" || failed "pin file: mode $mode $(cat "$T/dev-victim/lists/list@example.org/pin")"
expect_fail "list pin to another fingerprint is refused without --replace" 77 \
  "list@example.org is already pinned to $FP, not $EVIL.*recrypt list pin --replace" \
  dev victim list pin list@example.org "$EVIL"

# 3. The attacker's message is still refused, naming both fingerprints.
expect_fail "the attacker's message after the pin names both fingerprints" 77 \
  "list@example.org is pinned to $FP, but this list key is signed by $EVIL" dev victim open <attack.eml

# 4. Genuine posts open, and fill in the key.
msg alice@example.org "genuine" >g.eml
post list alice g.eml genuine.eml
rc=0; dev victim open <genuine.eml >o.eml 2>"$T/.err" || rc=$?
[ $rc -eq 0 ] && same_inner "a genuine post opens" g.eml o.eml || failed "genuine post: exit $rc $(cat "$T/.err")"
grep -q "pinned its signing key $FP" "$T/.err" && pass "the first genuine post completes the pin and says so" ||
  failed "no pin notice: $(cat "$T/.err")"
head -1 "$T/dev-victim/lists/list@example.org/pin" | grep -q '^signer ' &&
  pass "the pin now holds the key" || failed "pin file: $(cat "$T/dev-victim/lists/list@example.org/pin")"
dev victim list show >show.txt 2>/dev/null
grep -qx "  signer $FP" show.txt && grep -q '^  epoch 1 .*current' show.txt &&
  pass "list show: pinned to the genuine key, epoch 1" || failed "list show: $(cat show.txt)"

# 5. recrypt seal --to the list's address seals to the genuine key.
msg victim@example.org "my reply" >r.eml
dev victim seal --to list@example.org <r.eml >reply.eml 2>"$T/.err" || failed "seal --to address: $(cat "$T/.err")"
"$RC_HARNESS" recrypt list <reply.eml >reply-d.eml 2>/dev/null &&
  pass "the reply is sealed to the genuine list key (its service accepts it)" || failed "genuine service refused the reply"
! "$RC_HARNESS" recrypt evil <reply.eml >/dev/null 2>&1 &&
  pass "the attacker's service cannot take the reply" || failed "the reply was sealed to the attacker"
rc=0; dev alice open <reply-d.eml >ro.eml 2>/dev/null || rc=$?
[ $rc -eq 0 ] && grep -q '^my reply$' ro.eml && pass "alice opens the reply" || failed "alice and the reply: exit $rc"

# 6. Again, after all that: still refused, naming both.
expect_fail "the attacker's message is still refused" 77 \
  "list@example.org is pinned to $FP, but this list key is signed by $EVIL" dev victim open <attack.eml
expect_fail "--signer cannot override a pin" 77 "pinned to $FP" \
  dev victim open --signer "$EVIL" <attack.eml

# 7. list import on a terminal asks, and pins only on "y".
newdev tty
"$RC_HARNESS" list-key list >list-now.key
rc=0; /usr/bin/python3 "$_root/tests/cli/pty_answer.py" n env RECRYPT_HOME="$T/dev-tty" "$RECRYPT" list import list-now.key >tty.out 2>&1 || rc=$?
[ $rc -eq 77 ] && grep -q "Its list key is signed by" tty.out && grep -q "$FP" tty.out &&
  grep -q "you did not confirm its signing key" tty.out && [ ! -e "$T/dev-tty/lists/list@example.org/pin" ] &&
  pass "list import on a terminal shows the fingerprint; answered no, nothing is pinned" ||
  failed "import on a terminal, no (exit $rc): $(tr '\r\n' '  ' <tty.out)"
rc=0; /usr/bin/python3 "$_root/tests/cli/pty_answer.py" y env RECRYPT_HOME="$T/dev-tty" "$RECRYPT" list import list-now.key >tty.out 2>&1 || rc=$?
[ $rc -eq 0 ] && grep -q "Pin list@example.org to this key? \[y/N\]" tty.out &&
  head -1 "$T/dev-tty/lists/list@example.org/pin" | grep -q '^signer ' &&
  pass "list import on a terminal, answered yes, pins the list" ||
  failed "import on a terminal, yes (exit $rc): $(tr '\r\n' '  ' <tty.out)"

# recrypt sendmail to a list pinned by fingerprint whose key has not
# arrived: refused, nothing submitted (it is a list: never sent in clear).
newdev fresh
dev fresh list pin list@example.org "$FP" >/dev/null
recording_sendmail
msg fresh@example.org "via sendmail" >sm.eml
rc=0; dev fresh sendmail -t -oi <sm.eml >/dev/null 2>sm.err || rc=$?
[ $rc -ne 0 ] && ! ls "$T"/sub.* >/dev/null 2>&1 &&
  grep -q "list@example.org is pinned to $FP, but this keystore holds no list key of it yet" sm.err &&
  pass "sendmail to a list pinned by fingerprint only: refused with the pin state, nothing submitted" ||
  failed "sendmail, fingerprint pin (exit $rc, $(ls "$T"/sub.* 2>/dev/null | wc -l) submissions): $(cat sm.err)"

# 8. --replace: the owner says the key changed (here: a device that pinned
# the wrong key before 0.3.0 recovers). The old signer's keys are dropped.
newdev old
dev old list pin list@example.org "$EVIL" >/dev/null
"$RC_HARNESS" enrol evil old@example.org "$(cat old.pub)" --at $(( $(date +%s) - 86400 ))
"$RC_HARNESS" enrol list old@example.org "$(cat old.pub)" --at $(( $(date +%s) - 86400 ))
msg mallory@example.org "second" >a2.eml
post evil mallory a2.eml attack2.eml
dev old open <attack2.eml >/dev/null 2>&1 || failed "old device could not open under its (wrong) pin"
expect_ok "list pin --replace with the genuine fingerprint" dev old list pin --replace list@example.org "$FP"
ls "$T/dev-old/lists/list@example.org" | grep -qE '^(epoch-|cert-)' &&
  failed "--replace kept the old signer's keys: $(ls "$T/dev-old/lists/list@example.org")" ||
  pass "--replace drops the old signer's list keys and certificates"
msg alice@example.org "genuine 2" >g2.eml
post list alice g2.eml genuine2.eml
expect_ok "after --replace the genuine post opens" dev old open <genuine2.eml
expect_fail "after --replace the attacker's post is refused" 77 "pinned to $FP, but this list key is signed by $EVIL" \
  dev old open <attack2.eml
finish
