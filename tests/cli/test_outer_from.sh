# recrypt open and a copy whose outer From the list server rewrote
# (FromRewrite, docs/FORMAT.md §9.2 and §9.6): the opened message is the
# inner one, byte for byte, with a second line "Recrypt-Outer-From: ..." (the
# outer From as delivered, unfolded) when that From is not the inner one;
# none when they differ in folding only; inner fields of that name removed;
# LF and CRLF messages; a large inner header that reaches the client in
# many pieces.
source "$(dirname "$0")/lib.sh"

newlist list list@example.org
newdev alice
newdev bob
enrol list alice@example.org alice
enrol list bob@example.org bob
DATE=$(LC_ALL=C date -u -R)
n=0
# msg [EXTRA-FIELDS]: a post from Alice (LF line endings).
msg() {
  n=$((n + 1))
  printf 'From: "Alice L." <alice@example.org>\nTo: list@example.org\nSubject: post %s\n%sDate: %s\nMessage-ID: <of%s.%s@example.org>\n\nbody %s\n' \
    "$n" "${1:-}" "$DATE" "$n" "$$" "$n"
}
# outer FILE VALUE: replace the outer From of a delivered copy (the first
# From field and its continuation lines), as the gateway does; VALUE may
# hold "\n" folds, written with the copy's own line ending.
outer() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import re, sys
path, value = sys.argv[1], sys.argv[2]
t = open(path, "rb").read().decode("ascii")
eol = "\r\n" if t.split("\n", 1)[0].endswith("\r") else "\n"
m = re.search(r"^From:.*(?:\r?\n[ \t].*)*\r?\n", t, re.M)
new = "From: " + value.replace("\n", eol) + eol
open(path, "wb").write((t[: m.start()] + new + t[m.end():]).encode("ascii"))
EOF
}

# --- 1. rewritten, folded: the line shows it unfolded, the rest is the post.
msg >m1.eml
post list alice m1.eml d1.eml
outer d1.eml $'"Alice L. via list"\n <list@example.org>'
rc=0; dev bob open <d1.eml >o1.eml 2>err || rc=$?
[ $rc -eq 0 ] && head -n1 o1.eml | grep -q '^Recrypt-Verdict: ' &&
  [ "$(sed -n 2p o1.eml)" = 'Recrypt-Outer-From: "Alice L. via list" <list@example.org>' ] &&
  tail -n +3 o1.eml | cmp -s - m1.eml &&
  pass "rewritten outer From: Recrypt-Outer-From after the verdict, then the inner message byte for byte" ||
  failed "rewritten outer From: exit $rc $(cat err) $(head -3 o1.eml | tr '\n' '|')"
grep -q '^From: "Alice L." <alice@example.org>$' o1.eml && pass "the From of the opened message is the inner one" ||
  failed "inner From: $(grep '^From:' o1.eml)"

# --- 2. the same From, folded otherwise: no line.
msg >m2.eml
post list alice m2.eml d2.eml
outer d2.eml $'"Alice L."\n\t<alice@example.org>'
rc=0; dev bob open <d2.eml >o2.eml 2>err || rc=$?
[ $rc -eq 0 ] && ! grep -q '^Recrypt-Outer-From' o2.eml && tail -n +2 o2.eml | cmp -s - m2.eml &&
  pass "outer From folded otherwise: no Recrypt-Outer-From" ||
  failed "folding only: exit $rc $(head -2 o2.eml | tr '\n' '|')"
msg >m2b.eml
post list alice m2b.eml d2b.eml
rc=0; dev bob open <d2b.eml >o2b.eml 2>err || rc=$?
[ $rc -eq 0 ] && ! grep -q '^Recrypt-Outer-From' o2b.eml && tail -n +2 o2b.eml | cmp -s - m2b.eml &&
  pass "outer From untouched (FromRewrite no): the opened message as before" ||
  failed "untouched: $(head -2 o2b.eml | tr '\n' '|')"

# --- 3. a Recrypt-Outer-From inside the post is removed, whatever its case.
msg $'Recrypt-Outer-From: "Bob" <bob@example.org>\nrecrypt-outer-from: x\n  folded <evil@example.net>\n' >m3.eml
grep -v -i '^recrypt-outer-from\|^  folded' m3.eml >m3-clean.eml
post list alice m3.eml d3.eml
rc=0; dev bob open <d3.eml >o3.eml 2>err || rc=$?
[ $rc -eq 0 ] && tail -n +2 o3.eml | cmp -s - m3-clean.eml &&
  pass "inner Recrypt-Outer-From fields removed (outer From untouched: none added)" ||
  failed "inner fields: exit $rc $(grep -i 'outer-from\|evil' o3.eml | tr '\n' '|')"
outer d3.eml '"Alice L. via list" <list@example.org>'
rc=0; dev bob open <d3.eml >o3b.eml 2>err || rc=$?
[ $rc -eq 0 ] && [ "$(grep -ci '^recrypt-outer-from' o3b.eml)" -eq 1 ] && ! grep -q evil o3b.eml &&
  tail -n +3 o3b.eml | cmp -s - m3-clean.eml &&
  pass "rewritten, with inner ones: exactly one Recrypt-Outer-From, the client's" ||
  failed "rewritten with inner ones: $(grep -i 'outer-from' o3b.eml | tr '\n' '|')"

# --- 4. CRLF: the added line ends as the message's lines do.
msg | sed 's/$/\r/' >m4.eml
post list alice m4.eml d4.eml
outer d4.eml '"Alice L. via list" <list@example.org>'
rc=0; dev bob open <d4.eml >o4.eml 2>err || rc=$?
[ $rc -eq 0 ] && head -n1 o4.eml | grep -q $'^Recrypt-Verdict: .*\r$' &&
  [ "$(sed -n 2p o4.eml)" = $'Recrypt-Outer-From: "Alice L. via list" <list@example.org>\r' ] &&
  tail -n +3 o4.eml | cmp -s - m4.eml && pass "CRLF: Recrypt-Outer-From ends in CRLF, the rest byte for byte" ||
  failed "CRLF: exit $rc $(head -2 o4.eml | od -c | head -5 | tr '\n' '|')"

# --- 5. a 300 KiB inner header (many pieces reach the client before its end).
{
  n=$((n + 1))
  printf 'From: "Alice L." <alice@example.org>\nTo: list@example.org\nSubject: big\n'
  awk 'BEGIN {for (i = 1; i <= 4000; i++) printf "X-Filler-%04d: %060d\n", i, i}'
  printf 'Date: %s\nMessage-ID: <big%s@example.org>\n\nbig body\n' "$DATE" "$$"
} >m5.eml
post list alice m5.eml d5.eml
outer d5.eml '"Alice L. via list" <list@example.org>'
rc=0; dev bob open <d5.eml >o5.eml 2>err || rc=$?
[ $rc -eq 0 ] && [ "$(sed -n 2p o5.eml)" = 'Recrypt-Outer-From: "Alice L. via list" <list@example.org>' ] &&
  tail -n +3 o5.eml | cmp -s - m5.eml && pass "a $(wc -c <m5.eml)-byte header: the line added, the rest byte for byte" ||
  failed "large header: exit $rc $(cat err | head -c 200)"

finish
