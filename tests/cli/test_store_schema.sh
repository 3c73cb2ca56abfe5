# Store schema versions through the real tools: a store the previous build
# (schema 1) wrote is read as it is by recryptctl show and checked by
# recrypt-milter -n without being changed, then migrated by the first
# recryptctl apply and used as before (a post recrypted from it opens); a
# store of an unknown (newer) version is refused with a clear message by
# every tool and left as it is. rc-harness store-schema rewinds a store to
# what the schema-1 build wrote (docs/STORE.md §4).
source "$(dirname "$0")/lib.sh"

LIST=team@example.org
ctl() { RECRYPT_HOME="$T/owner" "$RECRYPTCTL" "$@"; }
show() { "$RECRYPTCTL" show --db "$T/db" "$LIST"; }
schema() { "$RC_HARNESS" store-schema "$T/db"; }
digest() { sha256sum "$T/db/data.mdb" | cut -d' ' -f1; }

svc=$("$RECRYPTCTL" server init --db "$T/db" 2>/dev/null)
ctl init >owner.pub 2>/dev/null
ctl list create "$LIST" --service-key "$svc" --apply "$T/db" 2>/dev/null
ctl list key "$LIST" >/dev/null 2>list.err
newdev alice
newdev bob
for d in alice bob; do dev "$d" list pin "$LIST" "$(fp_in list.err)" >/dev/null; done
ctl member add "$LIST" alice@example.org --device "$(cat alice.pub)" --apply "$T/db" 2>/dev/null
[ "$(schema)" = 5 ] && pass "a new store has schema 5" || failed "new store schema: $(schema)"

# --- the store as the schema-1 build left it
"$RC_HARNESS" store-schema "$T/db" 1
[ "$(schema)" = 1 ] && pass "store rewound to schema 1" || failed "rewind: $(schema)"
before=$(digest)
expect_ok "recryptctl show reads a schema-1 store" show
grep -q '^  member alice@example.org .*active$' "$T/.out" && pass "show lists alice from the schema-1 store" ||
  failed "show on schema 1: $(cat "$T/.out")"
[ "$(schema)" = 1 ] && [ "$(digest)" = "$before" ] && pass "show leaves the schema-1 store unchanged" ||
  failed "show changed the store (schema $(schema))"

if [ -x "${RECRYPT_MILTER:-}" ]; then
  printf 'Socket inet:%s@127.0.0.1\nDatabase %s\nSyslog no\nTemporaryDirectory %s\n' \
    20999 "$T/db" "$T" >milter.conf
  expect_ok "recrypt-milter -n accepts a schema-1 store" "$RECRYPT_MILTER" -n -c milter.conf -u "$(id -un)"
  grep -q 'schema 1.*migrate.* 5' "$T/.err" "$T/.out" && pass "recrypt-milter -n says the store will be migrated to schema 5" ||
    failed "recrypt-milter -n did not mention the migration: $(cat "$T/.out" "$T/.err")"
  [ "$(schema)" = 1 ] && [ "$(digest)" = "$before" ] && pass "recrypt-milter -n leaves the schema-1 store unchanged" ||
    failed "recrypt-milter -n changed the store (schema $(schema))"
fi

# --- the first writer migrates it, in one go, and everything still works
expect_ok "recryptctl apply on a schema-1 store (bob joins)" \
  ctl member add "$LIST" bob@example.org --device "$(cat bob.pub)" --apply "$T/db"
[ "$(schema)" = 5 ] && pass "the store is at schema 5 after the apply" || failed "after apply: schema $(schema)"
grep -q "recryptctl: store $T/db migrated from schema 1 to 5" "$T/.err" &&
  pass "recryptctl says it migrated the store" || failed "no migration message: $(cat "$T/.err")"
show >show.txt
[ "$(grep -c '^  member .* active$' show.txt)" -eq 2 ] && pass "alice and bob are active members after the migration" ||
  failed "members after migration: $(cat show.txt)"
# The rewind dropped the service signing keys (schema 5) of the epoch the
# new tool made; a store a schema-1 build wrote has only version-1
# statements, which need none. Rotate, so the new epoch has its key again.
ctl list rotate "$LIST" --grace 0 --apply "$T/db" 2>/dev/null
sleep 1 # stanzas go to devices enrolled before the post's Date
printf 'From: alice@example.org\nTo: %s\nSubject: after the migration\nDate: %s\nMessage-ID: <m1.%s@example.org>\n\nmigrated\n' \
  "$LIST" "$(date -R)" "$$" >m.eml
dev alice seal --to "$(ctl list key "$LIST" 2>/dev/null)" <m.eml >s.eml 2>/dev/null
if "$RC_HARNESS" recrypt-store "$T/db" "$LIST" <s.eml >d.eml 2>/dev/null &&
   dev bob open <d.eml >o.eml 2>/dev/null && grep -q '^migrated$' o.eml; then
  pass "a post recrypted from the migrated store opens for bob"
else
  failed "post from the migrated store did not open for bob"
fi

# --- the milter migrates a schema-1 store when it starts, and says so
if [ -x "${RECRYPT_MILTER:-}" ]; then
  "$RC_HARNESS" store-schema "$T/db" 1
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  sed -i "s/^Socket .*/Socket inet:$port@127.0.0.1/" milter.conf
  "$RECRYPT_MILTER" -f -c milter.conf -u "$(id -un)" >milter.log 2>&1 &
  mpid=$!
  for _ in $(seq 1 100); do grep -q 'listening on' milter.log && break; sleep 0.1; done
  grep -q "store $T/db migrated from schema 1 to 5" milter.log && [ "$(schema)" = 5 ] &&
    pass "recrypt-milter migrates a schema-1 store at start and logs it" ||
    failed "milter start on schema 1: schema $(schema): $(cat milter.log)"
  kill -TERM "$mpid" 2>/dev/null; wait "$mpid" 2>/dev/null || true
fi

# --- an unknown, newer schema: refused by every tool, left as it is
"$RC_HARNESS" store-schema "$T/db" 99
before=$(digest)
expect_fail "recryptctl show refuses schema 99" 65 \
  'store schema version 99 is newer than this build understands \(5\)' show
expect_fail "recryptctl apply refuses schema 99" 65 \
  'store schema version 99 is newer than this build understands \(5\)' \
  ctl member suspend "$LIST" bob@example.org --apply "$T/db"
if [ -x "${RECRYPT_MILTER:-}" ]; then
  rc=0
  "$RECRYPT_MILTER" -n -c milter.conf -u "$(id -un)" >"$T/.out" 2>"$T/.err" || rc=$?
  [ "$rc" -ne 0 ] && grep -q 'store schema version 99 is newer than this build understands (5)' "$T/.err" &&
    pass "recrypt-milter -n refuses schema 99 (exit $rc)" ||
    failed "recrypt-milter -n on schema 99: exit $rc: $(cat "$T/.err")"
fi
[ "$(schema)" = 99 ] && [ "$(digest)" = "$before" ] && pass "the schema-99 store is left unchanged" ||
  failed "the schema-99 store changed"

finish
