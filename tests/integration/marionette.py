"""A small client of Gecko's Marionette remote protocol (standard library
only), enough to drive Thunderbird in tests: start a session, switch to
the chrome context, run privileged JavaScript, install an add-on, take a
screenshot.

The protocol: the server greets with a length-prefixed JSON object; each
command is `LEN:[0, id, "Name", {params}]`, each reply
`LEN:[1, id, error, result]`.
"""
import base64
import json
import socket
import time


class MarionetteError(Exception):
    pass


class Marionette:
    def __init__(self, port, host="127.0.0.1", timeout=60):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.create_connection((host, port), timeout=5)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)
        self.sock.settimeout(120)
        self.buf = b""
        self.next_id = 1
        self.greeting = self._recv()

    def _recv(self):
        while b":" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise MarionetteError("connection closed")
            self.buf += chunk
        head, rest = self.buf.split(b":", 1)
        n = int(head)
        while len(rest) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise MarionetteError("connection closed")
            rest += chunk
        self.buf = rest[n:]
        return json.loads(rest[:n])

    def command(self, name, params=None):
        msg_id = self.next_id
        self.next_id += 1
        data = json.dumps([0, msg_id, name, params or {}]).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data)
        while True:
            reply = self._recv()
            if reply[0] == 1 and reply[1] == msg_id:
                break
        if reply[2]:
            raise MarionetteError("%s: %s" % (name, reply[2]))
        return reply[3]

    def start(self):
        self.command("WebDriver:NewSession", {"capabilities": {}})
        self.command("Marionette:SetContext", {"value": "chrome"})

    def js(self, script, args=None, timeout_ms=60000):
        """Run script in the chrome context: the body of an async function
        (it may await; `arguments` holds args); returns what it returns."""
        self.command("WebDriver:SetTimeouts", {"script": timeout_ms})
        body = "return (async () => {\n" + script + "\n})();"
        r = self.command("WebDriver:ExecuteScript",
                         {"script": body, "args": args or [], "newSandbox": False})
        return r.get("value") if isinstance(r, dict) else r

    def install_addon(self, path, temporary=True):
        return self.command("Addon:Install", {"path": path, "temporary": temporary})

    def screenshot(self, path):
        r = self.command("WebDriver:TakeScreenshot", {"full": False})
        value = r.get("value") if isinstance(r, dict) else r
        with open(path, "wb") as f:
            f.write(base64.b64decode(value))

    def quit(self):
        try:
            self.command("Marionette:Quit", {"flags": ["eForceQuit"]})
        except Exception:
            pass
        try:
            self.sock.close()
        except Exception:
            pass
