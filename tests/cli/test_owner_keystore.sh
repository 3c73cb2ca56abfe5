# The owner's keystore and the one-machine setup: passphrase-locked list
# secrets (from RECRYPT_PASSPHRASE_FILE, refused without it and without a
# terminal), key file modes, --apply straight into a local store, and no
# list secret in the server's store.
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
