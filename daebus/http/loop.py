"""The serving loop: one selector thread for accept and idle connections, a bounded pool for requests.

The selector thread (epoll on Linux) accepts new connections and waits on
every idle one. A connection with bytes to read goes to a bounded pool of
handler threads, which reads one request, answers it, and hands the
connection back. So a keep-alive connection costs a file descriptor, not a
thread, while it is idle, and a slow client holds a thread for at most
``timeout`` seconds. Nothing wakes while there are no connections.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time

from ..pool import WorkerPool
from .connection import Connection, Limits, Timeout
from .handling import Dispatcher
from .messages import HttpRequest
from .wire import Headers, HttpError, serialize_response, split_target, wants_keep_alive

log = logging.getLogger("daebus.http")

_ACCEPT, _WAKE = "accept", "wake"
_NO_HEADERS = Headers()
# Kernel-side selectors see a registration made by a handler thread at once;
# with select()/poll() the loop has to be woken to notice it.
_KERNEL_SELECTORS = tuple(getattr(selectors, name) for name in ("EpollSelector", "KqueueSelector",
                                                                 "DevpollSelector") if hasattr(selectors, name))


class ServeLoop:
    """Serves HTTP/1.1 on a listening socket until :meth:`stop`.

    Example::

        loop = ServeLoop(listener, Dispatcher(app, Router(app.routes)), threads=16)
        loop.start()
        ...
        loop.stop(timeout=5)
    """

    def __init__(self, listener: socket.socket, dispatcher: Dispatcher, *, threads: int = 16,
                 timeout: float = 10.0, keepalive_timeout: float = 15.0, max_connections: int = 512,
                 limits: Limits = Limits(), name: str = "daebus-http"):
        self.dispatcher = dispatcher
        self.timeout = timeout
        self.keepalive_timeout = keepalive_timeout
        self.max_connections = max_connections
        self.limits = limits
        self.name = name
        self._listener = listener
        listener.setblocking(False)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool = WorkerPool(threads, max_connections, name=name)
        self._selector = selectors.DefaultSelector()
        self._wake_on_park = not isinstance(self._selector, _KERNEL_SELECTORS)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._selector.register(listener, selectors.EVENT_READ, _ACCEPT)
        self._accepting = True
        # Idle connections by expiry time; insertion order is expiry order
        # because every connection waits the same keepalive_timeout.
        self._idle: dict[Connection, float] = {}
        self._open: set[Connection] = set()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish (up to ``timeout`` s), close everything."""
        self._stopping.set()
        self._wake()
        self._thread.join(timeout)
        self._pool.close()
        if not self._pool.join(timeout):
            log.warning("HTTP handlers still running after %.0f s; closing their connections", timeout)
        with self._lock:
            leftover = list(self._open)
        for conn in leftover:
            conn.close()
        for sock in (self._wake_r, self._wake_w):
            sock.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # already full (a wake is pending) or closed

    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                with self._lock:
                    # Sleep until the oldest idle connection expires; with no
                    # connection at all, until something happens.
                    timeout = None
                    if self._idle:
                        timeout = max(0.0, next(iter(self._idle.values())) - time.monotonic())
                    elif self._open:
                        timeout = self.keepalive_timeout
                for key, _ in self._selector.select(timeout):
                    if key.data is _ACCEPT:
                        self._accept()
                    elif key.data is _WAKE:
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except BlockingIOError:
                            pass
                    else:
                        self._dispatch(key.data)
                self._expire_idle()
                self._pause_or_resume_accept()
        except Exception:  # noqa: BLE001 - log it; the app keeps its pub/sub side
            log.exception("HTTP server loop failed; no more HTTP requests will be served")
        finally:
            self._close_all_idle()
            self._selector.close()
            self._listener.close()

    def _accept(self) -> None:
        while len(self._open) < self.max_connections:
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of file descriptors: stop accepting until a connection closes.
                log.error("accepting an HTTP connection failed: %s", exc)
                self._pause_or_resume_accept(force_pause=True)
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(sock, addr)
            with self._lock:
                self._open.add(conn)
                self._park_locked(conn)

    def _pause_or_resume_accept(self, force_pause: bool = False) -> None:
        with self._lock:
            want = not force_pause and len(self._open) < self.max_connections
            if want != self._accepting:
                if want:
                    self._selector.register(self._listener, selectors.EVENT_READ, _ACCEPT)
                else:
                    self._selector.unregister(self._listener)
                self._accepting = want

    def _dispatch(self, conn: Connection) -> None:
        with self._lock:
            if self._idle.pop(conn, None) is None:
                return  # expired and closed meanwhile
            self._selector.unregister(conn.sock)
        if not self._pool.submit(self._serve, conn):
            self._forget(conn)

    def _park_locked(self, conn: Connection) -> None:
        self._idle[conn] = time.monotonic() + self.keepalive_timeout
        self._selector.register(conn.sock, selectors.EVENT_READ, conn)

    def _park(self, conn: Connection) -> None:
        """Give a connection back to the loop to wait for its next request."""
        with self._lock:
            if self._stopping.is_set():
                self._forget_locked(conn)
                return
            self._park_locked(conn)
        if self._wake_on_park:
            self._wake()

    def _expire_idle(self) -> None:
        now = time.monotonic()
        with self._lock:
            while self._idle:
                conn, expiry = next(iter(self._idle.items()))
                if expiry > now:
                    break
                del self._idle[conn]
                self._selector.unregister(conn.sock)
                self._forget_locked(conn)

    def _close_all_idle(self) -> None:
        with self._lock:
            for conn in list(self._idle):
                self._selector.unregister(conn.sock)
                self._forget_locked(conn)
            self._idle.clear()

    def _forget(self, conn: Connection, linger: float = 0.0) -> None:
        with self._lock:
            self._open.discard(conn)
        conn.close(linger)
        if not self._accepting:
            self._wake()

    def _forget_locked(self, conn: Connection) -> None:
        self._open.discard(conn)
        conn.close()

    # -- serving (handler threads) ------------------------------------------------
    def _serve(self, conn: Connection) -> None:
        """Answer requests on ``conn`` while it has them, then park or close it."""
        try:
            while True:
                keep, linger = self._serve_one(conn)
                if not keep:
                    self._forget(conn, linger)
                    return
                if self._stopping.is_set():
                    self._forget(conn)
                    return
                if not conn.has_data:
                    self._park(conn)
                    return
        except Exception:  # noqa: BLE001 - a broken connection must not take the thread
            log.exception("HTTP connection from %s failed", conn.addr)
            self._forget(conn)

    def _serve_one(self, conn: Connection) -> tuple[bool, float]:
        """Read and answer one request: whether to keep the connection, and
        otherwise how long to linger before closing it."""
        deadline = time.monotonic() + self.timeout
        head = None
        try:
            read = conn.read_request(self.limits, deadline)
            if read is None:
                return False, 0.0
            head, body = read
            path, query = split_target(head.target)
            req = HttpRequest(head.method, path, head.headers, body, query,
                              remote_addr=conn.addr[0], remote_port=conn.addr[1],
                              http_version=head.version)
        except Timeout as exc:
            if exc.partial:
                self._send_error(conn, HttpError(408, "request not received in time"), None)
            return False, 0.0
        except HttpError as exc:
            # Refused while reading: unread body bytes may follow, so the
            # framing is lost and the connection must close. Refused after
            # (a malformed JSON body, say): the next request can follow.
            keep = head is not None and wants_keep_alive(head) and not self._stopping.is_set()
            self._send_error(conn, exc, head, close=not keep)
            return keep, min(2.0, self.timeout)
        except OSError:
            return False, 0.0
        try:
            resp = self.dispatcher.dispatch(req)
            close = (not wants_keep_alive(head) or self._stopping.is_set()
                     or "close" in resp.headers.tokens("connection"))
            data = serialize_response(resp.status, resp.headers, resp.body,
                                      head_only=req.method == "HEAD", close=close,
                                      http10=head.version == "HTTP/1.0")
        except Exception:  # noqa: BLE001 - e.g. a header a handler set that can't be encoded
            log.exception("%s %s: could not build the response", req.method, req.path)
            self._send_error(conn, HttpError(500, "internal server error", code="handler_error"), head)
            return False, 0.0
        try:
            conn.send(data, self.timeout)
        except OSError:
            return False, 0.0
        log.debug("%s %s -> %d", req.method, req.path, resp.status)
        return not close, 0.0

    def _send_error(self, conn: Connection, exc: HttpError, head, close: bool = True) -> None:
        resp = self.dispatcher.error(exc, head.headers if head is not None else _NO_HEADERS)
        data = serialize_response(resp.status, resp.headers, resp.body, close=close,
                                  http10=head is not None and head.version == "HTTP/1.0")
        try:
            conn.send(data, self.timeout)
        except OSError:
            pass

