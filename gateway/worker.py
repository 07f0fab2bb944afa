"""The gateway's gunicorn worker: ``gthread``, but a thread only gets a connection whose request has arrived.

gunicorn's ``gthread`` worker gives a connection to a thread as soon as it
is accepted (or, kept alive, as soon as a byte arrives), and that thread then
blocks until the request head is complete. A hundred clients sending their
heads a byte a second therefore hold every thread, and every other request
waits. This worker keeps such connections on the worker's main loop (the
poller gthread already runs) and reads what they send without blocking; a
connection goes to a thread once its head, and a body announced with
``Content-Length``, is buffered. A client still short of that
``head_timeout`` seconds after its first byte is answered 408 and closed by
the main loop (checked every second, gunicorn's loop tick). Chunked bodies,
and bodies behind ``Expect: 100-continue``, are read by the thread.

It works with bookworm's gunicorn 20.1 and with current releases: it only
overrides ``enqueue_req`` (how both versions hand a connection to a thread),
``murder_keepalived`` (called on every loop tick) and ``run``.

Select it with ``worker_class = "gateway.worker.GatewayWorker"`` (as
:mod:`gateway.gunicorn_conf` does).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import selectors
import socket
import time
from functools import partial

from gunicorn.workers.gthread import ThreadWorker

from . import admission


log = logging.getLogger("gateway")

# A head this large without its end is refused (431) rather than handed on.
MAX_HEAD = 64 * 1024
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*([0-9]{1,12})[ \t]*(?=\r\n)", re.I)
# A chunked body, or one the client sends only after "100 Continue", is the thread's to read.
_THREAD_READS_BODY = re.compile(rb"\r\n(?:transfer-encoding|expect)[ \t]*:", re.I)
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
              b"Content-Length: 0\r\n\r\n")
_TOO_SLOW = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def request_ready(data: bytes, max_body: int) -> bool | None:
    """True when ``data`` starts with a whole request head (and its
    ``Content-Length`` body up to ``max_body`` bytes), None when the head is
    too large, False while more must arrive."""
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2  # stray CRLFs between requests (RFC 9112 2.2)
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        return None if len(data) - start > MAX_HEAD else False
    head = data[start:end + 2]
    if _THREAD_READS_BODY.search(head):
        return True
    match = _CONTENT_LENGTH.search(head)
    if match is None:
        return True
    length = int(match.group(1))
    # A body over the limit is the application's to refuse (413), unread.
    return length > max_body or len(data) >= end + 4 + length


class GatewayWorker(ThreadWorker):
    """``gthread`` whose threads never wait for a client's request to arrive."""

    head_timeout = 10.0
    max_body = 64 * 1024

    def run(self):
        # Imported here: gunicorn's master loads this class, and only the
        # worker loads the app (Flask and the rest).
        from .app import get_gateway

        gateway = get_gateway(self.wsgi)
        self._admission = None
        if gateway is not None:
            self.head_timeout = gateway.settings.head_timeout
            self.max_body = gateway.settings.max_body_bytes
            # Resumed streams past the rate are told when to come back, here, without a thread.
            self._admission = admission.Admission(gateway.settings.replay_rate, gateway.settings.replay_burst)
        # Connections whose request is still arriving, with their bytes and
        # deadline; insertion order is deadline order (one timeout for all).
        self._arriving: dict = {}
        return super().run()

    def _poller_lock(self):
        # gunicorn 20.1 registers kept-alive sockets from threads, under _lock.
        lock = getattr(self, "_lock", None)
        return lock if lock is not None else contextlib.nullcontext()

    @staticmethod
    def _held(conn) -> bytes:
        parser = getattr(conn, "parser", None)
        return parser.unreader.buf.getvalue() if parser is not None else b""

    def enqueue_req(self, conn):
        if self.cfg.is_ssl:
            return super().enqueue_req(conn)
        if request_ready(self._held(conn), self.max_body):
            return self._hand_over(conn, b"")
        self._arriving[conn] = [bytearray(), time.monotonic() + self.head_timeout]
        conn.sock.setblocking(False)
        with self._poller_lock():
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn, _fileobj):
        entry = self._arriving.get(conn)
        if entry is None:
            return
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        buf = entry[0]
        buf += data
        ready = request_ready(self._held(conn) + bytes(buf), self.max_body) if data else True
        if ready is False:
            return
        self._stop_waiting(conn)
        if ready is None:
            self._refuse(conn, _TOO_LARGE)
        elif not data and not buf and not self._held(conn):
            self._refuse(conn, b"")  # closed while idle
        else:
            self._hand_over(conn, buf)

    def _stop_waiting(self, conn) -> None:
        self._arriving.pop(conn, None)
        with self._poller_lock():
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.sock)

    def _hand_over(self, conn, data) -> None:
        gate = getattr(self, "_admission", None)
        if gate is not None:
            head = self._held(conn) + bytes(data)
            if admission.resumes_stream(head):
                wait = gate.admit()
                if wait is not None:
                    return self._refuse(conn, admission.busy_answer(wait))
        conn.init()  # blocking socket and parser; idempotent in every version
        if data:
            unreader = conn.parser.unreader
            held = unreader.buf.getvalue()
            unreader.buf = io.BytesIO()
            unreader.buf.write(held + bytes(data))
        super().enqueue_req(conn)

    def _refuse(self, conn, answer: bytes) -> None:
        if answer:
            with contextlib.suppress(OSError):
                conn.sock.send(answer, socket.MSG_DONTWAIT)
        self.nr_conns -= 1
        with contextlib.suppress(OSError):
            conn.sock.close()

    def murder_keepalived(self, *args, **kwargs):
        super().murder_keepalived(*args, **kwargs)
        arriving = getattr(self, "_arriving", None)
        if not arriving:
            return
        now = time.monotonic()
        for conn, (_, deadline) in list(arriving.items()):
            if deadline > now and self.alive:
                break
            self._stop_waiting(conn)
            log.debug("closed a connection that sent no whole request within %g s", self.head_timeout)
            self._refuse(conn, _TOO_SLOW if self.alive else b"")
