# FromRewrite (docs/admin-guide.md §13) behind a real Postfix on loopback,
# inline delivery: with the default (yes) the outer From of every list copy
# is "NAME via list" <list@...>, the poster goes into Reply-To (an existing
# Reply-To is kept) and the original From into X-Original-From (a forged
# one the post brought is dropped); the sealed inner message keeps its From,
# and `recrypt open` shows both, the outer one as Recrypt-Outer-From. A
# plaintext post let through by PlaintextPolicy fanout gets the same. With
# FromRewrite no (a reload) the From stays the poster's and nothing is
# added. Needs root, Debian's postfix and swaks (or python3). Exit 77
# (skipped) when those or the milter are missing.

_here=$(cd "$(dirname "$0")" && pwd)
source "$_here/preflight.sh" # skip(), root, Postfix and its users, the milter binary
command -v script >/dev/null || skip "script (util-linux) is not installed"
command -v swaks >/dev/null || command -v python3 >/dev/null || skip "neither swaks nor python3"

source "$_here/../cli/lib.sh"
source "$_here/postfix-lib.sh"
pf_deadline 240
echo "# binaries: $RECRYPT, $RECRYPTCTL, $RECRYPT_MILTER"

LIST=list@example.org
D=example.org
PY=/usr/bin/python3
gateway_up alice bob -- poster@$D || { finish; exit 1; }
newdev poster
pin_devices "$LIST" "$LIST_FP" poster
pass "gateway up: milter (FromRewrite not set: the default) and postfix"

