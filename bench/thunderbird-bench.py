#!/usr/bin/env python3
"""thunderbird-bench: the time from selecting a recrypt post in a real
Thunderbird to the decrypted message pane, for posts of several sizes; the
time from pressing Send on a list post with an attachment of those sizes to
the sealed post having gone (the compose window closes); and the native
host's peak memory meanwhile.

Usage: bench/thunderbird-bench.py [--sizes 1,10] [--runs 3] [--no-send]
Needs Debian's thunderbird and a build (./build: recrypt, rc-harness, the
.xpi). Thunderbird runs headless with a fresh profile whose Local Folders
Inbox holds the posts (sealed with `recrypt seal`, recrypted by the test
harness); the add-on is installed through Marionette. A benchmark, not a
test: run by hand, quote the figures.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from marionette import Marionette  # noqa: E402

nhb = __import__("native-host-bench")

SELECT = r"""
const [index] = arguments;
const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
const inbox = MailServices.accounts.localFoldersServer.rootFolder.getChildNamed("Inbox");
const win = Services.wm.getMostRecentWindow("mail:3pane");
const about3Pane = win.document.getElementById("tabmail").currentAbout3Pane;
const sleep = (ms) => new Promise((r) => win.setTimeout(r, ms));
if (about3Pane.gFolder != inbox) about3Pane.displayFolder(inbox.URI);
for (let i = 0; i < 300 && about3Pane.gDBView?.rowCount !== inbox.getTotalMessages(false); i++) await sleep(100);
about3Pane.gDBView.sort(Ci.nsMsgViewSortType.byId, Ci.nsMsgViewSortOrder.ascending);
about3Pane.threadTree.selectedIndex = -1;
await sleep(500);
const t0 = win.performance.now();
about3Pane.threadTree.selectedIndex = index; // "shown": Thunderbird's MsgLoaded of the sealed message
let shown = -1;
const aboutMessage = about3Pane.messageBrowser.contentWindow;
aboutMessage.addEventListener("MsgLoaded", () => { if (shown < 0) shown = win.performance.now() - t0; }, { once: true });
for (let i = 0; i < 6000; i++) {
  await sleep(10);
  const b = about3Pane.messageBrowser?.contentWindow?.getMessagePaneBrowser?.();
  const d = b?.contentDocument;
  const v = d?.getElementById("recrypt-verdict");
  if (v) return { ms: win.performance.now() - t0, shown, verdict: v.innerText.slice(0, 40),
                  timing: d.getElementById("recrypt-view")?.dataset?.timing };
}
return { ms: -1 };
"""

SEND = r"""
/* A new post to the list with the file at `path` attached: Send pressed at
 * t0, done when the add-on has sealed and sent it (the window closes). */
