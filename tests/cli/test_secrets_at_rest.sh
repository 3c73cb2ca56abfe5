# Secrets at rest (issue 13, item 4): where decrypted mail is staged, and
# the passphrase-protected device key.
source "$(dirname "$0")/lib.sh"

newlist list list@example.org
newdev alice
newdev bob
enrol list alice@example.org alice
enrol list bob@example.org bob
DATE=$(LC_ALL=C date -u -R)
hdr() {
  printf 'From: Alice <alice@example.org>\nTo: list@example.org\nSubject: %s\n' "$1"
  printf 'Date: %s\nMessage-ID: <%s@example.org>\n' "$DATE" "$2"
}

# ---- staging: never in $TMPDIR ----
# "Opened and refused plaintext is staged in memory (memfd_create), else in
# an unnamed O_TMPFILE file in a private 0700 directory; never a named file
# in a shared directory" (docs/subscriber-guide.md, FORMAT §9.5 step 3).
# A $TMPDIR that does not exist: 0.2.0 failed here ("cannot create a
# temporary file"); the staging now never looks at it.
{ hdr "large" big1; echo; head -c $((3 * 1024 * 1024)) /dev/urandom | base64 -w 76; } >big.eml
post list alice big.eml big.d
rc=0
RECRYPT_HOME="$T/dev-bob" TMPDIR="$T/no-such-tmpdir" "$RECRYPT" open <big.d >big.o 2>big.err || rc=$?
if [ "$rc" -eq 0 ]; then same_inner "open of a 4 MB message with an unusable TMPDIR" big.eml big.o
else failed "open with an unusable TMPDIR: exit $rc ($(head -c 300 big.err))"; fi
# And with a real, empty TMPDIR watched by strace: no file is created in
# it, or anywhere outside the keystore; the stage is a memory file.
mkdir -m 1777 shared-tmp
# (LeakSanitizer cannot run under ptrace: off for the traced runs.)
if strace -V >/dev/null 2>&1 && strace -f -qq -o /dev/null true 2>/dev/null; then
  ASAN_OPTIONS=detect_leaks=0 RECRYPT_HOME="$T/dev-bob" TMPDIR="$T/shared-tmp" strace -f -qq -o trace \
    -e trace=open,openat,creat,memfd_create,mkdir,mkdirat,rename,link,linkat \
    "$RECRYPT" open <big.d >big.o2 2>/dev/null || true
  if grep -q "$T/shared-tmp" trace; then failed "open touched \$TMPDIR: $(grep "$T/shared-tmp" trace | head -3)"
  else pass "open of a large message never touches \$TMPDIR (strace)"; fi
  created=$(grep -E 'O_CREAT|O_TMPFILE|creat\(' trace | grep -v "$T/dev-bob" || true)
  if [ -z "$created" ]; then pass "open creates no file outside the keystore"
  else failed "open created files: $(echo "$created" | head -3)"; fi
  if grep -q 'memfd_create("recrypt' trace; then pass "open stages in an anonymous memory file"
  else failed "no memfd_create in the trace"; fi
  # A refused message (tampered near its end) is staged the same way.
  /usr/bin/python3 - big.d big.bad <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
i = d.rindex(b'\n--', 0, len(d) - 4)   # the closing boundary
j = d.rindex(b'\n', 0, i - 1) - 10      # inside the last base64 line
c = b'A' if d[j:j+1] != b'A' else b'B'
open(sys.argv[2], 'wb').write(d[:j] + c + d[j+1:])
PY
  rc=0
  ASAN_OPTIONS=detect_leaks=0 RECRYPT_HOME="$T/dev-bob" TMPDIR="$T/shared-tmp" strace -f -qq -o trace2 \
    -e trace=open,openat,creat,memfd_create \
    "$RECRYPT" open <big.bad >bad.o 2>bad.err || rc=$?
  if [ "$rc" -eq 65 ] && [ ! -s bad.o ] && ! grep -q "$T/shared-tmp" trace2; then
    pass "a tampered large message is refused (65), nothing written, \$TMPDIR untouched"
  else failed "tampered large message: exit $rc, $(wc -c <bad.o) bytes out ($(head -c 200 bad.err))"; fi
else
  echo "# strace unusable here: the traced checks are skipped"
