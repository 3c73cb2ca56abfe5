#!/usr/bin/env python3
"""native-host-bench: what the Thunderbird add-on's native host
(`recrypt native-host`) costs for a large post: the time to upload and
open it (what stands between selecting the post and the decrypted pane),
the time to fetch its attachment, and the host's peak memory (VmHWM).

Usage: bench/native-host-bench.py [--sizes 1,10,30] [--recrypt PATH]
                                  [--harness PATH]
Defaults: the binaries of ./build. Each size is the post's attachment in
MiB; the post is sealed with `recrypt seal` and recrypted by the test
harness (the library calls the milter makes). A benchmark, not a test:
run by hand, quote the figures.
"""
import argparse
import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Host:
    def __init__(self, argv, env):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.next_id = 1

    def call(self, op, **args):
        req = dict(args, id=self.next_id, op=op)
        self.next_id += 1
        b = json.dumps(req).encode()
        self.p.stdin.write(struct.pack("=I", len(b)) + b)
        self.p.stdin.flush()
        n = struct.unpack("=I", self.p.stdout.read(4))[0]
        r = json.loads(self.p.stdout.read(n))
        if not r["ok"]:
            raise RuntimeError("%s: %s" % (op, r["error"]))
        return r["result"]

    def peak_kib(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return -1

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def setup_list(tmp, recrypt, harness):
    """The list list@example.org (made by the harness in tmp) and this
    device (keystore tmp/dev) enrolled as alice; returns the environment
    that names the keystore."""
    env = dict(os.environ, RECRYPT_HOME=os.path.join(tmp, "dev"))
    subprocess.run([harness, "list-create", "list", "list@example.org"], cwd=tmp, check=True,
                   capture_output=True)
    pub = subprocess.run([recrypt, "keygen"], env=env, check=True,
                         capture_output=True).stdout.decode().strip()
    subprocess.run([harness, "enrol", "list", "alice@example.org", pub, "--at",
                    str(int(time.time()) - 200000)], cwd=tmp, check=True, capture_output=True)
    # The device pins the list (a message never pins it by itself).
    fp = subprocess.run([harness, "signer", "list"], cwd=tmp, check=True,
                        capture_output=True).stdout.decode().strip()
    subprocess.run([recrypt, "list", "pin", "list@example.org", fp], env=env, check=True,
                   capture_output=True)
    return env


def make_post(tmp, recrypt, harness, mib, n=0):
    env = dict(os.environ, RECRYPT_HOME=os.path.join(tmp, "dev"))
    att = os.urandom(mib * 1024 * 1024)
    msg = (
        "From: alice@example.org\nTo: list@example.org\nSubject: bench %d MiB\n"
        "Date: %s\nMessage-ID: <bench%d.%d@example.org>\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"bb\"\n\n--bb\nContent-Type: text/plain\n\n"
        "A large post.\n--bb\nContent-Type: application/octet-stream\n"
        "Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"big.bin\"\n\n"
        % (mib, time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()), mib, n)
    ).encode() + base64.encodebytes(att) + b"--bb--\n"
    listkey = subprocess.run([harness, "list-key", "list"], cwd=tmp, check=True,
                             capture_output=True).stdout.decode().strip()
    sealed = subprocess.run([recrypt, "seal", "--to", listkey], input=msg, env=env, check=True,
                            capture_output=True).stdout
    return subprocess.run([harness, "recrypt", "list"], cwd=tmp, input=sealed, check=True,
                          capture_output=True).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,10,30")
    ap.add_argument("--recrypt", default=os.path.join(ROOT, "build/src/client/recrypt"))
    ap.add_argument("--harness", default=os.path.join(ROOT, "build/tests/rc-harness"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="nh-bench.")
    try:
        env = setup_list(tmp, a.recrypt, a.harness)
        print("%-10s %-12s %-14s %-16s %s" % ("post", "raw bytes", "upload+open s",
                                             "attachment s", "host peak RSS"))
        for mib in [int(x) for x in a.sizes.split(",")]:
            raw = make_post(tmp, a.recrypt, a.harness, mib)
            h = Host([a.recrypt, "native-host"], env)
            chunk = h.call("hello")["limits"]["chunk"]
            t0 = time.monotonic()
            handle = None
            for off in range(0, len(raw), chunk):
                args = {"data": base64.b64encode(raw[off:off + chunk]).decode()}
                if handle is not None:
                    args["handle"] = handle
                handle = h.call("upload", **args)["handle"]
            opened = h.call("open", handle=handle)
            t1 = time.monotonic()
            part = h.call("part", handle=opened["handle"], index=1)
            got, off = 0, 0
            while True:
                r = h.call("read", handle=part["handle"], offset=off, length=chunk)
                n = len(base64.b64decode(r["data"]))
                got += n
                off += n
                if r["eof"] or n == 0:
                    break
            t2 = time.monotonic()
            peak = h.peak_kib()
            h.close()
            if got != mib * 1024 * 1024:
                print("FAIL: the attachment came back with %d bytes" % got)
                return 1
            print("%-10s %-12d %-14.2f %-16.2f %.1f MiB" % ("%d MiB" % mib, len(raw), t1 - t0,
                                                         t2 - t1, peak / 1024))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
