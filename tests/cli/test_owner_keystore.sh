# The owner's keystore and the one-machine setup: passphrase-locked list
# secrets (from RECRYPT_PASSPHRASE_FILE, refused without it and without a
# terminal), key file modes, --apply straight into a local store, and no
# list secret in the server's store. Owners: set-privilege and remove
# (SUPER only; the last SUPER owner stays; a removed owner is refused).
# Requests expire: expired, future-dated, too long-lived and version-1
# requests are refused, the store unchanged.
source "$(dirname "$0")/lib.sh"

LIST=locked@example.org
ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }
svc=$("$RECRYPTCTL" server init --db "$T/db" 2>/dev/null)
ctl init >owner.pub 2>/dev/null
expect_fail "init refuses to replace the owner key" 77 "already exists" ctl init
[ "$(stat -c %a "$T/owner/owner.key")" = 600 ] && pass "owner.key is 0600" || failed "owner.key mode"

printf 'correct horse battery staple\n' >pass.txt
printf 'wrong\n' >wrong.txt
export RECRYPT_PASSPHRASE_FILE="$T/pass.txt"
expect_ok "list create --protect --apply (one machine)" ctl --apply "$T/db" list create "$LIST" --service-key "$svc" --protect
secret="$T/owner/owned/$LIST/epoch-1.secret"
grep -q '^recrypt1.list-secret-locked\.' "$secret" && pass "the list secret is stored locked" || failed "secret not locked"
[ "$(stat -c %a "$secret")" = 600 ] && pass "list secret file is 0600" || failed "secret mode"
"$RECRYPTCTL" show --db "$T/db" "$LIST" | grep -q "^list $LIST current-epoch 1" &&
  pass "--apply created the list in the local store" || failed "--apply create"

newdev ann
expect_ok "member add with the right passphrase (applied locally)" \
  ctl --apply "$T/db" member add "$LIST" ann@example.org --device "$(cat ann.pub)"
"$RECRYPTCTL" show --db "$T/db" "$LIST" | grep -q '^  member ann@example.org active$' &&
  pass "the member is in the store" || failed "member not in store"
RECRYPT_PASSPHRASE_FILE="$T/wrong.txt" expect_fail "wrong passphrase" 65 "wrong passphrase" \
  ctl member add "$LIST" bo@example.org --device "$(cat ann.pub)"
unset RECRYPT_PASSPHRASE_FILE
expect_fail "locked secret, no passphrase file, no terminal" 77 "no terminal: set RECRYPT_PASSPHRASE_FILE" \
  setsid -w env RECRYPT_HOME="$T/owner" "$RECRYPTCTL" member add "$LIST" bo@example.org --device "$(cat ann.pub)"

# An unlocked list: its secret scalar and signing seed never reach the store.
ctl --apply "$T/db" list create plain@example.org --service-key "$svc" 2>/dev/null
ctl --apply "$T/db" member add plain@example.org ann@example.org --device "$(cat ann.pub)" 2>/dev/null
python3 - "$T/owner/owned/plain@example.org/epoch-1.secret" "$T/db/data.mdb" <<'PY' && pass "list private key and signing seed absent from data.mdb" || failed "secret found in the store"
import base64, sys
s = open(sys.argv[1]).read().strip().split('.', 2)[2]
p = base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))[:-4]
n = p[1]
a, seed = p[2 + n + 8:2 + n + 8 + 32], p[2 + n + 8 + 32:2 + n + 8 + 64]
db = open(sys.argv[2], 'rb').read()
sys.exit(1 if (a in db or seed in db or len(a) != 32) else 0)
PY
# ---- Owners: set-privilege, remove ----
P=plain@example.org
ctl2() { RECRYPT_HOME="$T/owner2" "$RECRYPTCTL" "$@"; }
apply() { "$RECRYPTCTL" apply --db "$T/db" "$@"; }
digest() { sha256sum "$T/db/data.mdb" | cut -d' ' -f1; }
ctl2 init >owner2.pub 2>/dev/null
before=$(digest)
expect_fail "the last SUPER owner cannot lower itself" 77 "is the last SUPER owner of $P: it cannot be lowered to admin" \
  ctl --apply "$T/db" owner set-privilege "$P" "$(cat owner.pub)" admin
expect_fail "the last SUPER owner cannot remove itself" 77 "is the last SUPER owner of $P: it cannot be removed" \
  ctl --apply "$T/db" owner remove "$P" "$(cat owner.pub)"
expect_fail "removing a key that is no owner" 66 "is not an owner of $P" \
  ctl --apply "$T/db" owner remove "$P" "$(cat owner2.pub)"
expect_fail "owner remove: an owner key line that does not parse" 65 "owner key string is corrupted" \
  ctl owner remove "$P" recrypt1.owner.garbage
expect_fail "set-privilege takes admin or super" 64 "takes admin or super" \
  ctl owner set-privilege "$P" "$(cat owner2.pub)" root
[ "$(digest)" = "$before" ] && pass "store unchanged by the refused owner requests" || failed "store changed"
ctl --apply "$T/db" owner add "$P" "$(cat owner2.pub)" --privilege admin --secrets-out o2.sec 2>/dev/null
ctl2 list import o2.sec 2>/dev/null
before=$(digest)
expect_fail "an ADMIN owner cannot change privileges" 77 "SUPER is needed for UpdateOwner" \
  ctl2 --apply "$T/db" owner set-privilege "$P" "$(cat owner2.pub)" super
expect_fail "an ADMIN owner cannot remove owners" 77 "SUPER is needed for RemoveOwner" \
  ctl2 --apply "$T/db" owner remove "$P" "$(cat owner.pub)"
