# The client's mail folders: `open --maildir`, the mail programs' view
# folder (`view`), the opt-in decrypted archive (`archive`), the generated
# mutt lines (`mutt-config`), and in `recrypt sendmail` the sealed sent copy
# (--fcc) and the reply guard (a reply to a list post never leaves in
# plaintext for people outside the list unless asked). The real neomutt
# session is tests/integration/test_neomutt.sh.
source "$(dirname "$0")/lib.sh"

newlist list list@example.org
newdev alice
newdev bob
enrol list alice@example.org alice
enrol list bob@example.org bob
MARK="rcview$RANDOM$RANDOM"
mkdir -p run && chmod 700 run
export XDG_RUNTIME_DIR="$T/run"
VIEW="$T/run/recrypt-view"

# mkpost N: post N (Message-ID <pN@example.org>) sealed and delivered, in dN.eml
mkpost() {
  printf 'From: alice@example.org\nTo: list@example.org\nSubject: post %s\nDate: %s\nMessage-ID: <p%s@example.org>\n\nbody %s-%s\n' \
    "$1" "$(date -R)" "$1" "$MARK" "$1" >"m$1.eml"
  post list alice "m$1.eml" "d$1.eml"
}
mkpost 1
mkpost 2
files() { find "$1" -type f ! -name .recrypt-view 2>/dev/null | wc -l; }

# ---- open --maildir ---------------------------------------------------------
expect_ok "open --maildir delivers" dev bob open --maildir "$T/box" <d1.eml
f=$(find box/cur -type f)
[ "$(files box)" -eq 1 ] && same_inner "open --maildir: the decrypted message" m1.eml "$f" ||
  failed "open --maildir: $(files box) files"
[ "$(stat -c %a box) $(stat -c %a "$f")" = "700 600" ] && pass "open --maildir: folder 0700, message 0600" ||
  failed "open --maildir modes: $(stat -c %a box) $(stat -c %a "$f")"
mkdir -p shared/cur shared/new shared/tmp && chmod 755 shared
expect_fail "open --maildir refuses a folder others can read" 77 "mode 0700" \
  dev bob open --maildir "$T/shared" <d1.eml
[ "$(files shared)" -eq 0 ] && pass "  and writes nothing there" || failed "wrote into a shared folder"
# bad.eml: post 1 with one bit of its ciphertext flipped.
python3 - d1.eml bad.eml <<'PY'
import base64, re, sys
text = open(sys.argv[1], 'rb').read().decode('latin-1')
m = re.search(r'(filename="message.rcx"\n\n)(.*?)(\n--=_recrypt_)', text, re.S)
b = bytearray(base64.b64decode(m.group(2)))
b[100] ^= 1
enc = base64.encodebytes(bytes(b)).decode().rstrip('\n')
open(sys.argv[2], 'wb').write((text[:m.start(2)] + enc + text[m.end(2):]).encode('latin-1'))
PY
expect_fail "open --maildir: tampered post refused" 65 "does not authenticate" dev bob open --maildir "$T/box" <bad.eml
[ "$(files box)" -eq 1 ] && pass "  and the folder keeps only the good post" ||
  failed "tampered post left $(files box) files"

# ---- view -------------------------------------------------------------------
expect_ok "view --path" dev bob view --path
[ "$(cat "$T/.out")" = "$VIEW" ] && [ "$(stat -c %a "$VIEW")" = 700 ] &&
  pass "view --path: \$XDG_RUNTIME_DIR/recrypt-view, 0700" || failed "view --path: $(cat "$T/.out")"
expect_ok "view post 1" dev bob view <d1.eml
expect_ok "view post 2" dev bob view <d2.eml
f=$(find "$VIEW/cur" -type f)
[ "$(files "$VIEW")" -eq 1 ] && grep -q "$MARK-2" "$f" && ! grep -q "$MARK-1" "$f" &&
  pass "view holds one message, the newest" || failed "view holds $(files "$VIEW") files"
rc=0; dev bob view <bad.eml >"$T/.out" 2>"$T/.err" || rc=$?
f=$(find "$VIEW/cur" -type f)
[ $rc -eq 65 ] && [ "$(files "$VIEW")" -eq 1 ] && grep -q '^Subject: \[recrypt\] not opened: ' "$f" &&
  ! grep -q "$MARK" "$f" && pass "view of a tampered post: exit 65, a notice saying why, nothing of the post" ||
  failed "view of a tampered post: exit $rc, $(files "$VIEW") files: $(head -c 300 "$f")"
