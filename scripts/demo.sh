#!/usr/bin/env bash
# The end-to-end demo: a list with three members (one with two devices), a
# post sealed once to the list key, recrypted for every device, opened by
# each. The list owner's and the service's parts are played by rc-harness
# (a test stand-in for recryptctl and recrypt-milter, which come next); the
# subscribers use the real `recrypt` client.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
build=$("$root/scripts/build.sh" release)
RECRYPT=$build/src/client/recrypt
HARNESS=$build/tests/rc-harness

work=$(mktemp -d "${TMPDIR:-/tmp}/recrypt-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { sed 's/^/    /'; }
dev() { local d=$1; shift; RECRYPT_HOME="$work/$d" "$RECRYPT" "$@"; }
cut76() { cut -c1-76 | sed 's/$//'; }

say "1. The list owner creates demo@example.org (on the owner's machine)"
"$HARNESS" list-create owner demo@example.org >list.key
echo "List key line, published for senders:"; cut76 <list.key | show
echo "List signing key fingerprint (members compare it on first use):"
"$HARNESS" signer owner | show

say "2. Three members create device keys; bob has a laptop and a phone"
for d in alice bob-laptop bob-phone carol mallory; do
  dev "$d" keygen >"$d.pub" 2>/dev/null
  printf '%-11s %s…\n' "$d" "$(cut -c1-60 "$d.pub")" | show
done

say "3. The owner enrols each device (mallory is not a member)"
"$HARNESS" enrol owner alice@example.org "$(cat alice.pub)" --at $(( $(date +%s) - 60 ))
"$HARNESS" enrol owner bob@example.org "$(cat bob-laptop.pub)" --at $(( $(date +%s) - 60 ))
"$HARNESS" enrol owner bob@example.org "$(cat bob-phone.pub)" --at $(( $(date +%s) - 60 ))
"$HARNESS" enrol owner carol@example.org "$(cat carol.pub)" --at $(( $(date +%s) - 60 ))
echo "What the service stores per device: address, service share r, wrapped share W."
echo "Neither decrypts anything: r is only half of the list key, W opens only on the device."
cut -c1-100 owner/epoch-1/entries | sed 's/$/…/' | show

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
"$HARNESS" recrypt owner <sealed.eml >delivered.eml
echo "Stanzas in the delivered message: $(grep -c '^Stanza: ' delivered.eml)"
grep -q "Do not forward" sealed.eml delivered.eml owner/epoch-1/entries &&
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
dev alice seal --to list.key <post.eml 2>/dev/null | "$HARNESS" recrypt owner 2>/dev/null >delivered2.eml
dev carol open <delivered2.eml 2>/dev/null | head -n1 | show
echo
echo "Demo complete."
