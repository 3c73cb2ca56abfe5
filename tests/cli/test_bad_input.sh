# Bad input to 'recrypt open': each case fails with a clear message, a
# non-zero exit and nothing on standard output.
source "$(dirname "$0")/lib.sh"

newlist list list@example.org
newdev alice
newdev bob
enrol list alice@example.org alice
enrol list bob@example.org bob
SECRET="the-plaintext-marker-$$"

mk() { # mk SIZE FILE: a post whose body repeats the marker to SIZE bytes
  { printf 'From: alice@example.org\nTo: list@example.org\nSubject: s\nDate: %s\nMessage-ID: <%s@example.org>\n\n' \
      "$(date -R)" "$RANDOM$RANDOM"
    python3 -c 'import sys; s = sys.argv[1] + "\n"; n = int(sys.argv[2]); sys.stdout.write((s * (n // len(s) + 1))[:n])' "$SECRET" "$1"
    echo; } >"$2"
}
mk 100 small.eml
post list alice small.eml good.eml
dev bob open <good.eml >/dev/null 2>&1 && pass "control: the untampered post opens" || failed "control post"

# Python helpers to edit the base64 ciphertext of a delivered message.
edit_ct() { # edit_ct IN OUT PYTHON-EXPR-ON-bytes-b
  python3 - "$1" "$2" "$3" <<'PY'
import base64, re, sys
src, dst, expr = sys.argv[1:4]
text = open(src, 'rb').read().decode('latin-1')
m = re.search(r'(Content-Disposition: inline; filename="message.rcx"\n\n)(.*?)(\n--=_recrypt_)', text, re.S)
b = base64.b64decode(m.group(2))
b = eval(expr)
enc = base64.encodebytes(b).decode().rstrip('\n')
open(dst, 'wb').write((text[:m.start(2)] + enc + text[m.end(2):]).encode('latin-1'))
PY
}

edit_ct good.eml t1.eml 'b[:100] + bytes([b[100] ^ 1]) + b[101:]'
expect_fail "tampered ciphertext (one bit)" 65 "chunk 1 does not authenticate" dev bob open <t1.eml

edit_ct good.eml t2.eml 'b[:-10]'
expect_fail "truncated stream (last 10 bytes gone)" 65 "does not authenticate|truncated" dev bob open <t2.eml

mk 200000 big.eml
post list alice big.eml big-d.eml
C=$((65536 + 17))
edit_ct big-d.eml t3.eml "b[:24] + b[24:24+$C]"
expect_fail "truncated stream (only the first of 4 chunks)" 65 "truncated: its stream ends without the final chunk" \
  dev bob open <t3.eml
edit_ct big-d.eml t4.eml "b[:24] + b[24+$C:24+2*$C] + b[24:24+$C] + b[24+2*$C:]"
expect_fail "reordered chunks" 65 "chunk 1 does not authenticate" dev bob open <t4.eml
edit_ct big-d.eml t5.eml "b[:24+$C] + b[24+2*$C:]"
expect_fail "a chunk dropped from the middle" 65 "chunk 2 does not authenticate" dev bob open <t5.eml
edit_ct big-d.eml t5b.eml "b + b[24:24+$C]"
expect_fail "a chunk appended after the final one" 65 "data follows the final chunk|does not authenticate" \
  dev bob open <t5b.eml

# The ephemeral key E in the control part.
sed 's/^Ephemeral-Key: .*/Ephemeral-Key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/' good.eml >t6.eml
expect_fail "identity E" 65 "ephemeral key E is not a canonical non-identity point" dev bob open <t6.eml
sed 's/^Ephemeral-Key: .*/Ephemeral-Key: _________________________________________38/' good.eml >t7.eml
expect_fail "non-canonical E" 65 "ephemeral key E is not a canonical non-identity point" dev bob open <t7.eml

# A stanza from another post for the same device: W opens, the key
# commitment does not match (what a forged stanza looks like).
mk 100 other.eml
post list alice other.eml other-d.eml
python3 - good.eml other-d.eml t8.eml <<'PY'
import re, sys
good, other, dst = [open(f, 'rb').read().decode() for f in sys.argv[1:3]] + [sys.argv[3]]
st = lambda t: re.findall(r'^Stanza: .*\n(?: .*\n)*', t, re.M)
out = good
for a, b in zip(st(good), st(other)):
    out = out.replace(a, b)
open(dst, 'w').write(out)
PY
expect_fail "forged stanza (key commitment mismatch)" 65 "forged or corrupted stanza" dev bob open <t8.eml

