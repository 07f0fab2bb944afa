// The kiosk page: live readings over Server-Sent Events, controls that call
// worker actions through the gateway, the list of running services, and an
// honest "offline" state when the gateway or Redis cannot be reached.
//
// Calls and live events go through the gateway's client, /daebus.js; the
// page itself only reads GET /api/services for the list of services.
import { call, configure, subscribe } from "./daebus.js";

{
  const CHANNELS = ["sensors.readings", "display.state", "system.status", "system.diagnostics"];
  const STALE_AFTER_MS = 5000;       // a reading older than this is shown as stale
  const SERVICES_EVERY_MS = 3000;
  const HISTORY = 60;                // readings in the sparkline

  // A token for gateways that require one: open the page as /?token=...
  const TOKEN = new URLSearchParams(location.search).get("token");
  const AUTH = TOKEN ? { Authorization: "Bearer " + TOKEN } : {};
  if (TOKEN) configure({ token: TOKEN });

  const $ = (id) => document.getElementById(id);

  // -- formatting ------------------------------------------------------------

  function duration(seconds) {
    if (seconds == null || !isFinite(seconds)) return "–";
    const s = Math.floor(seconds);
    const pad = (n) => String(n).padStart(2, "0");
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + pad(s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + pad(Math.floor(s % 3600 / 60)) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor(s % 86400 / 3600) + " h";
  }

  function bytes(n) {
    if (n == null) return "–";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (n >= 10 || i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
  }

  function clockTime(date) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function setStatus(el, state, text) {
    el.dataset.state = state;
    el.textContent = text || "";
    el.title = text || "";
  }

  // -- connection state --------------------------------------------------------

  // "connecting" | "live" | "reconnecting" | "offline"
  function setConnection(state, title, text) {
    document.body.dataset.connection = state;
    const labels = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };
    $("connection").textContent = labels[state];
    const banner = $("banner");
    if (state === "offline" || (state === "reconnecting" && text)) {
      $("banner-title").textContent = title || "Offline";
      $("banner-text").textContent = text || "";
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
  }

  // -- calling actions ---------------------------------------------------------

  const FRIENDLY = {
    service_unavailable: (svc) => `The ${svc} worker is not running.`,
    connection_lost: () => "Redis is unreachable.",
    timeout: (svc) => `The ${svc} worker did not answer in time.`,
    busy: (svc) => `The ${svc} worker is busy; try again.`,
    offline: () => "The gateway is unreachable.",
  };

  // Resolves to {ok: true, result} or {ok: false, code, message}; never throws.
  async function callAction(service, action, payload, timeoutSeconds, onProgress) {
    try {
      return { ok: true, result: await call(service, action, payload || {}, { timeout: timeoutSeconds, onProgress }) };
    } catch (err) {
      const friendly = FRIENDLY[err.code];
      return { ok: false, code: err.code, message: friendly ? friendly(service) : err.message };
    }
  }

  function errorText(reply) {
    return `${reply.message} (${reply.code})`;
  }

  // -- sensors -------------------------------------------------------------------

  // {seq, value} of recent readings, oldest first.
  let history = [];
  let lastReadingAt = 0;

  function remember(readings) {
    const bySeq = new Map(history.map((h) => [h.seq, h]));
    readings.forEach((r) => bySeq.set(r.seq, { seq: r.seq, value: r.temperature_c }));
    history = [...bySeq.values()].sort((a, b) => a.seq - b.seq).slice(-HISTORY);
  }

  function showReading(r) {
    if (typeof r.temperature_c !== "number") return;  // not a reading this page knows
    const newest = history.length ? history[history.length - 1].seq : 0;
    if (r.seq < newest - HISTORY) history = [];        // the worker restarted
    remember([r]);
    lastReadingAt = Date.now();
    $("temperature").textContent = r.temperature_c.toFixed(1);
    $("humidity").textContent = r.humidity_pct.toFixed(0);
    $("light").textContent = String(r.light_lux);
    drawSparkline();
    $("sensors-card").dataset.stale = "false";
    $("sensor-updated").textContent = `Reading #${r.seq} at ${clockTime(new Date(r.time * 1000))}`;
  }

  function drawSparkline() {
    const values = history.map((h) => h.value);
    const low = Math.min(...values) - 0.05;
    const high = Math.max(...values) + 0.05;
    const offset = HISTORY - values.length;  // a short history sits at the right
    const points = values.map((value, i) => {
      const x = (100 * (offset + i)) / (HISTORY - 1);
      const y = 28 - (26 * (value - low)) / (high - low);
      return x.toFixed(2) + "," + y.toFixed(2);
    });
    $("sparkline-line").setAttribute("points", points.join(" "));
    $("sparkline-range").textContent =
      `${values.length} readings: ${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)} °C`;
  }

  // The last minute at once, rather than a chart that fills up slowly.
  async function loadHistory() {
    const reply = await callAction("sensors", "get_history", {});
    if (!reply.ok || !reply.result.readings.length) return;
    const readings = reply.result.readings;
    const newest = history.length ? history[history.length - 1].seq : 0;
    if (readings[readings.length - 1].seq < newest - HISTORY) history = [];  // restarted
    remember(readings);
    if (!lastReadingAt) showReading(readings[readings.length - 1]);
    else drawSparkline();
  }

  function checkStale() {
    if (!lastReadingAt) return;
    const age = (Date.now() - lastReadingAt) / 1000;
    if (age * 1000 > STALE_AFTER_MS) {
      $("sensors-card").dataset.stale = "true";
      $("sensor-updated").textContent = `No reading for ${duration(age)}: is the sensors worker running?`;
    }
  }

  // -- display -------------------------------------------------------------------

  let dragging = false;

  function showDisplay(state) {
    $("brightness-value").textContent = String(state.brightness);
    $("screen-glow").style.opacity = String(0.08 + 0.92 * state.brightness / 100);
    if (!dragging) $("brightness-slider").value = String(state.brightness);
    $("auto-toggle").checked = !!state.auto;
    const source = { manual: "set by hand", auto: "automatic", default: "default" }[state.source] || state.source;
    $("display-source").textContent = state.auto ? "automatic" : source;
    $("display-card").dataset.brightness = String(state.brightness);
  }

  async function setBrightness(value) {
    const status = $("display-status");
    setStatus(status, "pending", "Setting brightness…");
    const reply = await callAction("display", "set_brightness", { brightness: value });
    if (reply.ok) {
      showDisplay(reply.result);
      setStatus(status, "ok", `Brightness set to ${reply.result.brightness}%`);
    } else {
      setStatus(status, "error", errorText(reply));
    }
  }

  function wireDisplay() {
    const slider = $("brightness-slider");
    slider.addEventListener("input", () => {
      dragging = true;
      $("brightness-value").textContent = slider.value;
    });
    slider.addEventListener("change", () => {
      dragging = false;
      setBrightness(Number(slider.value));
    });
    const step = (delta) => () => {
      const current = Number($("display-card").dataset.brightness || slider.value);
      setBrightness(Math.max(0, Math.min(100, current + delta)));
    };
    $("dimmer").addEventListener("click", step(-10));
    $("brighter").addEventListener("click", step(10));
    // The typed value goes to the worker as it is: checking it is the
    // worker's job, and its answer is shown as it comes.
    const sendTyped = () => {
      const raw = $("brightness-input").value.trim();
      setBrightness(raw === "" ? null : Number(raw));
    };
    $("brightness-set").addEventListener("click", sendTyped);
    $("brightness-input").addEventListener("keydown", (e) => { if (e.key === "Enter") sendTyped(); });
    $("auto-toggle").addEventListener("change", async (e) => {
      const enabled = e.target.checked;
      const status = $("display-status");
      setStatus(status, "pending", enabled ? "Turning automatic brightness on…" : "Turning automatic brightness off…");
      const reply = await callAction("display", "set_auto", { enabled });
      if (reply.ok) {
        showDisplay(reply.result);
        setStatus(status, "ok", `Automatic brightness ${enabled ? "on" : "off"}`);
      } else {
        e.target.checked = !enabled;
        setStatus(status, "error", errorText(reply));
      }
    });
  }

  async function loadDisplay() {
    const reply = await callAction("display", "get_state", {});
    if (reply.ok) showDisplay(reply.result);
    else if (reply.code !== "offline") setStatus($("display-status"), "error", errorText(reply));
  }

  // -- system ----------------------------------------------------------------------

  function showSystem(s) {
    $("hostname").textContent = s.hostname || "";
    $("uptime").textContent = duration(s.uptime_s);
    $("load").textContent = s.load ? s.load.map((v) => v.toFixed(2)).join(" ") : "–";
    if (s.memory) {
      $("memory").textContent = `${bytes(s.memory.used)} / ${bytes(s.memory.total)}`;
      $("memory-bar").style.width = s.memory.used_pct + "%";
    }
    $("cpu-temp").textContent = s.cpu_temp_c != null ? `${s.cpu_temp_c.toFixed(1)} °C` : `${s.cpus || "?"} cores`;
  }

  function showChecks(checks) {
    $("checks").replaceChildren(...checks.map((check) => {
      const li = document.createElement("li");
      li.dataset.state = check.ok == null ? "pending" : check.ok ? "ok" : "error";
      const name = document.createElement("span");
      name.textContent = check.name;
      const detail = document.createElement("span");
      detail.className = "detail";
      detail.textContent = check.detail || "";
      li.append(name, detail);
      return li;
    }));
  }

  let checksSoFar = [];
  // Runs whose result is already shown. The reply comes over HTTP and the
  // steps over the event stream, so a step can arrive after the reply.
  const finishedRuns = new Set();
  let ownRun = false;  // this page pressed the button and waits for the reply

  function showProgress(step) {
    if (step.run && finishedRuns.has(step.run)) return;
    const bar = $("diagnostics-progress");
    bar.setAttribute("aria-valuenow", String(step.percent));
    $("diagnostics-bar").style.width = step.percent + "%";
    if (step.done) {
      if (step.run) finishedRuns.add(step.run);
      bar.dataset.state = step.passed === step.total ? "done" : "failed";
      if (!ownRun && step.total) {  // another screen ran it: show its outcome too
        setStatus($("system-status"), step.passed === step.total ? "ok" : "warn",
          `${step.passed} of ${step.total} checks passed`);
      }
      return;
    }
    bar.dataset.state = "running";
    if (step.index === 1) checksSoFar = [];
    if (step.step) {
      checksSoFar.push({ name: step.step, ok: step.ok, detail: step.detail });
      showChecks(checksSoFar);
      setStatus($("system-status"), "pending", `Checked ${step.step} (${step.index} of ${step.total})…`);
    }
  }

  async function runDiagnostics() {
    const button = $("diagnostics");
    const status = $("system-status");
    button.disabled = true;
    ownRun = true;
    setStatus(status, "pending", "Running diagnostics…");
    showProgress({ percent: 0, done: false });
    // The steps come as progress replies of the call itself; other screens
    // see them as broadcasts.
    const reply = await callAction("system", "run_diagnostics", {}, 30, showProgress);
    button.disabled = false;
    ownRun = false;
    if (!reply.ok) {
      $("diagnostics-progress").dataset.state = "failed";
      setStatus(status, "error", errorText(reply));
      return;
    }
    const r = reply.result;
    showProgress({ run: r.run, percent: 100, done: true, passed: r.passed, total: r.total });
    showChecks(r.checks);
    const failed = r.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
    if (failed.length) setStatus(status, "warn", `${r.passed} of ${r.total} checks passed. ${failed.join("; ")}`);
    else setStatus(status, "ok", `All ${r.total} checks passed in ${r.duration_s.toFixed(1)} s`);
  }

  async function loadSystem() {
    const reply = await callAction("system", "get_status", {});
    if (reply.ok) showSystem(reply.result);
  }

  // -- services --------------------------------------------------------------------

  // Every service seen since the page loaded: one that disappears from the
  // registry stays listed as stopped, so a person notices it went away.
  const known = new Map();
  let servicesTimer = null;

  async function loadServices() {
    clearTimeout(servicesTimer);
    try {
      const response = await fetch("/api/services", { headers: AUTH, cache: "no-store" });
      const body = await response.json();
      if (!response.ok) throw new Error((body.error && body.error.message) || response.statusText);
      const live = new Set();
      for (const info of body.services) {
        live.add(info.name);
        known.set(info.name, { info, alive: true, seenAt: Date.now() });
      }
      for (const [name, entry] of known) {
        if (!live.has(name) && entry.alive) { entry.alive = false; entry.goneAt = Date.now(); }
      }
      renderServices();
      $("services-note").textContent = `Updated ${clockTime(new Date())}`;
      $("services").dataset.stale = "false";
    } catch (err) {
      // Unknown is not the same as stopped: grey the list, keep its entries.
      $("services").dataset.stale = "true";
      $("services-count").textContent = "unknown";
      const why = err instanceof TypeError ? "the gateway is unreachable" : err.message || String(err);
      $("services-note").textContent = `Cannot list services: ${why}.`;
    }
    servicesTimer = setTimeout(loadServices, SERVICES_EVERY_MS);
  }

  function renderServices() {
    const list = $("services");
    const names = [...known.keys()].sort();
    list.replaceChildren(...names.map((name) => {
      const { info, alive, goneAt } = known.get(name);
      const li = document.createElement("li");
      li.dataset.service = name;
      li.dataset.state = alive ? "running" : "gone";
      const dot = document.createElement("span");
      dot.className = "dot";
      const label = document.createElement("span");
      label.className = "name";
      label.textContent = name;
      const state = document.createElement("span");
      state.className = "state";
      state.textContent = alive ? `up ${duration(info.uptime)}` : `stopped ${clockTime(new Date(goneAt))}`;
      const actions = document.createElement("span");
      actions.className = "actions";
      actions.textContent = info.actions && info.actions.length ? info.actions.join(" · ") : "no exposed actions";
      li.append(dot, label, state, actions);
      return li;
    }));
    const running = names.filter((n) => known.get(n).alive).length;
    $("services-count").textContent = `${running} running` + (running < names.length ? `, ${names.length - running} stopped` : "");
  }

  // -- live events and reconnection -------------------------------------------------

  const HANDLERS = {
    "sensors.readings": showReading,
    "display.state": showDisplay,
    "system.status": showSystem,
    // This page's own run shows the progress replies of its call instead.
    "system.diagnostics": (step) => { if (!ownRun) showProgress(step); },
  };

  const WHY_OFFLINE = {
    redis: () => ["Redis is unreachable.",
      "The gateway is up but has lost Redis: no live data, and controls won't work until it is back."],
    unreachable: () => ["The gateway is unreachable.", `Nothing answers at ${location.host}. Retrying…`],
    interrupted: () => ["The gateway is unreachable.", `Nothing answers at ${location.host}. Retrying…`],
    refused: (detail) => ["Live updates refused.", detail.message || `HTTP ${detail.status}`],
  };

  function onStatus(state, detail) {
    if (state === "live") {
      setConnection("live");
      refreshAll();
    } else if (state === "offline") {
      const [title, text] = (WHY_OFFLINE[detail && detail.reason] || WHY_OFFLINE.unreachable)(detail || {});
      setConnection("offline", title, text);
    } else {
      setConnection(state);
    }
  }

  function openStream() {
    subscribe(CHANNELS, (channel, data) => {
      const handler = HANDLERS[channel];
      if (handler && data) handler(data);
    }, { onStatus, onGap: refreshAll });
  }

  // What the page shows that isn't only pushed: asked again after every
  // (re)connection, and when the gateway says events were missed.
  function refreshAll() {
    loadHistory();
    loadDisplay();
    loadSystem();
    loadServices();
  }

  function tick() {
    $("clock").textContent = clockTime(new Date());
    checkStale();
  }

  document.addEventListener("DOMContentLoaded", () => {
    wireDisplay();
    $("diagnostics").addEventListener("click", runDiagnostics);
    tick();
    setInterval(tick, 1000);
    loadServices();
    openStream();
  });
}
