#!/usr/bin/python3
"""Drive a real Thunderbird through Marionette, as a subscriber would use
it with the recrypt add-on, and check what its message pane shows.

Used by test_thunderbird.sh, which prepares the profile (a Local Folders
Inbox holding list posts the gateway delivered), the add-on and the native
host registration. Arguments are NAME=VALUE settings:
  port=N xpi=PATH shot=PNG shot_index=N (optional: a screenshot of message N)
  expect=JSON: a list, in Inbox order (oldest first), of
    {"subject": outer Subject in the list, "pane": [texts the pane shows],
     "absent": [texts it must not show]}
Prints "ok - ..." / "FAIL - ..." lines; exits 1 when the session itself
failed.
"""
import json
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from marionette import Marionette  # noqa: E402

fails = 0


def check(ok, name, detail=""):
    global fails
    print(("ok - " if ok else "FAIL - ") + name + ("" if ok else ": " + detail), flush=True)
    if not ok:
        fails += 1
    return ok


SELECT_AND_READ = r"""
const [index, waitMs] = arguments;
const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
const inbox = MailServices.accounts.localFoldersServer.rootFolder.getChildNamed("Inbox");
const win = Services.wm.getMostRecentWindow("mail:3pane");
const about3Pane = win.document.getElementById("tabmail").currentAbout3Pane;
const sleep = (ms) => new Promise((r) => win.setTimeout(r, ms));
if (about3Pane.gFolder != inbox) about3Pane.displayFolder(inbox.URI);
for (let i = 0; i < 100 && about3Pane.gDBView?.rowCount !== inbox.getTotalMessages(false); i++) await sleep(100);
const view = about3Pane.gDBView;
const rows = view.rowCount;
// In the order the messages are in the folder, so that index is the Inbox order.
view.sort(Ci.nsMsgViewSortType.byId, Ci.nsMsgViewSortOrder.ascending);
const hdr = view.getMsgHdrAt(index);
const listSubject = hdr.mime2DecodedSubject;
about3Pane.threadTree.selectedIndex = index;
let text = null, html = null;
for (let i = 0; i < waitMs / 100; i++) {
  await sleep(100);
  const b = about3Pane.messageBrowser?.contentWindow?.getMessagePaneBrowser?.();
  const d = b && b.contentDocument;
  const v = d && d.getElementById("recrypt-view");
  if (v && v.querySelector("#recrypt-verdict")) {
    await sleep(300);
    text = v.innerText;
    html = d.body.innerHTML;
    break;
  }
}
return { rows, listSubject, text, bodyHtml: html };
"""


def main():
    opt = dict(a.split("=", 1) for a in sys.argv[1:])
    expect = json.loads(opt["expect"])
    m = Marionette(int(opt["port"]), timeout=90)
    try:
        m.start()
        check(m.install_addon(opt["xpi"]) is not None, "the add-on installs from its .xpi")
        for i, e in enumerate(expect):
            r = m.js(SELECT_AND_READ, [i, 30000], timeout_ms=90000)
            if i == 0:
                check(r["rows"] == len(expect), "the Inbox lists %d messages" % len(expect),
                      "it lists %s" % r["rows"])
            check(r["listSubject"] == e["subject"],
                  "message %d: the message list shows the outer Subject %r" % (i + 1, e["subject"]),
                  repr(r["listSubject"]))
            text = r["text"] or ""
            if not check(r["text"] is not None, "message %d: the add-on replaced the pane" % (i + 1),
                         "no recrypt view after 30 s"):
                continue
            for want in e.get("pane", []):
                check(want in text, "message %d: the pane shows %r" % (i + 1, want), text[:400])
            for bad in e.get("absent", []):
                check(bad not in (r["bodyHtml"] or ""),
                      "message %d: the pane holds no %r" % (i + 1, bad), text[:400])
            if i == int(opt.get("shot_index", "0")) and opt.get("shot"):
                m.screenshot(opt["shot"])
                check(True, "screenshot of the decrypted message: " + opt["shot"])
    finally:
        m.quit()
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
