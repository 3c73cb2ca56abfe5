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
 * Writing: a reply to (or forward of) a list post gets the decrypted
 * post quoted and its real Subject when the compose window opens; a reply
 * to the list is addressed to the list alone. When the user sends a
 * message addressed to a list the keystore knows, onBeforeSend stops
 * Thunderbird's own (plaintext) sending; the native host builds the
 * message from what the composer holds ("compose"), seals it ("seal"),
 * and the recryptSend Experiment (experiments/implementation.js) sends
 * the sealed message through the identity's SMTP server and puts it in
 * Sent. Nothing else leaves: a list with other recipients, a list in
 * Bcc, an address book list, or anything the host cannot seal is refused
 * with the reason and the compose window stays open. A message that
 * carries a list post to people outside the list (a reply to the poster
 * alone, a forward) goes only after the user explicitly chooses to send
 * it unencrypted.
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
      return { ok: false, code: e.code || "internal", message: e.message, list: e.list, signer: e.signer };
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
    case "pin":
      /* Only from the user's click in the pane, after comparing the
       * fingerprint shown with the owner's: never on arrival. */
      return RecryptHost.call("pin", { list: req.list, signer: req.signer })
        .then((r) => ({ ok: true, ...r }), (e) => ({ ok: false, code: e.code, message: e.message }));
    case "save":
      return part(req.messageId, req.index)
        .then((bytes) => messenger.recryptSend.saveAttachment(new File([bytes], req.name), req.name))
        .then((path) => ({ ok: true, path }), (e) => ({ ok: false, message: e.message }));
    default:
      return undefined;
  }
});

/* ---- writing ------------------------------------------------------------ */

/* Every recipient of the given fields as a lower-case address; an entry
 * that is not one (an address book list, a group) as null: it cannot be
 * checked against the lists. */
