# recrypt sendmail's decisions, seen from the real sendmail's side: a
# recording script stands in for it (it writes its arguments and the
# message it got), so that each case shows exactly what would have been
# submitted. The end-to-end behaviour through Postfix is
# tests/integration/test_recrypt_sendmail.sh; here are the address forms,
# option clusters and refusals. A list must never get plaintext: every
# form that names a list either is sealed for it or refuses (nothing
# submitted).
source "$(dirname "$0")/lib.sh"

newlist list list@example.org
newlist users recrypt-users@example.org
newdev alice
dev alice list import --signer "$("$RC_HARNESS" signer list)" "$("$RC_HARNESS" list-key list)" >/dev/null 2>&1 || failed "import list"
dev alice list import --signer "$("$RC_HARNESS" signer users)" "$("$RC_HARNESS" list-key users)" >/dev/null 2>&1 || failed "import recrypt-users"
MARK="rcargs$RANDOM$RANDOM"
recording_sendmail

msg() { # msg HEADER-LINES...
  { for h in "$@"; do printf '%s\n' "$h"; done
    printf 'From: alice@example.org\nSubject: s\nDate: %s\nMessage-ID: <a%s@example.org>\n\nbody %s\n' \
      "$(date -R)" "$RANDOM$RANDOM" "$MARK"; } >m.eml
}
clear() { rm -f "$T"/sub.*; }
subs() { ls "$T"/sub.* 2>/dev/null | wc -l; }
sm() { dev alice sendmail "$@" <m.eml >"$T/.out" 2>"$T/.err"; }
# sealed NAME ARGS...: exactly one submission, sealed, to the list alone.
sealed() {
  local name=$1 rc=0; shift
  clear; sm "$@" || rc=$?
  if [ $rc -eq 0 ] && [ "$(subs)" -eq 1 ] && grep -q 'multipart/encrypted' "$T/sub.0" &&
     ! grep -q "$MARK" "$T/sub.0" && head -1 "$T/sub.0" | grep -qE -- '-- list@example.org$'; then
    pass "$name: sealed, to the list alone"
  else
    failed "$name: exit $rc, $(subs) submissions: $(head -1 "$T/sub.0" 2>/dev/null) $(head -c 200 "$T/.err")"
  fi
}
# refused NAME CODE PATTERN ARGS...: nothing submitted.
refused() {
  local name=$1 code=$2 pat=$3 rc=0; shift 3
  clear; sm "$@" || rc=$?
  if [ $rc -eq "$code" ] && [ "$(subs)" -eq 0 ] && grep -qE -- "$pat" "$T/.err"; then
    pass "$name: refused ($code), nothing submitted"
  else
    failed "$name: exit $rc (expected $code), $(subs) submissions, stderr: $(head -c 200 "$T/.err")"
  fi
}

msg "To: list@example.org"
sealed "-t, To: the list" -t -oi
sealed "-ti (a cluster)" -ti
sealed "-r SENDER -t" -r alice@example.org -t
grep -q '^ARGS: -r alice@example.org -i -- list@example.org$' "$T/sub.0" &&
  pass "-r and its value are passed on, -t is not" || failed "-r: $(head -1 "$T/sub.0")"
sealed "argument <list@example.org>" -oi -- "<list@example.org>"
sealed "argument 'List <list@example.org>'" -oi -- "List <list@example.org>"
sealed "argument List@Example.ORG" -oi -- "List@Example.ORG"
grep -q '^ARGS: -oi -i -- list@example.org$' "$T/sub.0" && pass "-oi is passed on as given" ||
  failed "-oi: $(head -1 "$T/sub.0")"
msg "Resent-To: list@example.org"
sealed "-t, Resent-To: the list" -t

# Forms the MTA would route to the list but recrypt does not take apart.
msg "To: nobody@example.net"
refused "a bang path" 65 "in a form recrypt cannot take apart" -oi -- "example.org!list"
refused "the percent hack" 65 "in a form recrypt cannot take apart" -oi -- "list%example.org@mx.example.org"
refused "a quoted local part" 65 "in a form recrypt cannot take apart" -oi -- '"list"@example.org'
msg "To: a@example.net; list@example.org"
refused "a header GMime reads only in part" 65 "in a form recrypt cannot take apart" -t

# A list and others: refused without --split.
msg "To: list@example.org" "Cc: bob@example.net"
refused "list plus Cc" 77 "also to bob@example.net: nothing sent.*--split" -t -oi
{ printf 'To: '; for i in $(seq 1 600); do printf 'p%s@example.net, ' "$i"; done; printf 'list@example.org\n'; } >hdr.txt
msg "$(cat hdr.txt)"
refused "600 other recipients, then the list" 77 "goes to the encrypted list list@example.org" -t -oi

# --split: the sealed post to the list, then the message without Bcc.
msg "To: list@example.org" "Cc: bob@example.net" "Bcc: carol@example.net"
clear; rc=0; sm -t -oi --split || rc=$?
if [ $rc -eq 0 ] && [ "$(subs)" -eq 2 ] && grep -q 'multipart/encrypted' "$T/sub.0" &&
   head -1 "$T/sub.1" | grep -qE -- '-- bob@example.net carol@example.net$' &&
   grep -q "$MARK" "$T/sub.1" && ! grep -qi '^Bcc:' "$T/sub.1"; then
  pass "--split: sealed to the list, then the message without Bcc to the others"
else
  failed "--split: exit $rc, $(subs) submissions: $(head -1 "$T/sub.1" 2>/dev/null)"
fi

# No list: unchanged, with the same arguments.
msg "To: bob@example.net"
clear; rc=0; sm -oi -f alice@example.org -- bob@example.net || rc=$?
[ $rc -eq 0 ] && [ "$(subs)" -eq 1 ] && head -1 "$T/sub.0" | grep -qx 'ARGS: -oi -f alice@example.org -i -- bob@example.net' &&
  tail -n +2 "$T/sub.0" | cmp -s - m.eml && pass "no list: passed on unchanged, same arguments" ||
  failed "no list: exit $rc: $(head -1 "$T/sub.0" 2>/dev/null)"

# A list whose name starts with "recrypt" is an address, not a key line.
msg "To: recrypt-users@example.org"
clear; rc=0; sm -t -oi || rc=$?
[ $rc -eq 0 ] && grep -q 'multipart/encrypted' "$T/sub.0" && head -1 "$T/sub.0" | grep -q -- '-- recrypt-users@example.org$' &&
  pass "a list named recrypt-users@example.org is sealed" || failed "recrypt-users: exit $rc $(head -c 200 "$T/.err")"

# A damaged pin still names a list: refused, never passed through.
printf 'garbage\n' >"$T/dev-alice/lists/list@example.org/pin"
msg "To: list@example.org"
refused "a list whose pin file is damaged" 65 "cannot seal the post for list@example.org" -t -oi
finish
