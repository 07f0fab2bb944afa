"""Helpers for DaebusHttp tests: an app served in this process, raw HTTP over sockets."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import dataclass, field

import pytest

from daebus import Daebus, DaebusHttp


@dataclass
class Served:
    app: Daebus
    http: DaebusHttp
    thread: threading.Thread
    errors: list = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.http.port

    def connection(self, timeout: float = 10) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 10):
        """One request on a fresh connection: (status, headers, body bytes)."""
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, payload=None, headers=None):
        body = None if payload is None else json.dumps(payload)
        hdrs = {"Content-Type": "application/json", **(headers or {})} if body is not None else headers
        status, resp_headers, data = self.request(method, path, body, hdrs)
        return status, json.loads(data) if data else None

    def raw(self, timeout: float = 5) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return sock


@pytest.fixture
def serve(redis_url):
    """Run an app (with its DaebusHttp attached) in a thread; stop it after the test."""
    started: list[Served] = []

    def start(app: Daebus, **run_kwargs) -> Served:
        servers = [c for c in app.components if isinstance(c, DaebusHttp)]
        assert servers, "attach a DaebusHttp first"
        served = Served(app, servers[0], None)

        def run():
            try:
                app.run(redis_url=redis_url, **run_kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                served.errors.append(exc)

        served.thread = threading.Thread(target=run, name=f"app-{app.name}", daemon=True)
        started.append(served)
        served.thread.start()
        if not app.wait_ready(15):
            raise AssertionError(f"app did not become ready: {served.errors}")
        return served

    yield start
    for served in started:
        served.app.stop()
        served.thread.join(20)
        assert not served.thread.is_alive(), "app.run() did not return after stop()"


class _SharedFile:
    # http.client.HTTPResponse reads through sock.makefile() and closes it
    # after the body; one shared, unclosable buffered file lets several
    # responses be read off one raw socket.
    def __init__(self, sock: socket.socket):
        self.file = sock.makefile("rb")

    def makefile(self, *args, **kwargs):
        return self

    def close(self):
        pass

    def __getattr__(self, name):
        return getattr(self.file, name)


class ResponseReader:
    """Reads successive responses from a raw socket (pipelining, keep-alive)."""

    def __init__(self, sock: socket.socket):
        self.shared = _SharedFile(sock)

    def read(self, method: str = "GET"):
        resp = http.client.HTTPResponse(self.shared, method=method)
        resp.begin()
        return resp.status, resp.headers, resp.read()


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (the socket's timeout applies)."""
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
