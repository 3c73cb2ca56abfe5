#!/usr/bin/env bash
# The end-to-end demo: a list with three members (one with two devices), a
# post sealed once to the list key, recrypted for every device, opened by
# each. The owner uses recryptctl, the server's store is real LMDB written
# by `recryptctl apply`, subscribers use `recrypt`; the service step is
# played by rc-harness (the core recrypt-milter will run, on the same store)
# until the milter lands.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
build=$("$root/scripts/build.sh" release)
RECRYPT=$build/src/client/recrypt
HARNESS=$build/tests/rc-harness
CTL=$build/src/ctl/recryptctl

work=$(mktemp -d "${TMPDIR:-/tmp}/recrypt-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { sed 's/^/    /'; }
dev() { local d=$1; shift; RECRYPT_HOME="$work/$d" "$RECRYPT" "$@"; }
cut76() { cut -c1-76 | sed 's/$//'; }

say "1. The mail admin creates the server's store; the list owner creates demo@example.org"
svc=$("$CTL" server init --db "$work/db" 2>/dev/null)
echo "Service key line (the admin gives it to list owners):"; echo "$svc" | cut76 | show
owner() { RECRYPT_HOME="$work/owner" "$CTL" "$@"; }
owner init >/dev/null 2>&1
owner list create demo@example.org --service-key "$svc" --out create.req 2>/dev/null
echo "The owner's signed request, sent to the admin (it holds no secret):"
head -3 create.req | show
"$CTL" apply --db "$work/db" create.req 2>&1 | show
owner list key demo@example.org >list.key 2>/dev/null
echo "List key line, published for senders:"; cut76 <list.key | show

say "2. Three members create device keys; bob has a laptop and a phone"
for d in alice bob-laptop bob-phone carol mallory; do
  dev "$d" keygen >"$d.pub" 2>/dev/null
  printf '%-11s %s…\n' "$d" "$(cut -c1-60 "$d.pub")" | show
done

say "3. The owner enrols each device (mallory is not a member); the admin applies"
owner member add demo@example.org alice@example.org --device "$(cat alice.pub)" --out m1.req
owner member add demo@example.org bob@example.org --device "$(cat bob-laptop.pub)" \
  --device "$(cat bob-phone.pub)" --out m2.req
owner member add demo@example.org carol@example.org --device "$(cat carol.pub)" --out m3.req
"$CTL" apply --db "$work/db" m1.req m2.req m3.req 2>&1 | show
echo "What the server's store holds (recryptctl show): addresses and device keys,"
echo "never a key that decrypts mail (service shares stay sealed to the service key):"
"$CTL" show --db "$work/db" | show
sleep 1 # devices get stanzas for posts dated after their enrolment

say "4. Alice writes a post and seals it once, to the list key"
cat >post.eml <<MAIL
From: Alice <alice@example.org>
To: demo@example.org
Subject: Launch date
Date: $(date -R)
Message-ID: <demo-$$@example.org>

The launch is on Thursday. Do not forward.
MAIL
show <post.eml
dev alice seal --to list.key <post.eml >sealed.eml 2>/dev/null
echo "Sealed ($(wc -c <sealed.eml) bytes); the subject and text are inside the ciphertext:"
sed -n '1,/^Proof:/p' sealed.eml | cut76 | show

say "5. The service recrypts: one stanza (R = r·E, W) per device, no key that reads the mail"
"$HARNESS" recrypt-store "$work/db" demo@example.org <sealed.eml >delivered.eml
echo "Stanzas in the delivered message: $(grep -c '^Stanza: ' delivered.eml)"
grep -q "Do not forward" sealed.eml delivered.eml "$work/db/data.mdb" &&
  { echo "PLAINTEXT FOUND on the server side: demo failed"; exit 1; }
echo "The plaintext appears nowhere in the sealed message, the delivered one, or the store."

say "6. Every member device opens its copy"
for d in alice bob-laptop bob-phone carol; do
  echo "-- $d:"
  dev "$d" open <delivered.eml 2>/dev/null | show
done

say "7. Mallory's device is not enrolled"
dev mallory open <delivered.eml 2>&1 >/dev/null | show || true

say "8. Alice's device received its membership certificate when it opened; her next post is signed"
dev alice seal --to list.key <post.eml 2>/dev/null |
  "$HARNESS" recrypt-store "$work/db" demo@example.org 2>/dev/null >delivered2.eml
dev carol open <delivered2.eml 2>/dev/null | head -n1 | show
echo
echo "Demo complete."
