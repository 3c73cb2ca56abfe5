# Keys and trust: corrupted key strings, list key statements signed by
# another key, older epochs, expiry, --signer, key file permissions, and the
# command line itself.
source "$(dirname "$0")/lib.sh"

newlist list list@example.org
newdev alice
newdev bob
enrol list alice@example.org alice
enrol list bob@example.org bob
msg() { printf 'From: alice@example.org\nTo: list@example.org\nSubject: s\nDate: %s\nMessage-ID: <%s@example.org>\n\nhello\n' "$(date -R)" "$RANDOM$RANDOM"; }
msg >m.eml

# Corrupted and mistyped key strings.
key=$(cat list.key)
bad="${key:0:40}$( [ "${key:40:1}" = A ] && echo B || echo A )${key:41}"
expect_fail "corrupted list key string" 65 "corrupted \(checksum mismatch\)" dev alice seal --to "$bad" <m.eml
expect_fail "truncated list key string" 65 "corrupted" dev alice seal --to "${key:0:100}" <m.eml
expect_fail "a device key where a list key belongs" 65 "this is a 'device' key string, expected 'listkey'" \
  dev alice seal --to "$(cat alice.pub)" <m.eml
expect_fail "a key string of a future version" 65 "version 'recrypt2' is not supported" \
  dev alice seal --to "recrypt2${key#recrypt1}" <m.eml
expect_fail "neither a key nor a file" 74 "neither a list key line, a readable file, nor a list address" \
  dev alice seal --to /nonexistent <m.eml

# --signer: the right fingerprint is accepted (and pins an unpinned list:
# the user named it), another one refused, naming both.
fp=$("$RC_HARNESS" signer list)
newdev frank
expect_fail "--signer with another fingerprint" 77 "signed by $fp, not by MAAA.*list@example.org is not pinned" \
  dev frank seal --signer MAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA --to list.key <m.eml
[ ! -e "$T/dev-frank/lists/list@example.org/pin" ] && pass "a refused --signer pins nothing" || failed "refused --signer pinned"
expect_ok "--signer with the list's fingerprint" dev frank seal --signer "$fp" --to list.key <m.eml
grep -q "list@example.org: pinned its signing key $fp (the fingerprint you gave)" "$T/.err" &&
  pass "a first pin by --signer says so" || failed "first-pin notice: $(cat "$T/.err")"
expect_fail "--signer with another fingerprint, list pinned" 77 "not by MAAA.*this device has list@example.org pinned to $fp" \
  dev alice seal --signer MAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA --to list.key <m.eml

# A statement for the same list signed by another key (another owner, or a
# service substituting its own key) is refused once the list is pinned.
newlist impostor list@example.org
ifp=$("$RC_HARNESS" signer impostor)
expect_fail "list key signed by another key than the pinned one" 77 \
  "list@example.org is pinned to $fp, but this list key is signed by $ifp" \
  dev alice seal --to impostor.key <m.eml
post list alice m.eml d.eml
python3 - d.eml impostor.key t1.eml <<'PY'
import re, sys
t = open(sys.argv[1]).read(); k = open(sys.argv[2]).read().strip()
t = re.sub(r'^Recrypt-List-Key:.*\n(?: .*\n)*', 'Recrypt-List-Key: ' + k + '\n', t, flags=re.M)
open(sys.argv[3], 'w').write(t)
PY
dev bob open <d.eml >/dev/null 2>&1 # bob accepts the real key (pinned at enrolment)
expect_fail "delivered message carrying a substituted list key" 77 \
  "list@example.org is pinned to $fp, but this list key is signed by $ifp" dev bob open <t1.eml
python3 - d.eml t2.eml <<'PY'
import re, sys
t = open(sys.argv[1]).read()
open(sys.argv[2], 'w').write(re.sub(r'^Recrypt-List-Key:.*\n(?: .*\n)*', '', t, flags=re.M))
PY
# Without Recrypt-List-Key a reader uses its keystore's accepted list key
# of the envelope's list and epoch (issue 13, item 6: "A reader without
# Recrypt-List-Key refuses even when its keystore holds that epoch").
rc=0; dev bob open <t2.eml >o2.eml 2>"$T/.err" || rc=$?
[ $rc -eq 0 ] && grep -q '^Recrypt-Verdict: .*list=list@example.org; epoch=1' o2.eml &&
  pass "no Recrypt-List-Key: the keystore's accepted key of epoch 1 opens it" ||
  failed "no list key header: exit $rc $(cat "$T/.err")"
newdev gina
pin list gina
expect_fail "no Recrypt-List-Key and no accepted key of that epoch" 66 \
  "carries no Recrypt-List-Key header, and this keystore holds no accepted list key of list@example.org for epoch 1" \
  dev gina open <t2.eml
newdev henry
expect_fail "no Recrypt-List-Key, a list the keystore does not know" 66 \
  "carries no Recrypt-List-Key header and is for a list this keystore does not know" dev henry open <t2.eml

# Rotation: the new epoch is accepted; sealing to the older one is refused
# afterwards, but mail of the older epoch already seen still opens.
"$RC_HARNESS" list-rotate list
"$RC_HARNESS" list-key list 2 >list2.key
enrol list alice@example.org alice
enrol list bob@example.org bob
expect_ok "seal to the new epoch" dev alice seal --to list2.key <m.eml
expect_fail "seal to an older epoch after a newer one was seen" 77 "epoch 1, older than epoch 2" \
  dev alice seal --to list.key <m.eml
post list alice m.eml d2.eml
expect_ok "open a post of the new epoch" dev bob open <d2.eml
expect_ok "an old post of a known older epoch still opens" dev bob open <d.eml
newdev carol
pin list carol
dev carol seal --to list2.key <m.eml >/dev/null 2>&1
expect_fail "opening with an older epoch's key never seen before is refused" 77 "older than epoch 2" \
  dev carol open <d.eml

# Expired statement.
"$RC_HARNESS" list-create expired expired@example.org --not-after $(( $(date +%s) - 60 )) >expired.key
echo expired@example.org >expired.addr
pin expired alice
expect_fail "an expired list key" 77 "has expired \(this device has expired@example.org pinned to $("$RC_HARNESS" signer expired)\)" \
  dev alice seal --to expired.key <m.eml

# Key file permissions.
chmod 0644 "$T/dev-bob/device.key"
expect_fail "world-readable device key file" 77 "accessible by group or others \(mode 0644\)" dev bob open <d2.eml
chmod 0640 "$T/dev-bob/device.key"
expect_fail "group-readable device key file" 77 "accessible by group or others" dev bob open <d2.eml
chmod 0600 "$T/dev-bob/device.key"
expect_ok "0600 device key file" dev bob open <d2.eml
mode=$(stat -c %a "$T/dev-alice/device.key")
[ "$mode" = 600 ] && pass "keygen writes the key file 0600" || failed "key file mode $mode"

# keygen and the command line.
expect_fail "keygen refuses to replace a key" 73 "already has a device key" dev alice keygen
expect_ok "pubkey prints the device key line" dev alice pubkey
cmp -s "$T/.out" alice.pub && pass "pubkey equals what keygen printed" || failed "pubkey differs"
expect_fail "unknown command" 64 "unknown command 'frobnicate'" dev alice frobnicate
expect_fail "seal without --to" 64 "seal needs --to" dev alice seal <m.eml
"$RECRYPT" --help >help.txt && grep -q '^  seal --to LISTKEY' help.txt && pass "--help documents seal" || failed "--help"
finish
