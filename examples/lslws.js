// lslws.js: a WebSocket to an LSL script's URL that falls back to
// server-sent events (EventSource down, fetch POST up; SPEC §14) when the
// upgrade fails, e.g. behind a proxy that refuses it. Same surface as the
// browser's WebSocket, so adding or removing the wrapper changes nothing
// else: readyState, url, onopen, onmessage(e.data), onerror,
// onclose(e.code, e.reason, e.wasClean), send(text), close(code, reason),
// plus `transport` ("websocket" or "sse").
//
//   const ws = new LslSocket("/lslws/<cap>/", { json: false, fallback: "auto" });
//
// - The URL may be relative: it is resolved against the page, ws:/wss: from
//   the page's scheme (and http:/https: for the fallback).
// - json: true sends JSON.stringify(value) and gives onmessage e.data parsed.
// - fallback: "auto" (WebSocket, then SSE if it never opened), "never",
//   or "always" (SSE only; the demo page's switch).
(function (global) {
  "use strict";

  const CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;

  function resolve(url, scheme) {
    const u = new URL(url, global.location.href);
    const secure = u.protocol === "https:" || u.protocol === "wss:";
    u.protocol = scheme === "ws" ? (secure ? "wss:" : "ws:") : (secure ? "https:" : "http:");
    return u.href;
  }

  class LslSocket {
    constructor(url, options) {
      const o = options || {};
      this.json = !!o.json;
      this.fallback = o.fallback || "auto";
      this.url = resolve(url, "ws");
      this.readyState = CONNECTING;
      this.transport = null;
      this.onopen = this.onmessage = this.onerror = this.onclose = null;
      if (this.fallback === "always") this._sse();
      else this._websocket();
    }

    _emit(name, event) {
      const handler = this["on" + name];
      if (typeof handler === "function") handler.call(this, event);
    }

    _deliver(text) {
      let data = text;
      if (this.json) {
        try { data = JSON.parse(text); } catch (e) { this._emit("error", { type: "error", error: e }); return; }
      }
      this._emit("message", { type: "message", data: data });
    }

    _closed(code, reason, wasClean) {
      if (this.readyState === CLOSED) return;
      this.readyState = CLOSED;
      this._emit("close", { type: "close", code: code, reason: reason, wasClean: wasClean });
    }

    _websocket() {
      this.transport = "websocket";
      let opened = false;
      const ws = new WebSocket(this.url);
      this._ws = ws;
      ws.onopen = () => { opened = true; this.readyState = OPEN; this._emit("open", { type: "open" }); };
      ws.onmessage = (e) => this._deliver(e.data);
      ws.onerror = () => { if (opened) this._emit("error", { type: "error" }); };
      ws.onclose = (e) => {
        if (!opened && this.fallback === "auto" && this.readyState === CONNECTING) {
          this._sse(); // the upgrade failed: try the event stream
          return;
        }
        this._closed(e.code, e.reason, e.wasClean);
      };
    }

    _sse() {
      this.transport = "sse";
      this._ws = null;
      this._queue = Promise.resolve();
      const es = new EventSource(resolve(this.url, "http"));
      this._es = es;
      es.addEventListener("session", (e) => {
        const first = JSON.parse(e.data);
        this._send = new URL(first.send, resolve(this.url, "http")).href;
        if (this.readyState === CONNECTING) {
          this.readyState = OPEN;
          this._emit("open", { type: "open" });
        }
      });
      es.onmessage = (e) => this._deliver(JSON.parse(e.data));
      es.addEventListener("close", (e) => {
        const c = JSON.parse(e.data);
        es.close();
        this._closed(c.code, c.reason, true);
      });
      es.onerror = () => {
        // EventSource reconnects by itself (resuming with Last-Event-ID);
        // CLOSED means it gave up (e.g. a 204 or a non-200 answer).
        if (es.readyState === EventSource.CLOSED) this._closed(1006, "", false);
      };
    }

    send(data) {
      if (this.readyState !== OPEN) throw new Error("LslSocket is not open");
      const text = this.json ? JSON.stringify(data) : String(data);
      if (this._ws) { this._ws.send(text); return; }
      // One POST per message, in order: each waits for the one before.
      const url = this._send;
      this._queue = this._queue.then(() => fetch(url, {
        method: "POST", body: text, cache: "no-store",
        headers: { "Content-Type": "text/plain; charset=utf-8" },
      })).then((r) => {
        if (r.status !== 204) this._emit("error", { type: "error", status: r.status });
      }, (e) => this._emit("error", { type: "error", error: e }));
    }

    close(code, reason) {
      if (this.readyState >= CLOSING) return;
      this.readyState = CLOSING;
      if (this._ws) { this._ws.close(code, reason); return; }
      if (this._es) this._es.close();
      // The server ends the session (1000) on a DELETE of the send URL.
      if (this._send) fetch(this._send, { method: "DELETE" }).catch(() => {});
      this._closed(code || 1000, reason || "", true);
    }
  }

  LslSocket.CONNECTING = CONNECTING;
  LslSocket.OPEN = OPEN;
  LslSocket.CLOSING = CLOSING;
  LslSocket.CLOSED = CLOSED;
  global.LslSocket = LslSocket;
})(typeof window !== "undefined" ? window : globalThis);
