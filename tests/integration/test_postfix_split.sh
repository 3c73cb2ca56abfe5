# Split delivery behind a real Postfix on loopback: recrypt-milter checks a
# post and hands it to the recrypt-fanout pipe(8) transport, which builds
# one copy per member and submits the copies to a milter-free listener.
# A list of 4 active members (bob with 3 devices) and a revoked one: each
# copy must carry exactly its member's own devices' stanzas and nothing
# about anyone else, every device opens its copy, the revoked member gets
# nothing, a replay is discarded, no plaintext reaches the queue or spool,
# and the fan-out refuses what is not its own; every log line of the milter
# and the fan-out is as admin guide §10 says. Needs root, Debian's postfix
# and swaks (or python3). Exit 77 (skipped) when those are missing.

_here=$(cd "$(dirname "$0")" && pwd)
source "$_here/preflight.sh" # skip(), root, Postfix and its users, the milter binary
command -v script >/dev/null || skip "script (util-linux) is not installed"
command -v swaks >/dev/null || command -v python3 >/dev/null || skip "neither swaks nor python3"

source "$_here/../cli/lib.sh"
source "$_here/postfix-lib.sh"
PF_FANOUT=yes
pf_deadline 300
[ -x "$RECRYPT_FANOUT" ] || { failed "no recrypt-fanout at $RECRYPT_FANOUT"; finish; exit 1; }
echo "# binaries: $RECRYPT, $RECRYPTCTL, $RECRYPT_MILTER, $RECRYPT_FANOUT"

LIST=list@example.org
D=example.org
ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }

# --- the store: alice (1 device), bob (3), carol (1), dave (1), erin
# revoked (which rotates the list to epoch 2).
svc=$("$RECRYPTCTL" server init --db "$T/db" 2>/dev/null)
ctl init >owner.pub 2>/dev/null
ctl list create "$LIST" --service-key "$svc" --apply "$T/db" 2>/dev/null
for d in alice bob-laptop bob-phone bob-tablet carol dave erin poster; do newdev "$d"; done
ctl member add "$LIST" alice@$D --device "$(cat alice.pub)" --apply "$T/db" 2>/dev/null
ctl member add "$LIST" bob@$D --device "$(cat bob-laptop.pub)" --device "$(cat bob-phone.pub)" \
  --device "$(cat bob-tablet.pub)" --apply "$T/db" 2>/dev/null
for m in carol dave erin; do
  ctl member add "$LIST" $m@$D --device "$(cat $m.pub)" --apply "$T/db" 2>/dev/null
done
ctl member revoke "$LIST" erin@$D --apply "$T/db" 2>/dev/null
ctl list key "$LIST" >list.key 2>list.err
pin_devices "$LIST" "$(fp_in list.err)" alice bob-laptop bob-phone bob-tablet carol dave erin poster
"$RECRYPTCTL" show --db "$T/db" "$LIST" >show.txt
BOUNCE=$(sed -n 's/^list .* bounce \([^ ]*\).*/\1/p' show.txt)
if [ "$(grep -c '^  member .* active$' show.txt)" -eq 4 ] && grep -q "^  member erin@$D revoked" show.txt; then
  pass "store: 4 active members (bob with 3 devices), erin revoked"
else
  failed "store set-up: $(cat show.txt)"
fi
sleep 1 # stanzas go to devices enrolled before the post's Date

MEMBERS=(alice bob carol dave)
declare -A DEVICES=([alice]="alice" [bob]="bob-laptop bob-phone bob-tablet" [carol]="carol" [dave]="dave")
pf_mailbox alice@$D bob@$D carol@$D dave@$D erin@$D "$LIST" "$BOUNCE" poster@$D
milter_config "$T/milter.conf"
milter_start "$T/milter.conf" || { failed "milter starts"; finish || exit 1; }
pf_start || { failed "postfix starts"; finish || exit 1; }
pass "postfix with smtpd_milters, the recrypt-fanout transport and the listener 127.0.0.1:$PF_FANOUT_PORT"

MARK="rcmark$RANDOM$RANDOM$RANDOM" # in the post's plaintext only
printf 'From: poster@%s\nTo: %s\nSubject: split %s\nDate: %s\nMessage-ID: <split%s.%s@%s>\n\nThe secret is %s.\n' \
  "$D" "$LIST" "$MARK" "$(date -R)" "$$" "$RANDOM" "$D" "$MARK" >m1.eml
