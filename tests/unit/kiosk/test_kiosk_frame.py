"""The frame page and its heartbeat endpoint, over a real socket."""

import http.client
import json
import re
import socket

import pytest

from kiosk import frame
from kiosk.settings import load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(etc):
    port = free_port()
    (etc / "daebus.toml").write_text(f'[kiosk]\nurl = "http://127.0.0.1:1/</script>"\nport = {port}\n'
                                     'heartbeat_timeout = 12\n')
    heartbeat = frame.Heartbeat()
    server = frame.serve(load(), heartbeat)
    yield port, heartbeat
    server.shutdown()
    server.server_close()


def request(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, body=body)
    response = conn.getresponse()
    return response.status, response.read().decode()


def test_page_carries_the_settings(served):
    port, _ = served
    status, page = request(port, "GET", "/")
    assert status == 200
    text = re.search(r'<script id="config" type="application/json">(.*?)</script>', page, re.S).group(1)
    config = json.loads(text)
    # A URL can't end the script element early.
    assert config["url"] == "http://127.0.0.1:1/</script>" and "</script>\"" not in text
    assert config["heartbeat_seconds"] == 2.0 and config["hide_cursor"] is True


def test_heartbeat_records_the_page_state(served):
    port, heartbeat = served
    assert heartbeat.last is None
    assert request(port, "POST", "/heartbeat", "offline")[0] == 204
    assert heartbeat.state == "offline" and heartbeat.age(0) < 5
    assert request(port, "POST", "/heartbeat", "online")[0] == 204
    assert heartbeat.state == "online"


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/heartbeat", "x" * 10_000),
    ("POST", "/heartbeat", "\xff garbage"),
    ("POST", "/elsewhere", "online"),
    ("GET", "/../../etc/passwd", None),
])
def test_garbage_is_refused_and_not_counted(served, method, path, body):
    port, heartbeat = served
    status, _ = request(port, method, path, body)
    assert status in (400, 404)
    assert heartbeat.last is None
