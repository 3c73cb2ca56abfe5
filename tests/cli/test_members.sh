# A list of three members, one with two devices: every enrolled device
# opens a post; a device that is not enrolled cannot; stanzas made for
# another list or another epoch are refused; signatures name the member.
# Then the owner's tool on a real store: member show (fingerprints as
# `recrypt pubkey` prints them), the pin line of member add, and
# remove-device (a lost phone reads nothing posted after; issue 13).
source "$(dirname "$0")/lib.sh"

newlist list list@example.org
for d in alice bob-laptop bob-phone carol outsider; do newdev "$d"; done
enrol list alice@example.org alice
enrol list bob@example.org bob-laptop
enrol list bob@example.org bob-phone
enrol list carol@example.org carol
pin list outsider # knows the list's fingerprint, but is not enrolled

printf 'From: Carol <carol@example.org>\nTo: list@example.org\nSubject: meeting\nDate: %s\nMessage-ID: <m1@example.org>\n\nThursday 10:00.\n' \
  "$(date -R)" >m.eml
post list carol m.eml d.eml
n=$(grep -c '^Stanza: ' d.eml || true)
[ "$n" -eq 4 ] && pass "one stanza per enrolled device (4)" || failed "expected 4 stanzas, found $n"
for d in alice bob-laptop bob-phone carol; do
  dev "$d" open <d.eml >"$d.out" 2>/dev/null || true
  same_inner "device $d opens the post" m.eml "$d.out"
done
grep -q '^Recrypt-Verdict: unsigned; list=list@example.org; epoch=1' alice.out &&
  pass "first post is unsigned (no certificate yet)" || failed "verdict of first post"
expect_fail "a device that is not enrolled cannot open" 67 "none of the 4 stanzas is for this device" \
  dev outsider open <d.eml

# The first opened message gave each device its certificate: posts are signed now.
post list carol m.eml d2.eml
dev bob-phone open <d2.eml >o2.eml 2>/dev/null || true
if grep -qE '^Recrypt-Verdict: signed; member=carol@example.org; device=[A-Z2-7-]+; list=list@example.org; epoch=1' o2.eml &&
   tail -n +2 o2.eml | cmp -s - m.eml; then pass "second post is signed by carol"; else failed "signed verdict"; fi

# Every reader refuses a signed post whose From is not the certificate's
# member (tests/unit/test_vectors.c shows it), so seal never makes one:
# it refuses (exit 77, EX_NOPERM), writes nothing, and says what to do.
sed 's/^From: Carol <carol@example.org>/From: Boss <boss@example.org>/' m.eml >forged-from.eml
expect_fail "seal refuses to sign a post From someone else than the certificate's member" 77 \
  "From boss@example.org, but this device signs as carol@example.org.*--no-sign" \
  dev carol seal --to "$("$RC_HARNESS" list-key list)" <forged-from.eml
# Sealed unsigned on request, it is delivered and readable as unsigned.
dev carol seal --no-sign --to "$("$RC_HARNESS" list-key list)" <forged-from.eml >s3.eml 2>/dev/null &&
  "$RC_HARNESS" recrypt list <s3.eml >d3.eml 2>/dev/null
rc=0; dev alice open <d3.eml >o3.eml 2>/dev/null || rc=$?
[ $rc -eq 0 ] && grep -q '^Recrypt-Verdict: unsigned; list=list@example.org' o3.eml &&
  pass "with --no-sign the same post is sealed unsigned and opens" ||
  failed "--no-sign: open exit $rc: $(head -2 o3.eml)"

# Stanzas made for another list: the outsider is enrolled in list B only;
# a post to list A carrying list B's stanzas is refused by the outsider.
newlist other other@example.org
enrol other outsider@example.org outsider
dev carol seal --to list.key <m.eml >s.eml 2>/dev/null
"$RC_HARNESS" recrypt list --entries-from other <s.eml >dx.eml 2>/dev/null
expect_fail "a stanza made for another list is refused" 65 "fails its checks \(it names another list, epoch or list key\)" \
  dev outsider open --list-key list.key <dx.eml

# Stanzas made for another epoch: rotate; the new device is enrolled only
# in epoch 2; a post sealed to epoch 1 carrying epoch-2 stanzas is refused.
"$RC_HARNESS" list-rotate list
newdev dave
enrol list dave@example.org dave
"$RC_HARNESS" recrypt list --entries-epoch 2 <s.eml >de.eml 2>/dev/null
expect_fail "a stanza made for another epoch is refused" 65 "fails its checks" \
  dev dave open --list-key list.key <de.eml