fi
[ -z "$(ls -A shared-tmp)" ] && pass "\$TMPDIR is empty afterwards" || failed "\$TMPDIR holds $(ls -A shared-tmp)"

# ---- the device key, locked with a passphrase ----
# FORMAT.md §13.1: "device.key holds the device-secret key string, or its
# passphrase-locked form device-secret-locked ... mode 0600".
printf 'correct horse battery staple\n' >pass.txt
printf 'wrong horse\n' >wrong.txt
: >empty.txt
mode() { stat -c %a "$1"; }

# An empty passphrase is refused at creation, and nothing is written.
RECRYPT_PASSPHRASE_FILE="$T/empty.txt" expect_fail "keygen --protect refuses an empty passphrase" \
  64 "passphrase is empty" dev carol keygen --protect
[ ! -e dev-carol/device.key ] && pass "no key written after the refusal" || failed "a key was written"
RECRYPT_PASSPHRASE_FILE="$T/missing.txt" expect_fail "keygen --protect: unreadable passphrase file" \
  74 "cannot read the passphrase file" dev carol keygen --protect
[ ! -e dev-carol/device.key ] && pass "no key written without a passphrase" || failed "a key was written"
# No file and no terminal (setsid: no controlling terminal).
expect_fail "keygen --protect without a passphrase file or terminal" 77 \
  "no terminal: set RECRYPT_PASSPHRASE_FILE" setsid -w env RECRYPT_HOME="$T/dev-carol" "$RECRYPT" keygen --protect </dev/null

RECRYPT_PASSPHRASE_FILE="$T/pass.txt" dev carol keygen --protect >carol.pub 2>carol.err
if grep -q '^recrypt1\.device-secret-locked\.' dev-carol/device.key && [ "$(mode dev-carol/device.key)" = 600 ]; then
  pass "keygen --protect writes a locked device key, mode 0600"
else failed "device.key: mode $(mode dev-carol/device.key), $(head -c 40 dev-carol/device.key)"; fi
grep -q 'locked with a passphrase' carol.err && pass "keygen says the key is locked" || failed "keygen: $(cat carol.err)"
cmp -s carol.pub dev-carol/device.pub && pass "device.pub holds the public key line" || failed "device.pub differs"
# pubkey needs no passphrase (device.pub).
expect_ok "pubkey of a locked key without a passphrase" dev carol pubkey
cmp -s "$T/.out" carol.pub && pass "pubkey prints the same line" || failed "pubkey printed another line"
enrol list carol@example.org carol
{ hdr "for carol" c1; printf '\nhello carol\n'; } >c1.eml
post list alice c1.eml c1.d

# Round trip with the passphrase; refusals without or with a wrong one.
RECRYPT_PASSPHRASE_FILE="$T/pass.txt" dev carol open <c1.d >c1.o 2>c1.err || true
same_inner "open with a locked key and its passphrase" c1.eml c1.o
RECRYPT_PASSPHRASE_FILE="$T/wrong.txt" expect_fail "open with a wrong passphrase" 77 \
  "wrong passphrase for the device key" dev carol open <c1.d
RECRYPT_PASSPHRASE_FILE="$T/empty.txt" expect_fail "open with an empty passphrase" 64 \
  "passphrase is empty" dev carol open <c1.d
expect_fail "open of a locked key without a passphrase file or terminal" 77 \
  "device key is locked with a passphrase and there is no terminal: set RECRYPT_PASSPHRASE_FILE" \
  setsid -w env RECRYPT_HOME="$T/dev-carol" "$RECRYPT" open <c1.d
# view (for mail programs) unlocks the same way; without the passphrase
# the view folder holds a notice saying why, never the message.
RECRYPT_PASSPHRASE_FILE="$T/pass.txt" dev carol view --dir "$T/vd" <c1.d >/dev/null 2>&1 || true
if grep -rqs '^hello carol$' "$T/vd"; then pass "view with a locked key and its passphrase"
else failed "view with the passphrase: $(ls -R "$T/vd" 2>&1 | head -5)"; fi
setsid -w env RECRYPT_HOME="$T/dev-carol" "$RECRYPT" view --dir "$T/vd2" <c1.d >/dev/null 2>&1 || true
if ! grep -rqs '^hello carol$' "$T/vd2" && grep -rqs 'RECRYPT_PASSPHRASE_FILE' "$T/vd2"; then
  pass "view without a passphrase shows a notice naming RECRYPT_PASSPHRASE_FILE, not the message"
