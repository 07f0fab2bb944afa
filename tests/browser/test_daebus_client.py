"""/daebus.js in Chromium against a real gateway: progress, reconnection
and replay across gateway restarts, gaps, error mapping and backoff."""

from __future__ import annotations

import re
import sys
import time

import pytest
from playwright.sync_api import expect
from support import ROOT, ManagedProcess, RedisServer, Service, child_env, free_port

from gateway.settings import render

CHANNELS = ["ticks.*", "echo.*"]


class Gateway:
    """One gateway on a fixed port, so a page keeps its origin across restarts."""

    def __init__(self, workdir, redis_url: str, **keys):
        self.port = free_port()
        self.workdir = workdir
        config = workdir / f"gateway-{self.port}.toml"
        site = workdir / "site"  # empty: the gateway's built-in page, not the kiosk demo
        site.mkdir(exist_ok=True)
        config.write_text(render(redis_url, {"bind": f"127.0.0.1:{self.port}", "static_dir": str(site),
                                             "expose_actions": ["echo/*"],
                                             "expose_channels": CHANNELS, "heartbeat": 2.0, **keys}))
        self.env = child_env(redis_url, {"DAEBUS_CONFIG": str(config)})
        self.process: ManagedProcess | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.process is not None:
            self.process.close()   # the one stopped before a restart: its notify socket goes too
        self.process = ManagedProcess([sys.executable, "-m", "gunicorn", "-c", "python:gateway.gunicorn_conf",
                                       "gateway.wsgi:app"], self.env, name="gateway",
                                      log_path=self.workdir / f"gateway-{self.port}.log")
        self.process.wait_ready(30)

    def stop(self) -> int:
        return self.process.stop(20)

    def close(self) -> None:
        if self.process is not None:
            self.process.close()


@pytest.fixture(scope="module")
def bus():
    server = RedisServer().start()
    echo = Service("gateway_echo.py", server.url, "echo")
    yield server
    echo.close()
    server.close()


@pytest.fixture
def gateway(bus, tmp_path):
    started = []

    def start(**keys) -> Gateway:
        started.append(Gateway(tmp_path, bus.url, **keys))
        return started[-1]

    yield start
    for gw in started:
        gw.close()


@pytest.fixture
def tab(browser_context):
    """A blank tab; ``tab.open(gateway)`` loads the gateway's page and the client."""
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def open_(gw: Gateway) -> None:
        page.goto(gw.url + "/")
        page.evaluate("async () => { window.daebus = await import('/daebus.js'); }")

    page.open = open_
    yield page
    page.close()
    assert errors == [], f"script errors on the page: {errors}"


def test_progress_callback_sees_every_step_in_order_then_the_result(gateway, tab):
    tab.open(gateway())
    seen = tab.evaluate("""async () => {
        const seen = [];
        const result = await daebus.call("echo", "steps", {count: 5, pause: 0.05},
                                         {onProgress: (p) => seen.push(p.step)});
        seen.push(result);
        return seen;
    }""")
    assert seen == [1, 2, 3, 4, 5, {"steps": 5}]


def test_a_failure_after_progress_rejects_with_the_code_and_status(gateway, tab):
    tab.open(gateway())
    got = tab.evaluate("""async () => {
        const seen = [];
        try {
            await daebus.call("echo", "steps", {count: 2, fail: true}, {onProgress: (p) => seen.push(p.step)});
        } catch (err) {
            return {seen, name: err.name, code: err.code, status: err.status, message: err.message,
                    isError: err instanceof Error};
        }
    }""")
    assert got == {"seen": [1, 2], "name": "DaebusError", "code": "bad_request", "status": 400,
                   "message": "failed after 2 steps", "isError": True}


def start_ticker(bus) -> Service:
    return Service("ticker.py", bus.url)


SUBSCRIBE = """() => {
    window.seqs = []; window.states = []; window.gaps = [];
    window.live = daebus.subscribe(["ticks.seq"], (channel, data) => seqs.push(data.seq), {
        onStatus: (state) => states.push(state),
        onGap: (channels) => gaps.push(channels),
    });
}"""


def wait_seqs(tab, more_than: int) -> None:
    tab.wait_for_function("n => window.seqs.length > n", arg=more_than, timeout=30_000)


def test_a_gateway_restart_loses_and_repeats_nothing(bus, gateway, tab):
    gw = gateway()
    tab.open(gw)
    ticker = start_ticker(bus)
    try:
        tab.evaluate(SUBSCRIBE)
        tab.wait_for_function("window.states.at(-1) === 'live'")
        wait_seqs(tab, 10)
        assert gw.stop() == 0  # SIGTERM, as systemctl restart does
        tab.wait_for_function("window.states.at(-1) !== 'live'", timeout=10_000)
        before = tab.evaluate("window.seqs.length")
        gw.start()
        tab.wait_for_function("window.states.at(-1) === 'live'", timeout=30_000)
        wait_seqs(tab, before + 20)  # a second more of live events after the replay
    finally:
        ticker.close()
    seqs, states, gaps = tab.evaluate("[window.seqs, window.states, window.gaps]")
    assert gaps == []
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap or a duplicate"
    restart = states.index("live") + 1
    assert states[restart] == "reconnecting" and states[-1] == "live", states


