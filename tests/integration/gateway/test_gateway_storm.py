"""A reconnect storm: 1,000 pages resume at once with an old Last-Event-ID.

Every page gets its whole replay (or a gap event) within the time
docs/gateway.md gives, another client's calls stay fast and a live page's
events keep coming meanwhile, and the gateway's memory comes back afterwards. The pages are raw sockets on one
selector in the test process, each behaving as an EventSource does: it
comes back after the ``retry`` it was given, with the same id."""

import errno
import json
import selectors
import socket
import statistics
import threading
import time
from pathlib import Path

import redis
import requests

from daebus.bus.kept import STREAM_PREFIX
from gateway.settings import GATEWAY

PAGES = 1000
KEPT = 100
CHANNEL = "news.storm"
LIVE = "news.live"
RATE = GATEWAY.keys["replay_rate"].default
# docs/gateway.md: a storm of N pages has had its replays within about N / replay_rate seconds.
SETTLED_WITHIN = PAGES / RATE * 1.25 + 5
RSS_SLACK_KB = 5 * 1024
RSS_WAIT = 60


def worker_rss_kb(gw) -> int:
    children = Path(f"/proc/{gw.process.pid}/task/{gw.process.pid}/children").read_text().split()
    status = Path(f"/proc/{children[0]}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


class Page:
    """One page's stream: the bytes it read on its current connection and its outcome."""

    def __init__(self, n: int):
        self.n = n
        self.attempts = 0
        self.busy = 0
        self.outcome: str | None = None   # "full" or "gap"
        self.done_at: float | None = None
        self.retry_at = 0.0
        self.buf = b""
        self.sock: socket.socket | None = None


class Storm:
    """The pages, on one selector thread."""

    def __init__(self, port: int, last_id: str, newest_id: str):
        self.request = (f"GET /api/events?channel={CHANNEL} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"Accept: text/event-stream\r\nLast-Event-ID: {last_id}\r\n\r\n").encode()
        self.port, self.newest = port, newest_id.encode()
        self.pages = [Page(n) for n in range(PAGES)]
        self.errors = 0
        self.selector = selectors.DefaultSelector()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, page: Page) -> None:
        page.attempts += 1
        page.buf = b""
        sock = page.sock = socket.socket()
        sock.setblocking(False)
        err = sock.connect_ex(("127.0.0.1", self.port))
        if err not in (0, errno.EINPROGRESS):
            self._lost(page)
            return
        self.selector.register(sock, selectors.EVENT_WRITE, page)

    def _lost(self, page: Page, retry_ms: int | None = None) -> None:
        if page.sock is not None:
            try:
                self.selector.unregister(page.sock)
            except (KeyError, ValueError):
                pass
            page.sock.close()
            page.sock = None
        if page.outcome is None:
            if retry_ms is None:
                self.errors += 1
                retry_ms = 500   # what an EventSource waits after a failed connection, roughly
            page.retry_at = time.monotonic() + retry_ms / 1000

    def _readable(self, page: Page) -> None:
        try:
            data = page.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        page.buf += data
        body = page.buf.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in page.buf else b""
        if b"\nevent: gap\n" in body or body.startswith(b"event: gap\n"):
            self._finish(page, "gap")
        elif b"id: " + self.newest + b"\n" in body:
            self._finish(page, "full")
        elif not data:
            retry = None
            if b"event: busy" in body:
                page.busy += 1
                retry = int(body.split(b"retry: ", 1)[1].split(b"\n", 1)[0])
            self._lost(page, retry)

    def _finish(self, page: Page, outcome: str) -> None:
        page.outcome, page.done_at = outcome, time.monotonic()
        self._lost(page)

    def _run(self) -> None:
        for page in self.pages:
            self._open(page)
        while any(page.outcome is None for page in self.pages):
            if time.monotonic() - self.started > SETTLED_WITHIN + 30:
                return   # the test fails on the pages left
            now = time.monotonic()
            for page in self.pages:
                if page.outcome is None and page.sock is None and page.retry_at <= now:
                    self._open(page)
            for key, events in self.selector.select(timeout=0.05):
                page = key.data
                if events & selectors.EVENT_WRITE:
                    self.selector.modify(page.sock, selectors.EVENT_READ, page)
                    try:
                        page.sock.sendall(self.request)
                    except OSError:
                        self._lost(page)
                else:
                    self._readable(page)
        for page in self.pages:
            self._lost(page)


def test_a_reconnect_storm_gets_every_replay_and_costs_calls_nothing(start_gateway, fresh_redis, publish_to,
                                                                     service):
    publish = publish_to(fresh_redis.url)
    service("gateway_echo.py", "echo", url=fresh_redis.url)
    gw = start_gateway({"keep_events": KEPT, "default_timeout": 2.0}, url=fresh_redis.url)
    # The id a page last saw: the first of KEPT + 1 events, so each page misses KEPT.
    stream = gw.events(CHANNEL)
    stream.wait_status("up")
    publish(CHANNEL, {"n": 0, "pad": "x" * 200})
    event = stream.next_event(15)
    while event["event"] != "message":
        event = stream.next_event(15)
    last_id = event["id"]
    stream.close()
    for n in range(1, KEPT + 1):
        publish(CHANNEL, {"n": n, "pad": "x" * 200})
    newest = redis.Redis.from_url(fresh_redis.url).xrevrange(STREAM_PREFIX + CHANNEL, count=1)[0][0].decode()
    # Warm: the code paths of a replay and of a call are loaded before the baseline.
    for _ in range(5):
        warm = gw.events(CHANNEL, headers={"Last-Event-ID": last_id})
        while (event := warm.next_event(15))["event"] != "message" or event["id"] != newest:
            pass
        warm.close()
        assert gw.post("/api/services/echo/echo", {"x": 1}).status_code == 200
    baseline = worker_rss_kb(gw)
    # A page already live on another channel: its events must keep flowing through the storm.
    live = gw.events(LIVE)
    live.wait_status("up")
    heard: dict[int, float] = {}

    def listen():
        try:
            while (event := live.next_event(30)) is not None:
                if event["event"] == "message":
                    heard[json.loads(event["data"])["data"]["n"]] = time.monotonic()
        except (OSError, ValueError, AttributeError):
            pass   # closed by the test once it heard the last event

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    sent: dict[int, float] = {}

    storm = Storm(gw.port, last_id, newest)
    latencies: list[float] = []
    failures: list[object] = []
    storm.thread.start()
    with requests.Session() as other_client:
        while storm.thread.is_alive():
            began = time.monotonic()
            try:
                response = other_client.post(gw.url + "/api/services/echo/echo", json={"x": 1}, timeout=5)
                if response.status_code != 200:
                    failures.append(response.status_code)
            except requests.RequestException as exc:
                failures.append(exc)
            latencies.append(time.monotonic() - began)
            if len(latencies) % 5 == 0:
                sent[len(sent)] = time.monotonic()
                publish(LIVE, {"n": len(sent) - 1})
            time.sleep(0.02)   # another page's pace of calls, not a synchronisation
    storm.thread.join()
    peak = worker_rss_kb(gw)

    publish(LIVE, {"n": -1})   # the last: once it is heard, everything before it was
    deadline = time.monotonic() + 15
    while -1 not in heard and time.monotonic() < deadline:
        time.sleep(0.05)
    # shutdown() wakes the listener's read at once; close() alone would wait for it.
    live.conn.sock.shutdown(socket.SHUT_RDWR)
    listener.join(5)
    live.close()
    lost = sorted(set(sent) - set(heard))
    assert not lost, f"{len(lost)} of {len(sent)} live events never reached the live page"
    live_delays = [heard[n] - at for n, at in sent.items()]

    pages = storm.pages
    left = [p.n for p in pages if p.outcome is None]
    assert not left, f"{len(left)} pages never got their replay"
    settled = max(p.done_at for p in pages) - storm.started
    outcomes = {kind: sum(p.outcome == kind for p in pages) for kind in ("full", "gap")}
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(f"\nstorm of {PAGES}: settled in {settled:.1f} s; {outcomes}; busy answers "
          f"{sum(p.busy for p in pages)}, connection errors {storm.errors}; attempts per page max "
          f"{max(p.attempts for p in pages)}; {len(latencies)} calls meanwhile: p50 "
          f"{statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max "
          f"{max(latencies) * 1000:.1f} ms; {len(sent)} live events, delay p50 "
          f"{statistics.median(live_delays) * 1000:.1f} ms, max {max(live_delays) * 1000:.1f} ms; "
          f"worker RSS {baseline / 1024:.1f} -> {peak / 1024:.1f} MB")
    assert outcomes["full"] == PAGES, outcomes   # nothing was trimmed: every replay is whole
    assert settled <= SETTLED_WITHIN, f"settled after {settled:.1f} s"
    assert not failures, failures[:5]
    assert p99 <= 0.1, f"calls p99 {p99 * 1000:.0f} ms during the storm"

    deadline = time.monotonic() + RSS_WAIT
    while (rss := worker_rss_kb(gw)) > baseline + RSS_SLACK_KB and time.monotonic() < deadline:
        time.sleep(1)
    print(f"worker RSS {rss / 1024:.1f} MB after the storm (baseline {baseline / 1024:.1f} MB)")
    assert rss <= baseline + RSS_SLACK_KB, f"RSS {baseline / 1024:.1f} -> {rss / 1024:.1f} MB"
