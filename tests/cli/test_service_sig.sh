# Issue 13, "Copies that did not come through the list" and "Revocation
# binds signatures", through the real tools: recryptctl (version 2 list
# keys, a service key per epoch, revocations), the store, rc-harness
# recrypt-store (the service step the milter runs: it signs each copy;
# --unsigned leaves the signature out, a copy as anybody who knows the
# list key can write it) and recrypt open (FORMAT.md §8.1, §9.5 steps 5-6,
# §9.6).
source "$(dirname "$0")/lib.sh"

LIST=team@example.org
ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }
deliver() { "$RC_HARNESS" recrypt-store "$T/db" "$LIST" "$@"; }
# strip FIELD IN OUT: the message without that header field (and its continuation lines)
strip() {
  /usr/bin/python3 - "$1" "$2" "$3" <<'EOF'
import sys
name, src, dst = sys.argv[1].lower() + ":", sys.argv[2], sys.argv[3]
out, skip, in_header = [], False, True
for line in open(src, "rb").read().decode("latin-1").splitlines(True):
    if in_header and line in ("\n", "\r\n"):
        in_header = False
    if in_header and line[:1] in (" ", "\t") and skip:
        continue
    skip = in_header and line.lower().startswith(name)
    if not skip:
        out.append(line)
open(dst, "wb").write("".join(out).encode("latin-1"))
EOF
}
msg() { # msg FROM ID TEXT
  printf 'From: %s\nTo: %s\nSubject: s\nDate: %s\nMessage-ID: <%s.%s@example.org>\n\n%s\n' \
    "$1" "$LIST" "$(date -R)" "$2" "$$" "$3"
}

svc=$("$RECRYPTCTL" server init --db "$T/db" 2>/dev/null)
ctl init >owner.pub 2>/dev/null
ctl list create "$LIST" --service-key "$svc" --apply "$T/db" 2>/dev/null
for d in alice mallory; do newdev "$d"; done
ctl member add "$LIST" alice@example.org --device "$(cat alice.pub)" --apply "$T/db" 2>/dev/null
ctl member add "$LIST" mallory@example.org --device "$(cat mallory.pub)" --apply "$T/db" 2>/dev/null
key1=$(ctl list key "$LIST" 2>/dev/null)
ctl list key "$LIST" >/dev/null 2>fp.err
pin_devices "$LIST" "$(fp_in fp.err)" alice mallory # as the owner hands it over at enrolment
sleep 1 # stanzas go to devices enrolled before the post's Date

# --- a genuine copy: signed by the service, opened as list mail (E4)
msg alice@example.org m1 "first post" >m1.eml
dev alice seal --to "$key1" <m1.eml >s1.eml 2>/dev/null
deliver <s1.eml >d1.eml 2>/dev/null
grep -q '^Recrypt-Service-Signature: ' d1.eml && pass "the service signs the copy" ||
  failed "no Recrypt-Service-Signature in the copy"
rc=0; dev alice open <d1.eml >o1.eml 2>/dev/null || rc=$?
[ $rc -eq 0 ] && head -n1 o1.eml | grep -q "^Recrypt-Verdict: unsigned; list=$LIST; epoch=1\$" &&
  pass "a genuine copy opens, verdict without path= (the service signature verified)" ||
  failed "genuine copy: exit $rc: $(head -n1 o1.eml)"
dev mallory open <d1.eml >/dev/null 2>&1 # mallory's device keeps its epoch-1 certificate

# --- the same copy without the service signature: anybody could write it (E2)
strip Recrypt-Service-Signature d1.eml d1-direct.eml
expect_fail "a copy without a service signature is refused as not from the list" 77 \
  "did not come through the list $LIST.*--allow-direct" dev alice open <d1-direct.eml
rc=0; dev alice open --allow-direct <d1-direct.eml >o1d.eml 2>err.txt || rc=$?
[ $rc -eq 0 ] && head -n1 o1d.eml | grep -q "^Recrypt-Verdict: direct; list=$LIST; epoch=1\$" &&
  grep -q 'WARNING: this copy did not come through the list' err.txt &&
  pass "--allow-direct shows it as direct, with a warning" ||
  failed "--allow-direct: exit $rc: $(head -n1 o1d.eml) $(cat err.txt)"

# --- the stanzas changed after signing: one dropped (E4)
/usr/bin/python3 - d1.eml d1-cut.eml <<'EOF'
import sys
lines = open(sys.argv[1]).read().split("\n")
out, i, dropped = [], 0, False
while i < len(lines):
    if not dropped and lines[i].startswith("Stanza: "):
        # drop the first stanza of the two (alice's or mallory's)
        dropped = True
        i += 1
        while i < len(lines) and lines[i].startswith(" "):
            i += 1
        continue
    out.append(lines[i]); i += 1
open(sys.argv[2], "w").write("\n".join(out))
EOF
rc=0; dev alice open <d1-cut.eml >/dev/null 2>err.txt || rc=$?
rc2=0; dev mallory open <d1-cut.eml >/dev/null 2>err2.txt || rc2=$?
# one device lost its stanza (67); the other still has one, but the signature no longer covers the stanzas
if { [ $rc -eq 77 ] && grep -q 'did not come through the list' err.txt && [ $rc2 -eq 67 ]; } ||
   { [ $rc2 -eq 77 ] && grep -q 'did not come through the list' err2.txt && [ $rc -eq 67 ]; }; then
  pass "a copy whose stanzas changed after signing is refused"
