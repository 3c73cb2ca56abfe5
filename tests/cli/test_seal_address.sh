# recrypt seal --to ADDRESS: the newest list key the keystore accepted,
# which follows the list across rotations without a new key file: a list
# it does not know yet is refused (exit 66) with what to do (pinned by
# fingerprint but no key yet, or not pinned at all); after a
# rotation, opening one post of the new epoch is enough for the next
# post to be sealed to it. recrypt list show says what the keystore
# holds; recrypt list import takes a key line, a file or a delivered
# message, and refuses a key signed by another signer than the pinned one.
source "$(dirname "$0")/lib.sh"

newlist list list@example.org
newdev alice
newdev bob
enrol list alice@example.org alice
enrol list bob@example.org bob
mail() { # mail FROM SUBJECT FILE
  printf 'From: %s\nTo: list@example.org\nSubject: %s\nDate: %s\nMessage-ID: <%s.%s@example.org>\n\n%s\n' \
    "$1" "$2" "$(date -R)" "$RANDOM$RANDOM" "$$" "text of $2" >"$3"
}
epoch_of() { tr -d '\r' <"$1" | sed -n 's/^Epoch: *//p' | head -1; }

mail alice@example.org first m1.eml
FP=$("$RC_HARNESS" signer list)
expect_fail "seal --to an address pinned by fingerprint, with no list key yet" 66 \
  "list@example.org is pinned to $FP, but this keystore holds no list key of it yet: open a message from the list first" \
  dev alice seal --to list@example.org <m1.eml
rc=0; dev alice list show >show0.txt 2>"$T/.err" || rc=$?
[ $rc -eq 0 ] && grep -qx "  signer $FP" show0.txt && grep -q '^  no list key yet' show0.txt &&
  pass "list show: a list pinned by fingerprint, no list key yet" || failed "list show, fingerprint pin: $(cat show0.txt)"
newdev nobody
expect_fail "seal --to the address of a list that is not pinned says how to pin it" 66 \
  "list@example.org is not pinned on this device .*run 'recrypt list pin list@example.org FINGERPRINT'" \
  dev nobody seal --to list@example.org <m1.eml

# Alice opens a post: her keystore now holds the list's key (epoch 1).
mail bob@example.org hello m0.eml
post list bob m0.eml d0.eml
dev alice open <d0.eml >/dev/null 2>&1 || failed "alice opens the first post"
rc=0; dev alice seal --to List@Example.ORG <m1.eml >s1.eml 2>"$T/.err" || rc=$?
[ $rc -eq 0 ] && [ "$(epoch_of s1.eml)" = 1 ] && pass "seal --to the address (any case) seals to epoch 1" ||
  failed "seal --to address: exit $rc, epoch '$(epoch_of s1.eml)': $(cat "$T/.err")"
"$RC_HARNESS" recrypt list <s1.eml >d1.eml 2>/dev/null
rc=0; dev bob open <d1.eml >o1.eml 2>/dev/null || rc=$?
[ $rc -eq 0 ] && same_inner "bob opens alice's post sealed --to the address" m1.eml o1.eml ||
  failed "bob cannot open (exit $rc)"

# The owner rotates the list; the members are enrolled in epoch 2. Bob
# posts with the new key; alice opens it, and that is all she needs.
"$RC_HARNESS" list-rotate list >/dev/null
enrol list alice@example.org alice
enrol list bob@example.org bob
mail bob@example.org rotated m2.eml
post list bob m2.eml d2.eml
dev alice open <d2.eml >/dev/null 2>&1 || failed "alice opens the epoch-2 post"
mail alice@example.org after m3.eml
rc=0; dev alice seal --to list@example.org <m3.eml >s3.eml 2>"$T/.err" || rc=$?
[ $rc -eq 0 ] && [ "$(epoch_of s3.eml)" = 2 ] &&
  pass "after the rotation, seal --to the address seals to epoch 2 (no new key file)" ||
  failed "after rotation: exit $rc, epoch '$(epoch_of s3.eml)': $(cat "$T/.err")"
"$RC_HARNESS" recrypt list <s3.eml >d3.eml 2>/dev/null
rc=0; dev bob open <d3.eml >o3.eml 2>/dev/null || rc=$?
[ $rc -eq 0 ] && grep -q '; epoch=2' o3.eml && same_inner "bob opens the epoch-2 post" m3.eml o3.eml ||
  failed "bob and the epoch-2 post: exit $rc, $(head -1 o3.eml)"