# ---- The owner's tool on a real store: member show, remove-device ----
TEAM=team@example.org
ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }
apply() { "$RECRYPTCTL" apply --db "$T/db" "$@"; }
digest() { sha256sum "$T/db/data.mdb" | cut -d' ' -f1; }
ownerstate() { (cd "$T/owner" && find . -type f | sort | xargs sha256sum) | sha256sum | cut -d' ' -f1; }
fpr() { dev "$1" pubkey 2>&1 >/dev/null | sed -n 's/^recrypt: fingerprint //p'; }
svc=$("$RECRYPTCTL" server init --db "$T/db" 2>/dev/null)
ctl init >owner.pub 2>/dev/null
ctl --apply "$T/db" list create "$TEAM" --service-key "$svc" 2>/dev/null
for d in dana-laptop dana-phone dana-tablet erin; do newdev "$d"; done
ctl --apply "$T/db" member add "$TEAM" dana@example.org --device "$(cat dana-laptop.pub)" \
  --device "$(cat dana-phone.pub)" --device "$(cat dana-tablet.pub)" 2>add.err
ctl --apply "$T/db" member add "$TEAM" erin@example.org --device "$(cat erin.pub)" 2>/dev/null

# member add hands over the list signing key's fingerprint and the pin line.
listfp=$(ctl list key "$TEAM" 2>&1 >/dev/null | sed -n 's/.*, signed by //p')
pinline=$(grep '^recrypt list pin ' add.err || true)
[ -n "$listfp" ] && [ "$pinline" = "recrypt list pin $TEAM $listfp" ] &&
  pass "member add prints the pin line with the list signing fingerprint" ||
  failed "pin line: '$pinline' (list key fingerprint '$listfp')"
ctl list key "$TEAM" 2>&1 >/dev/null | grep -qF "recrypt list pin $TEAM $listfp" &&
  pass "list key prints the pin line too" || failed "list key pin line"
# Pin as the member was told (a client without 'list pin' pins on first use).
for d in dana-laptop dana-phone dana-tablet erin; do dev "$d" list pin "$TEAM" "$listfp" >/dev/null 2>&1 || true; done

# member show: each device with the fingerprint `recrypt pubkey` prints.
ctl member show "$TEAM" >ms.txt
ok=1
for d in dana-laptop dana-phone dana-tablet; do
  f=$(fpr "$d")
  grep -qE "^  device $f enrolled [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$" ms.txt || ok=0
done
grep -q '^member dana@example.org active$' ms.txt && grep -q '^member erin@example.org active$' ms.txt || ok=0
[ $ok = 1 ] && pass "member show lists members, status, device fingerprints, ISO dates" ||
  failed "member show: $(cat ms.txt)"
# A roster written by 0.2 (no enrolment times) still reads; its devices show no date.
roster="$T/owner/owned/$TEAM/roster"
cp "$roster" roster.new
sed -i 's/ [0-9T:Z-]*$//' "$roster"
ctl member show "$TEAM" >ms-old.txt
[ "$(grep -c '^  device M[A-Z2-7-]*$' ms-old.txt)" -eq 4 ] && pass "member show reads a roster without enrolment times" ||
  failed "old roster: $(cat ms-old.txt)"
cp roster.new "$roster"
"$RECRYPTCTL" show --db "$T/db" "$TEAM" >show.txt
grep -qE "enrolled [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$" show.txt &&
  ! grep -qE "enrolled [0-9]{9,}" show.txt && pass "show prints ISO 8601 dates, not Unix seconds" ||
  failed "show dates: $(cat show.txt)"

n=0
deliver() { # deliver KEYFILE: erin posts, the service recrypts from the store into d.eml
  n=$((n + 1)); rm -f d.eml
  printf 'From: erin@example.org\nTo: %s\nSubject: %s\nDate: %s\nMessage-ID: <rd%s.%s@example.org>\n\nbody %s\n' \
    "$TEAM" "$n" "$(date -R)" "$n" "$$" "$n" >m.eml
  dev erin seal --to "$1" <m.eml >s.eml 2>"$T/.svc" && "$RC_HARNESS" recrypt-store "$T/db" "$TEAM" <s.eml >d.eml 2>"$T/.svc"
}
ctl list key "$TEAM" >team1.key 2>/dev/null
sleep 1
deliver team1.key && dev dana-phone open <d.eml >/dev/null 2>&1 && pass "before: dana's phone reads the list" ||
  failed "before remove-device: $(cat "$T/.svc")"

