# The list life cycle through the real tools on a real LMDB store: the
# owner's recryptctl writes signed requests, the server's recryptctl apply
# verifies and applies them, the service step (rc-harness recrypt-store,
# the milter's future core) reads the store, and subscribers' recrypt open.
# After each step: what the store holds, and exactly which devices open.
source "$(dirname "$0")/lib.sh"

LIST=team@example.org
ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }
ctl2() { RECRYPT_HOME="$T/owner2" "$RECRYPTCTL" "$@"; }
apply() { "$RECRYPTCTL" apply --db "$T/db" "$@"; }
show() { "$RECRYPTCTL" show --db "$T/db" "$LIST"; }
digest() { sha256sum "$T/db/data.mdb" | cut -d' ' -f1; }

svc=$("$RECRYPTCTL" server init --db "$T/db" 2>/dev/null)
[[ $svc == recrypt1.service.* ]] && pass "server init prints the service key line" || failed "server init"
[ "$(stat -c %a "$T/db/service.key")" = 600 ] && pass "service key file is 0600" || failed "service.key mode"
ctl init >owner.pub 2>/dev/null
expect_ok "list create writes a CreateGroup request" ctl list create "$LIST" --service-key "$svc" --out create.req
grep -q '^Request: CreateGroup team@example.org epoch 1' create.req && pass "request armor says what it does" ||
  failed "armor comment"
expect_ok "apply CreateGroup" apply create.req
ctl list key "$LIST" >team.key 2>team.err
FP=$(fp_in team.err)

# Each device pins the list signing key the owner gives at enrolment.
for d in alice bob-laptop bob-phone carol outsider; do newdev "$d"; dev "$d" list pin "$LIST" "$FP" >/dev/null; done
ctl member add "$LIST" alice@example.org --device "$(cat alice.pub)" --out a.req
ctl member add "$LIST" Bob@Example.org --device "$(cat bob-laptop.pub)" --device "$(cat bob-phone.pub)" --out b.req
ctl member add "$LIST" carol@example.org --device "$(cat carol.pub)" --out c.req
expect_ok "apply three AddMember requests in one go" apply a.req b.req c.req
show >show.txt
[ "$(grep -c '^  member .* active$' show.txt)" -eq 3 ] && [ "$(grep -c '^    epoch 1 device' show.txt)" -eq 4 ] &&
  pass "store: 3 active members, 4 device entries in epoch 1" || failed "store after adds: $(cat show.txt)"

n=0
# deliver KEYFILE [SENDER]: SENDER (alice) seals a fresh post, the service
# recrypts from the store into d.eml (removed first, so a failed delivery
# cannot leave an old one behind).
deliver() {
  n=$((n + 1))
  rm -f d.eml
  printf 'From: alice@example.org\nTo: %s\nSubject: step %s\nDate: %s\nMessage-ID: <step%s.%s@example.org>\n\nstep %s\n' \
    "$LIST" "$n" "$(date -R)" "$n" "$$" "$n" >m.eml
  dev "${2:-alice}" seal --to "$1" <m.eml >s.eml 2>"$T/.seal" || { cat "$T/.seal" >"$T/.svc"; return 1; }
  "$RC_HARNESS" recrypt-store "$T/db" "$LIST" <s.eml >d.eml 2>"$T/.svc" || return 1
}
deliver_ok() { deliver "$@" || { failed "post with $1 not delivered: $(cat "$T/.svc")"; return 1; }; }

# opens STEP DEVICE...: exactly these devices open d.eml; the others get 67.
opens() {
  local step=$1; shift
  local ok=1
  for d in alice bob-laptop bob-phone carol outsider; do
    local want=no
    for w in "$@"; do [ "$w" = "$d" ] && want=yes; done
    if dev "$d" open <d.eml >o.eml 2>/dev/null; then got=yes; else got=no; fi
    [ "$got" = "$want" ] || { ok=0; echo "  $step: $d opens=$got, expected $want"; }
  done
  [ $ok = 1 ] && pass "$step: exactly $* open the post" || failed "$step: wrong set of devices"
}

sleep 1 # devices get stanzas only for posts dated after their enrolment
deliver_ok team.key && opens "after adding" alice bob-laptop bob-phone carol

ctl member suspend "$LIST" bob@example.org --out s.req && apply s.req 2>/dev/null
show | grep -q '^  member bob@example.org suspended$' && pass "store: bob suspended" || failed "suspend"
deliver_ok team.key && opens "bob suspended" alice carol

ctl member reinstate "$LIST" bob@example.org --out r.req && apply r.req 2>/dev/null
show >show.txt
grep -q '^  member bob@example.org active$' show.txt && [ "$(grep -c 'device .* of bob@example.org' show.txt)" -eq 2 ] &&
  pass "store: bob active again with 2 fresh entries" || failed "reinstate: $(cat show.txt)"
sleep 1
deliver_ok team.key && opens "bob reinstated" alice bob-laptop bob-phone carol

ctl member revoke "$LIST" carol@example.org --out v.req 2>/dev/null
[ "$(grep -c BEGIN v.req)" -eq 2 ] && pass "revoke writes UpdateMember and a rotation" || failed "revoke requests"
expect_ok "apply the revocation" apply v.req
show >show.txt
grep -q '^list team@example.org current-epoch 2' show.txt && grep -q '^  member carol@example.org revoked$' show.txt &&
  [ "$(grep -c '^    epoch 2 device' show.txt)" -eq 3 ] && ! grep -q 'of carol@example.org' show.txt &&
  pass "store: epoch 2, carol revoked, 3 entries, none for carol" || failed "revoke: $(cat show.txt)"