else
  failed "changed stanzas: alice exit $rc ($(cat err.txt)), mallory exit $rc2 ($(cat err2.txt))"
fi

# --- E1: mallory signs a post now (epoch 1), then is revoked (epoch 2, no grace)
msg mallory@example.org m2 "from mallory" >m2.eml
dev mallory seal --to "$key1" <m2.eml >s2.eml 2>/dev/null
grep -q '^Content-Type: multipart/encrypted' s2.eml || failed "mallory could not seal"
deliver <s2.eml >d2.eml 2>/dev/null # through the list while epoch 1 is current
rc=0; dev alice open <d2.eml >o2.eml 2>/dev/null || rc=$?
[ $rc -eq 0 ] && head -n1 o2.eml | grep -q '^Recrypt-Verdict: signed; member=mallory@example.org;' &&
  pass "before the revocation mallory's post is signed by her" || failed "before revocation: exit $rc"
ctl member revoke "$LIST" mallory@example.org --apply "$T/db" 2>/dev/null
key2=$(ctl list key "$LIST" 2>/dev/null)
dev alice list import "$key2" >/dev/null 2>&1 || failed "alice cannot import the epoch-2 key"
# the epoch-2 statement revokes mallory's device; her post is dated after its not_before
strip Recrypt-Service-Signature d2.eml d2-direct.eml
expect_fail "the revoked member's direct signed post is never shown as signed (E1)" 65 \
  "signed by device .* of mallory@example.org, which the list $LIST revoked at epoch 2" \
  dev alice open <d2-direct.eml
expect_fail "not with --allow-direct either" 65 "revoked at epoch 2" \
  dev alice open --allow-direct <d2-direct.eml
expect_fail "the same post through the list is refused as signed by a revoked device (E3)" 65 \
  "revoked at epoch 2" dev alice open <d2.eml

# --- after the rotation: posts of epoch 2 are signed with the new service key
sleep 1 # alice's epoch-2 entry was enrolled at the rotation
msg alice@example.org m3 "epoch two" >m3.eml
dev alice seal --to "$key2" <m3.eml >s3.eml 2>/dev/null
deliver <s3.eml >d3.eml 2>/dev/null
rc=0; dev alice open <d3.eml >o3.eml 2>/dev/null || rc=$?
[ $rc -eq 0 ] && head -n1 o3.eml | grep -qE "^Recrypt-Verdict: (un)?signed; .*epoch=2\$" &&
  pass "epoch 2 copies are signed with the new service key" || failed "epoch 2: exit $rc $(head -n1 o3.eml)"
# a copy signed with the old epoch's key under the new epoch: the same copy with d1's signature
/usr/bin/python3 - d3.eml d1.eml d3-old.eml <<'EOF'
import sys, re
new, old = open(sys.argv[1]).read(), open(sys.argv[2]).read()
pat = re.compile(r"^Recrypt-Service-Signature: .*\n(?: .*\n)*", re.M)
open(sys.argv[3], "w").write(pat.sub(lambda _: pat.search(old).group(0), new, count=1))
EOF
expect_fail "a signature of another copy (another epoch's key) does not count" 77 \
  "did not come through the list" dev alice open <d3-old.eml

# --- E3 with the gateway's Recrypt-List-Key-Current: a second list, mallory
# revoked with a grace period; her post through the list in grace carries
# the current (epoch-2) key, from which bob's device, which never saw epoch
# 2, learns the revocation.
LIST=grace@example.org
for d in bob mallory2; do newdev "$d"; done
ctl list create "$LIST" --service-key "$svc" --apply "$T/db" 2>/dev/null
ctl member add "$LIST" bob@example.org --device "$(cat bob.pub)" --apply "$T/db" 2>/dev/null
ctl member add "$LIST" mallory@example.org --device "$(cat mallory2.pub)" --apply "$T/db" 2>/dev/null
gkey1=$(ctl list key "$LIST" 2>/dev/null)
ctl list key "$LIST" >/dev/null 2>fp.err
pin_devices "$LIST" "$(fp_in fp.err)" bob mallory2
sleep 1
msg bob@example.org g1 "hello" >g1.eml
dev bob seal --to "$gkey1" <g1.eml >gs1.eml 2>/dev/null
deliver <gs1.eml >gd1.eml 2>/dev/null
dev mallory2 open <gd1.eml >/dev/null 2>&1 # her certificate of epoch 1
dev bob open <gd1.eml >/dev/null 2>&1      # bob pins the list at epoch 1
ctl member revoke "$LIST" mallory@example.org --grace 1 --apply "$T/db" 2>/dev/null
msg mallory@example.org g2 "in grace" >g2.eml
dev mallory2 seal --to "$gkey1" <g2.eml >gs2.eml 2>/dev/null
deliver <gs2.eml >gd2.eml 2>/dev/null
grep -q '^Recrypt-List-Key-Current: recrypt1.listkey.' gd2.eml &&
  pass "a post of an older epoch carries the current list key" ||
  failed "no Recrypt-List-Key-Current in a post in grace"
expect_fail "bob's device learns the revocation from the copy and refuses the signed post (E3)" 65 \
  "mallory@example.org, which the list $LIST revoked at epoch 2" dev bob open <gd2.eml
ls "$T/dev-bob/lists/$LIST/epoch-2.listkey" >/dev/null 2>&1 &&
  pass "bob's device keeps the epoch-2 key it learnt" || failed "epoch-2 key not kept"

finish