dev poster seal --to "$(cat list.key)" <m1.eml >s1.eml 2>"$T/.seal" || failed "seal: $(cat "$T/.seal")"
grep -q "$MARK" s1.eml && failed "the sealed post shows the marker (test is wrong)"
leak_watch_start "$MARK"

# --- 1. the post is accepted and fanned out: one copy per active member.
rc=0; send_mail poster@$D "$LIST" s1.eml || rc=$?
[ $rc -eq 0 ] && smtp_replied '^250 .*queued' && pass "1: the sealed post is accepted (250 once queued)" ||
  failed "1: sealed post: exit $rc: $(smtp_replies | tail -3 | tr '\n' '|')"
for m in "${MEMBERS[@]}"; do
  pf_wait_delivered 1 $m@$D 30 || failed "1: no copy for $m within 30 s"
done
pf_queue_empty_wait 30 || failed "1: the queue did not empty"
sleep 0.5
for m in "${MEMBERS[@]}" erin; do echo "# $m: $(pf_count $m@$D) message(s)"; done
ok=1
for m in "${MEMBERS[@]}"; do [ "$(pf_count $m@$D)" -eq 1 ] || ok=0; done
[ $ok = 1 ] && pass "1: each active member holds exactly one copy" || failed "1: copies per member are not 1 each"
[ "$(pf_count erin@$D)" -eq 0 ] && pass "1: the revoked member gets nothing" || failed "1: erin got $(pf_count erin@$D)"
[ "$(pf_count "$LIST")" -eq 0 ] && pass "1: nothing is delivered to the list address itself" || failed "1: the list mailbox got mail"
grep -q "list=$LIST epoch=2 stanzas=0 recipients=4 .*verdict=split" "$MILTER_LOG" &&
  pass "1: the milter logs the post handed to split delivery (recipients=4)" ||
  failed "1: no milter verdict=split line: $(grep list= "$MILTER_LOG" | tail -2)"
grep -q "list=$LIST epoch=2 copies=4 stanzas=6 recipients=4 skipped=0 refused=0 post=[0-9a-f]* verdict=delivered" "$FANOUT_LOG" &&
  pass "1: the fan-out logs 4 copies with 6 stanzas in all" ||
  failed "1: fan-out log: $(tail -3 "$FANOUT_LOG")"

