#!/usr/bin/python3
"""An SMTP proxy for the split-delivery fault tests: it sits between
recrypt-fanout and Postfix's milter-free listener and, once it has passed
the Nth "250 ... queued as" reply on to the fan-out, kills every process
whose command line contains PATTERN with SIGKILL (once, for the whole run).
So the fan-out dies right after the MTA queued a copy: before or after it
recorded that copy, whichever the kill hits.

    smtp_kill_proxy.py LISTEN_PORT TARGET_PORT N PATTERN COUNT_FILE

N = 0 never kills. COUNT_FILE receives the number of queued replies passed
so far after each one (the test reads it). Runs until killed.
"""
import os
import signal
import socket
import sys
import threading

listen_port, target_port, kill_at = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pattern, count_file = sys.argv[4].encode(), sys.argv[5]
lock = threading.Lock()
state = {"queued": 0, "killed": False}


def kill_matching():
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if pattern in cmd:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


def client_to_server(c, s):
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            s.sendall(b)
    except OSError:
        pass
    for x in (s, c):
        try:
            x.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def server_to_client(s, c):
    buf = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                c.sendall(line + b"\n")
                if line.startswith(b"250 ") and b"queued as" in line:
                    with lock:
                        state["queued"] += 1
                        n = state["queued"]
                        with open(count_file, "w") as f:
                            f.write("%d\n" % n)
                        if kill_at and n >= kill_at and not state["killed"]:
                            state["killed"] = True
                            kill_matching()
    except OSError:
        pass
    for x in (s, c):
        try:
            x.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen_port))
    ls.listen(16)
    while True:
        c, _ = ls.accept()
        s = socket.create_connection(("127.0.0.1", target_port))
        for f, a in ((client_to_server, (c, s)), (server_to_client, (s, c))):
            threading.Thread(target=f, args=a, daemon=True).start()


serve()