else failed "view without a passphrase: $(grep -rh . "$T/vd2" 2>/dev/null | head -5)"; fi
# Sealing signed needs the key (carol holds her certificate now).
{ printf 'From: carol@example.org\nTo: list@example.org\nSubject: s\n\nsigned by carol\n'; } >c2.eml
RECRYPT_PASSPHRASE_FILE="$T/wrong.txt" expect_fail "signed seal with a wrong passphrase" 77 \
  "wrong passphrase for the device key" dev carol seal --to list@example.org <c2.eml
RECRYPT_PASSPHRASE_FILE="$T/pass.txt" expect_ok "signed seal with the passphrase" dev carol seal --to list@example.org <c2.eml
"$RC_HARNESS" recrypt list <"$T/.out" >c2.d 2>/dev/null
dev bob open <c2.d >c2.o 2>/dev/null || true
head -n1 c2.o | grep -q '^Recrypt-Verdict: signed; member=carol@example.org' &&
  pass "a post sealed with the unlocked key opens as signed by carol" || failed "c2: $(head -n1 c2.o)"

# sendmail (for mail programs) signs with the unlocked key, and submits
# nothing on a wrong passphrase.
recording_sendmail
RECRYPT_PASSPHRASE_FILE="$T/wrong.txt" dev carol sendmail -t -oi <c2.eml >/dev/null 2>sm.err && rc=0 || rc=$?
if [ "$rc" -eq 77 ] && [ -z "$(ls "$T"/sub.* 2>/dev/null)" ] && grep -q 'wrong passphrase for the device key' sm.err; then
  pass "sendmail with a wrong passphrase submits nothing (exit $rc)"
else failed "sendmail, wrong passphrase: exit $rc, $(ls "$T"/sub.* 2>/dev/null) $(head -c 200 sm.err)"; fi
RECRYPT_PASSPHRASE_FILE="$T/pass.txt" dev carol sendmail -t -oi <c2.eml >/dev/null 2>sm.err || true
if grep -qs 'multipart/encrypted' "$T"/sub.0; then pass "sendmail with the passphrase submits the sealed post"
else failed "sendmail with the passphrase: $(head -c 200 sm.err)"; fi

# The locked file does not hold the secret: unlock a copy and look for the
# plain key string and its raw bytes in the locked one.
cp -a dev-carol dev-carolcopy
RECRYPT_PASSPHRASE_FILE="$T/pass.txt" expect_ok "key unprotect (a copy)" dev carolcopy key unprotect
grep -q '^recrypt1\.device-secret\.' dev-carolcopy/device.key && [ "$(mode dev-carolcopy/device.key)" = 600 ] &&
  pass "unprotect writes the plain key string, mode 0600" || failed "unprotect: $(head -c 30 dev-carolcopy/device.key)"
if /usr/bin/python3 - dev-carolcopy/device.key dev-carol/device.key <<'PY'
import base64, sys
plain = open(sys.argv[1]).read().strip()
locked = open(sys.argv[2]).read().strip()
def raw(s):
    b = s.split('.', 2)[2]
    return base64.urlsafe_b64decode(b + '=' * (-len(b) % 4))
secret = raw(plain)[:64]          # the two 32-byte seeds
lk = raw(locked)
bad = plain.split('.', 2)[2][:40] in locked or any(secret[i:i+16] in lk for i in range(0, 64, 16))
sys.exit(1 if bad else 0)
PY
then pass "the locked key file holds neither the key string nor the key bytes"
else failed "the locked key file leaks the secret"; fi
dev carolcopy open <c1.d >c1.o2 2>/dev/null || true
same_inner "the unprotected key opens without a passphrase" c1.eml c1.o2

# key protect / unprotect / status on an existing key; a wrong passphrase
# changes nothing.
expect_ok "key status (not locked)" dev bob key status
grep -qx 'not locked' "$T/.out" && pass "status says not locked" || failed "status: $(cat "$T/.out")"
RECRYPT_PASSPHRASE_FILE="$T/empty.txt" expect_fail "key protect refuses an empty passphrase" 64 \
  "passphrase is empty" dev bob key protect
