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
 *
 * Sending (the guard, until the composer seals): Thunderbird would send a
 * message to an encrypted list in plaintext, and a reply to a list post
 * with the post quoted in plaintext. onBeforeSend refuses both and says
 * why: a list the keystore knows among the recipients, or a reply to (or
 * forward of) a recrypt post.
 */
"use strict";

const RECRYPT_CT = /^content-type:[ \t]*multipart\/encrypted[^\n]*application\/vnd\.recrypt\.control/im;

/* What was opened, by message id (a promise of the view), newest last; at
 * most KEEP_OPENED, and the host handles of those only (liveHandles). All
 * of it goes when the host process ends: its handle numbers mean nothing
 * to the next one. */
const KEEP_OPENED = 4;
const opening = new Map();
const liveHandles = new Set();
RecryptHost.onReset(() => {
  opening.clear();
  liveHandles.clear();
});

function headerBlock(bytes) {
  const n = Math.min(bytes.length, 262144);
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

/* Opening a post starts when it is selected, while Thunderbird is still
 * loading the sealed message into the pane (which for a large post takes
 * longer than opening it); the display script then waits for the result. */
function forget(id) {
  const p = opening.get(id);
  opening.delete(id);
  if (p) p.then((r) => {
    if (r && r.ok && liveHandles.delete(r.handle)) RecryptHost.call("close", { handle: r.handle }).catch(() => {});
  }, () => {});
}

function openMessage(id) {
  if (opening.has(id)) return opening.get(id);
  const p = (async () => {
    const t0 = performance.now();
    const bytes = await rawMessage(id);
    if (!isRecryptPost(bytes)) return null;
    const t1 = performance.now();
    let upload;
    try {
      upload = await RecryptHost.upload(bytes);
      const t2 = performance.now();
      const r = await RecryptHost.call("open", { handle: upload });
      if (opening.get(id) !== p) { // forgotten meanwhile (evicted, or the host restarted)
        RecryptHost.call("close", { handle: r.handle }).catch(() => {});
        return { ok: false, code: "internal", message: "select the message again" };
      }
      liveHandles.add(r.handle);
      const timing = { raw_ms: t1 - t0, upload_ms: t2 - t1, open_ms: performance.now() - t2 };
      return { ok: true, messageId: id, timing, ...r };
    } catch (e) {
      return { ok: false, code: e.code || "internal", message: e.message };
    } finally {
      if (upload !== undefined && opening.get(id) === p)
        RecryptHost.call("close", { handle: upload }).catch(() => {});
    }
  })();
  opening.set(id, p);
  while (opening.size > KEEP_OPENED) forget(opening.keys().next().value);
  /* A failure is not kept: selecting the message again tries again. */
  p.then((r) => { if ((!r || !r.ok) && opening.get(id) === p) opening.delete(id); },
         () => { if (opening.get(id) === p) opening.delete(id); });
  return p;
}

async function view(tabId) {
  const msg = await displayedMessage(tabId);
  return msg ? openMessage(msg.id) : null;
}

if (messenger.mailTabs && messenger.mailTabs.onSelectedMessagesChanged) {
  messenger.mailTabs.onSelectedMessagesChanged.addListener((tab, list) => {
    const msgs = (list && list.messages) || [];
    if (msgs.length === 1) openMessage(msgs[0].id).catch(() => {});
  });
}

/* An attachment of a message opened here: found by the message id (a
 * handle number alone could by now name another message's file). */
async function part(messageId, index) {
  const p = opening.get(messageId);
  const r = p && (await p);
  if (!r || !r.ok || !liveHandles.has(r.handle)) throw new Error("that message is no longer open: select it again");
  const d = await RecryptHost.call("part", { handle: r.handle, index });
  try {
    return await RecryptHost.readAll(d.handle, d.size);
  } finally {
    RecryptHost.call("close", { handle: d.handle }).catch(() => {});
  }
}

browser.runtime.onMessage.addListener((req, sender) => {
  if (!req || typeof req !== "object") return undefined;
  switch (req.cmd) {
    case "view":
      return view(sender.tab.id);
    case "part":
      return part(req.messageId, req.index).then(
        (bytes) => ({ ok: true, bytes }),
        (e) => ({ ok: false, message: e.message }));
    default:
      return undefined;
  }
});

/* ---- the send guard ---------------------------------------------------- */

/* Every recipient as a lower-case address; an entry that is not one (an
 * address book list, a group) as null: the guard cannot check it. */
async function recipientAddresses(details) {
  const out = [];
  for (const field of ["to", "cc", "bcc"]) {
    for (const r of [].concat(details[field] || [])) {
      if (typeof r !== "string") {
        out.push(null); // an address book contact or list by id
        continue;
      }
      let parsed = null;
      if (messenger.messengerUtilities && messenger.messengerUtilities.parseMailboxString)
        parsed = await messenger.messengerUtilities.parseMailboxString(r).catch(() => null);
      if (parsed && parsed.length) {
        for (const mb of parsed) {
          const e = mb.email || "";
          out.push(e.includes("@") ? e.trim().toLowerCase() : null);
        }
      } else {
        const m = r.match(/<([^<>]*)>\s*(\([^()]*\))?\s*$/);
        const e = (m ? m[1] : r.replace(/\([^()]*\)/g, "")).trim().toLowerCase();
        out.push(e.includes("@") ? e : null);
      }
    }
  }
  return out;
}

/* The lists the keystore knows; the last answer is kept, so that the guard
 * still knows them when the host cannot be reached. */
async function knownLists() {
  try {
    const r = await RecryptHost.call("lists");
    const lists = r.lists.map((l) => l.address.toLowerCase());
    await browser.storage.local.set({ knownLists: lists }).catch(() => {});
    return lists;
  } catch (e) {
    const kept = await browser.storage.local.get("knownLists").catch(() => ({}));
    return kept.knownLists || [];
  }
}

/* true, false, or null when the message cannot be read (the guard then
 * refuses: it cannot tell). */
async function isRecryptMessageId(id) {
  try {
    return isRecryptPost(await rawMessage(id));
  } catch (e) {
    return null;
  }
}

function tell(title, message) {
  return messenger.notifications.create({ type: "basic", title, message }).catch(() => {});
}

messenger.compose.onBeforeSend.addListener(async (tab, details) => {
  const lists = await knownLists();
  const rcpts = await recipientAddresses(details);
  const toList = rcpts.filter((a) => a !== null && lists.includes(a));
  if (lists.length && rcpts.includes(null)) {
    await tell("recrypt: not sent",
      "A recipient is an address book list or group, which recrypt cannot check against your " +
      "encrypted lists. Write the addresses out, so that no list gets this message in plaintext.");
    return { cancel: true };
  }
  if (toList.length) {
    await tell("recrypt: not sent",
      `This message is addressed to the encrypted list ${toList[0]}. Thunderbird would send it ` +
      "unencrypted (the list refuses that). Send list posts with 'recrypt sendmail' until this " +
      "add-on seals them itself.");
    return { cancel: true };
  }
  /* Only an answer or forward has a message it carries (a draft's related
   * message is the draft itself). */
  const state = await messenger.compose.getComposeDetails(tab.id).catch(() => details);
  const answers = ["reply", "forward", "redirect"].includes(state.type || details.type);
  const related = answers ? state.relatedMessageId || details.relatedMessageId : null;
  const isPost = related ? await isRecryptMessageId(related) : false;
  if (isPost === null) {
    await tell("recrypt: not sent",
      "This message answers or forwards another one that recrypt could not read, so it cannot " +
      "tell whether that was an encrypted list post. Nothing was sent.");
    return { cancel: true };
  }
  if (isPost) {
    await tell("recrypt: not sent",
      "This message answers or forwards an encrypted list post, and it would leave the list's " +
      "encryption: Thunderbird would send it, with what it quotes, unencrypted. Nothing was sent.");
    return { cancel: true };
  }
  return {};
});

messenger.messageDisplayScripts.register({
  js: [{ file: "display/display.js" }],
  css: [{ file: "display/display.css" }],
});
