/*
 * display.js - runs in the message pane of every displayed message. For a
 * recrypt post it replaces the pane (which shows only the sealed parts)
 * with the decrypted message: a verdict line, the real header fields, the
 * text, and the attachments with a Save button. Text is inserted as text
 * (never as markup); an HTML body is shown in a sandboxed frame with no
 * scripts and no remote content.
 */
"use strict";

(async () => {
  const view = await browser.runtime.sendMessage({ cmd: "view" });
  if (!view) return; // not a recrypt post: the pane stays as it is
  render(view);
})();

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function size(n) {
  return n < 1024 ? `${n} bytes` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`;
}

const REFUSALS = {
  "tampered": "This message was changed or cut short on its way. recrypt refused it: nothing of it is shown.",
  "not-for-this-device": "This message holds no key for this device. Is this device enrolled in the list (recrypt keygen, then the list owner adds it)?",
  "refused": "A trust rule refused this message.",
  "bad-signature": "The signature on this message does not verify, so it is not shown.",
  "malformed-message": "This is not a valid recrypt message.",
  "host-unavailable": "The recrypt program is not available to Thunderbird. Install the recrypt package (it registers the native messaging host).",
  "too-large": "This message is larger than recrypt opens.",
};

/* The list is not pinned on this device: show the list and the
 * fingerprint this message's key is signed by, and pin only when the user
 * confirms it against the owner's (issue 13: a message never pins). */
function pinPrompt(v) {
  const box = el("div", { class: "recrypt-verdict recrypt-refused recrypt-unpinned", id: "recrypt-verdict" },
    el("strong", {}, "Not opened: this list is not pinned on this device. "),
    "recrypt opens list mail only when you have confirmed the list's signing key. ",
    el("div", {}, "List: ", el("code", { id: "recrypt-pin-list" }, v.list)),
    el("div", {}, "This message's list key is signed by: ", el("code", { id: "recrypt-pin-signer" }, v.signer)),
    el("div", {}, "Compare this fingerprint with the one your list owner gave you when you were enrolled. " +
      "Pin it only if they are the same: someone who is not the list can send you mail too."));
  const ok = el("button", { type: "button", id: "recrypt-pin-confirm" }, "They are the same: pin and open");
  const note = el("div", { class: "recrypt-why", id: "recrypt-pin-note" });
  ok.addEventListener("click", async () => {
    ok.disabled = true;
    const r = await browser.runtime.sendMessage({ cmd: "pin", list: v.list, signer: v.signer });
    if (!r || !r.ok) {
      note.textContent = `Not pinned: ${r ? r.message : "no answer"}`;
      ok.disabled = false;
      return;
    }
    const again = await browser.runtime.sendMessage({ cmd: "view" });
    if (again) render(again);
  });
  box.append(ok, note);
  return box;
}

function verdictLine(v) {
  if (v.ok === false && v.code === "not-pinned" && v.list && v.signer) return pinPrompt(v);
  if (v.ok === false) {
    return el("div", { class: "recrypt-verdict recrypt-refused", id: "recrypt-verdict" },
      el("strong", {}, "Not opened. "), REFUSALS[v.code] || "recrypt could not open this message.",
      el("div", { class: "recrypt-why" }, `Reason: ${v.message}`));
  }
  const d = v.verdict;
  // FORMAT.md 9.6: "direct" never names a member; "path": "unverified" is
  // a list key of version 1, which names no service key to check.
  if (d.kind === "direct") {
    return el("div", { class: "recrypt-verdict recrypt-refused", id: "recrypt-verdict" },
      el("strong", {}, "Warning: this message did not come through the list. "),
      `It is encrypted to the key of ${d.list} (epoch ${d.epoch}), but it carries no valid ` +
      "signature of the list's service: anyone who knows the list key can write such a " +
      "message to you. Its sender and its signature, if any, prove nothing.");
  }
  const unverified = d.path === "unverified"
    ? " The list key is of an older version: whether this copy came through the list cannot be checked."
    : "";
  if (d.kind === "signed") {
    return el("div", { class: "recrypt-verdict recrypt-signed", id: "recrypt-verdict" },
      el("strong", {}, `Signed by ${d.member}`),
      ` (device ${d.device}). Encrypted end to end through the list ${d.list} (key epoch ${d.epoch}).` +
      unverified);
  }
  return el("div", { class: "recrypt-verdict recrypt-unsigned", id: "recrypt-verdict" },
    el("strong", {}, "Unsigned. "),
    `Encrypted end to end through the list ${d.list} (key epoch ${d.epoch}), but not signed: ` +
    "the From line is not proven. The sender's device had no membership certificate yet." +
    unverified);
}

function headerTable(h) {
  const t = el("table", { class: "recrypt-headers" });
  for (const [label, key] of [["Subject", "subject"], ["From", "from"], ["To", "to"], ["Cc", "cc"], ["Date", "date"]]) {
    if (h[key]) t.append(el("tr", {}, el("th", {}, label), el("td", { id: `recrypt-${key}` }, h[key])));
  }
  return t;
}

function htmlFrame(html) {
  const csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";
  const f = el("iframe", { class: "recrypt-html", sandbox: "", referrerpolicy: "no-referrer" });
  /* No scripts, nothing loaded; links open nothing (a new window would need
   * allow-popups, which the sandbox does not give). */
  f.srcdoc = `<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="${csp}">` +
    `<base target="_blank">` + html;
  return f;
}

/* Saved by the background page, as Thunderbird saves attachments (to the
 * download folder, or where the user picks): a download link in the pane
 * is not followed by Thunderbird. */
async function save(view, p, button) {
  button.disabled = true;
  const r = await browser.runtime.sendMessage({
    cmd: "save", messageId: view.messageId, index: p.index, name: p.name || `part-${p.index}`,
  });
  button.disabled = false;
  const note = button.parentNode.querySelector(".recrypt-saved") || el("span", { class: "recrypt-saved" });
  note.textContent = !r.ok ? ` Not saved: ${r.message}` : r.path ? ` Saved to ${r.path}` : "";
  button.after(note);
}

function render(view) {
  const root = el("div", { id: "recrypt-view" });
  root.append(verdictLine(view));
  if (view.ok) {
    if (view.duplicate) {
      root.append(el("div", { class: "recrypt-verdict recrypt-duplicate", id: "recrypt-duplicate" },
        el("strong", {}, "A second copy. "),
        "You already have this post: the list server sent it again after an interruption. " +
        "This copy is the same message; you can delete it."));
    }
    if (view.first_use) {
      root.append(el("div", { class: "recrypt-verdict recrypt-pin", id: "recrypt-first-use" },
        el("strong", {}, "First message of this list on this device. "),
        `It is signed by the list signing key you pinned: ${view.signer}.`));
    }
    root.append(headerTable(view.headers));
    const inlineText = (p) => typeof p.text === "string" && p.disposition !== "attachment";
    const texts = view.parts.filter(inlineText);
    const plain = texts.filter((p) => p.type === "text/plain");
    const body = el("div", { class: "recrypt-body", id: "recrypt-body" });
    if (plain.length) {
      for (const p of plain) body.append(el("pre", {}, p.text));
    } else {
      for (const p of texts.filter((p) => p.type === "text/html")) body.append(htmlFrame(p.text));
    }
    root.append(body);
    const shown = plain.length ? plain : texts.filter((p) => p.type === "text/html");
    /* Attachments: all but the text shown and its inline HTML alternative. */
    const others = view.parts.filter((p) => !shown.includes(p) && !(inlineText(p) && p.type === "text/html"));
    if (others.length) {
      const list = el("ul", { class: "recrypt-attachments", id: "recrypt-attachments" });
      for (const p of others) {
        const b = el("button", { type: "button" }, "Save");
        b.addEventListener("click", () => save(view, p, b));
        list.append(el("li", { "data-index": p.index }, `${p.name || p.type} (${p.type}, ${size(p.size)}) `, b));
      }
      root.append(el("h4", {}, "Attachments"), list);
    }
  }
  if (view.timing) root.dataset.timing = JSON.stringify(view.timing); // for benchmarks
  document.body.replaceChildren(root);
}
