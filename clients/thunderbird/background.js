/*
 * background.js - the add-on's background page: shows recrypt posts
 * decrypted in the message pane (through the display script), with
 * every cryptographic step in the native host (host.js).
 *
 * Reading: when a message is displayed, the display script asks "view";
 * for a recrypt post (multipart/encrypted, application/vnd.recrypt.control)
 * the raw message goes to the host, which opens it with the recrypt
 * keystore: nothing decrypted comes back unless the whole message
 * authenticated. The description (verdict, header fields, text parts)
 * goes to the display script; attachments are fetched on demand ("part").
 * The message list keeps the outer Subject: the WebExtension API cannot
 * show another one without storing the plaintext in the folder.
 */
"use strict";

const RECRYPT_CT = /^content-type:[ \t]*multipart\/encrypted[^]*?application\/vnd\.recrypt\.control/im;

/* Handles of opened messages, newest last; older ones are closed. */
const opened = [];
const KEEP_OPENED = 4;

function headerBlock(bytes) {
  const n = Math.min(bytes.length, 65536);
  let s = "";
  for (let i = 0; i < n; i += 0x8000)
    s += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(n, i + 0x8000)));
  const end = s.search(/\r?\n\r?\n/);
  return end < 0 ? s : s.slice(0, end);
}

/* Unfold a header block so that a folded Content-Type reads as one line. */
function isRecryptPost(bytes) {
  return RECRYPT_CT.test(headerBlock(bytes).replace(/\r?\n[ \t]+/g, " "));
}

async function rawMessage(id) {
  const file = await messenger.messages.getRaw(id, { data_format: "File" });
  return new Uint8Array(await file.arrayBuffer());
}

async function displayedMessage(tabId) {
  if (messenger.messageDisplay.getDisplayedMessages) {
    const r = await messenger.messageDisplay.getDisplayedMessages(tabId);
    const list = Array.isArray(r) ? r : (r && r.messages) || [];
    return list.length === 1 ? list[0] : null;
  }
  return messenger.messageDisplay.getDisplayedMessage(tabId);
}

function remember(handle) {
  opened.push(handle);
  while (opened.length > KEEP_OPENED) {
    const old = opened.shift();
    RecryptHost.call("close", { handle: old }).catch(() => {});
  }
}

async function view(tabId) {
  const msg = await displayedMessage(tabId);
  if (!msg) return null;
  const bytes = await rawMessage(msg.id);
  if (!isRecryptPost(bytes)) return null;
  let upload;
  try {
    upload = await RecryptHost.upload(bytes);
    const r = await RecryptHost.call("open", { handle: upload });
    remember(r.handle);
    return { ok: true, messageId: msg.id, ...r };
  } catch (e) {
    return { ok: false, code: e.code || "internal", message: e.message };
  } finally {
    if (upload !== undefined) RecryptHost.call("close", { handle: upload }).catch(() => {});
  }
}

async function part(handle, index) {
  if (!opened.includes(handle)) throw new Error("that message is no longer open: select it again");
  const p = await RecryptHost.call("part", { handle, index });
  try {
    return await RecryptHost.readAll(p.handle, p.size);
  } finally {
    RecryptHost.call("close", { handle: p.handle }).catch(() => {});
  }
}

browser.runtime.onMessage.addListener((req, sender) => {
  if (!req || typeof req !== "object") return undefined;
  switch (req.cmd) {
    case "view":
      return view(sender.tab.id);
    case "part":
      return part(req.handle, req.index).then(
        (bytes) => ({ ok: true, bytes }),
        (e) => ({ ok: false, message: e.message }));
    default:
      return undefined;
  }
});

messenger.messageDisplayScripts.register({
  js: [{ file: "display/display.js" }],
  css: [{ file: "display/display.css" }],
});
