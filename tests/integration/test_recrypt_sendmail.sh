# recrypt sendmail, the sendmail drop-in for mail programs, against a real
# Postfix on loopback with recrypt-milter (also as non_smtpd_milters, as
# the admin guide sets it up) and Postfix's own sendmail as the real one:
#   1. a post to the list alone: sealed, delivered, opened by the members;
#   2. the list plus a Cc: refused (exit 77), nothing reaches Postfix;
#   3. --split: the list gets the sealed post, the Cc the message as written;
#   4. mail to no list passes through unchanged;
#   5. after a rotation, a member's next post is sealed to the new epoch
#      with no manual step (opening one post of the new epoch was enough);
#   and the plaintext marker never appears in the queue.
# Needs root, Debian's postfix and its sendmail. Exit 77 (skipped) otherwise.

_here=$(cd "$(dirname "$0")" && pwd)
source "$_here/preflight.sh" # skip(), root, Postfix and its users, the milter binary
[ -x /usr/sbin/sendmail ] || skip "no /usr/sbin/sendmail (Postfix's)"
command -v script >/dev/null || skip "script (util-linux) is not installed"

source "$_here/../cli/lib.sh"
source "$_here/postfix-lib.sh"
PF_RECEIPTS=yes
pf_deadline 300
echo "# binaries: $RECRYPT, $RECRYPTCTL, $RECRYPT_MILTER"

LIST=list@example.org
D=example.org
ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }
gateway_up alice bob -- outsider@$D || { finish || exit 1; }
pass "postfix with recrypt-milter for SMTP and local submission"

# alice's keystore knows the list (she imports the published key file).
dev alice list import list.key >/dev/null 2>&1 && pass "alice imports the list key" || failed "alice imports the list key"

