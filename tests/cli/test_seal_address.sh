# recrypt seal --to ADDRESS: the newest list key the keystore accepted,
# which follows the list across rotations without a new key file: a list
# it does not know yet is refused (exit 66) with what to do; after a
# rotation, opening one post of the new epoch is enough for the next
# post to be sealed to it.
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
expect_fail "seal --to an address this keystore does not know" 66 \
  "knows no list key for list@example.org yet: open a message from the list first" \
  dev alice seal --to list@example.org <m1.eml

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
expect_fail "seal --to something that is neither key, file nor address" 74 \
  "neither a list key line, a readable file, nor a list address" dev alice seal --to no-such-file <m3.eml
finish
