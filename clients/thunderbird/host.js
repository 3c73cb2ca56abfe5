/*
 * host.js - the add-on's side of the native messaging host
 * (`recrypt native-host`, docs/NATIVE-HOST.md). Every cryptographic step
 * happens there, with the user's recrypt keystore; this file only moves
 * requests and bytes: one connection, requests matched to responses by id,
 * messages uploaded and read back in chunks of the host's size.
 */
"use strict";

const RecryptHost = (() => {
  let port = null;
  let nextId = 1;
  const pending = new Map();
  let limits = null;
  /* Handles belong to one host process: when it ends, whoever keeps
   * handles must forget them (onReset). */
  const resetListeners = [];
  const TIMEOUT_MS = 120000;
  /* Requests that timed out: a late answer is dropped (and what it opened
   * closed), not taken as the connection going out of step. */
  const timedOut = new Set();

  function connect() {
    if (port) return port;
    port = browser.runtime.connectNative("recrypt");
    port.onMessage.addListener((msg) => {
      if (msg && timedOut.delete(msg.id)) {
        const h = msg.ok && msg.result && msg.result.handle;
        if (Number.isInteger(h)) call("close", { handle: h }).catch(() => {});
        return;
      }
      const p = msg && pending.get(msg.id);
      if (!p) {
        /* An answer to nothing we asked (id null: a frame the host could
         * not read): the connection cannot be trusted to stay in step. */
        if (port) port.disconnect();
        fail("the recrypt native host answered out of step");
        return;
      }
      pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new HostError(msg.error || { code: "internal", message: "the host failed" }));
    });
    port.onDisconnect.addListener((p) => {
      fail((p && p.error && p.error.message) || "the recrypt native host ended");
    });
    return port;
  }

  function fail(why) {
    for (const [, w] of pending) {
      clearTimeout(w.timer);
      w.reject(new HostError({ code: "host-unavailable", message: why }));
    }
    pending.clear();
    timedOut.clear();
    port = null;
    limits = null;
    for (const f of resetListeners) f();
  }

  class HostError extends Error {
    constructor(e) {
      super(e.message);
      this.code = e.code;
      /* "not-pinned": the list and the fingerprint its key is signed by */
      if (e.list) this.list = e.list;
      if (e.signer) this.signer = e.signer;
    }
  }

  function call(op, args = {}) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!pending.has(id)) return;
        pending.delete(id);
        timedOut.add(id);
        reject(new HostError({ code: "host-timeout", message: `the recrypt native host did not answer ${op}` }));
      }, TIMEOUT_MS);
      pending.set(id, { resolve, reject, timer });
      try {
        connect().postMessage(Object.assign({ id, op }, args));
      } catch (e) {
        pending.delete(id);
        reject(new HostError({ code: "host-unavailable", message: String(e) }));
      }
    });
  }

  async function hello() {
    if (!limits) {
      const r = await call("hello");
      limits = r.limits;
      return r;
    }
    return call("hello");
  }

  function toBase64(bytes, start, end) {
    let s = "";
    for (let i = start; i < end; i += 0x8000)
      s += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(end, i + 0x8000)));
    return btoa(s);
  }

  function fromBase64(b64) {
    const s = atob(b64);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  /* Upload bytes (a Uint8Array) in chunks, one at a time (measured: sending
   * them all at once was three times slower for a 10 MiB post); returns
   * the handle. */
  async function upload(bytes) {
    if (!limits) await hello();
    const chunk = limits.chunk;
    if (bytes.length > limits.message)
      throw new HostError({ code: "too-large", message: `the message is larger than ${limits.message} bytes` });
    let handle;
    try {
      for (let off = 0; off === 0 || off < bytes.length; off += chunk) {
        const args = { data: toBase64(bytes, off, Math.min(bytes.length, off + chunk)) };
        if (handle !== undefined) args.handle = handle;
        handle = (await call("upload", args)).handle;
        if (bytes.length === 0) break;
      }
    } catch (e) {
      if (handle !== undefined && e.code !== "host-unavailable") call("close", { handle }).catch(() => {});
      throw e;
    }
    return handle;
  }

  /* Read a whole handle back, exactly `size` bytes (a short or long read
   * is an error: a cut-off sealed post must not be sent); returns a
   * Uint8Array. */
  async function readAll(handle, size) {
    if (!limits) await hello();
    const chunk = limits.chunk;
    const out = new Uint8Array(size);
    let off = 0;
    for (;;) {
      const r = await call("read", { handle, offset: off, length: chunk });
      const part = fromBase64(r.data);
      if (off + part.length > size) throw new HostError({ code: "internal", message: "the host sent more than it announced" });
      out.set(part, off);
      off += part.length;
      if (r.eof || part.length === 0) break;
    }
    if (off !== size)
      throw new HostError({ code: "internal", message: `the host sent ${off} of the ${size} bytes it announced` });
    return out;
  }

  return { call, hello, upload, readAll, HostError, onReset: (f) => resetListeners.push(f) };
})();