# Refusals: each with a precise message; store and owner keystore unchanged.
before=$(digest); kbefore=$(ownerstate)
phone=$(fpr dana-phone)
expect_fail "remove-device: unknown fingerprint" 66 "dana@example.org has no device with fingerprint MAAA-AAAA.*nothing changed" \
  ctl member remove-device "$TEAM" dana@example.org MAAA-AAAA-AAAA
expect_fail "remove-device: a device of another member" 66 "dana@example.org has no device with fingerprint" \
  ctl member remove-device "$TEAM" dana@example.org "$(fpr erin)"
expect_fail "remove-device: a prefix of every device (ambiguous)" 64 "is ambiguous: it begins 3 devices of dana@example.org" \
  ctl member remove-device "$TEAM" dana@example.org "${phone:0:1}"
expect_fail "remove-device: the member's last device" 77 "is the last device of erin@example.org: use 'recryptctl member revoke" \
  ctl member remove-device "$TEAM" erin@example.org "$(fpr erin)"
expect_fail "remove-device: not a member" 66 "nobody@example.org is not a member" \
  ctl member remove-device "$TEAM" nobody@example.org "$phone"
expect_fail "member show: a list this keystore does not manage" 66 "does not manage list other@example.org" \
  ctl member show other@example.org
expect_fail "remove-device: a list this keystore does not manage" 66 "does not manage list other@example.org" \
  ctl member remove-device other@example.org dana@example.org "$phone"
expect_fail "remove-device: an empty fingerprint" 64 "give the device's fingerprint" \
  ctl member remove-device "$TEAM" dana@example.org " - "
expect_fail "remove-device: --grace is refused" 64 "rotates with no grace" \
  ctl member remove-device "$TEAM" dana@example.org "$phone" --grace 3
[ "$(digest)" = "$before" ] && [ "$(ownerstate)" = "$kbefore" ] &&
  pass "refused remove-device: store and owner keystore unchanged" || failed "state changed by a refusal"

# The regression test: remove the phone by its fingerprint, in lower case
# and without dashes (as read over the phone).
lower=$(echo "$phone" | tr -d - | tr 'A-Z' 'a-z')
expect_ok "remove-device by fingerprint writes the rotation" ctl member remove-device "$TEAM" dana@example.org "$lower" --out rd.req
grep -q "^Request: UpdateGroup $TEAM epoch 2 (3 device entries)" rd.req &&
  pass "one rotation request: epoch 2, entries for the 3 continuing devices" || failed "rd.req: $(head -3 rd.req)"
expect_ok "apply the remove-device rotation" apply rd.req
show="$("$RECRYPTCTL" show --db "$T/db" "$TEAM")"
echo "$show" | grep -q '^  epoch 1 (previous; refused)' && ! echo "$show" | grep -q "epoch 2 device $phone" &&
  pass "store: epoch 1 refused at once (no grace), no epoch-2 entry for the phone" || failed "store: $show"
ctl member show "$TEAM" | grep -q "$phone" && failed "member show still lists the removed phone" ||
  pass "member show no longer lists the removed phone"
if deliver team1.key; then failed "a post to the old epoch 1 is still recrypted"; else
  grep -q "expired" "$T/.svc" && pass "the store refuses a post to the old epoch (not live)" || failed "old epoch: $(cat "$T/.svc")"; fi
ctl list key "$TEAM" >team2.key 2>/dev/null
sleep 1
deliver team2.key || failed "post to epoch 2 not delivered: $(cat "$T/.svc")"
expect_fail "the removed phone cannot read a post to the new epoch" 67 "none of the 3 stanzas is for this device" \
  dev dana-phone open <d.eml
dev dana-laptop open <d.eml >o.eml 2>/dev/null && tail -n +2 o.eml | cmp -s - m.eml &&
  pass "dana's laptop (continuing device) reads it" || failed "laptop cannot open the epoch-2 post"
dev erin open <d.eml >/dev/null 2>&1 && pass "erin reads it" || failed "erin cannot open the epoch-2 post"
finish