def test_a_stream_told_to_come_back_later_waits_that_long_and_loses_nothing(bus, gateway, tab):
    # One resuming stream admitted per 10 s: of two that come back together, one is told to wait.
    gw = gateway(replay_burst=1, replay_rate=0.1, keep_events=1000)
    tab.open(gw)
    ticker = start_ticker(bus)
    try:
        tab.evaluate("""() => {
            window.subs = [0, 1].map(() => {
                const s = {seqs: [], states: [], gaps: []};
                s.sub = daebus.subscribe(["ticks.seq"], (channel, data) => s.seqs.push(data.seq), {
                    onStatus: (state, detail) => s.states.push([state, detail, Date.now()]),
                    onGap: (channels) => s.gaps.push(channels),
                });
                return s;
            });
        }""")
        live = "window.subs.every((s) => s.states.length && s.states.at(-1)[0] === 'live' && s.seqs.length > 5)"
        tab.wait_for_function(live, timeout=30_000)
        assert gw.stop() == 0
        tab.wait_for_function("window.subs.every((s) => s.states.at(-1)[0] !== 'live')", timeout=10_000)
        gw.start()
        tab.wait_for_function(live, timeout=40_000)
    finally:
        ticker.close()
    subs = tab.evaluate("window.subs.map((s) => ({seqs: s.seqs, states: s.states, gaps: s.gaps}))")
    busy = [(n, i) for n, s in enumerate(subs) for i, (state, detail, _) in enumerate(s["states"])
            if detail and detail.get("reason") == "busy"]
    assert busy, [s["states"] for s in subs]
    n, i = busy[-1]
    states = subs[n]["states"]
    waited = states[i][1]["retry_ms"]
    assert 1000 < waited <= 10_000 * 1.2
    # It came back no sooner than it was told to, and then resumed where it was.
    came_back = next(at for state, _, at in states[i + 1:] if state == "live")
    assert came_back - states[i][2] >= waited
    for s in subs:
        assert s["gaps"] == []
        assert s["seqs"] == list(range(s["seqs"][0], s["seqs"][0] + len(s["seqs"]))), "a gap or a duplicate"


def test_a_gateway_away_longer_than_the_kept_window_sends_a_gap(bus, gateway, tab):
    gw = gateway(keep_seconds=1.0)
    tab.open(gw)
    ticker = start_ticker(bus)
    try:
        tab.evaluate(SUBSCRIBE)
        wait_seqs(tab, 5)
        assert gw.stop() == 0
        time.sleep(3)  # the outage: three times the kept window
        gw.start()
        tab.wait_for_function("window.gaps.length > 0", timeout=30_000)
        tab.wait_for_function("window.states.at(-1) === 'live'")
    finally:
        ticker.close()
    assert tab.evaluate("window.gaps") == [["ticks.seq"]]


def test_calls_reject_with_the_gateways_code_and_status(gateway, tab):
    gw = gateway()
    tab.open(gw)
    closed_port = free_port()
    got = tab.evaluate("""async (closedPort) => {
        const outcome = async (promise) => {
            try { return {result: await promise}; }
            catch (err) { return {code: err.code, status: err.status, name: err.name}; }
        };
        const elsewhere = daebus.createClient({baseUrl: `http://127.0.0.1:${closedPort}/`});
        const wrongPath = daebus.createClient({baseUrl: location.origin + "/no/such/"});
        const aborted = new AbortController();
        const pending = outcome(daebus.call("echo", "slow", {seconds: 5}, {signal: aborted.signal}));
        aborted.abort();
        return {
            ok: await outcome(daebus.call("echo", "echo", {a: 1})),
            handler: await outcome(daebus.call("echo", "fail")),
            rejected: await outcome(daebus.call("echo", "reject")),
            missing: await outcome(daebus.call("echo", "no_such_action")),
            notExposed: await outcome(daebus.call("clock", "now")),
            badTimeout: await outcome(daebus.call("echo", "echo", {}, {timeout: "x"})),
            timeout: await outcome(daebus.call("echo", "slow", {seconds: 3}, {timeout: 0.5})),
            offline: await outcome(elsewhere.call("echo", "echo")),
            badResponse: await outcome(wrongPath.call("echo", "echo")),
            aborted: await pending,
        };
    }""", closed_port)
    assert got == {
        "ok": {"result": {"a": 1}},
        "handler": {"code": "handler_error", "status": 502, "name": "DaebusError"},
        "rejected": {"code": "bad_request", "status": 400, "name": "DaebusError"},
        "missing": {"code": "action_not_found", "status": 404, "name": "DaebusError"},
        "notExposed": {"code": "not_exposed", "status": 403, "name": "DaebusError"},
        "badTimeout": {"code": "bad_timeout", "status": 400, "name": "DaebusError"},
        "timeout": {"code": "timeout", "status": 504, "name": "DaebusError"},
        "offline": {"code": "offline", "status": 0, "name": "DaebusError"},
        "badResponse": {"code": "bad_response", "status": 405, "name": "DaebusError"},
        "aborted": {"code": "aborted", "status": 0, "name": "DaebusError"},
    }