[ "$(digest)" = "$before" ] && pass "store unchanged by the ADMIN's refused requests" || failed "store changed"
ctl owner set-privilege "$P" "$(cat owner2.pub)" super --out up.req 2>/dev/null
grep -q "^Request: UpdateOwner $P owner M[A-Z2-7-]* privilege super" up.req && pass "armor names UpdateOwner" || failed "armor: $(head -2 up.req)"
expect_ok "a SUPER owner raises the co-owner to SUPER" apply up.req
"$RECRYPTCTL" show --db "$T/db" "$P" | grep -c '^  owner .* super counter' | grep -qx 2 && pass "store: two SUPER owners" ||
  failed "owners: $("$RECRYPTCTL" show --db "$T/db" "$P")"
expect_ok "the co-owner (SUPER) removes the first owner" ctl2 --apply "$T/db" owner remove "$P" "$(cat owner.pub)"
"$RECRYPTCTL" show --db "$T/db" "$P" | grep -c '^  owner ' | grep -qx 1 && pass "store: one owner left" || failed "owner not removed"
newdev cy
before=$(digest)
expect_fail "a removed owner's later request is refused" 77 "is not an owner of $P" \
  ctl --apply "$T/db" member add "$P" cy@example.org --device "$(cat cy.pub)"
expect_fail "the last SUPER (the co-owner now) cannot lower itself" 77 "last SUPER owner" \
  ctl2 --apply "$T/db" owner set-privilege "$P" "$(cat owner2.pub)" admin
[ "$(digest)" = "$before" ] && pass "store unchanged" || failed "store changed"

# ---- Expiry ----
now=$(date +%s)
expect_fail "--expires 0 is refused" 64 "from 1 to 90" ctl2 --expires 0 member add "$P" cy@example.org --device "$(cat cy.pub)"
expect_fail "--expires 91 is refused" 64 "from 1 to 90" ctl2 --expires 91 member add "$P" cy@example.org --device "$(cat cy.pub)"
ctl2 --expires 2 member add "$P" cy@example.org --device "$(cat cy.pub)" --out cy.req 2>/dev/null
valid=$(sed -n 's/^Valid: \(.*\) to \(.*\)$/\1 \2/p' cy.req)
made=$(date -u -d "${valid%% *}" +%s 2>/dev/null || echo 0); until=$(date -u -d "${valid##* }" +%s 2>/dev/null || echo 0)
[ $((until - made)) -eq $((2 * 86400)) ] && [ $((made - now)) -le 5 ] && [ $((made - now)) -ge 0 ] &&
  pass "armor says when the request was made and until when it is valid (--expires 2)" || failed "Valid line: '$valid'"
K="$T/owner2/owner.key"
before=$(digest)
"$RC_HARNESS" request-resign "$K" --created $((now - 8 * 86400)) --not-after $((now - 86400)) <cy.req >old.req
expect_fail "an expired request is refused, with its dates" 77 \
  "request expired at $(date -u -d @$((now - 86400)) +%Y-%m-%dT%H:%M:%SZ) \(made $(date -u -d @$((now - 8 * 86400)) +%Y-%m-%dT%H)" apply old.req
"$RC_HARNESS" request-resign "$K" --created $((now + 7200)) --not-after $((now + 86400)) <cy.req >future.req
expect_fail "a request dated two hours ahead is refused" 77 \
  "request made $(date -u -d @$((now + 7200)) +%Y-%m-%dT%H:%M).*more than 60 minutes ahead of this server's clock" apply future.req
"$RC_HARNESS" request-resign "$K" --created "$now" --not-after $((now + 91 * 86400)) <cy.req >long.req
expect_fail "a request valid for 91 days is refused" 77 "lifetime must be positive and at most 90 days" apply long.req
"$RC_HARNESS" request-resign "$K" --created "$now" --not-after "$now" <cy.req >zero.req
expect_fail "a request with no lifetime is refused" 77 "lifetime must be positive" apply zero.req
"$RC_HARNESS" request-resign "$K" --v1 <cy.req >v1.req
expect_fail "a version-1 request is refused, naming both versions" 65 \
  "request version 1 is no longer accepted \(this build reads version 2" apply v1.req
[ "$(digest)" = "$before" ] && pass "store unchanged by the refused dated requests" || failed "store changed"
expect_ok "the request itself, within its lifetime, applies" apply cy.req
expect_fail "and is not applied twice" 77 "already applied \(replay\)" apply cy.req

# server init --user: the store belongs to the service's user; a reader
# running as that user opens it even after root applied requests.
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
  svc2=$("$RECRYPTCTL" server init --db "$T/db2" --user nobody 2>/dev/null)
  [ "$(stat -c %U "$T/db2/data.mdb") $(stat -c %U "$T/db2/service.key")" = "nobody nobody" ] &&
    pass "server init --user gives the store to that user" || failed "store owner"
  chmod 0755 "$T"
  expect_ok "root applies a request to the service user's store" \
    ctl --apply "$T/db2" list create u@example.org --service-key "$svc2"
  expect_ok "the service user reads the store root wrote to" \
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$RECRYPTCTL" show --db "$T/db2"
  grep -q '^list u@example.org current-epoch 1' "$T/.out" && pass "and sees the new list" ||
    failed "service user does not see the list"
  expect_fail "server init --user with an unknown user" 66 "no such user 'no-such-user'" \
    "$RECRYPTCTL" server init --db "$T/db4" --user no-such-user
fi
finish
