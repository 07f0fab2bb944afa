"""The gateway under gunicorn against slow, stalled and vanished browsers, and garbage."""

import http.client
import json
import socket
import threading
import time

import pytest
from stall_harness import Slowloris, p99

SLOW_CLIENTS = 100
STALLED_STREAMS = 24
BOUND = 4.0  # head_timeout in these tests: long enough for a p99 over some 200 calls


def echo_worker(service, name: str) -> dict:
    """An echo worker under a name of its own (a name's previous owner may
    still be registered), and the gateway config exposing it."""
    service("gateway_echo.py", name)
    return {"expose_actions": [f"{name}/*"], "expose_channels": ["news.*"]}


def timed_call(port: int, name: str) -> float:
    """One action call on a fresh connection, as a kiosk page's fetch() makes it."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", f"/api/services/{name}/echo", body=b'{"n": 1}',
                     headers={"Content-Type": "application/json", "Host": f"127.0.0.1:{port}"})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 200, body
    return time.perf_counter() - started


def established(sock: socket.socket) -> bool:
    """The connection is still open from the gateway's side (without reading it)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return info[0] == 1  # TCP_ESTABLISHED; CLOSE_WAIT or CLOSE once the gateway closed it


def calls_while(port: int, name: str, busy, limit: int = 400) -> list[float]:
    latencies = []
    while busy() and len(latencies) < limit:
        latencies.append(timed_call(port, name))
        time.sleep(0.01)
    return latencies


@pytest.mark.slow
def test_slowloris_costs_only_its_own_connections(start_gateway, service):
    gw = start_gateway({**echo_worker(service, "loris"), "head_timeout": BOUND, "threads": 8})
    timed_call(gw.port, "loris")  # warm: the reply subscription exists
    attack = Slowloris(gw.port, SLOW_CLIENTS).start()
    try:
        attack.wait_started(5)
        latencies = calls_while(gw.port, "loris", lambda: len(attack.closed) < SLOW_CLIENTS)
        assert attack.wait_closed(BOUND + 5), f"{SLOW_CLIENTS - len(attack.closed)} slow clients still open"
        print(f"gateway slowloris: p99 {p99(latencies) * 1000:.1f} ms over {len(latencies)} calls")
        assert len(latencies) >= 100
        assert p99(latencies) < 0.100, f"p99 {p99(latencies) * 1000:.0f} ms over {len(latencies)} calls"
        held = [attack.closed[sock] - attack.started[sock] for sock in attack.socks]
        # The bound, checked on gunicorn's one-second loop tick.
        assert min(held) >= BOUND - 0.1 and max(held) <= BOUND + 2.0, (min(held), max(held))
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in attack.answers.values())
        after = [timed_call(gw.port, "loris") for _ in range(50)]
        assert p99(after) < 0.100
    finally:
        attack.close()
    assert "Traceback" not in gw.log


@pytest.mark.slow
def test_stalled_event_streams_cost_nobody_else(start_gateway, service, stalled_client, publish):
    gw = start_gateway({**echo_worker(service, "streamer"), "send_timeout": 2.0, "threads": 32})
    timed_call(gw.port, "streamer")
    streams = [stalled_client(gw.port, "news.flood") for _ in range(STALLED_STREAMS)]
    deadline = time.monotonic() + 10
    while gw.get("/api/health").json()["streams"] < STALLED_STREAMS:  # all open, then the flood
        assert time.monotonic() < deadline, "the streams did not open"
        time.sleep(0.02)
    payload = {"text": "x" * 2000}
    flowing = threading.Event()
    stop = threading.Event()

    def broadcasts():
        flowing.set()
        while not stop.is_set():
            publish("news.flood", payload)
            stop.wait(0.01)

    publisher = threading.Thread(target=broadcasts, daemon=True)
    publisher.start()
    flowing.wait(5)

    def cut_off() -> int:
        return sum(not established(sock) for sock in streams)

    try:
        started = time.monotonic()
        # Until the gateway has closed every stalled stream (it never reads them: a frozen tab).
        # At least 5 s of calls: enough of them for a p99 that is not just the slowest one.
        during = calls_while(gw.port, "streamer",
                             lambda: (cut_off() < STALLED_STREAMS or time.monotonic() - started < 5)
                             and time.monotonic() - started < 60)
        assert cut_off() == STALLED_STREAMS, "the stalled streams were never closed"
        assert gw.get("/api/health").json()["streams"] == 0
        after = [timed_call(gw.port, "streamer") for _ in range(100)]
    finally:
        stop.set()
        publisher.join(5)
    print(f"gateway stalled streams: p50 {sorted(during)[len(during) // 2] * 1000:.1f} ms, "
          f"p99 {p99(during) * 1000:.1f} ms during ({len(during)} calls in {time.monotonic() - started:.1f} s), "
          f"p99 {p99(after) * 1000:.1f} ms after")
    assert len(during) >= 100
    assert p99(during) < 0.100, f"p99 {p99(during) * 1000:.0f} ms while {STALLED_STREAMS} streams stalled"
    assert p99(after) < 0.100, f"p99 {p99(after) * 1000:.0f} ms after they were dropped"
    assert "Traceback" not in gw.log


def test_a_closed_event_stream_frees_its_slot_at_once(start_gateway):
    gw = start_gateway({"max_streams": 1, "threads": 4, "heartbeat": 30.0})
    stream = gw.events("news.a")
    stream.wait_status("up")
    assert gw.get("/api/health").json()["streams"] == 1
    stream.close()
    closed = time.monotonic()
    # Not at the next heartbeat (30 s): the gateway notices the browser's close.
    while gw.get("/api/health").json()["streams"]:
        assert time.monotonic() - closed < 2, "the closed stream still holds its slot"
        time.sleep(0.02)
    again = gw.events("news.a")
    assert again.status == 200
    again.close()


def test_deeply_nested_or_non_finite_json_is_a_400(start_gateway, service):
    gw = start_gateway({**echo_worker(service, "nested"), "max_body_bytes": 400_000})
    nested = b"[" * 100_000 + b"]" * 100_000
    # Not JSON (NaN, Infinity) is bad_json; JSON the bus cannot carry is bad_request, as a service says.
    for body, code, hint in ((b'{"a": ' + nested + b"}", "bad_request", "nested too deeply"),
                             (b'{"v": NaN}', "bad_json", "NaN"), (b'{"v": -Infinity}', "bad_json", "Infinity"),
                             (b'{"v": "\\ud800"}', "bad_request", "surrogate"),
                             (b'{"v": 1e400}', "bad_request", "too large")):
        response = gw.post("/api/services/nested/echo", data=body,
                           headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text[:200]
        error = response.json()["error"]
        assert error["code"] == code and hint in error["message"], error
    # One line each (the access log's), nothing louder, no traceback.
    assert gw.log.count("bad_json") + gw.log.count("bad_request") == 5
    assert "Traceback" not in gw.log and "ERROR" not in gw.log
    assert gw.post("/api/services/nested/echo", {"still": "serving"}).json() == {"result": {"still": "serving"}}
