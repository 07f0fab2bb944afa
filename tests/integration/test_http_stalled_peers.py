"""DaebusHttp against clients that stall, trickle, nest or exhaust file descriptors, over real sockets."""

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from http_harness import serve  # noqa: F401 - a fixture
from stall_harness import Slowloris, p99
from support import ROOT, free_port

from daebus import Daebus, DaebusHttp, response

SLOW_CLIENTS = 100
BOUND = 2.0  # the server's timeout in these tests: a whole request must arrive within it


def make_app(**http_kwargs):
    app = Daebus("stalled-peers")
    app.attach(DaebusHttp(port=free_port(), **http_kwargs))

    @app.route("/ping")
    def ping(req):
        return {"pong": True}

    @app.route("/echo", methods=["POST"])
    def echo(req):
        return {"json": req.json}

    return app


def timed_get(port: int) -> float:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 "), data[:100]
    return time.perf_counter() - started


def test_slowloris_costs_only_its_own_connections(serve):
    s = serve(make_app(timeout=BOUND, threads=4))
    attack = Slowloris(s.port, SLOW_CLIENTS).start()
    try:
        attack.wait_started(5)
        # Normal requests for as long as the attack holds its connections open.
        latencies = []
        while len(attack.closed) < SLOW_CLIENTS and len(latencies) < 400:
            latencies.append(timed_get(s.port))
            time.sleep(0.005)
        assert attack.wait_closed(BOUND + 5), f"{SLOW_CLIENTS - len(attack.closed)} slow clients still open"
        assert len(latencies) >= 50
        assert p99(latencies) < 0.100, f"p99 {p99(latencies) * 1000:.0f} ms over {len(latencies)} requests"
        # Each slow connection was answered 408 and closed at the bound, not before, not much after.
        held = [attack.closed[sock] - attack.started[sock] for sock in attack.socks]
        assert min(held) >= BOUND - 0.1, min(held)
        assert max(held) <= BOUND + 1.5, max(held)
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in attack.answers.values())
        # And afterwards the server serves as before.
        assert timed_get(s.port) < 1
    finally:
        attack.close()


