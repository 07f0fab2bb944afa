"""A real gateway for the tests: gunicorn in a subprocess, configured by a
TOML file, ready when it sends READY=1 to a socket the test binds."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import redis
import requests

from daebus.bus.kept import KeepingPublisher
from gateway.settings import render
from support import ROOT, ManagedProcess, Service, free_port

# Patterns every test gateway exposes unless a test says otherwise.
EXPOSED = {
    "expose_actions": ["echo/*", "ghost/*", "busy/*", "slowpoke/*"],
    "expose_channels": ["news.*", "echo.*", "busy.*", "slowpoke.*"],
}


def write_config(path: Path, redis_url: str, gateway: dict) -> Path:
    path.write_text(render(redis_url, gateway))
    return path


class GatewayProcess(ManagedProcess):
    """``gunicorn -c python:gateway.gunicorn_conf gateway.wsgi:app``."""

    def __init__(self, redis_url: str, gateway: dict | None = None, *, args=(), env=None,
                 wait: bool = True, expose: bool = True):
        self.dir = Path(tempfile.mkdtemp(prefix="daebus-gw-"))
        self.port = free_port()
        config = {"bind": f"127.0.0.1:{self.port}", **(EXPOSED if expose else {}), **(gateway or {})}
        self.config = write_config(self.dir / "daebus.toml", redis_url, config)
        env = dict(env or {})
        journal = env.pop("JOURNAL_STREAM", None) == "auto"
        full_env = {**os.environ, "DAEBUS_CONFIG": str(self.config), "PYTHONPATH": str(ROOT),
                    "PYTHONUNBUFFERED": "1", **env}
        full_env.pop("DAEBUS_REDIS_URL", None)
        # Its own process group: kill() reaches the gunicorn worker too.
        super().__init__([sys.executable, "-m", "gunicorn", "-c", "python:gateway.gunicorn_conf", *args,
                          "gateway.wsgi:app"], full_env, name="gateway", log_path=self.dir / "gateway.log",
                         journal=journal, new_session=True)
        if wait:
            self.wait_ready()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> None:
        super().wait_ready(timeout)

    def post(self, path: str, payload=None, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 15)
        if payload is not None:
            kwargs["json"] = payload
        return requests.post(self.url + path, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 15)
        return requests.get(self.url + path, **kwargs)

    def events(self, *channels: str, **kwargs) -> SseClient:
        return SseClient(self.url, channels, **kwargs)

    def terminate(self, timeout: float = 15) -> int:
        return self.stop(timeout)

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.dir, ignore_errors=True)


class SseClient:
    """What a browser's ``EventSource`` does: one GET, then events parsed
    from ``id:``/``event:``/``data:`` lines, comments kept for the tests."""

    def __init__(self, base_url: str, channels, *, headers=None, query=None, timeout: float = 5):
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        params = [("channel", c) for c in channels] + list((query or {}).items())
        self.conn.request("GET", "/api/events?" + urlencode(params),
                          headers={"Accept": "text/event-stream", **(headers or {})})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.comments: list[str] = []
        self.retry: str | None = None

    def body(self) -> dict:
        return json.loads(self.response.read())

    def next_event(self, timeout: float | None = None) -> dict | None:
        """The next event (a dict with id, event, data); None at the end of
        the stream. Raises TimeoutError when nothing comes in time."""
        if timeout is not None:
            self.conn.sock.settimeout(timeout)
        event: dict = {}
        while True:
            raw = self.response.readline()
            if not raw:
                return None
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                if "data" in event or "event" in event:
                    event.setdefault("event", "message")
                    return event
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "":
                self.comments.append(value)
            elif field == "data":
                event["data"] = event["data"] + "\n" + value if "data" in event else value
            elif field in ("id", "event"):
                event[field] = value
            elif field == "retry":
                self.retry = value

    def wait_comment(self, text: str, timeout: float = 5) -> None:
        """Read until the comment line ``: text`` arrives."""
        self.conn.sock.settimeout(timeout)
        while True:
            raw = self.response.readline()
            assert raw, "the stream ended"
            if raw.decode("utf-8").rstrip("\r\n") == f": {text}":
                return

    def next_message(self, timeout: float = 5) -> dict:
        """The next broadcast (status events skipped), its data decoded."""
        while True:
            event = self.next_event(timeout)
            assert event is not None, "the stream ended"
            if event["event"] == "message":
                return {"id": event.get("id"), **json.loads(event["data"])}

    def wait_status(self, state: str = "up", timeout: float = 10) -> None:
        while True:
            event = self.next_event(timeout)
            assert event is not None, "the stream ended"
            if event["event"] == "status" and json.loads(event["data"])["redis"] == state:
                return

    def close(self) -> None:
        self.conn.close()


def _stalled_client(port: int, channel: str) -> socket.socket:
    sock = socket.socket()
    # A small receive buffer fills sooner, as a browser that stopped reading does.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /api/events?channel={channel} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                 f"Accept: text/event-stream\r\n\r\n".encode())
    return sock


@pytest.fixture
def start_gateway(redis_url):
    """``start_gateway(gateway_config, redis_url=..., args=..., wait=...)``."""
    started: list[GatewayProcess] = []

    def start(gateway: dict | None = None, *, url: str | None = None, **kwargs) -> GatewayProcess:
        gw = GatewayProcess(url or redis_url, gateway, **kwargs)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.close()


@pytest.fixture(scope="module")
def shared_gateway(redis_server):
    """One gateway and one echo worker for the tests that only read."""
    echo = Service("gateway_echo.py", redis_server.url, "echo")
    gw = GatewayProcess(redis_server.url, {"max_body_bytes": 4096, "max_timeout": 2.0,
                                           "default_timeout": 2.0})
    yield gw
    gw.close()
    echo.close()


@pytest.fixture
def stalled_client():
    """``stalled_client(port, channel)`` opens a stream and never reads it
    (a frozen browser tab)."""
    sockets: list[socket.socket] = []

    def open_(port: int, channel: str) -> socket.socket:
        sockets.append(_stalled_client(port, channel))
        return sockets[-1]

    yield open_
    for sock in sockets:
        sock.close()


@pytest.fixture
def publish_to():
    """``publish_to(url)(channel, payload)`` as a daebus worker's broadcast
    does: kept for replay when a gateway declared the channel."""
    clients = []

    def make(url: str):
        client = redis.Redis.from_url(url)
        clients.append(client)
        send_kept = KeepingPublisher(client, client.publish)
        return lambda channel, payload: send_kept(channel, json.dumps(payload))

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def publish(publish_to, redis_url):
    """``publish(channel, payload)`` on the shared Redis."""
    return publish_to(redis_url)