# list show: the list, its signer and pin date, both epochs, newest first.
rc=0; dev alice list show >show.txt 2>"$T/.err" || rc=$?
if [ $rc -eq 0 ] && head -1 show.txt | grep -qx 'list@example.org' &&
   grep -qE '^  signer [A-Z2-7-]+$' show.txt &&
   grep -qE '^  pinned 20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} UTC$' show.txt &&
   grep -A1 '^  pinned' show.txt | tail -1 | grep -qE '^  epoch 2  valid 20.* UTC to .*  current, this device holds its membership certificate$' &&
   grep -qE '^  epoch 1  valid .*  older, this device holds its membership certificate$' show.txt; then
  pass "list show: the list, its signer, pin date, epoch 2 current then epoch 1"
else
  failed "list show (exit $rc): $(cat show.txt "$T/.err" | tr '\n' '|')"
fi
rc=0; dev bob list show >/dev/null 2>&1 || rc=$?
newdev carol
rc=0; dev carol list show >carol-show.txt 2>"$T/.err" || rc=$?
[ $rc -eq 0 ] && [ ! -s carol-show.txt ] && grep -q 'knows no list yet' "$T/.err" &&
  pass "list show on an empty keystore says so" || failed "list show, empty: exit $rc $(cat "$T/.err")"

# list import: an explicit act, but the fingerprint must still be
# compared: without a terminal it needs --signer FPR or --yes (issue 13,
# "a first pin comes only from an explicit act"); then the list is known
# and seal --to the address works at once.
"$RC_HARNESS" list-key list >list-now.key
expect_fail "list import of an unpinned list without a terminal, --signer or --yes" 77 \
  "list@example.org is not pinned on this device, and this list key is signed by $FP.*--signer $FP \(or --yes\)" \
  dev carol list import list-now.key </dev/null
[ ! -e "$T/dev-carol/lists/list@example.org/pin" ] && pass "the refused import pinned nothing" ||
  failed "the refused import wrote a pin"
rc=0; dev carol list import --yes list-now.key >imp.out 2>"$T/.err" </dev/null || rc=$?
[ $rc -eq 0 ] && grep -qE '^list@example.org epoch 2 imported \(signer [A-Z2-7-]+\)$' imp.out &&
  grep -q "list@example.org: pinned its signing key $FP" "$T/.err" &&
  pass "list import --yes of a key file pins the list and says so" || failed "list import: exit $rc $(cat imp.out "$T/.err")"
printf 'From: carol@example.org\nTo: list@example.org\nSubject: c\nDate: %s\nMessage-ID: <c%s@example.org>\n\nhi\n' "$(date -R)" "$$" >mc.eml
dev carol seal --to list@example.org <mc.eml >sc.eml 2>/dev/null && [ "$(epoch_of sc.eml)" = 2 ] &&
  pass "after the import, seal --to the address works" || failed "seal after import"
# From a message the list delivered (its Recrypt-List-Key), by a new device.
newdev dave
"$RC_HARNESS" recrypt list <s3.eml >with-key.eml 2>/dev/null # (it adds Recrypt-List-Key)
grep -q '^Recrypt-List-Key: ' with-key.eml || failed "the delivered message has no Recrypt-List-Key (test is wrong)"
rc=0; dev dave list import --signer "$FP" with-key.eml >/dev/null 2>"$T/.err" || rc=$?
[ $rc -eq 0 ] && dev dave list show 2>/dev/null | grep -q '^  epoch 2 .*current$' &&
  pass "list import of a delivered message takes its Recrypt-List-Key" || failed "import message: exit $rc $(cat "$T/.err")"
# Refusals: a key signed by another signer than the pinned one; garbage.
newlist evil list@example.org
expect_fail "list import of a key signed by another signer than the pinned one" 77 "pinned" \
  dev carol list import "$("$RC_HARNESS" list-key evil)"
printf 'not a key, not a message\n' >junk.txt
expect_fail "list import of a file that is neither key nor message" 65 \
  "neither a list key line nor a message from the list" dev carol list import junk.txt
expect_fail "list without a sub-command" 64 "list needs 'show', 'pin LIST FINGERPRINT' or 'import SOURCE'" dev carol list

expect_fail "seal --to something that is neither key, file nor address" 74 \
  "neither a list key line, a readable file, nor a list address" dev alice seal --to no-such-file <m3.eml
finish