def test_a_slow_content_length_body_does_not_take_a_handler_thread(serve):
    s = serve(make_app(timeout=BOUND, threads=1))
    slow = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    slow.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 9\r\n\r\n{")
    try:
        # The only handler thread is free: the body is still being received by the loop.
        assert timed_get(s.port) < 0.5
        slow.sendall(b'"a": 12}')  # 9 bytes in all: now it is complete
        data = slow.recv(65536)
        assert data.startswith(b"HTTP/1.1 200 ") and b'{"json":{"a":12}}' in data
    finally:
        slow.close()


def test_deeply_nested_json_is_a_400_with_at_most_one_log_line(serve, caplog):
    s = serve(make_app())
    body = b"[" * 100_000 + b"]" * 100_000
    with caplog.at_level(logging.DEBUG, logger="daebus"):
        caplog.clear()
        status, _, data = s.request("POST", "/echo", body, {"Content-Type": "application/json"})
        status2, _, data2 = s.request("POST", "/echo", b'{"v": NaN}', {"Content-Type": "application/json"})
    assert status == 400 and json.loads(data)["error"]["code"] == "bad_request", data[:200]
    assert "nested too deeply" in json.loads(data)["error"]["message"]
    assert status2 == 400 and "NaN" in json.loads(data2)["error"]["message"]
    noisy = [r for r in caplog.records if r.levelno >= logging.INFO or r.exc_info]
    assert len(noisy) <= 2 and not any(r.exc_info for r in caplog.records), noisy
    assert s.json("POST", "/echo", {"still": "serving"}) == (200, {"json": {"still": "serving"}})


def test_a_handler_returning_nan_gets_a_500_not_invalid_json(serve):
    app = make_app()

    @app.route("/nan")
    def nan(req):
        return {"v": float("nan")}

    s = serve(app)
    status, _, data = s.request("GET", "/nan")
    assert status == 500 and json.loads(data)["error"]["code"] == "handler_error"


def test_int_routes_take_ascii_digits_only(serve):
    app = make_app()

    @app.route("/devices/<int:device_id>")
    def device(req, device_id):
        return {"id": device_id}

    s = serve(app)
    assert s.request("GET", "/devices/%D9%A3")[0] == 404
    assert s.request("GET", "/devices/" + "7" * 5000)[0] == 404
    assert s.json("GET", "/devices/3") == (200, {"id": 3})


FD_SERVER = textwrap.dedent("""
    import logging, resource, socket, sys, time
    from daebus.http.handling import Dispatcher
    from daebus.http.loop import ServeLoop
    from daebus.http.routing import Router

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    class App:
        name = "fd-test"

    router = Router()
    router.add("/ping", ["GET"], lambda req: {"pong": True})
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    loop = ServeLoop(listener, Dispatcher(App(), router), threads=2, timeout=60, keepalive_timeout=60)
    loop.start()
    print("PORT", listener.getsockname()[1], flush=True)
    sys.stdin.read()
""")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_running_out_of_file_descriptors_pauses_accept_instead_of_spinning(tmp_path):
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-c", FD_SERVER, "40"], cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=log_file, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    clients = []
    try:
        deadline = time.monotonic() + 15
        while "PORT" not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        port = int(log_path.read_text().split("PORT", 1)[1].split()[0])
        # More connections than the server has descriptors for: the rest wait in its backlog.
        for _ in range(60):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)  # let it reach the limit
        before = cpu_seconds(proc.pid)
        time.sleep(3.0)  # a spinning loop would burn these 3 s
        burnt = cpu_seconds(proc.pid) - before
        assert burnt < 0.5, f"{burnt:.2f} s of CPU in 3 s while out of descriptors"
        text = log_path.read_text()
        assert 1 <= text.count("accepting HTTP connections failed") <= 3, text[-2000:]
        # Closing connections lets the waiting ones in, and they are served.
        for sock in clients[:30]:
            sock.close()
        waiting = clients[-1]
        waiting.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        assert waiting.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert proc.poll() is None
    finally:
        for sock in clients:
            sock.close()
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("value, hint", [(float("nan"), "NaN"), (float("inf"), "infinities"),
                                         ({"x": "\ud800"}, "surrogate"), ("\udc00 as text", "surrogate"),
                                         (object(), "not JSON serializable")],
                         ids=["nan", "inf", "surrogate", "surrogate-text", "object"])
def test_an_answer_no_client_could_read_is_a_500_naming_it_in_one_log_line(serve, caplog, value, hint):
    app = Daebus("unsendable")
    app.attach(DaebusHttp(port=free_port()))

    @app.route("/answer")
    def answer(req):
        return value

    @app.route("/sent")
    def sent(req):
        return response.send({"v": value}, 201)

    s = serve(app)
    for path in ("/answer", "/sent"):
        with caplog.at_level(logging.DEBUG, logger="daebus"):
            status, _, data = s.request("GET", path)
        assert status == 500, data[:300]
        error = json.loads(data)["error"]
        assert error["code"] == "handler_error" and hint in error["message"], error
        assert not any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records]
        assert [r.levelname for r in caplog.records if hint in r.getMessage()] == ["ERROR"]
        caplog.clear()


@pytest.mark.parametrize("body, hint", [(b'{"x": "\\ud800"}', "surrogate"), (b'{"x": 1e400}', "too large"),
                                        (b'{"x": "\\udc00\\ud800"}', "surrogate")])
def test_json_the_bus_cannot_carry_is_a_400_naming_the_problem(serve, caplog, body, hint):
    s = serve(make_app())
    with caplog.at_level(logging.DEBUG, logger="daebus"):
        status, _, data = s.request("POST", "/echo", body, {"Content-Type": "application/json"})
    assert status == 400, data[:300]
    error = json.loads(data)["error"]
    assert error["code"] == "bad_request" and hint in error["message"], error
    assert not any(r.exc_info for r in caplog.records)
    assert s.json("POST", "/echo", {"x": "\U0001F600"}) == (200, {"json": {"x": "\U0001F600"}})