const [path, name] = arguments;
const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
const win3 = Services.wm.getMostRecentWindow("mail:3pane");
const sleep = (ms) => new Promise((r) => win3.setTimeout(r, ms));
const fields = Cc["@mozilla.org/messengercompose/composefields;1"].createInstance(Ci.nsIMsgCompFields);
fields.to = "list@example.org";
fields.subject = "bench send " + name;
fields.body = "A large post from Thunderbird.\n";
const params = Cc["@mozilla.org/messengercompose/composeparams;1"].createInstance(Ci.nsIMsgComposeParams);
params.type = Ci.nsIMsgCompType.New;
params.format = Ci.nsIMsgCompFormat.PlainText;
params.identity = MailServices.accounts.getIdentity("id1");
params.composeFields = fields;
const before = new Set([...Services.wm.getEnumerator("msgcompose")]);
MailServices.compose.OpenComposeWindowWithParams(null, params);
let win = null;
for (let i = 0; i < 300 && !win; i++) {
  await sleep(100);
  for (const w of Services.wm.getEnumerator("msgcompose"))
    if (!before.has(w) && w.document.readyState == "complete" && w.composeEditorReady) win = w;
}
if (!win) return { ms: -1, why: "no compose window" };
const file = Cc["@mozilla.org/file/local;1"].createInstance(Ci.nsIFile);
file.initWithPath(path);
const att = Cc["@mozilla.org/messengercompose/attachment;1"].createInstance(Ci.nsIMsgAttachment);
att.url = Services.io.newFileURI(file).spec;
att.name = name;
att.size = file.fileSize;
await win.AddAttachments([att]);
await sleep(1500);
const t0 = win3.performance.now();
win.goDoCommand("cmd_sendNow");
for (let i = 0; i < 12000; i++) {
  await sleep(10);
  if (win.closed) return { ms: win3.performance.now() - t0 };
}
return { ms: -1, why: "still open" };
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,10")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-send", action="store_true", help="measure reading only")
    ap.add_argument("--recrypt", default=os.path.join(ROOT, "build/src/client/recrypt"))
    ap.add_argument("--harness", default=os.path.join(ROOT, "build/tests/rc-harness"))
    ap.add_argument("--xpi", default=os.path.join(ROOT, "build/clients/thunderbird/recrypt-thunderbird.xpi"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tb-bench.")
    tb = sink = None
    try:
        env = nhb.setup_list(tmp, a.recrypt, a.harness)
        sizes = [int(x) for x in a.sizes.split(",")]
        prof = os.path.join(tmp, "profile")
        os.makedirs(os.path.join(prof, "Mail", "Local Folders"))
        # One post per run (the add-on keeps what it opened: a second
        # selection of the same post would not measure anything).
        with open(os.path.join(prof, "Mail", "Local Folders", "Inbox"), "wb") as f:
            for mib in sizes:
                for run in range(a.runs):
                    raw = nhb.make_post(tmp, a.recrypt, a.harness, mib, run).replace(b"\r\n", b"\n")
                    f.write(b"From - Wed Dec  2 10:00:00 2026\n" + raw + b"\n")
        port = free_port()
        smtp = free_port()
        os.makedirs(os.path.join(prof, "Mail", "alice"))
        # Thunderbird sends to smtp-sink (Postfix's test server), which
        # takes and discards.
        sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "127.0.0.1:%d" % smtp, "10"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(prof, "user.js"), "w") as f:
            f.write("\n".join('user_pref("%s", %s);' % kv for kv in [
                ("marionette.port", port), ("mail.shell.checkDefaultClient", "false"),
                ("mail.provider.suppress_dialog_on_startup", "true"),
                ("mailnews.start_page.enabled", "false"),
                ("mail.accountmanager.accounts", '"account2,account1"'),
                ("mail.accountmanager.defaultaccount", '"account2"'),
                ("mail.account.account2.identities", '"id1"'),
                ("mail.account.account2.server", '"server2"'),
                ("mail.server.server2.type", '"none"'),
                ("mail.server.server2.hostname", '"alice.example.org"'),
                ("mail.server.server2.name", '"alice"'),
                ("mail.server.server2.userName", '"alice"'),
                ("mail.server.server2.directory-rel", '"[ProfD]Mail/alice"'),
                ("mail.identity.id1.useremail", '"alice@example.org"'),
                ("mail.identity.id1.smtpServer", '"smtp1"'),
                ("mail.identity.id1.valid", "true"),
                ("mail.smtpservers", '"smtp1"'),
                ("mail.smtp.defaultserver", '"smtp1"'),
                ("mail.smtpserver.smtp1.hostname", '"127.0.0.1"'),
                ("mail.smtpserver.smtp1.port", smtp),
                ("mail.smtpserver.smtp1.authMethod", 1),
                ("mail.smtpserver.smtp1.try_ssl", 0),
                ("mailnews.message_warning_size", 0),
                ("mail.accountmanager.localfoldersserver", '"server1"'),
                ("mail.account.account1.server", '"server1"'),
                ("mail.server.server1.type", '"none"'),
                ("mail.server.server1.hostname", '"Local Folders"'),
                ("mail.server.server1.name", '"Local Folders"'),
                ("mail.server.server1.userName", '"nobody"'),
                ("mail.server.server1.directory-rel", '"[ProfD]Mail/Local Folders"')]) + "\n")
        home = os.path.join(tmp, "home")
        os.makedirs(os.path.join(home, ".mozilla", "native-messaging-hosts"))
        host = os.path.join(tmp, "host.sh")
        peak = os.path.join(tmp, "peak")
        with open(host, "w") as f:
            # The host's peak memory (VmHWM), read when Thunderbird closes it.
            # (stdin through fd 3: sh gives a background job /dev/null)
            f.write('#!/bin/sh\nexec 3<&0\nRECRYPT_HOME="%s" "%s" native-host "$@" <&3 3<&- &\npid=$!\n'
                    'max=0\nwhile kill -0 $pid 2>/dev/null; do '
                    'kb=$(sed -n "s/^VmHWM:[[:space:]]*\\([0-9]*\\).*/\\1/p" /proc/$pid/status 2>/dev/null); '
                    '[ "${kb:-0}" -gt $max ] && max=$kb && echo "$max kB" >"%s"; sleep 0.05; done\n'
                    % (env["RECRYPT_HOME"], a.recrypt, peak))
        os.chmod(host, 0o755)
        with open(os.path.join(home, ".mozilla", "native-messaging-hosts", "recrypt.json"), "w") as f:
            f.write('{"name":"recrypt","description":"recrypt","path":"%s","type":"stdio",'
                    '"allowed_extensions":["recrypt@recrypt"]}\n' % host)
        tb = subprocess.Popen(["thunderbird", "--headless", "--marionette", "-remote-allow-system-access",
                               "--no-remote", "--profile", prof],
                              env=dict(os.environ, HOME=home, MOZ_HEADLESS="1"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        m = Marionette(port, timeout=90)
        m.start()
        m.install_addon(a.xpi)
        print("%-8s %s" % ("post", "select -> decrypted pane (ms), %d runs" % a.runs))
        for i, mib in enumerate(sizes):
            times, shown = [], []
            for run in range(a.runs):
                r = m.js(SELECT, [i * a.runs + run], timeout_ms=120000)
                times.append(r["ms"])
                shown.append(r["shown"])
                print("   add-on: %s" % r.get("timing"))
                if not r.get("verdict", "").startswith(("Signed", "Unsigned")):
                    print("FAIL: the pane shows %r" % r.get("verdict"))
                    return 1
            print("%-8s %s   median %.0f ms (Thunderbird's own rendering of the sealed message: "
                  "median %.0f ms)" % ("%d MiB" % mib, " ".join("%.0f" % t for t in times),
                                       sorted(times)[len(times) // 2], sorted(shown)[len(shown) // 2]))
        if not a.no_send:
            print("%-8s %s" % ("post", "Send -> sealed post sent, window closed (ms), %d runs" % a.runs))
            for mib in sizes:
                path = os.path.join(tmp, "attach-%d.bin" % mib)
                with open(path, "wb") as f:
                    f.write(os.urandom(mib * 1024 * 1024))
                times = []
                for run in range(a.runs):
                    r = m.js(SEND, [path, "attach-%d.bin" % mib], timeout_ms=180000)
                    if r["ms"] < 0:
                        print("FAIL: %s" % r.get("why"))
                        return 1
                    times.append(r["ms"])
                print("%-8s %s   median %.0f ms" % ("%d MiB" % mib, " ".join("%.0f" % t for t in times),
                                                    sorted(times)[len(times) // 2]))
        with open(peak) as f:
            print("native host peak RSS: %s" % f.read().strip())
        m.quit()
    finally:
        if tb:
            tb.kill()
            tb.wait()
        if sink:
            sink.kill()
            sink.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
