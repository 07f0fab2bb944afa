"""A gateway call whose HTTP client hangs up is cancelled on the service:
a real gunicorn gateway, a real worker (tests/services/cancellable.py) and
raw sockets that close as a browser's aborted fetch does."""

from __future__ import annotations

import json
import socket
import time

import pytest

from support import HandlerReports

# Hearing the hang-up is one epoll wake-up on the gateway; telling the service one PUBLISH.
GONE_BOUND = 0.4


@pytest.fixture
def events(redis_server):
    watched = HandlerReports(redis_server.client(), "cancel.events")
    yield watched
    watched.close()


@pytest.fixture
def stack(service, start_gateway):
    service("cancellable.py")
    return start_gateway({"expose_actions": ["cancellable/*"], "max_timeout": 30.0})


def open_call(port: int, action: str, tag: str, accept: str = "application/json") -> socket.socket:
    body = json.dumps({"tag": tag, "seconds": 10}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST /api/services/cancellable/{action}?timeout=30 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                 f"Content-Type: application/json\r\nAccept: {accept}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return sock


@pytest.mark.parametrize("accept", ["application/json", "text/event-stream"])
def test_a_client_that_hangs_up_cancels_the_handler(stack, events, accept):
    sock = open_call(stack.port, "nap", accept, accept)
    try:
        events.wait("started", accept)
    finally:
        at = time.time()
        sock.close()
    report = events.wait("cancelled", accept)
    assert report["reason"] == "disconnected"
    assert report["at"] - at < GONE_BOUND, report["at"] - at


def test_a_client_that_hangs_up_mid_stream_cancels_the_handler(stack, events):
    sock = open_call(stack.port, "pulse", "pulse", "text/event-stream")
    try:
        events.wait("started", "pulse")
        head = b""
        while b"event: progress" not in head:   # the stream is under way
            chunk = sock.recv(4096)
            assert chunk, head
            head += chunk
    finally:
        at = time.time()
        sock.close()
    report = events.wait("cancelled", "pulse")
    assert report["reason"] == "disconnected" and report["at"] - at < GONE_BOUND


def test_a_client_that_stays_gets_its_answer(stack, events):
    # The watch ends with the call: a kept-alive connection is not mistaken for a hang-up.
    response = stack.post("/api/services/cancellable/wait", {"tag": "stays", "seconds": 0.2})
    assert response.status_code == 200 and response.json() == {"result": "waited"}
    events.wait("finished", "stays")
    assert "cancelled" not in events.of("stays")