grep -q '^recrypt1\.device-secret\.' dev-bob/device.key && pass "bob's key is still plain after the refusal" || failed "bob's key changed"
RECRYPT_PASSPHRASE_FILE="$T/pass.txt" expect_ok "key protect" dev bob key protect
grep -q '^recrypt1\.device-secret-locked\.' dev-bob/device.key && [ "$(mode dev-bob/device.key)" = 600 ] &&
  pass "bob's key is now locked, mode 0600" || failed "bob's key: $(head -c 30 dev-bob/device.key)"
RECRYPT_PASSPHRASE_FILE="$T/pass.txt" expect_fail "key protect twice" 73 "already locked" dev bob key protect
cp dev-bob/device.key bob.before
RECRYPT_PASSPHRASE_FILE="$T/wrong.txt" expect_fail "key unprotect with a wrong passphrase" 77 \
  "wrong passphrase for the device key" dev bob key unprotect
cmp -s bob.before dev-bob/device.key && pass "a wrong passphrase leaves the key file as it was" || failed "key file changed"
RECRYPT_PASSPHRASE_FILE="$T/pass.txt" dev bob open <c1.d >c1.o3 2>/dev/null || true
same_inner "bob opens with his newly locked key" c1.eml c1.o3
RECRYPT_PASSPHRASE_FILE="$T/pass.txt" expect_ok "key unprotect" dev bob key unprotect
dev bob open <c1.d >c1.o4 2>/dev/null || true
same_inner "bob opens in the clear again" c1.eml c1.o4

# Key files group- or world-readable are refused, locked or not.
chmod 640 dev-carol/device.key
RECRYPT_PASSPHRASE_FILE="$T/pass.txt" expect_fail "a group-readable locked key is refused" 77 \
  "accessible by group or others" dev carol open <c1.d
chmod 604 dev-carol/device.key
RECRYPT_PASSPHRASE_FILE="$T/pass.txt" expect_fail "a world-readable locked key is refused" 77 \
  "accessible by group or others" dev carol open <c1.d
chmod 600 dev-carol/device.key

# The native host never asks: hello still gives the fingerprint, open
# answers "refused" with the sentence to show, and works with the file.
nh() { RECRYPT="$RECRYPT" /usr/bin/python3 - "$@" <<'PY'
import base64, json, os, struct, subprocess, sys
home, msg = sys.argv[1], sys.argv[2]
reqs = [{"id": 1, "op": "hello"},
        {"id": 2, "op": "open", "message": base64.b64encode(open(msg, 'rb').read()).decode()}]
data = b''.join(struct.pack('=I', len(j)) + j for j in (json.dumps(r).encode() for r in reqs))
env = dict(os.environ, RECRYPT_HOME=home)
out = subprocess.run([os.environ['RECRYPT'], 'native-host'], input=data, env=env,
                     stdout=subprocess.PIPE, start_new_session=True).stdout
while out:
    n = struct.unpack('=I', out[:4])[0]
    r = json.loads(out[4:4 + n]); out = out[4 + n:]
    if r['id'] == 1: print('hello', r['result']['device'] is not None, r['result']['device_locked'])
    elif r['ok']: print('open ok')
    else: print('open', r['error']['code'], r['error']['message'])
PY
}
nh "$T/dev-carol" c1.d >nh.out 2>&1 || true
if grep -qx 'hello True True' nh.out &&
   grep -q '^open refused .*device key is locked with a passphrase and there is no terminal to ask on: set RECRYPT_PASSPHRASE_FILE' nh.out; then
  pass "native host without a passphrase: hello shows the locked device, open is refused saying why"
else failed "native host: $(cat nh.out)"; fi
RECRYPT_PASSPHRASE_FILE="$T/pass.txt" nh "$T/dev-carol" c1.d >nh.out 2>&1 || true
grep -qx 'open ok' nh.out && pass "native host opens with RECRYPT_PASSPHRASE_FILE" || failed "native host: $(cat nh.out)"
RECRYPT_PASSPHRASE_FILE="$T/wrong.txt" nh "$T/dev-carol" c1.d >nh.out 2>&1 || true
grep -q '^open refused wrong passphrase for the device key' nh.out && pass "native host: wrong passphrase is refused" || failed "native host: $(cat nh.out)"

finish