MARK="rcsm$RANDOM$RANDOM"  # only in posts that go to the list alone
PMARK="rcsmp$RANDOM$RANDOM" # in messages that also go to someone else, in plaintext
M=$MARK
n=0
msg() { # msg FILE FROM TO [CC]
  n=$((n + 1))
  {
    printf 'From: %s\nTo: %s\n' "$2" "$3"
    [ -z "${4:-}" ] || printf 'Cc: %s\n' "$4"
    printf 'Subject: drop-in %s\nDate: %s\nMessage-ID: <sm%s.%s.%s@%s>\n\nThe secret of post %s is %s.\n' \
      "$n" "$(date -R)" "$n" "$$" "$RANDOM" "$D" "$n" "$M"
  } >"$1"
}
sm() { # sm NAME [ARGS...] < message: recrypt sendmail as a mail program runs it
  local name=$1; shift
  RECRYPT_HOME="$T/dev-$name" "$RECRYPT" sendmail "$@" >"$T/sm.out" 2>"$T/sm.err"
}
settle() { pf_queue_empty_wait 20 || echo "  (queue not empty after 20 s)"; sleep 0.5; }
newest() { ls -t "$(pf_maildir "$1")"/* 2>/dev/null | head -1 || true; }
count() { pf_count "$1"; }
pickups() { { grep -c 'postfix/pickup' "$PF_LOG" 2>/dev/null || true; } | tail -1; }
leak_watch_start "$MARK"

# --- 1. the list alone
msg m1.eml "alice@$D" "$LIST"
rc=0; sm alice -t -oi <m1.eml || rc=$?
[ $rc -eq 0 ] && pass "1: recrypt sendmail -t -oi to the list: exit 0" || failed "1: exit $rc: $(cat "$T/sm.err")"
pf_wait_delivered 1 bob@$D 20 && pass "1: bob got the post" || failed "1: nothing reached bob"
settle
f=$(newest bob@$D)
if [ -n "$f" ]; then
  grep -q "$MARK" "$f" && failed "1: bob's copy holds the plaintext" || pass "1: bob's copy is sealed"
  rc=0; dev bob open <"$f" >o1.eml 2>/dev/null || rc=$?
  [ $rc -eq 0 ] && same_inner "1: bob opens it to the message alice wrote" m1.eml o1.eml ||
    failed "1: bob cannot open it (exit $rc)"
fi
[ "$(count "$LIST")" -eq 0 ] && pass "1: nothing reached the list mailbox (the milter processed the local submission)" ||
  failed "1: the list mailbox got $(count "$LIST")"

# --- 2. the list plus a Cc: refused, nothing reaches Postfix
M=$PMARK
msg m2.eml "alice@$D" "$LIST" "outsider@$D"
p0=$(pickups)
rc=0; sm alice -t -oi <m2.eml || rc=$?
[ $rc -eq 77 ] && grep -q "goes to the encrypted list $LIST and also to outsider@$D: nothing sent.*--split" "$T/sm.err" &&
  pass "2: list plus Cc refused (exit 77), the message says to send separately or --split" ||
  failed "2: exit $rc: $(cat "$T/sm.err")"
sleep 1
settle
[ "$(pickups)" = "$p0" ] && [ "$(count outsider@$D)" -eq 0 ] && [ "$(count bob@$D)" -eq 1 ] &&
  pass "2: nothing was submitted: no pickup, nobody got anything" ||
  failed "2: pickups $p0 -> $(pickups), outsider $(count outsider@$D), bob $(count bob@$D)"

# --- 3. --split: sealed to the list, as written to the Cc
rc=0; sm alice -t -oi --split <m2.eml || rc=$?
[ $rc -eq 0 ] && pass "3: --split: exit 0" || failed "3: exit $rc: $(cat "$T/sm.err")"
pf_wait_delivered 2 bob@$D 20 && pf_wait_delivered 1 outsider@$D 20 &&
  pass "3: bob and the Cc both got it" || failed "3: bob $(count bob@$D), outsider $(count outsider@$D)"
settle
f=$(newest bob@$D)
rc=0; dev bob open <"$f" >o3.eml 2>/dev/null || rc=$?
[ $rc -eq 0 ] && grep -q "$PMARK" o3.eml && ! grep -q "$PMARK" "$f" &&
  pass "3: the list's copy is sealed and opens" || failed "3: list copy: open exit $rc"
f=$(newest outsider@$D)
grep -q "$PMARK" "$f" && ! grep -q '^Recrypt-' "$f" && pass "3: the Cc got the message as written" ||
  failed "3: the Cc's copy is not the plain message"

# --- 4. mail to no list passes through unchanged
msg m4.eml "alice@$D" "outsider@$D"
rc=0; sm alice -oi -- "outsider@$D" <m4.eml || rc=$?
[ $rc -eq 0 ] && pf_wait_delivered 2 outsider@$D 20 && pass "4: mail to no list: exit 0, delivered" ||
  failed "4: exit $rc, outsider has $(count outsider@$D): $(cat "$T/sm.err")"
settle
f=$(newest outsider@$D)
sed -n '/^From: /,$p' "$f" | cmp -s - m4.eml && pass "4: passed through unchanged (byte for byte from From: on)" ||
  failed "4: the message was changed: $(diff <(sed -n '/^From: /,$p' "$f") m4.eml | head -5 | tr '\n' '|')"

# --- 5. a rotation: bob's next post follows without a manual step
M=$MARK
ctl list rotate "$LIST" --grace 0 --apply "$T/db" >/dev/null 2>&1 || failed "5: rotate"
ctl list key "$LIST" >list2.key 2>/dev/null
sleep 1 # the new epoch's entries are enrolled now: a post must be dated after
dev alice list import list2.key >/dev/null 2>&1 || failed "5: alice imports the new key"
msg m5.eml "alice@$D" "$LIST"
rc=0; sm alice -t -oi <m5.eml || rc=$?
[ $rc -eq 0 ] && pf_wait_delivered 3 bob@$D 20 && pass "5: alice's post with the new key is delivered" ||
  failed "5: alice's post: exit $rc, bob has $(count bob@$D): $(cat "$T/sm.err")"
settle
dev bob open <"$(newest bob@$D)" >/dev/null 2>&1 && pass "5: bob opens it (his keystore learns epoch 2)" ||
  failed "5: bob cannot open the epoch-2 post"
msg m6.eml "bob@$D" "$LIST"
rc=0; sm bob -t -oi <m6.eml || rc=$?
[ $rc -eq 0 ] && pf_wait_delivered 3 alice@$D 20 && pass "5: bob's next post is accepted and delivered (no new key file for bob)" ||
  failed "5: bob's post: exit $rc, alice has $(count alice@$D): $(cat "$T/sm.err")"
settle
rc=0; dev alice open <"$(newest alice@$D)" >o6.eml 2>/dev/null || rc=$?
[ $rc -eq 0 ] && grep -q '; epoch=2' o6.eml && same_inner "5: bob's post was sealed to epoch 2 and opens" m6.eml o6.eml ||
  failed "5: alice and bob's post: exit $rc $(head -1 o6.eml)"

# --- 6. Postfix's own sendmail (a local submission) naming the list and
# another recipient: Postfix cannot refuse one recipient of a local
# submission, so the milter refuses the message at DATA and Postfix
# bounces it to its sender; nothing stays in the queue, nobody else gets it.
M=$PMARK
msg m7.eml "outsider@$D" "$LIST" "alice@$D"
a0=$(count alice@$D) b0=$(count bob@$D) l0=$(count "$LIST") o0=$(count outsider@$D)
rc=0; /usr/sbin/sendmail -C "$PF_DIR" -f "outsider@$D" -t -oi <m7.eml >sm7.out 2>&1 || rc=$?
[ $rc -eq 0 ] && pass "6: sendmail -t to the list and a Cc: accepted for the queue (exit 0)" ||
  failed "6: sendmail exit $rc: $(cat sm7.out)"
pf_queue_empty_wait 30 && pass "6: nothing stays in the Postfix queue" ||
  failed "6: the queue still holds: $(postqueue -c "$PF_DIR" -p 2>&1 | tail -5 | tr '\n' ' ')"
if pf_wait_delivered $((o0 + 1)) outsider@$D 20; then
  f=$(newest outsider@$D)
  grep -q "encrypted list" "$f" && grep -q "5\.5\.3" "$f" &&
    pass "6: the sender gets a bounce that says why (5.5.3, the encrypted list)" ||
    failed "6: the bounce does not say why: $(grep -m3 -i 'list\|5\.' "$f" | tr '\n' ' ')"
else
  failed "6: no bounce reached the sender within 20 s"
fi
settle
[ "$(count alice@$D)" -eq "$a0" ] && [ "$(count bob@$D)" -eq "$b0" ] && [ "$(count "$LIST")" -eq "$l0" ] &&
  pass "6: neither the Cc nor the list's members nor the list address got it" ||
  failed "6: delivered anyway: alice $(count alice@$D)/$a0 bob $(count bob@$D)/$b0 list $(count "$LIST")/$l0"
grep -q "can't reject recipient in non-smtpd" "$PF_LOG" &&
  failed "6: Postfix logged a milter configuration error" ||
  pass "6: no milter configuration error in the Postfix log"
M=$MARK

leak_watch_stop
[ ! -s "$T/leaks" ] && pass "the queue and the milter spool never held the plaintext of list posts" ||
  failed "plaintext seen in: $(sort -u "$T/leaks" | head -5 | tr '\n' ' ')"

pf_stop
milter_stop
if [ "$fails" -ne 0 ]; then
  echo "# --- postfix log (last 30 lines)"
  tail -30 "$PF_LOG" | sed 's/^/# /'
  echo "# --- milter log (last 20 lines)"
  tail -20 "$MILTER_LOG" | sed 's/^/# /'
fi
if finish; then exit 0; else exit 1; fi
