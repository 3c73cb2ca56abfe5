#!/usr/bin/python3
"""Drive a real neomutt (or mutt: prog=mutt) in a pseudo-terminal, as a subscriber would, and
check what it shows on the screen (a VT100 emulation of the terminal).

Used by test_neomutt.sh, which sets up Postfix, the gateway and the
subscriber's mail and keystore. Arguments: the neomutt rc file, then
NAME=VALUE settings (subject, body, attachment, save, view, replymark).
Prints "ok - ..." / "FAIL - ..." lines like the shell tests; exits 1 on
a failure that stops the session.
"""
import os
import re
import sys
import time

import pexpect
import pyte

ROWS, COLS = 40, 132


class Session:
    def __init__(self, argv, env):
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.child = pexpect.spawn(argv[0], argv[1:], env=env, dimensions=(ROWS, COLS),
                                   timeout=2)
        self.log = open(os.path.join(env["T"], "neomutt.screen.log"), "w")

    def pump(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.1)
                self.stream.feed(data)
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                return False
        return True

    def text(self):
        return "\n".join(self.screen.display)

    def wait_for(self, pattern, seconds=15):
        """Pump output until the screen matches pattern; True when it did."""
        end = time.time() + seconds
        while time.time() < end:
            if re.search(pattern, self.text()):
                return True
            if not self.pump(0.2):
                return bool(re.search(pattern, self.text()))
        self.log.write("--- waited for %r, screen was:\n%s\n" % (pattern, self.text()))
        return False

    def send(self, keys, settle=0.3):
        self.child.send(keys)
        self.pump(settle)

    def dump(self, why):
        self.log.write("--- %s\n%s\n" % (why, self.text()))
        self.log.flush()


fails = 0


def check(ok, name, s=None):
    global fails
    print(("ok - " if ok else "FAIL - ") + name, flush=True)
    if not ok:
        fails += 1
        if s:
            s.dump("after failed check: " + name)
    return ok


def main():
    rc = sys.argv[1]
    opt = dict(a.split("=", 1) for a in sys.argv[2:])
    env = dict(os.environ, TERM="vt100", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    prog = opt.get("prog", "neomutt")
    s = Session([prog, "-n", "-F", rc], env)

    # The index: the post's outer Subject is the placeholder.
    if not check(s.wait_for(r"\[recrypt\] encrypted message"),
                 "the post is in the index (outer Subject only)", s):
        return 1
    check(opt["subject"] not in s.text(), "the index does not show the real Subject", s)

    # Esc o: the decrypted post, opened as a real message.
    s.send("\x1bo", 1.0)
    check(s.wait_for(re.escape(opt["subject"])),
          "Esc o shows the decrypted Subject (RFC 2047 decoded): " + opt["subject"], s)
    check(s.wait_for(re.escape(opt["body"])),
          "and the body marker, quoted-printable decoded: " + opt["body"], s)
    check(s.wait_for(r"Recrypt-Verdict: \S"),
          "the pager shows the verdict (Recrypt-Verdict: the rc file unignores it)", s)
    check(s.wait_for(r"Recrypt-Outer-From: .* via "),
          "and the From the list delivered it with (Recrypt-Outer-From, FromRewrite)", s)
    s.dump("the decrypted post")

    # Save the attachment from the attachment menu.
    s.send("v", 0.8)
    if check(s.wait_for(re.escape(opt["attachment"])), "v lists the attachment " + opt["attachment"], s):
        s.send("/" + opt["attachment"] + "\r", 0.5)
        s.send("s", 0.5)
        s.wait_for(r"Save to file", 5)
        s.send("\x15" + opt["save"] + "\r", 1.0)  # ^U clears the suggested name
        for _ in range(20):
            if os.path.exists(opt["save"]):
                break
            s.pump(0.2)
        check(os.path.exists(opt["save"]), "s saved the attachment to " + opt["save"], s)
        s.send("q", 0.5)  # back to the pager

    # r: a reply to the poster alone would carry the post in plaintext;
    # recrypt sendmail refuses it and neomutt says sending failed.
    s.send("r", 1.5)
    if s.wait_for(r"y:Send", 10):
        s.send("y", 2.0)
        check(s.wait_for(r"(Error sending message|exited 77)", 15),
              "r (reply to the poster alone) is refused: the program reports the error", s)
        s.dump("after the refused reply")
        # Close the delivery output, then leave the compose menu without
        # sending (answering neomutt's questions: abort yes, postpone no).
        s.send("q", 0.8)
        check(s.wait_for(r"y:Send", 5), "the refused reply stays in the compose menu, unsent", s)
        s.send("q", 0.8)
        for _ in range(3):
            last = s.screen.display[-1]
            if re.search(r"[Pp]ostpone.*\?", last):
                s.send("n", 0.8)
            elif re.search(r"[Aa]bort.*\?", last):
                s.send("y", 0.8)
            else:
                break
    else:
        check(False, "r opens the compose menu", s)

    # L: list-reply, through recrypt sendmail and the gateway. First back
    # in the post's pager and settled: mutt throws away keys typed ahead
    # while it shows a message such as "Aborted unmodified message.", so
    # an L sent too early can be lost; then it is pressed once more.
    s.wait_for(r"r:Reply", 5)
    s.pump(1.0)
    s.send("L", 1.5)
    opened = s.wait_for(r"y:Send", 8)
    if not opened and re.search(r"r:Reply", s.text()):
        s.send("L", 1.5)
        opened = s.wait_for(r"y:Send", 8)
    if check(opened, "L (list-reply) opens the compose menu", s):
        check(re.search(r"To: .*" + re.escape(opt["list"]), s.text()) is not None,
              "the list-reply goes to the list " + opt["list"], s)
        s.send("y", 2.0)
        check(s.wait_for(r"Mail sent", 20), "Mail sent", s)

    # Back to the inbox: the view is removed on the way out.
    s.send("q", 0.5)  # pager -> index of the view
    s.send("c", 0.5)
    s.send("-\r", 1.5)
    check(s.wait_for(r"\[recrypt\] encrypted message"), "c - goes back to the inbox", s)
    check(opt["subject"] not in s.text(), "the inbox shows no decrypted text", s)
    s.pump(0.5)
    check(not os.path.exists(opt["view"]), "leaving the view removed it (" + opt["view"] + ")", s)
    s.send("q", 0.5)
    if s.wait_for(r"Quit", 1):
        s.send("y", 0.5)
    s.child.expect(pexpect.EOF, timeout=10)
    s.child.close()
    check(s.child.exitstatus == 0, prog + " quits cleanly (exit %s)" % s.child.exitstatus)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
