/*
 * options.js - the add-on's settings page: the lists this device's recrypt
 * keystore knows (list signing key fingerprint, when it was pinned, the
 * epochs of its list key, whether this device holds its membership
 * certificate), and adding a list key by pasting its line. Everything is
 * asked of the native host; nothing is stored here.
 */
"use strict";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function date(unix) {
  return unix ? new Date(unix * 1000).toLocaleString() : "(not recorded)";
}

async function refresh() {
  const body = document.querySelector("#lists tbody");
  body.replaceChildren();
  try {
    const hello = await RecryptHost.hello();
    document.getElementById("device").textContent = hello.device
      ? `This device's signing key: ${hello.device} (keystore ${hello.keystore}).`
      : "This device has no recrypt key yet: run 'recrypt keygen' and send the line it prints to your list owner.";
    const { lists } = await RecryptHost.call("lists");
    document.getElementById("empty").hidden = lists.length > 0;
    for (const l of lists) {
      const tr = el("tr");
      tr.append(el("td", l.address), el("td", l.signer, "fp"), el("td", date(l.pinned)));
      const eps = el("td");
      for (const e of l.epochs) {
        const until = e.valid_until ? ` until ${date(e.valid_until)}` : "";
        eps.append(el("div", `epoch ${e.epoch}: ${e.state}, from ${date(e.valid_from)}${until}` +
          (e.certificate ? "; this device holds its membership certificate" : "")));
      }
      tr.append(eps);
      body.append(tr);
    }
  } catch (e) {
    document.getElementById("device").replaceChildren(el("span", e.code === "host-unavailable"
      ? `The recrypt program is not available to Thunderbird (${e.message}). Install the recrypt package.`
      : `recrypt could not list the lists: ${e.message}`, "error"));
  }
}

document.getElementById("pin").addEventListener("click", async () => {
  const out = document.getElementById("pin-result");
  const list = document.getElementById("pin-list").value.trim();
  const signer = document.getElementById("pin-signer").value.trim();
  out.className = "";
  try {
    const r = await RecryptHost.call("pin", { list, signer });
    out.textContent = r.changed ? `Pinned ${r.list} to ${r.signer}.` : `${r.list} is already pinned to ${r.signer}.`;
    out.className = "ok";
    refresh();
  } catch (e) {
    out.textContent = `Not pinned: ${e.message}`;
    out.className = "error";
  }
});

/* Import of a list not pinned yet: the fingerprint is shown, and the key is
 * pinned only when the user confirms it against the owner's. */
function confirmImport(out, key, e) {
  out.replaceChildren(
    el("span", `${e.list} is not pinned on this device. This list key is signed by `),
    el("code", e.signer, "fp"),
    el("span", ". Compare it with the fingerprint your list owner gave you. "));
  const b = el("button", "They are the same: pin and add");
  b.type = "button";
  b.addEventListener("click", async () => {
    try {
      const r = await RecryptHost.call("import", { key, signer: e.signer });
      out.textContent = `Pinned ${r.list} to ${r.signer}; epoch ${r.epoch} added.`;
      out.className = "ok";
      document.getElementById("key").value = "";
      refresh();
    } catch (e2) {
      out.textContent = `Not added: ${e2.message}`;
      out.className = "error";
    }
  });
  out.append(b);
}

document.getElementById("import").addEventListener("click", async () => {
  const out = document.getElementById("result");
  const key = document.getElementById("key").value.trim();
  out.className = "";
  out.textContent = "";
  if (!key.startsWith("recrypt1.listkey.")) {
    out.textContent = "That is not a list key line (it starts with recrypt1.listkey.).";
    out.className = "error";
    return;
  }
  try {
    const r = await RecryptHost.call("import", { key });
    out.textContent = r.first_use
      ? `Added ${r.list}, epoch ${r.epoch}, signed by the key you pinned (${r.signer}).`
      : `Accepted ${r.list}, epoch ${r.epoch} (signed by the pinned key ${r.signer}).`;
    out.className = "ok";
    document.getElementById("key").value = "";
    refresh();
  } catch (e) {
    if (e.code === "not-pinned" && e.list && e.signer) return confirmImport(out, key, e);
    out.textContent = e.code === "refused"
      ? `Refused: ${e.message}. If the list really changed its signing key, your list owner must tell you so; recrypt never re-pins silently.`
      : `Not added: ${e.message}`;
    out.className = "error";
  }
});

refresh();
