#!/usr/bin/python3
"""Write the malformed variants of a sealed post that structure.lua sends
(issue 13 item 7; docs/FORMAT.md section 9.3): NAME.eml in the current
directory, from the sealed post given as argv[1]. Each variant names the
rule it breaks; structure.lua expects 554 5.6.0 and a text saying so."""
import base64
import re
import sys

src = open(sys.argv[1], "rb").read()
head, sep, body = src.partition(b"\n\n")
if not sep:
    head, sep, body = src.partition(b"\r\n\r\n")
eol = b"\r\n" if sep == b"\r\n\r\n" else b"\n"
start = body.index(b'filename="message.rcx"' + eol + eol) + len(b'filename="message.rcx"' + eol + eol)
end = body.index(eol + b"--=_recrypt_", start)
data = body[start:end]


def post(h, b):
    return h + sep + b


def with_data(d):
    return post(head, body[:start] + d + body[end:])


variants = {
    # "exactly one of each outer field the format relies on"
    "s-dupct": post(head.replace(b"MIME-Version: 1.0", b"MIME-Version: 1.0" + eol + b"Content-Type: text/plain", 1), body),
    # "no bare 8-bit byte in the outer header": 8-bit bytes after the Date
    "s-8bit": post(re.sub(rb"(Date: [^\r\n]*)", lambda m: m.group(1) + b" \xe9\xe9", head, count=1), body),
    # "strict base64 in the data part": no "!", no data after padding
    "s-bang": with_data(data[:10] + b"!" + data[11:]),
    "s-afterpad": with_data(data + eol + b"QQ==" + eol + b"QUFB"),
    # "an empty data part is refused"
    "s-empty": with_data(b""),
    # "a data length consistent with the chunk framing": 41 bytes are a
    # 24-byte header and 17 bytes, less than the smallest last chunk (18)
    "s-short": with_data(base64.b64encode(bytes(41))),
    # "truncations inside the header/control/data parts"
    "s-cutdata": src[: len(head) + len(sep) + start + data.index(eol) + len(eol)],
    "s-cutctl": src[: len(head) + len(sep) + body.index(b"Ephemeral-Key")],
    # "the Message-ID: junk <a@b> is refused, not repaired"
    "s-msgid": post(head.replace(b"Message-ID: <", b"Message-ID: junk <", 1), body),
}
for name, text in variants.items():
    with open(name + ".eml", "wb") as f:
        f.write(text)
# The padded post (issue 13 item 8): 17 KB of header fields in front of a
# sealed post (in fields of 1 KB: miltertest dies on longer values);
# recrypted, never taken for plaintext.
with open("s-padded.eml", "wb") as f:
    f.write(b"".join(b"X-Pad-%d: " % i + b"p" * 1000 + eol for i in range(18)) + src)