expect_ok "view --clear" dev bob view --clear
[ ! -e "$VIEW" ] && pass "view --clear removes the folder" || failed "view --clear left $VIEW"
ln -s "$T/shared" "$VIEW"
expect_fail "view refuses a view folder that is a symbolic link" 77 "not a directory|0700|not a recrypt view folder" \
  dev bob view --path
[ "$(files shared)" -eq 0 ] && pass "  and writes nothing through it" || failed "wrote through a symlink"
rm -f "$VIEW"
# --dir pointed at a real mailbox: refused, its mail untouched.
mkdir -p inbox0/cur inbox0/new inbox0/tmp && chmod 700 inbox0 && echo keep >inbox0/cur/1:2,S
expect_fail "view --dir at a real maildir refuses to empty it" 77 "not a recrypt view folder" \
  dev bob view --dir "$T/inbox0" <d1.eml
expect_fail "view --clear --dir at a real maildir refuses too" 77 "not a recrypt view folder" \
  dev bob view --clear --dir "$T/inbox0"
[ "$(cat inbox0/cur/1:2,S)" = keep ] && [ "$(files inbox0)" -eq 1 ] &&
  pass "  the maildir keeps its mail" || failed "view --dir emptied a real maildir"

# The posts file is as FORMAT.md §13 writes it: BLAKE2b-128("recrypt-post" NUL
# Message-ID) in hex, a space, the list.
want=$(python3 -c 'import hashlib,sys; print(hashlib.blake2b(b"recrypt-post\0"+sys.argv[1].encode(), digest_size=16).hexdigest())' p1@example.org)
grep -qx "$want list@example.org" dev-bob/posts && [ "$(stat -c %a dev-bob/posts)" = 600 ] &&
  pass "posts: the line FORMAT.md §13 defines, 0600" || failed "posts file: $(head -3 dev-bob/posts)"

# ---- the reply guard and the sealed sent copy in recrypt sendmail ----------
recording_sendmail
subs() { ls "$T"/sub.* 2>/dev/null | wc -l; }
reply() { # reply TO IN-REPLY-TO: a reply quoting the post
  printf 'From: bob@example.org\nTo: %s\nSubject: Re: post 1\nDate: %s\nMessage-ID: <r%s@example.org>\nIn-Reply-To: %s\nReferences: <x@elsewhere>\n <%s>\n\n> body %s-1\nreply %s\n' \
    "$1" "$(date -R)" "$RANDOM" "$2" "p1@example.org" "$MARK" "$MARK" >r.eml
}
printf 'From: bob@example.org\nTo: carol@example.net\nSubject: hi\n\nplain\n' >o.eml
# bob opened post 1 above (view): his keystore remembers it.
reply carol@example.net "<p1@example.org>"
rm -f sub.*
expect_fail "a reply to a list post, to the poster alone: refused" 77 "a reply to \(or a copy of\) a post of the encrypted list list@example.org" \
  dev bob sendmail -oi -- carol@example.net <r.eml
[ "$(subs)" -eq 0 ] && pass "  nothing submitted" || failed "reply guard submitted $(subs)"
printf 'From: bob@example.org\nTo: carol@example.net\nSubject: Re\nIn-Reply-To:\n <p1@example.org>\n\n> quoted\n' >r1.eml
expect_fail "In-Reply-To alone (folded) is enough" 77 "a reply to \(or a copy of\) a post" \
  dev bob sendmail -oi -- carol@example.net <r1.eml
reply carol@example.net "<unrelated@example.org>"
expect_fail "the guard also reads References (folded)" 77 "a reply to \(or a copy of\) a post" \
  dev bob sendmail -oi -- carol@example.net <r.eml
# A bounce (mutt's b) of the decrypted post keeps its Message-ID.
{ printf 'Resent-From: bob@example.org\nResent-To: carol@example.net\n'; cat m1.eml; } >bounce.eml
expect_fail "a bounce of the decrypted post to someone else: refused" 77 "a copy of\) a post" \
  dev bob sendmail -oi -- carol@example.net <bounce.eml
