#!/usr/bin/env python3
# Relay between miltertest and the milter, for tests/milter/test_*.sh: it
# passes every packet on, keeps the replaced body in OUT/QID.body (handing
# miltertest a one-line stand-in) and notes each packet from the milter in
# OUT/QID.log (the negotiation, before any queue id, in OUT/NOQID.log as
# "o offered ..." and the milter's "O version=V actions=0xA steps=0xS").
# miltertest 1.6.0 reads every packet from the filter into a
# 1024-byte stack buffer, so a replaced body crashes it: hence the stand-in.
# Usage: relay.py LISTEN_PORT MILTER_PORT OUT_DIR (loopback only).
import os, re, socket, struct, sys, threading
listen_port, milter_port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            return None
        b += c
    return b
def packet(s):
    h = recv_exact(s, 4)
    if h is None:
        return None
    n = struct.unpack(">I", h)[0]
    return recv_exact(s, n) if 0 < n < (1 << 26) else None
def send(s, cmd, data):
    s.sendall(struct.pack(">I", len(data) + 1) + cmd + data)
class Conn:
    def __init__(self):
        self.qid = "NOQID"
    def path(self, ext):
        return os.path.join(out, re.sub(r"[^A-Za-z0-9_.-]", "_", self.qid) + ext)
    def note(self, text):
        with open(self.path(".log"), "a") as f:
            f.write(text + "\n")
def mta_side(c, mta, milter):
    while True:
        p = packet(mta)
        if p is None:
            break
        cmd, data = p[:1], p[1:]
        if cmd == b"D" and data[:1] == b"M":
            parts = data[1:].split(b"\0")
            for k, v in zip(parts[0::2], parts[1::2]):
                if k in (b"i", b"{i}"):
                    c.qid = v.decode("utf-8", "replace")
        if cmd == b"E":
            open(c.path(".body"), "wb").close()
        if cmd == b"C" and data.startswith(b"localhost\0") and len(data) > 13:
            # miltertest always sends port 12345; Postfix hands a local
            # submission over as localhost, 127.0.0.1, port 0.
            data = data[:11] + b"\0\0" + data[13:]
        if cmd == b"O" and len(data) >= 12:
            v, a, st = struct.unpack(">III", data[:12])
            c.note("o offered version=%d actions=0x%x steps=0x%x" % (v, a, st))
        send(milter, cmd, data)
    milter.shutdown(socket.SHUT_WR)
def milter_side(c, mta, milter):
    while True:
        p = packet(milter)
        if p is None:
            break
        cmd, data = p[:1], p[1:]
        if cmd == b"b":
            with open(c.path(".body"), "ab") as f:
                f.write(data)
            c.note("b %d" % len(data))
            data = b"[body chunk kept by the test relay]\r\n"
        elif cmd == b"O" and len(data) >= 12:
            v, a, st = struct.unpack(">III", data[:12])
            c.note("O version=%d actions=0x%x steps=0x%x" % (v, a, st))
        else:
            text = data.replace(b"\0", b" ").replace(b"\r\n", b" / ").replace(b"\n", b"\\n").rstrip()
            c.note(cmd.decode("latin-1") + " " + text.decode("utf-8", "replace"))
        send(mta, cmd, data)
    mta.close()
def serve(mta):
    try:
        milter = socket.create_connection(("127.0.0.1", milter_port))
    except OSError:
        mta.close()
        return
    c = Conn()
    t = threading.Thread(target=mta_side, args=(c, mta, milter), daemon=True)
    t.start()
    try:
        milter_side(c, mta, milter)
    except OSError:
        pass
    t.join(5)
    milter.close()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen(16)
while True:
    s, _ = srv.accept()
    threading.Thread(target=serve, args=(s,), daemon=True).start()