# The encrypted part wrapped in extra MIME parts.
python3 - good.eml t9.eml <<'PY'
import sys
t = open(sys.argv[1]).read()
head, body = t.split('\n\n', 1)
lines = head.split('\n')
keep = [l for l in lines if not l.lower().startswith(('content-type', 'mime-version', ' protocol', ' boundary'))]
ct = '\n'.join(l for l in lines if l.lower().startswith(('content-type', ' protocol', ' boundary')))
out = '\n'.join(keep) + '\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="wrap"\n\n--wrap\nContent-Type: text/plain\n\nPlease read the attached message.\n--wrap\n' + ct + '\n\n' + body + '\n--wrap--\n'
open(sys.argv[2], 'w').write(out)
PY
expect_fail "encrypted part wrapped in extra MIME parts" 65 "wrapped in other MIME parts" dev bob open <t9.eml

# A third part inside multipart/encrypted.
python3 - good.eml t10.eml <<'PY'
import re, sys
t = open(sys.argv[1]).read()
b = re.search(r'boundary="([^"]+)"', t).group(1)
t = t.replace('--%s--' % b, '--%s\nContent-Type: text/plain\n\nextra\n--%s--' % (b, b))
open(sys.argv[2], 'w').write(t)
PY
expect_fail "an extra part inside multipart/encrypted" 65 "exactly 2 parts" dev bob open <t10.eml

# Unknown format version.
sed 's/^Version: 1$/Version: 2/' good.eml >t11.eml
expect_fail "unknown format version" 65 "message format version '2' is not supported" dev bob open <t11.eml

# Malformed MIME and non-messages.
printf 'this is not mail at all\n' >t12.eml
expect_fail "not a message" 65 "header line 1 is not a header field" dev bob open <t12.eml
: >t13.eml
expect_fail "empty input" 65 "lacks its Date or Message-ID|not a" dev bob open <t13.eml
sed 's/boundary="=_recrypt_[0-9a-f]*"/boundary="nothing-matches"/' good.eml >t14.eml
expect_fail "boundary that matches no part" 65 "exactly 2 parts" dev bob open <t14.eml
grep -v '^Content-Type: multipart/encrypted' good.eml >t15.eml
expect_fail "no multipart/encrypted body" 65 "not a recrypt message" dev bob open <t15.eml
sed 's/^Date: .*/Date: not a date/' good.eml >t16.eml
expect_fail "unparseable outer Date" 65 "Date that cannot be parsed" dev bob open <t16.eml

# The proof binds Date and Message-ID: changing either is detected.
sed 's/^Message-ID: <\(.*\)>/Message-ID: <x\1>/' good.eml >t17.eml
expect_fail "altered outer Message-ID" 65 "proof of knowledge of t does not verify" dev bob open <t17.eml

# A forged verdict header sealed inside the message is removed.
{ printf 'From: alice@example.org\nTo: list@example.org\nSubject: s\nDate: %s\nMessage-ID: <v%s@example.org>\nRecrypt-Verdict: signed; member=ceo@example.org\n\nbody\n' "$(date -R)" "$RANDOM"; } >v.eml
post list alice v.eml vd.eml
dev bob open <vd.eml >vo.eml 2>/dev/null || true
if [ "$(grep -c '^Recrypt-Verdict:' vo.eml)" -eq 1 ] && ! grep -q 'ceo@example.org' vo.eml &&
   head -n1 vo.eml | grep -q '^Recrypt-Verdict: unsigned; list=list@example.org'; then
  pass "a forged Recrypt-Verdict inside the message is removed"
else failed "forged verdict header survived"; fi

# Bad input to 'recrypt seal': the two header mistakes mail programs make
# get a message that names them (nothing is repaired), exit 65, no output.
KEY=$("$RC_HARNESS" list-key list)
{ printf '\357\273\277'; printf 'From: alice@example.org\nTo: list@example.org\nSubject: s\n\nbody\n'; } >bom.eml
expect_fail "seal: a leading byte-order mark" 65 "starts with a byte-order mark" dev alice seal --to "$KEY" <bom.eml
printf 'From: alice@example.org\nTo: list@example.org\nSubject: a subject that a\nprogram broke\n\nbody\n' >broken.eml
expect_fail "seal: a header line broken without folding white space" 65 \
  "header line 4 is not a header field: .*does not start with a space or tab" dev alice seal --to "$KEY" <broken.eml

# No plaintext anywhere in the sealed or delivered form.
if grep -q "$SECRET" good.eml big-d.eml; then failed "plaintext visible in transit"; else
  pass "no plaintext in the sealed and delivered messages"; fi
finish