[ "$(subs)" -eq 0 ] && pass "  nothing submitted" || failed "bounce guard submitted $(subs)"
# A list reached only by Bcc (or only by an argument) is refused: the post
# would be sealed but mutt would keep a plaintext sent copy.
printf 'From: bob@example.org\nTo: carol@example.net\nBcc: list@example.org\nSubject: s\n\nhi\n' >bcc.eml
expect_fail "a list in Bcc only: refused" 77 "not named in To or Cc" \
  dev bob sendmail -t -oi --split <bcc.eml
expect_fail "a list as an argument only: refused" 77 "not named in To or Cc" \
  dev bob sendmail -oi -- list@example.org <o.eml
expect_ok "--allow-plaintext-reply sends it as written" dev bob sendmail --allow-plaintext-reply -oi -- carol@example.net <r.eml
[ "$(subs)" -eq 1 ] && grep -q "$MARK" sub.0 && pass "  one plaintext submission, as asked" || failed "allow: $(subs)"
rm -f sub.*
printf 'From: bob@example.org\nTo: carol@example.net\nSubject: hi\nIn-Reply-To: <other@example.org>\n\nnot a reply to the list\n' >o.eml
expect_ok "a reply to other mail passes" dev bob sendmail -oi -- carol@example.net <o.eml
rm -f sub.*

mkdir -p Mail/sent/cur Mail/sent/new Mail/sent/tmp
reply list@example.org "<p1@example.org>"
expect_ok "list-reply with --fcc=+sent --folder=~/Mail" env HOME="$T" RECRYPT_HOME="$T/dev-bob" \
  "$RECRYPT" sendmail -oi --fcc=+sent --folder="~/Mail" -- list@example.org <r.eml
f=$(find Mail/sent/cur -type f)
if [ "$(subs)" -eq 1 ] && [ "$(files Mail/sent)" -eq 1 ] && tail -n +2 sub.0 | cmp -s - "$f" &&
   ! grep -q "$MARK" "$f"; then
  pass "the sent copy (maildir) is the sealed message that was submitted, no plaintext"
else
  failed "maildir Fcc: $(subs) submissions, $(files Mail/sent) copies"
fi
rm -f sub.*
expect_ok "--fcc to an mbox" dev bob sendmail -oi --fcc="$T/sent.mbox" -- list@example.org <r.eml
expect_ok "--fcc to the same mbox again" dev bob sendmail -oi --fcc="$T/sent.mbox" -- list@example.org <r.eml
[ "$(grep -c '^From recrypt@localhost ' sent.mbox)" -eq 2 ] && ! grep -q "$MARK" sent.mbox &&
  [ "$(stat -c %a sent.mbox)" = 600 ] && grep -q 'multipart/encrypted' sent.mbox &&
  pass "mbox Fcc: two sealed copies, 0600, no plaintext" || failed "mbox Fcc: $(head -c 200 sent.mbox)"
rm -f sub.*
printf 'From: bob@example.org\nTo: carol@example.net\nSubject: hi\n\nplain\n' >o.eml
expect_ok "--fcc is for sealed posts only" dev bob sendmail -oi --fcc="$T/other.mbox" -- carol@example.net <o.eml
[ ! -e other.mbox ] && pass "  no copy of mail that was not sealed (mutt keeps that one)" || failed "copied plain mail"
rm -f sub.*
expect_fail "--fcc=+x without --folder: sent, with a warning" 0 "its sealed copy was not kept" \
  dev bob sendmail -oi --fcc=+x -- list@example.org <r.eml
[ "$(subs)" -eq 1 ] && pass "  the post went out" || failed "fcc warning case: $(subs) submissions"
rm -f sub.*

# ---- archive ------------------------------------------------------------------
mkdir -p inbox/cur inbox/new inbox/tmp
cp d1.eml inbox/new/1.eml; cp d2.eml inbox/cur/2.eml:2,S; cp bad.eml inbox/cur/3.eml
printf 'From: x@example.net\nSubject: ordinary\n\nnot list mail\n' >inbox/cur/4.eml
rc=0; dev bob archive --maildir "$T/arch" inbox >"$T/.out" 2>"$T/.err" || rc=$?
[ $rc -eq 65 ] && grep -q '2 added, 0 already there, 1 not list mail, 1 not opened' "$T/.err" &&
  [ "$(files arch/cur)" -eq 2 ] && [ "$(cat arch/cur/* | grep -c "$MARK")" -eq 2 ] &&
  [ "$(stat -c %a arch)" = 700 ] &&
  pass "archive: both posts decrypted into a 0700 maildir, the tampered one reported" ||
  failed "archive: exit $rc: $(cat "$T/.err")"
