"""Attackers for tests: slowloris connections and latency percentiles, bounded, on loopback."""

from __future__ import annotations

import selectors
import socket
import threading
import time


class Slowloris:
    """Connections that send a request head one byte at a time, each noting
    when its first byte went out and when the server closed it."""

    def __init__(self, port: int, count: int, interval: float = 0.5):
        self.interval = interval
        self.socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        self.started: dict[socket.socket, float] = {}
        self.closed: dict[socket.socket, float] = {}
        self.answers: dict[socket.socket, bytes] = {s: b"" for s in self.socks}
        self.head = b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 1000
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        sel = selectors.DefaultSelector()
        for sock in self.socks:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
        sent = 0
        next_send = time.monotonic()
        while not self._stop.is_set() and len(self.closed) < len(self.socks):
            if time.monotonic() >= next_send:
                for sock in self.socks:
                    if sock in self.closed:
                        continue
                    try:
                        sock.send(self.head[sent:sent + 1])
                        self.started.setdefault(sock, time.monotonic())
                    except OSError:
                        self._closed(sel, sock)
                sent += 1
                next_send += self.interval
            for key, _ in sel.select(max(0.0, min(0.25, next_send - time.monotonic()))):
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                if data:
                    self.answers[key.fileobj] += data
                else:
                    self._closed(sel, key.fileobj)

    def _closed(self, sel, sock):
        if sock not in self.closed:
            self.closed[sock] = time.monotonic()
            sel.unregister(sock)

    def wait_started(self, timeout: float) -> None:
        """Until every connection has sent its first byte."""
        deadline = time.monotonic() + timeout
        while len(self.started) < len(self.socks):
            assert time.monotonic() < deadline, "the slow clients did not start"
            time.sleep(0.01)

    def wait_closed(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def close(self):
        self._stop.set()
        self.thread.join(5)
        for sock in self.socks:
            sock.close()


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(len(ordered) * 0.99) - 1)]