def test_error_mapping_backoff_and_parsing_units(gateway, tab):
    tab.open(gateway())
    got = tab.evaluate("""() => {
        const {errorFromAnswer, backoffDelay, hintedDelay, sseParser} = daebus;
        const e1 = errorFromAnswer(503, {error: {code: "busy", message: "queue full"}});
        const e2 = errorFromAnswer(502, "<html>bad gateway</html>");
        const e3 = errorFromAnswer(400, {error: {code: "invalid_payload", message: "m",
                                                 details: [{path: "/x", message: "required"}]}});
        const half = {random: () => 0.5};
        const feed = sseParser();
        const parsed = [...feed("id: 1-0\\nevent: status\\r\\ndata: {\\"redis\\":"),
                        ...feed("\\"up\\"}\\n\\n: keepalive\\n\\ndata: a\\ndata: b\\n\\n")];
        return {
            e1: [e1.code, e1.status, e1.message], e2: [e2.code, e2.status],
            e3: [e3.code, e3.details],
            doubling: [1, 2, 3, 4, 5, 6, 7, 20].map((n) => backoffDelay(n, half)),
            low: backoffDelay(3, {random: () => 0}), high: backoffDelay(3, {random: () => 1}),
            custom: backoffDelay(4, {base: 100, max: 300, jitter: 0}),
            hinted: [hintedDelay(2000, {random: () => 0}), hintedDelay(2000, {random: () => 1}),
                     hintedDelay(-5, {random: () => 1})],
            parsed,
        };
    }""")
    assert got["e1"] == ["busy", 503, "queue full"]
    assert got["e2"] == ["bad_response", 502]
    assert got["e3"] == ["invalid_payload", [{"path": "/x", "message": "required"}]]
    assert got["doubling"] == [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]
    assert (got["low"], got["high"]) == (700, 1300)  # 1000 spread by 30 % either way
    assert got["custom"] == 300
    assert got["hinted"] == [2000, 2400, 0]   # the gateway's time, stretched by up to 20 %, never shortened
    assert got["parsed"] == [{"event": "status", "data": '{"redis":"up"}', "id": "1-0"},
                             {"event": "message", "data": "a\nb", "id": None}]


def test_a_refused_stream_is_offline_with_the_reason(gateway, tab):
    tab.open(gateway())
    detail = tab.evaluate("""() => new Promise((resolve) => {
        const sub = daebus.subscribe(["secret.channel"], () => {}, {
            onStatus: (state, detail) => { if (state === "offline") { sub.close(); resolve(detail); } },
        });
    })""")
    assert detail["reason"] == "refused" and detail["code"] == "not_exposed" and detail["status"] == 403
    assert "secret.channel" in detail["message"]


def test_a_token_reaches_calls_and_streams(gateway, tab, bus):
    token = "s3cret-token-for-tests"
    gw = gateway(token=token, trust_loopback=False)
    tab.open(gw)
    got = tab.evaluate("""async (token) => {
        const outcome = async (promise) => {
            try { return await promise; } catch (err) { return [err.code, err.status]; }
        };
        const without = await outcome(daebus.call("echo", "echo", {a: 1}));
        daebus.configure({token});
        const withToken = await outcome(daebus.call("echo", "echo", {a: 2}));
        const event = await new Promise((resolve) => {
            const sub = daebus.subscribe(["echo.token"], (channel, data) => { sub.close(); resolve(data); }, {
                onStatus: (state) => { if (state === "live") daebus.call("echo", "announce",
                                                   {channel: "echo.token", data: {ok: true}}); },
            });
        });
        return {without, withToken, event};
    }""", token)
    assert got == {"without": ["unauthorized", 401], "withToken": {"a": 2}, "event": {"ok": True}}


def docs_page() -> str:
    """The page of docs/gateway.md's "A page of one's own", as printed there."""
    text = (ROOT / "docs" / "gateway.md").read_text()
    section = text[text.index("### A page of one's own"):]
    return section[section.index("```html\n") + len("```html\n"):section.index("\n```\n", section.index("```html"))]


def test_the_documented_page_of_ones_own_works(bus, gateway, tab, tmp_path):
    site = tmp_path / "my-kiosk"
    site.mkdir()
    (site / "index.html").write_text(docs_page())
    worker = Service("my_service.py", bus.url)
    try:
        gw = gateway(static_dir=str(site), expose_actions=["my_service/*"], expose_channels=["my_service.*"])
        tab.goto(gw.url + "/")
        expect(tab.locator("#state")).to_have_text("live")
        expect(tab.locator("#temperature")).to_have_text(re.compile(r"^2\d\.\d$"))
        tab.click("#run")
        expect(tab.locator("#outcome")).to_have_text("passed: true")
        assert tab.evaluate("document.getElementById('bar').value") == 100
        # An error shows its code and status.
        gw.stop()
        tab.click("#run")
        expect(tab.locator("#outcome")).to_have_text(re.compile(r"\(offline, HTTP 0\)$"))
        expect(tab.locator("#state")).not_to_have_text("live")
    finally:
        worker.close()