rc=0; dev bob archive --maildir "$T/arch" inbox >"$T/.out" 2>"$T/.err" || rc=$?
grep -q '0 added, 2 already there' "$T/.err" && [ "$(files arch/cur)" -eq 2 ] &&
  pass "archive again: nothing copied twice" || failed "archive again: $(cat "$T/.err")"
expect_fail "archive without --maildir" 64 "needs --maildir" dev bob archive inbox

# ---- mutt-config and the shipped rc files --------------------------------------
mkdir -p bin && ln -sf "$RECRYPT" bin/recrypt
expect_ok "mutt-config" dev bob mutt-config
esc_view=$(printf '%s' "$VIEW" | sed 's/[.]/\\\\./g') # each . as \\. (mutt reads it twice)
cat >want.rc <<EOF
subscribe '^list@example\.org\$'
fcc-hook '~C ^list@example\\\\.org\$' /dev/null
set my_recrypt_hcache = "\$header_cache"
folder-hook "$esc_view/?\$" 'set header_cache=""'
folder-hook !"$esc_view/?\$" 'set header_cache="\$my_recrypt_hcache"; source "recrypt view --clear|"'
EOF
missing=0
while IFS= read -r line; do grep -qxF -- "$line" "$T/.out" || { missing=1; echo "# missing: $line"; }; done <want.rc
[ $missing -eq 0 ] &&
  pass "mutt-config: subscribe, no plaintext Fcc, view clean-up" || failed "mutt-config: $(cat "$T/.out")"
# The generated hooks work in the real programs: mutt keeps no sent copy of
# a post to a list (one with '+' in its address too), and keeps one of other
# mail. Only mutt's decision is tested here: a recording sendmail stands in.
newlist team team+sec@example.org
dev bob list import --signer "$("$RC_HARNESS" signer team)" "$("$RC_HARNESS" list-key team)" >/dev/null 2>&1 || failed "import team+sec"
dev bob mutt-config >gen.rc
for prog in neomutt mutt; do
  command -v $prog >/dev/null || continue
  rm -f "rec-$prog"
  printf 'set record="%s"\nset sendmail="%s"\nsource %s\n' "$T/rec-$prog" "$T/record.sh" "$T/gen.rc" >"fcc-$prog.rc"
  for to in team+sec@example.org list@example.org; do
    echo "post" | HOME="$T" PATH="$T/bin:$PATH" RECRYPT_HOME="$T/dev-bob" $prog -n -F "fcc-$prog.rc" -s s "$to" >/dev/null 2>&1
  done
  [ ! -e "rec-$prog" ] && pass "$prog keeps no plaintext sent copy of posts to team+sec@ and list@" ||
    failed "$prog wrote a sent copy of a list post: $(grep -c '^From ' "rec-$prog")"
  echo "other" | HOME="$T" PATH="$T/bin:$PATH" RECRYPT_HOME="$T/dev-bob" $prog -n -F "fcc-$prog.rc" -s s carol@example.net >/dev/null 2>&1
  [ -s "rec-$prog" ] && pass "$prog keeps its sent copy of other mail" || failed "$prog kept no copy of other mail"
done
rm -f sub.*

# Each mail program reads its rc file without a complaint (recrypt on PATH).
for prog in neomutt mutt; do
  command -v $prog >/dev/null || { echo "# $prog not installed: rc check skipped"; continue; }
  rcf="$_root/contrib/$prog/recrypt.$([ $prog = neomutt ] && echo rc || echo muttrc)"
  printf 'set folder="~/Mail"\nset record="+sent"\nsource %s\n' "$rcf" >"$prog.rc"
  out=$(HOME="$T" PATH="$T/bin:$PATH" RECRYPT_HOME="$T/dev-bob" $prog -n -F "$prog.rc" -Q sendmail 2>&1) || true
  if echo "$out" | grep -q 'recrypt sendmail -oi' && ! echo "$out" | grep -qiE 'error|unknown|warning'; then
    pass "$prog reads contrib/$prog: $(echo "$out" | tail -1)"
  else
    failed "$prog rc file: $out"
  fi
done

finish
