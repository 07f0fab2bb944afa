// The Daebus gateway's client for kiosk pages: an ES module, no build step.
//
//   import { call, subscribe } from "/daebus.js";
//
//   const status = await call("my_service", "get_status", { detail_level: "full" },
//                             { timeout: 10, onProgress: (step) => console.log(step) });
//   const live = subscribe(["sensors.temp"], (channel, data) => show(data),
//                          { onStatus: (state) => banner(state) });
//   live.close();
//
// call() resolves to the action's result or rejects with a DaebusError whose
// `code` is the gateway's error code (or one of CLIENT_CODES) and `status`
// the HTTP status (0 when no answer came). A call whose `signal` aborts is
// cancelled on the service too: the aborted fetch closes its connection,
// which the gateway watches. subscribe() keeps an event stream
// open, reconnects with backoff, resumes after the last event it received
// (the gateway replays what was missed) and reports "live", "reconnecting"
// or "offline". A page served by another host passes the gateway's address
// and token to createClient() or configure().

// Codes the client gives when the gateway's own answer is missing.
export const CLIENT_CODES = Object.freeze({
  offline: "the gateway could not be reached",
  aborted: "the call was aborted by its signal",
  timeout: "no answer within the timeout",
  interrupted: "the answer stream ended before the result",
  bad_response: "the answer is not the gateway's (a proxy's error page?)",
});

export class DaebusError extends Error {
  constructor(message, { code, status = 0, details, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = "DaebusError";
    this.code = code;
    this.status = status;
    if (details !== undefined) this.details = details;
  }
}

// The error for an HTTP answer that is not a success: the gateway's
// {"error": {"code", "message"}} when it is one, else bad_response.
export function errorFromAnswer(status, body) {
  const error = body && typeof body === "object" ? body.error : null;
  if (error && typeof error.code === "string") {
    return new DaebusError(String(error.message || error.code), {
      code: error.code, status, details: error.details,
    });
  }
  return new DaebusError(`HTTP ${status}: ${CLIENT_CODES.bad_response}`, { code: "bad_response", status });
}

// Milliseconds before reconnection attempt `attempt` (1, 2, ...): doubling
// from `base` up to `max`, spread by `jitter` so that many kiosks that lost
// the same gateway don't come back in step.
export function backoffDelay(attempt, { base = 250, max = 5000, jitter = 0.3, random = Math.random } = {}) {
  const plain = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  return Math.round(plain * (1 - jitter + 2 * jitter * random()));
}

// Milliseconds to wait when the gateway said when to come back (`event: busy`
// during a reconnect storm, or a 503's Retry-After): that time, stretched by up
// to `jitter` so that pages told the same time still come back apart.
export function hintedDelay(ms, { jitter = 0.2, random = Math.random } = {}) {
  return Math.round(Math.max(0, ms) * (1 + jitter * random()));
}

// Server-Sent Events parsed from text chunks: feed(text) returns the
// complete events so far as {event, data, id}.
export function sseParser() {
  let buffer = "";
  return (text) => {
    buffer += text.replace(/\r\n?/g, "\n");
    const events = [];
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { event: "message", data: null, id: null };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") event.data = event.data === null ? value : event.data + "\n" + value;
        else if (field === "event") event.event = value;
        else if (field === "id") event.id = value;
      }
      if (event.data !== null) events.push(event);
    }
    return events;
  };
}

const GRACE_MS = 5000;          // past the call's timeout, for the gateway's own 504
const DEFAULT_CALL_S = 30;      // the gateway's default cap when no timeout is given

function reportCallbackError(err) {
  // A bug in the page's callback must not lose the call's result.
  setTimeout(() => { throw err; });
}

