"""Bad input, limits, slow clients, bursts and bind failures, over real sockets."""

import http.client
import json
import signal
import socket
import threading
import time

import pytest
import requests
from http_harness import ResponseReader, read_all, serve  # noqa: F401 - serve is a fixture
from support import free_port

from daebus import Daebus, DaebusHttp


def make_app(**http_kwargs):
    app = Daebus("limits-test")
    http = app.attach(DaebusHttp(port=free_port(), **http_kwargs))

    @app.route("/echo", methods=["GET", "POST"])
    def echo(req):
        return {"json": req.json, "size": len(req.body)}

    return app, http


def test_malformed_json_is_400_at_once_and_the_connection_survives(serve):
    app, _ = make_app()
    s = serve(app)
    conn = s.connection(timeout=3)
    started = time.monotonic()
    conn.request("POST", "/echo", body=b'{"broken": ', headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 400 and body["error"]["code"] == "bad_request" and "malformed JSON" in body["error"]["message"]
    assert time.monotonic() - started < 2
    conn.request("POST", "/echo", body=b'{"ok": 1}', headers={"Content-Type": "application/json"})
    assert json.loads(conn.getresponse().read()) == {"json": {"ok": 1}, "size": 9}
    conn.close()


def test_oversized_body_is_413_before_it_is_sent(serve):
    app, _ = make_app()
    sock = serve(app).raw(timeout=3)
    # Only the head: a server that waited for the 10 MB would time this recv out.
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 10000000\r\n\r\n")
    data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in data and b"payload_too_large" in data
    sock.close()


def test_oversized_body_sent_anyway_still_gets_a_413(serve):
    app, _ = make_app()
    s = serve(app)
    r = requests.post(f"http://127.0.0.1:{s.port}/echo", data=b"x" * (2 * 1024 * 1024 + 1), timeout=10)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_body_limit_is_configurable(serve):
    app, _ = make_app(max_body_size=100)
    s = serve(app)
    assert s.request("POST", "/echo", b"x" * 100)[0] == 200
    assert s.request("POST", "/echo", b"x" * 101)[0] == 413
    assert json.loads(s.request("POST", "/echo", b"x" * 1000)[2])["error"]["message"].endswith("100 byte limit")


@pytest.mark.parametrize("length", [b"abc", b"-5", b"1.5", b"5\r\nContent-Length: 6", b""])
def test_bad_content_length_is_400_and_closes(serve, length):
    app, _ = make_app()
    sock = serve(app).raw(timeout=3)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: " + length + b"\r\n\r\nhello")
    data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in data
    sock.close()


def test_garbage_gets_a_400_not_a_hang(serve):
    app, _ = make_app()
    sock = serve(app).raw(timeout=3)
    sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")  # a TLS hello, roughly
    assert read_all(sock).startswith(b"HTTP/1.1 400 ")
    sock.close()


def test_stalled_client_gets_408_and_is_closed(serve):
    app, _ = make_app(timeout=0.5)
    sock = serve(app).raw(timeout=5)
    sock.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n")  # and never the blank line
    started = time.monotonic()
    data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert 0.4 < time.monotonic() - started < 3
    sock.close()


def test_body_that_never_arrives_times_out(serve):
    app, _ = make_app(timeout=0.5)
    sock = serve(app).raw(timeout=5)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    assert read_all(sock).startswith(b"HTTP/1.1 408 ")
    sock.close()


def test_stalled_clients_do_not_hold_the_threads(serve):
    app, _ = make_app(threads=2, timeout=1.0)
    s = serve(app)
    # Idle connections wait in the selector, not in a thread...
    idle = [s.raw() for _ in range(10)]
    started = time.monotonic()
    assert s.request("GET", "/echo", timeout=5)[0] == 200
    assert time.monotonic() - started < 0.9
    # ...and clients stuck mid-request hold a thread for `timeout` at most.
    stalled = [s.raw() for _ in range(2)]
    for sock in stalled:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n")
    started = time.monotonic()
    assert s.request("GET", "/echo", timeout=10)[0] == 200
    assert time.monotonic() - started < 5
    for sock in idle + stalled:
        sock.close()


def test_idle_keep_alive_connections_are_closed(serve):
    app, _ = make_app(keepalive_timeout=0.5)
    sock = serve(app).raw(timeout=5)
    sock.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
    reader = ResponseReader(sock)
    assert reader.read()[0] == 200
    started = time.monotonic()
    assert sock.recv(100) == b""
    assert 0.3 < time.monotonic() - started < 3
    sock.close()


def test_connections_past_the_limit_wait_in_the_backlog(serve):
    app, _ = make_app(max_connections=2)
    s = serve(app)
    first, second = s.raw(), s.raw()
    for sock in (first, second):
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        assert ResponseReader(sock).read()[0] == 200
    third = s.raw(timeout=0.5)  # the kernel completes the handshake; the server does not accept
    third.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    with pytest.raises(TimeoutError):
        third.recv(100)
    first.close()  # frees a slot: the third is accepted and answered
    third.settimeout(5)
    assert read_all(third).startswith(b"HTTP/1.1 200 ")
    second.close()
    third.close()


def burst(port, clients=64, path="/echo"):
    """``clients`` new connections at once, one request each: statuses and errors."""
    barrier = threading.Barrier(clients)
    statuses, errors = [], []

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            barrier.wait(10)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return statuses, errors


def test_burst_of_64_clients(serve):
    app, _ = make_app()
    s = serve(app)
    started = time.monotonic()
    statuses, errors = burst(s.port)
    assert errors == []
    assert statuses == [200] * 64
    # A dropped SYN costs the client a 1 s retransmit; none should have happened.
    assert time.monotonic() - started < 5


def test_handler_threads_are_bounded(serve):
    app = Daebus("bounded-test")
    app.attach(DaebusHttp(port=free_port(), threads=4))
    lock = threading.Lock()
    state = {"running": 0, "peak": 0}
    four_running = threading.Event()
    release = threading.Event()

    @app.route("/slow")
    def slow(req):
        with lock:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
            if state["running"] == 4:
                four_running.set()
        release.wait(20)
        with lock:
            state["running"] -= 1
        return {"ok": True}

    s = serve(app)
    result = {}
    clients = threading.Thread(target=lambda: result.update(zip(("statuses", "errors"), burst(s.port, 64, "/slow"))))
    clients.start()
    assert four_running.wait(15)
    # Give any extra (unbounded) handler threads the chance to show up before releasing.
    time.sleep(0.5)
    assert state["peak"] == 4
    release.set()
    clients.join(30)
    assert result["errors"] == [] and result["statuses"] == [200] * 64
    assert state["peak"] == 4


def test_backlog_holds_a_burst_while_the_server_is_frozen(service):
    port = free_port()
    svc = service("http_readme_hello.py", str(port))
    # Frozen, the service accepts nothing: each connection must wait in the
    # listen backlog. With the old backlog of 5 the kernel drops SYNs and
    # these connects time out.
    svc.signal(signal.SIGSTOP)
    socks = []
    try:
        for _ in range(64):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
        for sock in socks:
            sock.sendall(b"GET /hello?name=burst HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    finally:
        svc.signal(signal.SIGCONT)
    for sock in socks:
        sock.settimeout(10)
        data = read_all(sock)
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b'{"message":"Hello, burst!"}')
        sock.close()
    assert len(socks) == 64


def test_port_in_use_makes_run_raise(redis_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = Daebus("bind-test")
        app.attach(DaebusHttp(port=port))
        with pytest.raises(OSError, match=rf"DaebusHttp cannot listen on 127.0.0.1:{port}.*in use"):
            app.run(redis_url=redis_url)
    assert not app.is_running()


def test_port_in_use_makes_the_service_exit_with_the_reason(service):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        svc = service("http_readme_hello.py", str(port), wait=False)
        assert svc.wait(20) != 0
    assert f"DaebusHttp cannot listen on 127.0.0.1:{port}" in svc.log
    assert "READY=1" not in svc.notify.messages
