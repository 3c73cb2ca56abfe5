# Round trips through the real client and the service stand-in: message
# sizes around the 64 KiB chunk boundary, 0 B to 10 MiB bodies, 7-bit,
# 8-bit UTF-8 and binary attachments; the inner entity comes back byte for
# byte.
source "$(dirname "$0")/lib.sh"

newlist list list@example.org
newdev alice
newdev bob
enrol list alice@example.org alice
enrol list bob@example.org bob

# The Date is now (the devices were enrolled two days ago: a post dated
# before a device's enrolment carries no stanza for it); date -R has a
# fixed width, so the header length below stays exact.
DATE=$(LC_ALL=C date -u -R)
hdr() {
  printf 'From: Alice <alice@example.org>\nTo: list@example.org\nSubject: %s\n' "$1"
  printf 'Date: %s\nMessage-ID: <%s@example.org>\n' "$DATE" "$2"
}

# Bodies of exact sizes; the chunk size is 65536 bytes of inner message.
hdrlen=$(hdr size s0000000000 | wc -c)
for size in 0 1 65535 65536 65537 $((65536 - hdrlen - 1 - 1)) $((65536 - hdrlen - 1)) \
            $((65536 - hdrlen - 1 + 1)) $((10 * 1024 * 1024)); do
  head -c "$size" /dev/urandom | base64 -w 76 >body.b64
  { hdr size "$(printf 's%010d' "$size")"; echo; head -c "$size" body.b64; } >m.eml
  post list alice m.eml d.eml
  dev bob open <d.eml >o.eml 2>/dev/null || true
  same_inner "round trip, body of $size bytes (message $(wc -c <m.eml) bytes)" m.eml o.eml
done

# 7-bit plain text, 8-bit UTF-8, and a binary attachment sent as 8bit/binary.
{ hdr "plain 7bit" p7; printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\nplain text\n'; } >m.eml
post list alice m.eml d.eml; dev bob open <d.eml >o.eml 2>/dev/null || true
same_inner "7-bit text" m.eml o.eml

{ hdr "=?UTF-8?B?w6TDtsO8?=" p8; printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße, 日本語, emoji 😀\n'; } >m.eml
post list alice m.eml d.eml; dev bob open <d.eml >o.eml 2>/dev/null || true
same_inner "8-bit UTF-8 text" m.eml o.eml

{ hdr "binary" pb; printf 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b1"\n\n--b1\nContent-Type: text/plain\n\nsee attachment\n--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n'
  head -c 5000 /dev/urandom; printf '\n--b1--\n'; } >m.eml
post list alice m.eml d.eml; dev bob open <d.eml >o.eml 2>/dev/null || true
same_inner "binary attachment (NULs and all byte values)" m.eml o.eml

# multipart/alternative with an attachment, CRLF line endings as some MUAs send.
{ hdr "alternative" pa; printf 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="outer"\n\n--outer\nContent-Type: multipart/alternative; boundary="alt"\n\n--alt\nContent-Type: text/plain; charset=utf-8\n\nHello\n--alt\nContent-Type: text/html; charset=utf-8\n\n<p>Hello</p>\n--alt--\n\n--outer\nContent-Type: application/pdf; name="a.pdf"\nContent-Disposition: attachment; filename="a.pdf"\nContent-Transfer-Encoding: base64\n\n'
  head -c 3000 /dev/urandom | base64 -w 76; printf -- '--outer--\n'; } | sed 's/$/\r/' >m.eml
post list alice m.eml d.eml; dev bob open <d.eml >o.eml 2>/dev/null || true
if head -n1 o.eml | grep -q $'^Recrypt-Verdict: .*\r$' && tail -n +2 o.eml | cmp -s - m.eml; then
  pass "multipart/alternative with attachment, CRLF, byte-identical inner entity"
else failed "multipart/alternative with attachment, CRLF"; fi

# The sealed form hides the Subject and every non-addressing field.
{ hdr "very secret subject" h1; printf 'X-Mailer: SecretMailer 1.0\n\nbody\n'; } >m.eml
dev alice seal --to list.key <m.eml >s.eml 2>/dev/null
if ! grep -q "very secret subject" s.eml && ! grep -q "SecretMailer" s.eml &&
   grep -q '^Subject: \[recrypt\] encrypted message$' s.eml && ! grep -q '^body$' s.eml; then
  pass "sealed message shows only addressing fields and a placeholder Subject"
else failed "sealed message leaks protected fields"; fi

# seal adds Date and Message-ID when missing, inside and outside alike.
printf 'From: alice@example.org\nTo: list@example.org\nSubject: bare\n\nbare\n' >m.eml
post list alice m.eml d.eml
if dev bob open <d.eml >o.eml 2>/dev/null && grep -q '^Date: ' o.eml && grep -q '^Message-ID: <' o.eml &&
   [ "$(grep '^Message-ID:' o.eml)" = "$(grep '^Message-ID:' d.eml)" ]; then
  pass "Date and Message-ID added when missing, equal inside and outside"
else failed "Date/Message-ID not added consistently"; fi
finish