# --- 2. what each copy holds: its own devices' stanzas, nothing of others'.
newest() { ls -t "$(pf_maildir "$1")"/* 2>/dev/null | head -1 || true; }
# stanzas FILE: each Stanza field's value, unfolded, one per line.
stanzas() {
  tr -d '\r' <"$1" | awk '/^Stanza:/ {if (s != "") print s; s = $2; on = 1; next}
    on && /^[ \t]/ {sub(/^[ \t]+/, ""); s = s $0; next} {on = 0} END {if (s != "") print s}'
}
# wrap_of B64URL: the stanza's W (after R and the 2-byte length), hex
wrap_of() {
  python3 -c 'import base64,sys; s=sys.argv[1]; b=base64.urlsafe_b64decode(s+"="*(-len(s)%4)); print(b[34:].hex())' "$1"
}
: >all-w.txt
for m in "${MEMBERS[@]}"; do
  f=$(newest $m@$D); cp "$f" "copy-$m.eml"
  stanzas "copy-$m.eml" >"st-$m.txt"
  want=$(echo ${DEVICES[$m]} | wc -w)
  got=$(wc -l <"st-$m.txt")
  [ "$got" -eq "$want" ] && pass "2: $m's copy carries exactly $want stanza(s), its own devices'" ||
    failed "2: $m's copy carries $got stanzas, want $want"
  while read -r s; do echo "$m $(wrap_of "$s")"; done <"st-$m.txt" >>all-w.txt
done
# No W appears in two members' copies, and no copy names another member.
dupw=$(awk '{print $2}' all-w.txt | sort | uniq -d | wc -l)
[ "$dupw" -eq 0 ] && [ "$(wc -l <all-w.txt)" -eq 6 ] && pass "2: the 6 W values are all distinct: no copy holds another member's W" ||
  failed "2: W values shared between copies ($dupw) or not 6 in all"
for m in "${MEMBERS[@]}"; do
  leaked=
  for o in "${MEMBERS[@]}" erin; do
    [ "$o" = "$m" ] && continue
    # Delivery adds the member's own address (Delivered-To); the copy as
    # the gateway wrote it starts after the MTA's trace fields.
    if grep -qi "$o@$D" "copy-$m.eml"; then leaked="$leaked $o"; fi
    while read -r w; do
      if tr -d '\r\n \t' <"copy-$m.eml" | grep -q "$(echo "$w" | head -c 40)"; then leaked="$leaked W-of-$o"; fi
    done < <(awk -v o="$o" '$1 == o {print $2}' all-w.txt | python3 -c '
import sys, base64
for line in sys.stdin:
    print(base64.urlsafe_b64encode(bytes.fromhex(line.strip())).decode().rstrip("="))')
  done
  [ -z "$leaked" ] && pass "2: $m's copy names no other member and holds no other member's W" ||
    failed "2: $m's copy leaks:$leaked"
done
# The copies differ only in their stanzas, their service signature (over
# the member's own stanzas and address, FORMAT.md §8.1) and the delivery
# trace: the rest of the header the gateway wrote is the same for everyone.
gwhdr() { tr -d '\r' <"$1" | awk '/^$/ {exit} {print}' | grep -vi -e '^Delivered-To:' -e '^Return-Path:' -e '^X-Original-To:' |
  awk '/^(Received|Recrypt-Service-Signature):/ {skip = 1; next} skip && /^[ \t]/ {next} {skip = 0; print}'; }
svcsig() { tr -d '\r' <"$1" | awk '/^$/ {exit} /^Recrypt-Service-Signature:/ {p = 1; print; next} p && /^[ \t]/ {print; next} {p = 0}' | tr -d ' \n'; }
sigs=$(for m in "${MEMBERS[@]}"; do svcsig "copy-$m.eml"; echo; done | grep -c 'Recrypt-Service-Signature:')
usigs=$(for m in "${MEMBERS[@]}"; do svcsig "copy-$m.eml"; echo; done | sort -u | grep -c 'Recrypt-Service-Signature:')
[ "$sigs" -eq "${#MEMBERS[@]}" ] && [ "$usigs" -eq "$sigs" ] &&
  pass "2: every copy carries its own Recrypt-Service-Signature ($sigs, all different)" ||
  failed "2: service signatures: $sigs in ${#MEMBERS[@]} copies, $usigs different"
same=1
for m in bob carol dave; do cmp -s <(gwhdr copy-alice.eml) <(gwhdr "copy-$m.eml") || same=0; done
[ $same = 1 ] && pass "2: every copy has the same gateway header (List-Id, Recrypt-List-Key, Recrypt-Processed)" ||
  failed "2: gateway headers differ: $(diff <(gwhdr copy-alice.eml) <(gwhdr copy-bob.eml) | head -5 | tr '\n' '|')"
grep -qi '^Recrypt-Processed: ' copy-alice.eml && grep -qi '^List-Id: <list.example.org>' copy-alice.eml &&
  pass "2: copies carry List-Id and the processing mark" || failed "2: List-Id or Recrypt-Processed missing"

# --- 3. every device opens its member's copy to the original message.
for m in "${MEMBERS[@]}"; do
  for d in ${DEVICES[$m]}; do
    rc=0; dev "$d" open <"copy-$m.eml" >"o-$d.eml" 2>"$T/.open" || rc=$?
    if [ $rc -eq 0 ]; then same_inner "3: $d opens $m's copy to the original message" m1.eml "o-$d.eml"
    else failed "3: $d cannot open $m's copy (exit $rc: $(head -c 300 "$T/.open"))"; fi
  done
done
# The service signature verified for the member's own address (FORMAT.md
# §9.5 step 6): the verdict has no "path=". Alice's copy with bob's
# signature in it (a signature for another recipient and other stanzas)
# did not come through the list for alice.
head -n1 o-alice.eml | grep -q '^Recrypt-Verdict: unsigned; list=list@example.org; epoch=2$' &&
  pass "3: a split copy opens as list mail (service signature for this member)" ||
  failed "3: split copy verdict: $(head -n1 o-alice.eml)"
/usr/bin/python3 - copy-alice.eml copy-bob.eml swapped-alice.eml <<'EOF2'
import sys, re
mine, other = open(sys.argv[1], newline="").read(), open(sys.argv[2], newline="").read()
pat = re.compile(r"^Recrypt-Service-Signature: .*\r?\n(?:[ \t].*\r?\n)*", re.M)
open(sys.argv[3], "w", newline="").write(pat.sub(lambda _: pat.search(other).group(0), mine, count=1))
EOF2
rc=0; dev alice open <swapped-alice.eml >/dev/null 2>"$T/.open" || rc=$?
[ $rc -eq 77 ] && grep -q 'did not come through the list' "$T/.open" &&
  pass "3: alice's copy with bob's service signature is refused as not from the list" ||
  failed "3: swapped signature: exit $rc $(head -c 300 "$T/.open")"
# A device cannot open another member's copy: its stanza is not there.
rc=0; dev alice open <copy-bob.eml >/dev/null 2>"$T/.open" || rc=$?
[ $rc -ne 0 ] && pass "3: alice's device cannot open bob's copy (exit $rc)" || failed "3: alice opened bob's copy"
rc=0; dev erin open <copy-alice.eml >/dev/null 2>&1 || rc=$?
[ $rc -ne 0 ] && pass "3: the revoked device opens no copy" || failed "3: erin opened a copy"

# A second copy (as a fan-out rerun after a crash would send: the same copy
# with another Recrypt-Copy) opens, and its verdict says "; duplicate"; the
# first copy opened again does not, nor does a copy without the field.
grep -q '^Recrypt-Copy: [A-Za-z0-9_-]\{22\}$' copy-carol.eml && pass "3: copies carry a Recrypt-Copy of 22 base64url characters" ||
  failed "3: no well-formed Recrypt-Copy: $(grep -i '^Recrypt-Copy' copy-carol.eml)"
sed 's/^Recrypt-Copy: .*/Recrypt-Copy: AAAAAAAAAAAAAAAAAAAAAA/' copy-carol.eml >second-carol.eml
rc=0; dev carol open <second-carol.eml >o-second.eml 2>"$T/.open" || rc=$?
[ $rc -eq 0 ] && head -n1 o-second.eml | grep -q '^Recrypt-Verdict: unsigned; list=list@example.org; epoch=2; duplicate$' &&
  pass "3: a second copy of a post opens, its verdict ends with '; duplicate'" ||
  failed "3: second copy: exit $rc, verdict: $(head -n1 o-second.eml) $(head -c 200 "$T/.open")"
rc=0; dev carol open <copy-carol.eml >o-again.eml 2>/dev/null || rc=$?
[ $rc -eq 0 ] && head -n1 o-again.eml | grep -q 'epoch=2$' && pass "3: the first copy opened again is not marked" ||
  failed "3: first copy again: $(head -n1 o-again.eml)"
grep -v '^Recrypt-Copy:' copy-dave.eml >nocopy-dave.eml
rc=0; dev dave open <nocopy-dave.eml >o-nocopy.eml 2>/dev/null || rc=$?
[ $rc -eq 0 ] && head -n1 o-nocopy.eml | grep -q 'epoch=2$' && pass "3: a copy without Recrypt-Copy is never marked" ||
  failed "3: copy without Recrypt-Copy: exit $rc $(head -n1 o-nocopy.eml)"

# FromRewrite (the default) in split delivery: every copy's outer From is
# the list's, the poster in Reply-To and X-Original-From; recrypt open
# shows the outer From as Recrypt-Outer-From and the inner From intact.
hfield() { tr -d '\r' <"$1" | awk -v n="$2" 'BEGIN {n = tolower(n)} /^$/ {exit}
  /^[ \t]/ {if (on) {sub(/^[ \t]+/, " "); v = v $0}; next}
  {if (on) print v; on = 0} tolower(substr($0, 1, length(n) + 1)) == n ":" {on = 1; v = substr($0, length(n) + 2); sub(/^[ \t]+/, "", v)}
  END {if (on) print v}'; }
ok=1
for m in "${MEMBERS[@]}"; do
  [ "$(hfield "copy-$m.eml" From)" = '"poster@example.org via list" <list@example.org>' ] &&
    [ "$(hfield "copy-$m.eml" Reply-To)" = "poster@example.org" ] &&
    [ "$(hfield "copy-$m.eml" X-Original-From)" = "poster@$D" ] || ok=0
done
[ $ok = 1 ] && pass "3: FromRewrite: each copy is From \"poster@example.org via list\" <list@example.org>, Reply-To and X-Original-From the poster" ||
  failed "3: FromRewrite: alice's copy: From '$(hfield copy-alice.eml From)', Reply-To '$(hfield copy-alice.eml Reply-To)', X-Original-From '$(hfield copy-alice.eml X-Original-From)'"
[ "$(sed -n 2p o-alice.eml)" = 'Recrypt-Outer-From: "poster@example.org via list" <list@example.org>' ] &&
  [ "$(hfield o-alice.eml From)" = "poster@$D" ] &&
  pass "3: recrypt open shows the outer From (Recrypt-Outer-From) and the inner From intact" ||
  failed "3: opened header: $(head -3 o-alice.eml | tr '\n' '|')"

# --- 4. the same post again: discarded, nobody gets a second copy.
rc=0; send_mail poster@$D "$LIST" s1.eml || rc=$?
[ $rc -eq 0 ] && pass "4: a replay of the delivered post is answered 250" || failed "4: replay: exit $rc"
sleep 2; pf_queue_empty_wait 20 || true
ok=1; for m in "${MEMBERS[@]}"; do [ "$(pf_count $m@$D)" -eq 1 ] || ok=0; done
[ $ok = 1 ] && grep -q "verdict=duplicate" "$MILTER_LOG" &&
  pass "4: the replay is discarded by the milter; still one copy each" || failed "4: replay delivered again or not logged"

# --- 5. the fan-out address is not a recipient anyone may use.
echo "Subject: x" >x.eml
tok=$(printf '%048d' 0)
rc=0; send_mail poster@$D "$tok@$PF_FANOUT_DOMAIN" x.eml || rc=$?
smtp_replied "^550 5\.7\.1 .*fan-out" && pass "5: RCPT to the fan-out domain is refused (550 5.7.1)" ||
  failed "5: fan-out domain RCPT: $(smtp_replies | tail -2 | tr '\n' '|')"

# --- 6. recrypt-fanout run by hand: what is not its own is refused, clearly.
# fan ARG...: its stderr in fan.err, and kept in fan-all.log for the log check.
fan() {
  local rc=0
  "$RECRYPT_FANOUT" -c "$MILTER_CONF" "$@" 2>fan.err || rc=$?
  cat fan.err >>fan-all.log
  return $rc
}
rc=0; fan "not-a-token@$PF_FANOUT_DOMAIN" <s1.eml >/dev/null || rc=$?
[ $rc -eq 67 ] && grep -q "is not a fan-out address" fan.err && pass "6: a malformed fan-out address: exit 67 (EX_NOUSER)" ||
  failed "6: malformed address: exit $rc $(cat fan.err)"
rc=0; fan "$tok@$PF_FANOUT_DOMAIN" <s1.eml >/dev/null || rc=$?
[ $rc -eq 77 ] && grep -q "does not belong to this post" fan.err && pass "6: a token of another post: exit 77 (EX_NOPERM)" ||
  failed "6: wrong token: exit $rc $(cat fan.err)"
rc=0; fan "$tok@other.invalid" <s1.eml >/dev/null || rc=$?
[ $rc -eq 67 ] && pass "6: an address in another domain: exit 67" || failed "6: other domain: exit $rc"
rc=0; fan "$tok@$PF_FANOUT_DOMAIN" <m1.eml >/dev/null || rc=$?
[ $rc -eq 65 ] && grep -q "malformed recrypt message" fan.err && pass "6: a plaintext message: exit 65 (EX_DATAERR)" ||
  failed "6: plaintext: exit $rc $(cat fan.err)"
rc=0; fan <s1.eml >/dev/null || rc=$?
[ $rc -eq 64 ] && pass "6: no recipient: usage, exit 64" || failed "6: usage: exit $rc"

leak_watch_stop
if [ -s "$T/leaks" ]; then failed "no plaintext in the queue or the spool: $(sort -u "$T/leaks" | head -3 | tr '\n' ' ')"
else pass "no plaintext in the queue or the spool while the post was in flight"; fi
ls "$MILTER_SPOOL" | grep -q . && failed "the spool is not empty: $(ls "$MILTER_SPOOL")" || pass "the spool is empty afterwards"

# --- the log lines (admin guide §10): every line the milter and the
# fan-out (run by Postfix, and by hand in 6) wrote matches its documented
# format and level.
milter_stop # which logs the counters
check_log_formats -l fan-all.log post:split post:duplicate post:rejected run:delivered \
  run:rejected timing counters
finish
