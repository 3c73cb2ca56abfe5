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
      ? `Pinned ${r.list}, epoch ${r.epoch}. Its list signing key is ${r.signer}: compare it with the fingerprint your list owner published.`
      : `Accepted ${r.list}, epoch ${r.epoch} (signed by the pinned key ${r.signer}).`;
    out.className = "ok";
    document.getElementById("key").value = "";
    refresh();
  } catch (e) {
    out.textContent = e.code === "refused"
      ? `Refused: ${e.message}. If the list really changed its signing key, your list owner must tell you so; recrypt never re-pins silently.`
      : `Not added: ${e.message}`;
    out.className = "error";
  }
});

refresh();