n=0
# post FILE FROM [EXTRA-HEADER-LINES]: a post to the list with that From.
post() {
  n=$((n + 1))
  printf 'From: %s\nTo: %s\n%sSubject: post %s\nDate: %s\nMessage-ID: <fr%s.%s.%s@%s>\n\nBody of post %s.\n' \
    "$2" "$LIST" "${3:-}" "$n" "$(date -R)" "$n" "$$" "$RANDOM" "$D" "$n" >"$1"
}
seal() { dev poster seal --to "$(cat list.key)" <"$1" >"$2" 2>"$T/.seal" || failed "seal $1: $(cat "$T/.seal")"; }
newest() { ls -t "$(pf_maildir "$1")"/* 2>/dev/null | head -1 || true; }
# field FILE NAME: the values of the header fields NAME, unfolded (RFC 5322
# unfolding: the line breaks go), one per line.
field() {
  $PY - "$1" "$2" <<'EOF'
import sys
raw = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n").decode("ascii", "replace")
head = raw.split("\n\n", 1)[0]
fields, cur = [], None
for line in head.split("\n"):
    if line[:1] in (" ", "\t") and cur is not None:
        cur += line
    else:
        if cur is not None:
            fields.append(cur)
        cur = line
if cur is not None:
    fields.append(cur)
for f in fields:
    name, _, value = f.partition(":")
    if name.lower() == sys.argv[2].lower():
        print(value.strip())
EOF
}
# mailbox VALUE: "decoded display name|address" of a From-like value (RFC 2047
# decoded, as a mail program shows it); "ERROR ..." when it does not parse
# as exactly one mailbox under the strict policy.
mailbox() {
  $PY - "$1" <<'EOF'
import sys
from email import policy
from email.headerregistry import HeaderRegistry
try:
    h = HeaderRegistry()("From", sys.argv[1])
    if len(h.addresses) != 1 or h.defects:
        print("ERROR", len(h.addresses), [type(d).__name__ for d in h.defects])
    else:
        a = h.addresses[0]
        print("%s|%s" % (a.display_name, a.addr_spec))
except Exception as e:
    print("ERROR", e)
EOF
}
# deliver NAME FILE [N]: send FILE from poster@ to the list; alice's copy
# (her Nth message) in $COPY.
deliver() {
  local a0
  a0=$(pf_count alice@$D)
  rc=0; send_mail poster@$D "$LIST" "$2" || rc=$?
  COPY=
  if [ $rc -eq 0 ] && pf_wait_delivered $((a0 + 1)) alice@$D 20; then
    COPY=$(newest alice@$D)
    pass "$1: delivered to alice"
  else
    failed "$1: not delivered (exit $rc: $(smtp_replies | tail -2 | tr '\n' '|'))"
  fi
}

# --- 1. a sealed post whose From has quotes, a comma and no Reply-To.
FROM1='"Poster \"P\" Person, Esq." <poster@example.org>'
post m1.eml "$FROM1"
seal m1.eml s1.eml
deliver 1 s1.eml
if [ -n "$COPY" ]; then
  v=$(field "$COPY" From)
  [ "$(field "$COPY" From | wc -l)" -eq 1 ] && [ "$(mailbox "$v")" = 'Poster "P" Person, Esq. via list|list@example.org' ] &&
    pass "1: outer From rewritten: $v" || failed "1: outer From is '$v' ($(mailbox "$v"))"
  [ "$v" = '"Poster \"P\" Person, Esq. via list" <list@example.org>' ] &&
    pass "1: quoted and escaped as RFC 5322 wants it" || failed "1: From value '$v'"
  v=$(field "$COPY" Reply-To)
  [ "$(mailbox "$v")" = 'Poster "P" Person, Esq.|poster@example.org' ] && pass "1: Reply-To is the poster: $v" ||
    failed "1: Reply-To is '$v'"
  v=$(field "$COPY" X-Original-From)
  [ "$v" = "$FROM1" ] && pass "1: X-Original-From keeps the original From" || failed "1: X-Original-From is '$v'"
  rc=0; dev alice open <"$COPY" >o1.eml 2>"$T/.open" || rc=$?
  if [ $rc -eq 0 ]; then
    same_inner "1: alice opens it to the original message, inner From intact" m1.eml o1.eml
    head -n1 o1.eml | grep -q "^Recrypt-Verdict: unsigned; list=$LIST; epoch=" &&
      pass "1: the verdict line comes first" || failed "1: first line: $(head -n1 o1.eml)"
    [ "$(sed -n 2p o1.eml)" = 'Recrypt-Outer-From: "Poster \"P\" Person, Esq. via list" <list@example.org>' ] &&
      pass "1: recrypt open shows the outer From as delivered (Recrypt-Outer-From)" ||
      failed "1: second line: $(sed -n 2p o1.eml)"
    [ "$(field o1.eml From)" = "$FROM1" ] && pass "1: and the inner, sealed From: $(field o1.eml From)" ||
      failed "1: inner From is '$(field o1.eml From)'"
  else
    failed "1: alice cannot open the copy (exit $rc: $(head -c 300 "$T/.open"))"
  fi
fi

# --- 2. an encoded-word name, a Reply-To of its own, a forged
# X-Original-From (outer header, where the poster's client put it).
FROM2='=?UTF-8?Q?J=C3=B6rg_P=C3=B6ster?= <poster@example.org>'
post m2.eml "$FROM2" 'Reply-To: replies@example.org
X-Original-From: forged@example.net
'
seal m2.eml s2.eml
# (seal copies Reply-To to the outer header, X-Original-From it keeps
# inside: put one outside, as a hostile sender could)
$PY - s2.eml <<'EOF'
import sys
t = open(sys.argv[1], newline="").read()
eol = "\r\n" if "\r\n" in t else "\n"
open(sys.argv[1], "w", newline="").write("X-Original-From: forged@example.net" + eol + t)
EOF
deliver 2 s2.eml
if [ -n "$COPY" ]; then
  v=$(field "$COPY" From)
  [ "$(mailbox "$v")" = "Jörg Pöster via list|list@example.org" ] &&
    pass "2: an encoded-word name is rewritten, still valid RFC 2047: $v" || failed "2: From '$v' ($(mailbox "$v"))"
  $PY - "$v" <<'EOF' && pass "2: no encoded-word inside a quoted-string, 7-bit" || failed "2: bad encoding in '$v'"
import re, sys
v = sys.argv[1]
v.encode("ascii")
for q in re.findall(r'"(?:[^"\\]|\\.)*"', v):
    assert "=?" not in q, q
EOF
  [ "$(field "$COPY" Reply-To)" = "replies@example.org" ] && pass "2: the post's own Reply-To is kept (one)" ||
    failed "2: Reply-To: $(field "$COPY" Reply-To | tr '\n' '|')"
  [ "$(field "$COPY" X-Original-From)" = "$FROM2" ] && pass "2: one X-Original-From, the real one (the forged one dropped)" ||
    failed "2: X-Original-From: $(field "$COPY" X-Original-From | tr '\n' '|')"
  rc=0; dev bob open <"$(newest bob@$D)" >o2.eml 2>"$T/.open" || rc=$?
  [ $rc -eq 0 ] && same_inner "2: bob opens it to the original" m2.eml o2.eml ||
    failed "2: bob cannot open it (exit $rc)"
  [ "$(field o2.eml From)" = "$FROM2" ] && grep -q '^Recrypt-Outer-From: .* <list@example.org>$' o2.eml &&
    pass "2: recrypt open shows the outer and the inner From" || failed "2: opened header: $(head -3 o2.eml | tr '\n' '|')"
fi

# --- 3. a forged Recrypt-Outer-From inside the sealed message is not shown
# as the client's (recrypt open removes it).
post m3.eml "poster@example.org" 'Recrypt-Outer-From: forged inside <evil@example.net>
'
seal m3.eml s3.eml
deliver 3 s3.eml
if [ -n "$COPY" ]; then
  v=$(field "$COPY" From)
  [ "$(mailbox "$v")" = "poster@example.org via list|list@example.org" ] &&
    pass "3: no display name: the poster's address names it: $v" || failed "3: From '$v'"
  rc=0; dev alice open <"$COPY" >o3.eml 2>"$T/.open" || rc=$?
  [ $rc -eq 0 ] && [ "$(grep -c '^Recrypt-Outer-From:' o3.eml)" -eq 1 ] && ! grep -q 'evil@example.net' o3.eml &&
    pass "3: one Recrypt-Outer-From, the client's; the inner forged one removed" ||
    failed "3: opened: exit $rc, $(grep '^Recrypt-Outer-From' o3.eml | tr '\n' '|')"
fi

# --- 4. PlaintextPolicy fanout: a plaintext post gets the same rewrite.
reload() { # CONFIG-LINES...
  milter_config "$T/milter.conf" "$@"
  local before
  before=$(grep -c 'configuration reloaded' "$MILTER_LOG" || true)
  kill -USR1 "$MILTER_PID"
  for _ in $(seq 1 50); do
    [ "$(grep -c 'configuration reloaded' "$MILTER_LOG" || true)" -gt "$before" ] && return 0
    sleep 0.1
  done
  return 1
}
reload PlaintextPolicy fanout && pass "4: reloaded with PlaintextPolicy fanout" || failed "4: no reload"
post m4.eml 'Plain Poster <poster@example.org>'
deliver 4 m4.eml
if [ -n "$COPY" ]; then
  v=$(field "$COPY" From)
  [ "$(mailbox "$v")" = "Plain Poster via list|list@example.org" ] && pass "4: plaintext post: From rewritten: $v" ||
    failed "4: From '$v'"
  [ "$(mailbox "$(field "$COPY" Reply-To)")" = "Plain Poster|poster@example.org" ] &&
    [ "$(field "$COPY" X-Original-From)" = "Plain Poster <poster@example.org>" ] &&
    pass "4: plaintext post: Reply-To and X-Original-From are the poster" ||
    failed "4: Reply-To '$(field "$COPY" Reply-To)', X-Original-From '$(field "$COPY" X-Original-From)'"
fi

# --- 5. FromRewrite no: nothing changes.
reload PlaintextPolicy fanout FromRewrite no && pass "5: reloaded with FromRewrite no" || failed "5: no reload"
post m5.eml "$FROM1"
seal m5.eml s5.eml
deliver 5 s5.eml
if [ -n "$COPY" ]; then
  [ "$(field "$COPY" From)" = "$FROM1" ] && pass "5: the outer From is the poster's" ||
    failed "5: From is '$(field "$COPY" From)'"
  [ -z "$(field "$COPY" Reply-To)" ] && [ -z "$(field "$COPY" X-Original-From)" ] &&
    pass "5: no Reply-To, no X-Original-From added" || failed "5: header fields added"
  rc=0; dev alice open <"$COPY" >o5.eml 2>"$T/.open" || rc=$?
  [ $rc -eq 0 ] && head -n1 o5.eml | grep -q '^Recrypt-Verdict: ' && tail -n +2 o5.eml | cmp -s - m5.eml &&
    pass "5: recrypt open adds no Recrypt-Outer-From (the From is the inner one)" ||
    failed "5: opened: exit $rc: $(head -2 o5.eml | tr '\n' '|')"
fi
post m6.eml 'Plain Poster <poster@example.org>'
deliver 6 m6.eml
[ -n "$COPY" ] && [ "$(field "$COPY" From)" = "Plain Poster <poster@example.org>" ] &&
  [ -z "$(field "$COPY" X-Original-From)" ] && pass "6: a plaintext post keeps its From too" ||
  failed "6: From is '$(field "${COPY:-/dev/null}" From)'"

# --- 7. a bad value is refused at reload, the running config kept.
milter_config "$T/milter.conf" FromRewrite sometimes
kill -USR1 "$MILTER_PID"
for _ in $(seq 1 50); do grep -q 'reload refused' "$MILTER_LOG" && break; sleep 0.1; done
grep -q 'reload refused.*FromRewrite.*yes.*or no' "$MILTER_LOG" &&
  pass "7: FromRewrite sometimes: reload refused, saying what is allowed" ||
  failed "7: $(grep -i 'reload' "$MILTER_LOG" | tail -2 | tr '\n' '|')"

pf_stop
milter_stop
if [ "$fails" -ne 0 ]; then
  echo "# --- postfix log (last 30 lines)"
  tail -30 "$PF_LOG" | sed 's/^/# /'
  echo "# --- milter log (last 30 lines)"
  tail -30 "$MILTER_LOG" | sed 's/^/# /'
fi
if finish; then exit 0; else exit 1; fi
