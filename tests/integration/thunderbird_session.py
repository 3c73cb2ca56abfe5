#!/usr/bin/python3
"""Drive a real Thunderbird through Marionette, as a subscriber would use
it with the recrypt add-on, and check what its message pane shows.

Used by test_thunderbird.sh, which prepares the profile (a Local Folders
Inbox holding list posts the gateway delivered), the add-on and the native
host registration. Arguments are NAME=VALUE settings:
  port=N xpi=PATH shot=PNG shot_index=N (optional: a screenshot of message N)
  downloads=DIR (where Thunderbird saves, for "save")
  expect=JSON: a list, in Inbox order (oldest first), of
    {"subject": outer Subject in the list, "pane": [texts the pane shows],
     "absent": [texts it must not show], "save": an attachment to Save,
     "pin": {"pane": [...], "absent": [...]}: the pane asks to pin the list
     (issue 13: a message never pins): press its confirm button, then the
     pane shows / must not show these; "pin_file": a path that must not
     exist before the confirmation and must exist after it}
  options=JSON: settings page cases; sends=JSON: compose cases (see
    COMPOSE_AND_SEND and main)
Prints "ok - ..." / "FAIL - ..." lines; exits 1 when the session itself
failed.
"""
import json
import os
import sys
import time

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
// Mark the view of the message shown now: until the pane loads the one
// selected, it still shows this one (seen under load), and that must not
// be read as the new message's.
try {
  const ob = about3Pane.messageBrowser?.contentWindow?.getMessagePaneBrowser?.();
  ob?.contentDocument?.getElementById("recrypt-view")?.setAttribute("data-test-stale", "1");
} catch (e) {
  if (!String(e).includes("dead object")) throw e;
}
about3Pane.threadTree.selectedIndex = index;
let text = null, html = null;
for (let i = 0; i < waitMs / 100; i++) {
  await sleep(100);
  try {
    const b = about3Pane.messageBrowser?.contentWindow?.getMessagePaneBrowser?.();
    const d = b && b.contentDocument;
    const v = d && d.getElementById("recrypt-view");
    if (v && !v.hasAttribute("data-test-stale") && v.querySelector("#recrypt-verdict")) {
      await sleep(300);
      text = v.innerText;
      html = d.body.innerHTML;
      break;
    }
  } catch (e) {
    /* The pane's previous document went away while it was read (the next
     * message is loading): read again. */
    if (!String(e).includes("dead object")) throw e;
    text = html = null;
  }
}
return { rows, listSubject, text, bodyHtml: html };
"""


CONFIRM_PIN = r"""
/* Press "pin and open" in the pane's pin prompt, as the user does after
 * comparing the fingerprint; wait for the opened message. */
const win = Services.wm.getMostRecentWindow("mail:3pane");
const sleep = (ms) => new Promise((r) => win.setTimeout(r, ms));
const about3Pane = win.document.getElementById("tabmail").currentAbout3Pane;
const d = about3Pane.messageBrowser.contentWindow.getMessagePaneBrowser().contentDocument;
const b = d.getElementById("recrypt-pin-confirm");
if (!b) return { error: "no pin button" };
b.click();
for (let i = 0; i < 300; i++) {
  await sleep(100);
  const v = d.getElementById("recrypt-view");
  const verdict = v && v.querySelector("#recrypt-verdict");
  if (verdict && !verdict.classList.contains("recrypt-unpinned")) {
    await sleep(300);
    return { text: v.innerText, bodyHtml: d.body.innerHTML };
  }
  const note = d.getElementById("recrypt-pin-note");
  if (note && note.textContent) return { error: note.textContent };
}
return { error: "the message did not open after the pin" };
"""


SAVE_ATTACHMENT = r"""
/* Press the Save button of the attachment `name` in the pane. */
const [name] = arguments;
const win = Services.wm.getMostRecentWindow("mail:3pane");
const about3Pane = win.document.getElementById("tabmail").currentAbout3Pane;
const d = about3Pane.messageBrowser.contentWindow.getMessagePaneBrowser().contentDocument;
const li = [...d.querySelectorAll("#recrypt-attachments li")].find((l) => l.textContent.includes(name));
if (!li) return "no attachment " + name;
li.querySelector("button").click();
return "pressed";
"""


COMPOSE_AND_SEND = r"""
/* A compose window as the user opens it: a new message (to, subject, body)
 * or an answer to Inbox message replyIndex (replyType: ReplyToList,
 * ReplyAll, ReplyToSender; Thunderbird fills in the recipients). For an
 * answer, waits until the body holds `quote` (the add-on quotes the
 * decrypted post), then types `body` at the top. Sends (cmd_sendNow, the
 * Send button); `dialog` ("accept" / "cancel") answers a question the
 * add-on asks. Returns {state: "sent" (the window closed) / "open" /
 * "sending", composed: {to, cc, subject, text} before sending, dialog:
 * the question's text}. */
