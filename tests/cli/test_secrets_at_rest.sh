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
if strace -V >/dev/null 2>&1 && strace -f -qq -o /dev/null true 2>/dev/null; then
  RECRYPT_HOME="$T/dev-bob" TMPDIR="$T/shared-tmp" strace -f -qq -o trace \
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
  RECRYPT_HOME="$T/dev-bob" TMPDIR="$T/shared-tmp" strace -f -qq -o trace2 \
    -e trace=open,openat,creat,memfd_create \
    "$RECRYPT" open <big.bad >bad.o 2>bad.err || rc=$?
  if [ "$rc" -eq 65 ] && [ ! -s bad.o ] && ! grep -q "$T/shared-tmp" trace2; then
    pass "a tampered large message is refused (65), nothing written, \$TMPDIR untouched"
  else failed "tampered large message: exit $rc, $(wc -c <bad.o) bytes out ($(head -c 200 bad.err))"; fi
else
  echo "# strace unusable here: the traced checks are skipped"
fi
[ -z "$(ls -A shared-tmp)" ] && pass "\$TMPDIR is empty afterwards" || failed "\$TMPDIR holds $(ls -A shared-tmp)"

finish