async function recipientAddresses(details, fields = ["to", "cc", "bcc"]) {
  const out = [];
  for (const field of fields) {
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

/* The lists the keystore knows; the last answer is kept, so that a message
 * to a list is still recognised when the host cannot be reached. */
async function knownLists() {
  let lists;
  try {
    const r = await RecryptHost.call("lists");
    lists = r.lists.map((l) => l.address.toLowerCase());
    await browser.storage.local.set({ knownLists: lists }).catch(() => {});
  } catch (e) {
    const kept = await browser.storage.local.get("knownLists").catch(() => ({}));
    lists = kept.knownLists;
    if (!lists) {
      await tell("recrypt: lists unknown",
        `The recrypt program could not be reached (${e.message}), and the add-on has not yet ` +
        "learnt your lists from it: it cannot tell whether this message goes to an encrypted list.");
      lists = [];
    }
  }
  messenger.recryptSend.setLists(lists).catch(() => {});
  return lists;
}

/* true, false, or null when the message cannot be read. */
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

/* What the compose windows that answer a list post answer, by tab id. */
const answering = new Map();
messenger.tabs.onRemoved.addListener((tabId) => answering.delete(tabId));

function quoteText(text) {
  return text.replace(/\r\n/g, "\n").replace(/\n+$/, "").split("\n")
    .map((l) => (l.startsWith(">") ? ">" + l : "> " + l)).join("\n");
}

function escapeHtml(s) {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

/* The post's text for a quote: its first text/plain part, else its first
 * HTML part as text (parsed inert: nothing is loaded or run). */
function postText(post) {
  const plain = post.parts.find((p) => p.type === "text/plain" && typeof p.text === "string");
  if (plain) return plain.text;
  const html = post.parts.find((p) => p.type === "text/html" && typeof p.text === "string");
  if (html) return new DOMParser().parseFromString(html.text, "text/html").body.textContent || "";
  return "";
}

function withPrefix(prefix, subject) {
  const s = subject || "";
  return new RegExp("^" + prefix + ":", "i").test(s) ? s : `${prefix}: ${s}`;
}

/* A compose window that answers or forwards a list post: the decrypted
 * post quoted (Thunderbird quoted only the sealed parts), its real Subject,
 * In-Reply-To and References for the sealed reply, and a reply to the
 * list addressed to the list alone (the poster, a member, gets it there). */
async function prepareCompose(tab) {
  const d = await messenger.compose.getComposeDetails(tab.id);
  await knownLists();
  await messenger.recryptSend.guardDrafts(tab.id, false);
  if (!["reply", "forward"].includes(d.type) || d.relatedMessageId === undefined) return;
  const post = await openMessage(d.relatedMessageId);
  if (!post) return; // not a list post
  await messenger.recryptSend.guardDrafts(tab.id, true);
  const related = await messenger.messages.get(d.relatedMessageId).catch(() => null);
  const ctx = { relatedMessageId: d.relatedMessageId, type: d.type, opened: post.ok };
  answering.set(tab.id, ctx);
  if (!post.ok) {
    await tell("recrypt: nothing quoted",
      `The list post this answers could not be opened, so nothing of it is quoted: ${post.message}`);
    return;
  }
  const h = post.headers;
  const id = related && related.headerMessageId ? `<${related.headerMessageId}>` : h.message_id;
  if (d.type === "reply" && id) {
    /* The References of the post that are message ids (the host refuses
     * anything else), the newest 20, and the post's own. */
    const MSGID = /^<[^<>\s@]+@[^<>\s@]+>$/;
    const refs = (h.references || "").split(/\s+/).filter((r) => MSGID.test(r)).slice(-20);
    ctx.inReplyTo = id;
    ctx.references = [...refs, id].join(" ");
  }
  const text = postText(post);
  const when = h.date ? new Date(h.date) : null;
  const who = h.from || "the poster";
  const changes = {};
  let plain, html;
  if (d.type === "reply") {
    changes.subject = withPrefix("Re", h.subject);
    const attribution = when && !isNaN(when) ? `On ${when.toLocaleString()}, ${who} wrote:` : `${who} wrote:`;
    plain = `${attribution}\n${quoteText(text)}\n\n`;
    html = `<div class="moz-cite-prefix">${escapeHtml(attribution)}<br></div>` +
      `<blockquote type="cite"><pre class="moz-quote-pre" wrap="">${escapeHtml(text)}</pre></blockquote><p><br></p>`;
    const list = post.verdict.list.toLowerCase();
    const rcpts = await recipientAddresses(d);
    if (rcpts.includes(list)) {
      changes.to = [list];
      changes.cc = [];
      changes.bcc = [];
    }
  } else {
    changes.subject = withPrefix("Fwd", h.subject);
    const lines = ["-------- Forwarded Message --------", `Subject: ${h.subject || ""}`,
      `Date: ${h.date || ""}`, `From: ${who}`, `To: ${h.to || ""}`, "", text];
    plain = `\n\n${lines.join("\n")}\n`;
    html = `<p><br></p><div class="moz-forward-container">${lines.slice(0, 5).map(escapeHtml).join("<br>")}` +
      `<br><br><pre class="moz-quote-pre" wrap="">${escapeHtml(text)}</pre></div>`;
  }
  if (d.isPlainText) changes.plainTextBody = plain;
  else changes.body = html;
  await messenger.compose.setComposeDetails(tab.id, changes);
  ctx.prepared = true;
}

messenger.tabs.onCreated.addListener((tab) => {
  if (tab.type !== "messageCompose") return;
  prepareCompose(tab).catch((e) => console.warn("recrypt: preparing the compose window:", e));
});

/* Compose tabs whose message the add-on sent: a second Send of the same
 * window (before it closes) sends nothing. */
const sentTabs = new Set();
messenger.tabs.onRemoved.addListener((tabId) => sentTabs.delete(tabId));

async function closeHandles(handles) {
  for (const h of handles) await RecryptHost.call("close", { handle: h }).catch(() => {});
}

/* Build, seal and send a list post from what the compose window holds.
 * Throws (with the host's or Thunderbird's reason) when anything fails:
 * then nothing went. */
async function sealAndSend(tab, details, list) {
  const ctx = answering.get(tab.id) || {};
  const handles = [];
  try {
    const attachments = [];
    for (const a of await messenger.compose.listAttachments(tab.id)) {
      const f = await messenger.compose.getAttachmentFile(a.id);
      const handle = await RecryptHost.upload(new Uint8Array(await f.arrayBuffer()));
      handles.push(handle);
      attachments.push({ handle, name: a.name || f.name || "attachment", type: f.type || "application/octet-stream" });
    }
    const req = {
      from: details.from,
      to: [].concat(details.to || []),
      cc: [].concat(details.cc || []),
      subject: details.subject || "",
      text: details.plainTextBody || "",
      attachments,
    };
    if (!details.isPlainText && details.deliveryFormat !== "plaintext" && details.body) req.html = details.body;
    if (ctx.inReplyTo) {
      req.in_reply_to = ctx.inReplyTo;
      req.references = ctx.references;
    }
    /* One request is one frame of the host's (1 MiB, texts escaped):
     * a longer text cannot be sealed this way. */
    if (new TextEncoder().encode(JSON.stringify(req)).length > 1040000)
      throw new Error("The text of this message is too long to be sealed (over about 1 MB): " +
        "put the long part in an attachment.");
    const inner = await RecryptHost.call("compose", req);
    handles.push(inner.handle);
    const sealed = await RecryptHost.call("seal", { to: list, handle: inner.handle });
    handles.push(sealed.handle);
    const bytes = await RecryptHost.readAll(sealed.handle, sealed.size);
    const file = new File([bytes], "sealed.eml", { type: "message/rfc822" });
    await messenger.recryptSend.sendSealed(tab.id, {
      file,
      identityId: details.identityId,
      from: details.from,
      to: [list],
      messageId: sealed.message_id || inner.message_id,
      relatedMessageId: ctx.relatedMessageId,
      replied: ctx.type === "reply",
    });
    return sealed;
  } finally {
    await closeHandles(handles);
  }
}

messenger.compose.onBeforeSend.addListener(async (tab, details) => {
  if (sentTabs.has(tab.id)) return { cancel: true }; // it went already
  const lists = await knownLists();
  /* The recipients as written, and as Thunderbird will send to them (an
   * address book list expanded: it may hold a list's address). */
  let expanded;
  try {
    expanded = await messenger.recryptSend.expandedRecipients(tab.id);
  } catch (e) {
    await tell("recrypt: not sent", `The recipients could not be checked (${e.message}). Nothing was sent.`);
    return { cancel: true };
  }
  /* A recipient that is not an address (null) counts as written only when
   * expanding did not make it one. */
  const rcpts = [...(await recipientAddresses(details)).filter(Boolean), ...await recipientAddresses(expanded)];
  const visible = [...await recipientAddresses(details, ["to", "cc"]),
    ...await recipientAddresses(expanded, ["to", "cc"])];
  const toList = [...new Set(visible.filter((a) => a !== null && lists.includes(a)))];
  const bccList = [...await recipientAddresses(details, ["bcc"]), ...await recipientAddresses(expanded, ["bcc"])]
    .filter((a) => a !== null && lists.includes(a));
  if (lists.length && rcpts.includes(null)) {
    await tell("recrypt: not sent",
      "A recipient is an address book list or group, which recrypt cannot check against your " +
      "encrypted lists. Write the addresses out, so that no list gets this message in plaintext.");
    return { cancel: true };
  }
  if (bccList.length) {
    await tell("recrypt: not sent",
      `The encrypted list ${bccList[0]} is named in Bcc. A list post goes to the list in To or Cc, ` +
      "so that it can be sealed for the list; nothing was sent.");
    return { cancel: true };
  }
  if (toList.length) {
    const others = [...new Set(rcpts.filter((a) => !toList.includes(a)))];
    if (toList.length > 1 || others.length) {
      await tell("recrypt: not sent",
        `This message goes to the encrypted list ${toList[0]} and also to ` +
        `${toList.length > 1 ? toList[1] : others[0]}. A list post is sealed for the list and goes ` +
        "to the list alone: send it to the list and the others separately. Nothing was sent.");
      return { cancel: true };
    }
    try {
      await sealAndSend(tab, details, toList[0]);
      sentTabs.add(tab.id);
      /* Thunderbird's own send is cancelled below; the window holds a
       * message that went, so it closes without asking to save it. */
      setTimeout(() => messenger.recryptSend.closeCompose(tab.id).catch(() => {}), 300);
    } catch (e) {
      await tell("recrypt: not sent",
        `The message to the encrypted list ${toList[0]} could not be sealed and sent: ${e.message} ` +
        "Nothing was sent; the message is still in its window.");
    }
    return { cancel: true };
  }
  /* Not to a list: does it carry a list post (a reply, a forward)? Only an
   * answer or forward has a message it carries (a draft's related
   * message is the draft itself). */
  const state = await messenger.compose.getComposeDetails(tab.id).catch(() => details);
  const answers = ["reply", "forward", "redirect"].includes(state.type || details.type);
  const related = answers ? state.relatedMessageId ?? details.relatedMessageId : undefined;
  const isPost = related !== undefined ? await isRecryptMessageId(related) : false;
  if (isPost === null) {
    await tell("recrypt: not sent",
      "This message answers or forwards another one that recrypt could not read, so it cannot " +
      "tell whether that was an encrypted list post. Nothing was sent.");
    return { cancel: true };
  }
  if (isPost) {
    const who = rcpts.filter(Boolean).slice(0, 3).join(", ") || "its recipients";
    const ok = await messenger.recryptSend.confirm(tab.id, "recrypt: leave the list's encryption?",
      `This message answers or forwards a post of an encrypted list, and it goes to ${who}, ` +
      "outside the list. It would be sent unencrypted, with everything it quotes.\n\n" +
      "To keep it encrypted, reply to the list instead (Reply to List).",
      "Send unencrypted", "Don't send").catch(() => false);
    if (!ok) return { cancel: true };
  }
  return {};
});

messenger.messageDisplayScripts.register({
  js: [{ file: "display/display.js" }],
  css: [{ file: "display/display.css" }],
});