if deliver team.key; then failed "a post to the revoked epoch 1 is still recrypted"; else
  grep -q "expired" "$T/.svc" && pass "epoch 1 refused at once after revocation (no grace)" || failed "epoch 1: $(cat "$T/.svc")"; fi
ctl list key "$LIST" >team2.key 2>/dev/null
sleep 1
deliver_ok team2.key && opens "carol revoked, epoch 2" alice bob-laptop bob-phone

ctl list rotate "$LIST" --grace 7 --out rot.req 2>/dev/null && apply rot.req 2>/dev/null
show | grep -q '^  epoch 2 (previous; usable until' && pass "store: epoch 2 kept for the grace period" || failed "rotate grace"
deliver_ok team2.key && opens "old key within the grace period" alice bob-laptop bob-phone
ctl list key "$LIST" >team3.key 2>/dev/null
sleep 1
deliver_ok team3.key && opens "epoch 3" alice bob-laptop bob-phone

# A suspended member gets no entry in a new epoch; reinstating gives fresh ones.
ctl member suspend "$LIST" bob@example.org --out s2.req 2>/dev/null && apply s2.req 2>/dev/null
ctl list rotate "$LIST" --grace 7 --out rot4.req 2>/dev/null && apply rot4.req 2>/dev/null
ctl list key "$LIST" >team4.key 2>/dev/null
show >show.txt
grep -q 'current-epoch 4' show.txt && ! grep -q 'epoch 4 device .* of bob@example.org' show.txt &&
  pass "store: no epoch-4 entry for suspended bob" || failed "suspended member in new epoch: $(cat show.txt)"
sleep 1
deliver_ok team4.key && opens "bob suspended across a rotation" alice
ctl member reinstate "$LIST" bob@example.org --out r2.req 2>/dev/null && apply r2.req 2>/dev/null
sleep 1
deliver_ok team4.key && opens "bob reinstated in epoch 4" alice bob-laptop bob-phone

# Revocation ends every grace period still running (epoch 3 was in grace).
newdev late-sender # has seen no newer key than epoch 3
dev late-sender list pin "$LIST" "$FP" >/dev/null
deliver_ok team3.key late-sender && opens "epoch 3 still within its grace period" alice bob-laptop bob-phone
ctl member revoke "$LIST" bob@example.org --out v2.req 2>/dev/null && apply v2.req 2>/dev/null
if deliver team3.key late-sender; then failed "epoch 3 still accepted after a revocation"; else
  grep -q "expired" "$T/.svc" && pass "revocation ended the grace of older epochs too" || failed "epoch 3: $(cat "$T/.svc")"; fi
"$RECRYPTCTL" show --db "$T/db" "$LIST" | grep -q '^  epoch 3 (previous; refused)' &&
  pass "show says the old epochs are refused" || failed "show grace"
ctl list key "$LIST" >team5.key 2>/dev/null
sleep 1
deliver_ok team5.key && opens "bob revoked, epoch 5" alice

# Refusals: each with a clear message, the store byte for byte unchanged.
before=$(digest)
expect_fail "replayed request" 77 "already applied \(replay\)" apply a.req
sed '/^$/,/^-----END/ s/^\(.\{10\}\)./\1A/' b.req >bad-sig.req
cmp -s b.req bad-sig.req && sed -i '/^$/,/^-----END/ s/^\(.\{10\}\)./\1B/' bad-sig.req
expect_fail "tampered request (bad signature or corrupted)" 65 "signature does not verify|corrupted|malformed|not" apply bad-sig.req
head -c 300 b.req >trunc.req
expect_fail "truncated request file" 65 "truncated" apply trunc.req
echo "hello" >none.req
expect_fail "a file with no request" 65 "no request found" apply none.req

# A co-owner with ADMIN may manage members but not owners.
RECRYPT_HOME="$T/owner2" "$RECRYPTCTL" init >owner2.pub 2>/dev/null
ctl owner add "$LIST" "$(cat owner2.pub)" --privilege admin --secrets-out o2.secrets --out oa.req 2>/dev/null
expect_ok "co-owner imports the list secrets sealed to them" ctl2 list import o2.secrets
ctl2 owner add "$LIST" "$(cat owner.pub)" --privilege super --out priv.req 2>/dev/null
expect_fail "signer not yet an owner on the server" 77 "not an owner" apply priv.req
[ "$(digest)" = "$before" ] && pass "store unchanged by the refused requests" || failed "store changed"
expect_ok "apply AddOwner (admin)" apply oa.req
before=$(digest)
ctl2 owner add "$LIST" "$(cat owner.pub)" --privilege super --out priv2.req 2>/dev/null
expect_fail "an ADMIN owner adding an owner" 77 "SUPER is needed" apply priv2.req
[ "$(digest)" = "$before" ] && pass "store unchanged by the privilege refusal" || failed "store changed"
ctl2 member add "$LIST" dave@example.org --device "$(cat outsider.pub)" --out d2.req 2>/dev/null
expect_ok "the ADMIN co-owner adds a member" apply d2.req

# Unknown list; bad device key; bad address: refused before anything is written.
ctl list create other@example.org --service-key "$svc" --out other.req 2>/dev/null
ctl member add other@example.org x@example.org --device "$(cat alice.pub)" --out ox.req 2>/dev/null
before=$(digest)
expect_fail "request for a list the server does not know" 66 "unknown list other@example.org" apply ox.req
[ "$(digest)" = "$before" ] && pass "store unchanged by the unknown-list refusal" || failed "store changed"
expect_fail "a device key string that does not parse" 65 "--device 1: .*corrupted|--device 1:" \
  ctl member add "$LIST" eve@example.org --device "recrypt1.device.garbage"
expect_fail "an address that is not an address" 64 "not an address" \
  ctl member add "$LIST" "eve at example.org" --device "$(cat alice.pub)"
finish
