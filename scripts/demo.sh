#!/usr/bin/env bash
# The end-to-end demo, with the real parts: a private Postfix on loopback
# with recrypt-milter, the server's LMDB store written by `recryptctl apply`,
# a list owner's `recryptctl`, and subscribers' `recrypt`. A list with three
# members (one with two devices); one post sealed once to the list key, sent
# by SMTP, checked by the milter, split by recrypt-fanout into one copy per
# member that carries only that member's devices' stanzas, delivered by
# Postfix to each member's maildir, and opened on every device.
# Run as root on Debian 12 (it installs what it needs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
build=$("$root/scripts/build.sh" release)
RECRYPT=$build/src/client/recrypt
CTL=$build/src/ctl/recryptctl
export RECRYPT_MILTER=$build/src/milter/recrypt-milter
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it starts a private Postfix)" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/recrypt-demo.XXXXXX")
source "$root/tests/integration/postfix-lib.sh" # cleans up $T, Postfix and the milter at exit
PF_RECEIPTS=yes # the delivery-receipt transport, as the admin guide sets it up (section 5.5)
PF_FANOUT=yes   # split delivery: the fan-out transport and its listener (section 5.6)
cd "$T"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { sed 's/^/    /'; }
cut76() { cut -c1-76; }
dev() { local d=$1; shift; RECRYPT_HOME="$T/dev-$d" "$RECRYPT" "$@"; }
owner() { RECRYPT_HOME="$T/owner" "$CTL" "$@"; }
LIST=demo@example.org

say "1. The mail admin creates the store; the list owner creates $LIST"
svc=$("$CTL" server init --db "$T/db" 2>/dev/null)
echo "Service key line (the admin gives it to list owners):"; echo "$svc" | show
owner init >/dev/null 2>&1
owner list create "$LIST" --service-key "$svc" --out create.req 2>/dev/null
echo "The owner's signed request (it holds no secret), applied by the admin:"
head -3 create.req | show
"$CTL" apply --db "$T/db" create.req 2>&1 | show
owner list key "$LIST" >list.key 2>list.err
echo "List key line, published for senders:"; cut76 <list.key | show
FP=$(grep -oE 'M[A-Z2-7]{3}(-[A-Z2-7]{4}){6}' list.err | head -n1)
echo "Its signing key's fingerprint (the owner gives it to every member at enrolment):"
echo "$FP" | show

say "2. Members create device keys (bob has a laptop and a phone); the owner enrols them"
for d in alice bob-laptop bob-phone carol mallory; do dev "$d" keygen >"$d.pub" 2>/dev/null; done
owner member add "$LIST" alice@example.org --device "$(cat alice.pub)" --out m1.req
owner member add "$LIST" bob@example.org --device "$(cat bob-laptop.pub)" \
  --device "$(cat bob-phone.pub)" --out m2.req
owner member add "$LIST" carol@example.org --device "$(cat carol.pub)" --out m3.req
"$CTL" apply --db "$T/db" m1.req m2.req m3.req 2>&1 | show
echo "Each member's device pins the list's signing key with the fingerprint the owner"
echo "gave (a message never pins a list by itself: mail from anyone else is refused):"
for d in alice bob-laptop bob-phone carol; do dev "$d" list pin "$LIST" "$FP" 2>&1 | show; done
sleep 1 # a device gets stanzas for posts dated after its enrolment

say "3. Postfix on 127.0.0.1 with recrypt-milter (smtpd_milters, milter_default_action = tempfail)"
echo "and split delivery: the milter hands each checked post to the recrypt-fanout pipe(8)"
echo "transport, which submits one copy per member to a listener without milters"
pf_mailbox "$LIST" demo-bounces@example.org alice@example.org bob@example.org carol@example.org \
  mallory@example.org
milter_config "$T/milter.conf"
milter_start "$T/milter.conf"
pf_start
echo "Postfix listens on 127.0.0.1:$PF_PORT, the milter on 127.0.0.1:$MILTER_PORT,"
echo "the copies come back through 127.0.0.1:$PF_FANOUT_PORT (master.cf, as in the admin guide):"
grep -A6 '^recrypt-fanout' "$PF_DIR/master.cf" | sed "s|$T/fanout-wrapper|recrypt-fanout|" | show

say "4. Alice writes a post and seals it once, to the list key"
cat >post.eml <<MAIL
From: Alice <alice@example.org>
To: $LIST
Subject: Launch date
Date: $(date -R)
Message-ID: <demo-$$@example.org>

The launch is on Thursday. Do not forward.
MAIL
show <post.eml
dev alice seal --to list.key <post.eml >sealed.eml 2>/dev/null
echo "What travels (and what the server sees): addressing fields and ciphertext"
sed -n '1,/^Proof:/p' sealed.eml | cut76 | show

say "5. Alice's mail program sends it to the list by SMTP"
send_mail alice@example.org "$LIST" sealed.eml || true
smtp_replies | tail -3 | show
for a in alice bob carol; do pf_wait_delivered 1 "$a@example.org" 30 || true; done
pf_queue_empty_wait 30 || true
echo "Milter log (checked, handed to split delivery):"
grep -E 'verdict=' "$MILTER_LOG" | sed 's/.*recrypt-milter //' | show
echo "recrypt-fanout log (one copy per member queued; the post is now delivered,"
echo "so a replay of it is discarded):"
grep -E 'verdict=' "$FANOUT_LOG" | sed 's/.*recrypt-fanout //' | show
echo "Postfix: the post went to the fan-out transport once, then one copy to each member:"
grep -E 'relay=(recrypt-fanout|virtual)' "$PF_LOG" | sed -E 's/.*to=<([^>]*)>.*relay=([a-z-]+).*(status=[a-z]+).*/\1 via \2 \3/' | show

say "6. Each member's copy, as Postfix delivered it, and what each device reads"
echo "Each copy carries the stanzas of its own member's devices only: nobody can read"
echo "from a copy how many members or devices the list has, or who they are."
for m in alice:alice bob:bob-laptop bob:bob-phone carol:carol; do
  addr=${m%%:*}@example.org d=${m#*:}
  f=$(ls "$(pf_maildir "$addr")"/* | head -1)
  echo "-- $addr, delivered copy: $(grep -c '^Stanza: ' "$f") stanzas, $(grep -m1 '^Return-Path:' "$f"), $(grep -m1 '^List-Id:' "$f")"
  echo "   opened on $d:"
  dev "$d" open <"$f" 2>/dev/null | show
done
echo "-- mallory@example.org: $(pf_count mallory@example.org) messages (not a member)"
a=$(ls "$(pf_maildir alice@example.org)"/* | head -1)
others=$(grep -ciE 'bob@|carol@' "$a" || true)
echo "-- alice's copy names bob or carol on $others lines; it reveals: the post's sender and"
echo "   list (From, To, List-Id), its size, and alice's own device count. It does not reveal:"
echo "   the other members, their number, their devices, or their keys' wrapped shares (W)."

say "7. What the server holds"
"$CTL" show --db "$T/db" | show
if grep -rqs "Do not forward" "$T/db" "$PF_QUEUE" "$MILTER_SPOOL" "$MILTER_LOG" "$FANOUT_LOG" "$PF_MAIL"; then
  echo "PLAINTEXT FOUND on the server side: demo failed"; exit 1
fi
echo "The plaintext appears nowhere on the server: not in the store, the Postfix queue,"
echo "the spool, the milter's and the fan-out's logs, or the delivered maildir files."
echo
echo "Demo complete."
