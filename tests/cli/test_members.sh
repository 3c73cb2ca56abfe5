# A list of three members, one with two devices: every enrolled device
# opens a post; a device that is not enrolled cannot; stanzas made for
# another list or another epoch are refused; signatures name the member.
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
expect_fail "a stanza made for another list is refused" 65 "fails its checks \(list, epoch or key commitment\)" \
  dev outsider open --list-key list.key <dx.eml

# Stanzas made for another epoch: rotate; the new device is enrolled only
# in epoch 2; a post sealed to epoch 1 carrying epoch-2 stanzas is refused.
"$RC_HARNESS" list-rotate list
newdev dave
enrol list dave@example.org dave
"$RC_HARNESS" recrypt list --entries-epoch 2 <s.eml >de.eml 2>/dev/null
expect_fail "a stanza made for another epoch is refused" 65 "fails its checks" \
  dev dave open --list-key list.key <de.eml
finish