const [c] = arguments;
const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
const win3 = Services.wm.getMostRecentWindow("mail:3pane");
const sleep = (ms) => new Promise((r) => win3.setTimeout(r, ms));
const fields = Cc["@mozilla.org/messengercompose/composefields;1"].createInstance(Ci.nsIMsgCompFields);
const params = Cc["@mozilla.org/messengercompose/composeparams;1"].createInstance(Ci.nsIMsgComposeParams);
params.type = Ci.nsIMsgCompType.New;
if (c.replyIndex >= 0) {
  const about3Pane = win3.document.getElementById("tabmail").currentAbout3Pane;
  const hdr = about3Pane.gDBView.getMsgHdrAt(c.replyIndex);
  params.type = Ci.nsIMsgCompType[c.replyType];
  params.originalMsgURI = hdr.folder.getUriForMsg(hdr);
  params.origMsgHdr = hdr;
} else {
  fields.to = c.to;
  fields.subject = c.subject;
  fields.body = c.body + "\n";
}
params.format = Ci.nsIMsgCompFormat.PlainText;
params.identity = MailServices.accounts.getIdentity("id1");
params.composeFields = fields;
const before = new Set([...Services.wm.getEnumerator("msgcompose")]);
MailServices.compose.OpenComposeWindowWithParams(null, params);
let win = null;
for (let i = 0; i < 200 && !win; i++) {
  await sleep(100);
  for (const w of Services.wm.getEnumerator("msgcompose"))
    if (!before.has(w) && w.document.readyState == "complete" && w.gMsgCompose && w.composeEditorReady) win = w;
}
if (!win) return { state: "no compose window" };
const out = { state: null, composed: null, dialog: null };
const editorText = () => win.GetCurrentEditor().outputToString("text/plain", 0);
if (c.replyIndex >= 0) {
  for (let i = 0; i < 150 && !editorText().includes(c.quote); i++) await sleep(100);
  await sleep(500); // the add-on's recipients and subject come with the quote
  const editor = win.GetCurrentEditor();
  editor.beginningOfDocument();
  editor.insertText(c.body + "\n\n");
} else {
  await sleep(2000); // the editor and the add-ons' compose listeners
}
/* A question of the add-on: a prompt window, or a dialog inside one. */
function findDialog() {
  const docs = [];
  for (const w of Services.wm.getEnumerator(null)) {
    docs.push(w.document);
    for (const b of w.document.querySelectorAll("browser")) if (b.contentDocument) docs.push(b.contentDocument);
  }
  /* Ready once its buttons are made and the question is in. */
  return docs.find((d) => {
    const dlg = d.getElementById("commonDialog");
    try {
      /* The add-on's questions (not, say, Thunderbird's own send error). */
      return dlg && dlg.getButton("accept") && d.getElementById("infoBody")?.textContent.includes("unencrypted");
    } catch (e) {
      return false;
    }
  });
}
async function answerDialog(how) {
  let d = null;
  for (let i = 0; i < 200 && !d; i++) {
    await sleep(100);
    d = findDialog();
  }
  if (!d) return null;
  const text = d.getElementById("infoBody").textContent;
  const dlg = d.getElementById("commonDialog");
  if (how == "accept") dlg.acceptDialog();
  else dlg.cancelDialog();
  return text;
}
if (c.saveDraft) {
  win.goDoCommand("cmd_saveAsDraft"); // File > Save: Thunderbird stores a draft
  out.draftDialog = await answerDialog(c.saveDraft);
  await sleep(1000);
}
win.GetComposeDetails();
const cf = win.gMsgCompose.compFields;
out.composed = { to: cf.to, cc: cf.cc, subject: cf.subject, text: editorText() };
win.goDoCommand("cmd_sendNow");
if (c.dialog) {
  let d = null;
  for (let i = 0; i < 200 && !d; i++) {
    await sleep(100);
    d = findDialog();
  }
  if (!d) {
    out.state = "no dialog";
    return out;
  }
  out.dialog = d.getElementById("infoBody").textContent;
  const dlg = d.getElementById("commonDialog");
  if (c.dialog == "accept") dlg.acceptDialog();
  else dlg.cancelDialog();
}
for (let i = 0; i < 200; i++) {
  await sleep(100);
  if (win.closed) {
    out.state = "sent";
    return out;
  }
}
out.state = win.gSendOperationInProgress ? "sending" : "open";
win.SetContentAndBodyAsUnmodified(); // nothing left to save
return out;
"""


ADDRESS_BOOK_LIST = r"""
/* A mailing list NAME in the personal address book with MEMBERS. */
const [name, description, members] = arguments;
const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
const book = MailServices.ab.getDirectory("jsaddrbook://abook.sqlite");
let list = Cc["@mozilla.org/addressbook/directoryproperty;1"].createInstance(Ci.nsIAbDirectory);
list.isMailList = true;
list.dirName = name;
list.description = description; // with an "@", Thunderbird shows the list as "NAME <DESCRIPTION>"
list = book.addMailList(list);
for (const m of members) {
  const card = Cc["@mozilla.org/addressbook/cardproperty;1"].createInstance(Ci.nsIAbCard);
  card.primaryEmail = m;
  list.addCard(card);
}
return list.childCards.length;
"""


OPTIONS_PAGE = r"""
const [pasteKey, confirm] = arguments;
const win = Services.wm.getMostRecentWindow("mail:3pane");
const sleep = (ms) => new Promise((r) => win.setTimeout(r, ms));
const url = WebExtensionPolicy.getByID("recrypt@recrypt").getURL("options/options.html");
const tabmail = win.document.getElementById("tabmail");
const tab = tabmail.openTab("contentTab", { url, background: false });
let doc = null;
for (let i = 0; i < 100; i++) {
  await sleep(100);
  doc = tab.browser?.contentDocument;
  if (doc?.querySelector("#lists tbody tr") || doc?.querySelector("#empty:not([hidden])")) break;
}
if (!doc) return { error: "no options page" };
const table = doc.getElementById("lists").innerText;
let result = null;
if (pasteKey) {
  doc.getElementById("key").value = pasteKey;
  doc.getElementById("import").click();
  for (let i = 0; i < 100 && !doc.getElementById("result").textContent; i++) await sleep(100);
  result = { text: doc.getElementById("result").textContent, cls: doc.getElementById("result").className };
  const b = doc.querySelector("#result button");
  if (confirm && b) { /* the pin prompt: the user confirms the fingerprint */
    result.prompt = result.text;
    b.click();
    for (let i = 0; i < 100 && !doc.getElementById("result").className; i++) await sleep(100);
    result.text = doc.getElementById("result").textContent;
    result.cls = doc.getElementById("result").className;
  }
}
tabmail.closeTab(tab);
return { table, result };
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
            if e.get("pin"):
                pin_file = e.get("pin_file")
                if pin_file:
                    check(not os.path.exists(pin_file),
                          "message %d: nothing pinned before the user confirms" % (i + 1), pin_file)
                got = m.js(CONFIRM_PIN, [], timeout_ms=60000)
                if check("text" in got, "message %d: the user confirms the pin, the message opens" % (i + 1),
                         str(got)):
                    for want in e["pin"].get("pane", []):
                        check(want in got["text"], "message %d, pinned: the pane shows %r" % (i + 1, want),
                              got["text"][:400])
                    for bad in e["pin"].get("absent", []):
                        check(bad not in got["bodyHtml"],
                              "message %d, pinned: the pane holds no %r" % (i + 1, bad), got["text"][:400])
                if pin_file:
                    check(os.path.exists(pin_file), "message %d: the confirmation pinned the list" % (i + 1),
                          pin_file)
            if e.get("save"):
                got = m.js(SAVE_ATTACHMENT, [e["save"]], timeout_ms=30000)
                check(got == "pressed", "message %d: Save of %s pressed" % (i + 1, e["save"]), got)
                target = os.path.join(opt["downloads"], e["save"])
                for _ in range(150):
                    if os.path.exists(target) and os.path.getsize(target) and not os.path.exists(target + ".part"):
                        break
                    time.sleep(0.1)
                check(os.path.exists(target), "message %d: %s saved to the download folder" % (i + 1, e["save"]),
                      "nothing in %s: %s" % (opt["downloads"], os.listdir(opt["downloads"])))
            if i == int(opt.get("shot_index", "0")) and opt.get("shot"):
                m.screenshot(opt["shot"])
                check(True, "screenshot of the decrypted message: " + opt["shot"])
        # The settings page: the lists the keystore knows, and pasting keys.
        for case in json.loads(opt.get("options", "[]")):
            r = m.js(OPTIONS_PAGE, [case.get("paste", ""), bool(case.get("confirm"))], timeout_ms=60000)
            if not check("table" in r, "options page %s: opens" % case["name"], str(r)):
                continue
            for want in case.get("table", []):
                check(want in r["table"], "options page %s: lists %r" % (case["name"], want),
                      r["table"][:300])
            for want in case.get("prompt", []):
                res = r.get("result") or {}
                check(want in res.get("prompt", ""), "options page %s: asks with %r" % (case["name"], want),
                      str(res))
            if "result" in case:
                res = r.get("result") or {}
                check(case["result"] in res.get("text", "") and res.get("cls") == case["cls"],
                      "options page %s: says %r" % (case["name"], case["result"]), str(res))
        # Sending: list posts are sealed and sent by the add-on; what would
        # leave the list's encryption is refused or asked about.
        for name, (description, members) in json.loads(opt.get("ablists", "{}")).items():
            n = m.js(ADDRESS_BOOK_LIST, [name, description, members])
            check(n == len(members), "address book list %s holds %d addresses" % (name, len(members)), str(n))
        for case in json.loads(opt.get("sends", "[]")):
            got = m.js(COMPOSE_AND_SEND, [{
                "to": case.get("to", ""), "subject": case.get("subject", ""), "body": case["body"],
                "replyIndex": case.get("reply", -1), "replyType": case.get("reply_type", "ReplyToSender"),
                "quote": case.get("quote", ""), "dialog": case.get("dialog"),
                "saveDraft": case.get("save_draft")}], timeout_ms=90000)
            check(got.get("state") == case["want"], "send %s: %s" % (case["name"], case["want"]),
                  json.dumps(got)[:600])
            composed = got.get("composed") or {}
            for key, want in case.get("composed", {}).items():
                have = composed.get(key) or ""
                check(want in have, "send %s: the compose window's %s holds %r" % (case["name"], key, want),
                      repr(have[:300]))
            for key, bad in case.get("not_composed", {}).items():
                have = composed.get(key) or ""
                check(bad not in have, "send %s: the compose window's %s holds no %r" % (case["name"], key, bad),
                      repr(have[:300]))
            if case.get("save_draft"):
                check("unencrypted" in (got.get("draftDialog") or ""),
                      "send %s: Save asks before storing a draft unencrypted" % case["name"],
                      repr(got.get("draftDialog")))
            if case.get("dialog"):
                check(case.get("dialog_says", "") in (got.get("dialog") or ""),
                      "send %s: the add-on asks %r" % (case["name"], case.get("dialog_says")),
                      repr(got.get("dialog")))
    finally:
        m.quit()
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