export function createClient({ baseUrl = new URL("./", import.meta.url).href, token = null } = {}) {
  const config = { baseUrl: String(baseUrl).replace(/\/?$/, "/"), token };

  function url(path, params) {
    const target = new URL(path, config.baseUrl);
    for (const [key, value] of params || []) target.searchParams.append(key, value);
    return target.href;
  }

  function authHeaders() {
    return config.token ? { Authorization: "Bearer " + config.token } : {};
  }

  async function call(service, action, payload = {}, { timeout, onProgress, signal } = {}) {
    const params = timeout != null ? [["timeout", String(timeout)]] : [];
    // The gateway judges the value (bad_timeout); the local deadline only
    // guards against an answer that never comes.
    const seconds = Number(timeout) > 0 && Number.isFinite(Number(timeout)) ? Number(timeout) : DEFAULT_CALL_S;
    const target = url(`api/services/${encodeURIComponent(service)}/${encodeURIComponent(action)}`, params);
    const controller = new AbortController();
    let reason = null;
    const stop = (why) => { if (!reason) { reason = why; controller.abort(); } };
    const onAbort = () => stop("aborted");
    if (signal) {
      if (signal.aborted) throw new DaebusError(CLIENT_CODES.aborted, { code: "aborted" });
      signal.addEventListener("abort", onAbort, { once: true });
    }
    const timer = setTimeout(() => stop("timeout"), seconds * 1000 + GRACE_MS);
    try {
      let response;
      try {
        response = await fetch(target, {
          method: "POST",
          headers: {
            "Content-Type": "application/json",
            Accept: onProgress ? "text/event-stream" : "application/json",
            ...authHeaders(),
          },
          body: JSON.stringify(payload ?? {}),
          cache: "no-store",
          signal: controller.signal,
        });
      } catch (err) {
        throw reason ? new DaebusError(CLIENT_CODES[reason], { code: reason, cause: err })
          : new DaebusError(CLIENT_CODES.offline, { code: "offline", cause: err });
      }
      const type = response.headers.get("Content-Type") || "";
      if (response.ok && type.startsWith("text/event-stream")) {
        return await readCallStream(response, onProgress, () => reason);
      }
      let body = null;
      try { body = await response.json(); } catch (err) { /* not JSON: handled below */ }
      if (response.ok && body && typeof body === "object" && "result" in body) return body.result;
      throw errorFromAnswer(response.status, body);
    } finally {
      clearTimeout(timer);
      if (signal) signal.removeEventListener("abort", onAbort);
    }
  }

  async function readCallStream(response, onProgress, stoppedBy) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const feed = sseParser();
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        const why = stoppedBy();
        throw new DaebusError(CLIENT_CODES[why || "interrupted"], { code: why || "interrupted", cause: err });
      }
      if (chunk.done) throw new DaebusError(CLIENT_CODES.interrupted, { code: "interrupted", status: response.status });
      for (const event of feed(decoder.decode(chunk.value, { stream: true }))) {
        const data = JSON.parse(event.data);
        if (event.event === "progress") {
          try { onProgress(data); } catch (err) { reportCallbackError(err); }
        } else if (event.event === "result") {
          reader.cancel().catch(() => {});
          return data.result;
        } else if (event.event === "error") {
          reader.cancel().catch(() => {});
          throw errorFromAnswer(data.status || 502, data);
        }
      }
    }
  }

  function subscribe(channels, onEvent, { onStatus, onGap, offlineAfter = 5000, backoff = {} } = {}) {
    const names = [...new Set(Array.isArray(channels) ? channels : [channels])];
    const sub = { state: "connecting", lastEventId: null, detail: null, attempts: 0 };
    let source = null;
    let timer = null;
    let failingSince = null;
    let closed = false;
    let hint = null;   // milliseconds the gateway asked this stream to wait before coming back

    function setState(state, detail = null) {
      const changed = state !== sub.state || JSON.stringify(detail) !== JSON.stringify(sub.detail);
      sub.state = state;
      sub.detail = detail;
      if (changed && onStatus) {
        try { onStatus(state, detail); } catch (err) { reportCallbackError(err); }
      }
    }

    function streamUrl({ resume = true } = {}) {
      const params = names.map((name) => ["channel", name]);
      if (config.token) params.push(["access_token", config.token]);
      if (resume && sub.lastEventId) params.push(["last_event_id", sub.lastEventId]);
      return url("api/events", params);
    }

    function open() {
      if (closed) return;
      source = new EventSource(streamUrl());
      source.onmessage = (e) => {
        if (e.lastEventId) sub.lastEventId = e.lastEventId;
        let message;
        try { message = JSON.parse(e.data); } catch (err) { return; }
        try { onEvent(message.channel, message.data, { id: e.lastEventId || null }); } catch (err) { reportCallbackError(err); }
      };
      source.addEventListener("status", (e) => {
        if (e.lastEventId) sub.lastEventId = e.lastEventId;
        let status = {};
        try { status = JSON.parse(e.data); } catch (err) { /* keep the last state */ }
        sub.attempts = 0;
        failingSince = null;
        if (status.redis === "down") setState("offline", { reason: "redis" });
        else setState("live");
      });
      // A reconnect storm: the gateway admits resuming streams at a bounded
      // rate and tells the others when to come back; the stream then ends.
      source.addEventListener("busy", (e) => {
        let busy = {};
        try { busy = JSON.parse(e.data); } catch (err) { /* the backoff applies */ }
        if (Number.isFinite(busy.retry_ms)) hint = busy.retry_ms;
      });
      source.addEventListener("gap", (e) => {
        let gap = {};
        try { gap = JSON.parse(e.data); } catch (err) { /* an empty gap still counts */ }
        const lost = gap.channels || names;
        if (onGap) {
          try { onGap(lost); } catch (err) { reportCallbackError(err); }
        } else {
          console.warn("daebus: events may have been missed on", lost.join(", "));
        }
      });
      // EventSource would retry network errors by itself but gives up on an
      // HTTP error; reconnecting here handles both, with backoff, and says why.
      source.onerror = () => {
        source.close();
        source = null;
        if (hint !== null) {
          // Told when to come back: no probe (it would add to the storm), and the time is the gateway's.
          const wait = hintedDelay(hint);
          hint = null;
          setState("reconnecting", { reason: "busy", retry_ms: wait });
          timer = setTimeout(open, wait);
          return;
        }
        retry();
      };
    }

    async function retry() {
      if (closed) return;
      sub.attempts += 1;
      if (failingSince === null) failingSince = Date.now();
      const detail = await diagnose();
      if (closed) return;
      // A refusal that retrying won't change (not exposed, no token) is
      // offline at once; a busy or stopping gateway is worth waiting for.
      const refused = detail.reason === "refused" && detail.status < 500;
      const offline = refused || Date.now() - failingSince >= offlineAfter;
      setState(offline ? "offline" : "reconnecting", detail);
      const wait = detail.retryAfter ? hintedDelay(detail.retryAfter * 1000) : backoffDelay(sub.attempts, backoff);
      timer = setTimeout(open, wait);
    }

    // Why the stream failed: the gateway's refusal (not exposed, too many
    // streams...), nothing answering, or a stream that simply ended.
    async function diagnose() {
      const controller = new AbortController();
      const guard = setTimeout(() => controller.abort(), 3000);
      try {
        // Without the last id: the probe asks whether the stream is refused, not for a replay
        // (which, in a reconnect storm, would take a resuming page's turn).
        const response = await fetch(streamUrl({ resume: false }), { signal: controller.signal, cache: "no-store" });
        if (response.ok) return { reason: "interrupted" };
        const body = await response.json().catch(() => null);
        const error = errorFromAnswer(response.status, body);
        const retryAfter = Number(response.headers.get("Retry-After")) || null;
        return { reason: "refused", code: error.code, message: error.message, status: response.status, retryAfter };
      } catch (err) {
        return { reason: "unreachable" };
      } finally {
        clearTimeout(guard);
        controller.abort();
      }
    }

    sub.close = () => {
      closed = true;
      clearTimeout(timer);
      if (source) source.close();
      source = null;
    };
    open();
    return sub;
  }

  return { call, subscribe, config };
}

const defaultClient = createClient();

// The default client talks to the gateway this module was loaded from.
// configure({token}) sets the token for pages that need one.
export function configure({ baseUrl, token } = {}) {
  if (baseUrl !== undefined) defaultClient.config.baseUrl = String(baseUrl).replace(/\/?$/, "/");
  if (token !== undefined) defaultClient.config.token = token;
}

export const call = (...args) => defaultClient.call(...args);
export const subscribe = (...args) => defaultClient.subscribe(...args);
