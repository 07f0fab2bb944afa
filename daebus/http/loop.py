"""The serving loop: one selector thread that receives requests, a bounded pool that answers them.

The selector thread (epoll on Linux) accepts new connections, waits on every
idle one, and reads what clients send, without ever blocking, until a whole
request head (and a ``Content-Length`` body) is buffered. Only then does the
connection go to a bounded pool of handler threads, which answers the
request and hands the connection back. So an idle or slow client costs a
file descriptor, never a thread: a client that trickles its head a byte at
a time is answered 408 and closed ``timeout`` seconds after its first byte,
whatever the number of such clients, while complete requests keep being
served. Nothing wakes while there are no connections.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time

from daebus.ops.logs import StateLog
from daebus.service.pool import WorkerPool
from daebus.http.connection import Connection, Limits, Timeout
from daebus.http.handling import Dispatcher
from daebus.http.messages import HttpRequest
from daebus.http.wire import Headers, HttpError, serialize_response, split_target, wants_keep_alive

log = logging.getLogger("daebus.http")

_ACCEPT, _WAKE = "accept", "wake"
_NO_HEADERS = Headers()
# Out of file descriptors: accepting pauses this long, or until a connection closes.
_FD_PAUSE = 0.5
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
        self._fd_pause_until = 0.0
        self._fd_state = StateLog(log)
        # Connections the loop waits on, by deadline. Insertion order is
        # deadline order in each: idle ones all wait keepalive_timeout, ones
        # in the middle of a request all get timeout from their first byte.
        self._idle: dict[Connection, float] = {}
        self._reading: dict[Connection, float] = {}
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
        self._pool.stop()
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
                for key, _ in self._selector.select(self._next_timeout()):
                    if key.data is _ACCEPT:
                        self._accept()
                    elif key.data is _WAKE:
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except BlockingIOError:
                            pass
                    else:
                        self._receive(key.data)
                self._expire()
                self._pause_or_resume_accept()
        except Exception:  # noqa: BLE001 - log it; the app keeps its pub/sub side
            log.exception("HTTP server loop failed; no more HTTP requests will be served")
        finally:
            self._close_all_waiting()
            self._selector.close()
            self._listener.close()

    def _next_timeout(self) -> float | None:
        # Sleep until the first deadline; with no connection at all, until something happens.
        now = time.monotonic()
        with self._lock:
            deadlines = [next(iter(d.values())) for d in (self._idle, self._reading) if d]
            if not self._accepting and self._fd_pause_until:
                deadlines.append(self._fd_pause_until)
            if not deadlines:
                return self.keepalive_timeout if self._open else None
        return max(0.0, min(deadlines) - now)

    def _accept(self) -> None:
        while len(self._open) < self.max_connections:
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of file descriptors (EMFILE, ENFILE) or memory: the
                # pending connection stays in the backlog and the listener
                # stays readable, so stop watching it for a while instead of
                # spinning on it; a closed connection resumes sooner.
                self._fd_state.set("paused", logging.ERROR, "accepting HTTP connections failed (%s); "
                                   "pausing accept until a connection closes", exc)
                with self._lock:
                    self._fd_pause_until = time.monotonic() + _FD_PAUSE
                self._pause_or_resume_accept()
                return
            self._fd_state.set("ok", logging.INFO, "accepting HTTP connections again")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(sock, addr)
            with self._lock:
                self._open.add(conn)
                self._park_locked(conn)

    def _pause_or_resume_accept(self) -> None:
        with self._lock:
            if self._fd_pause_until and time.monotonic() >= self._fd_pause_until:
                self._fd_pause_until = 0.0
            want = not self._fd_pause_until and len(self._open) < self.max_connections
            if want != self._accepting:
                if want:
                    self._selector.register(self._listener, selectors.EVENT_READ, _ACCEPT)
                else:
                    self._selector.unregister(self._listener)
                self._accepting = want

    def _receive(self, conn: Connection) -> None:
        """Buffer what a waiting client sent; hand it to a handler once it
        has a whole request (loop thread, never blocks)."""
        try:
            got = conn.fill_nowait()
        except OSError:
            got = 0
        if got is None:
            return
        with self._lock:
            if conn in self._idle:
                # The request's clock starts with its first byte.
                del self._idle[conn]
                self._reading[conn] = time.monotonic() + self.timeout
            if got and not conn.request_buffered(self.limits):
                return
            if self._reading.pop(conn, None) is None:
                return  # expired and closed meanwhile
            self._selector.unregister(conn.sock)
        if not conn.buf:
            self._forget(conn)  # closed while idle
        elif not self._pool.submit(self._serve, conn):
            self._forget(conn)

    def _park_locked(self, conn: Connection) -> None:
        conn.sock.setblocking(False)
        if conn.buf:
            # Part of a pipelined request is here: its deadline runs from now.
            self._reading[conn] = time.monotonic() + self.timeout
        else:
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

    def _expire(self) -> None:
        now = time.monotonic()
        late: list[Connection] = []
        with self._lock:
            for waiting in (self._idle, self._reading):
                while waiting:
                    conn, expiry = next(iter(waiting.items()))
                    if expiry > now:
                        break
                    del waiting[conn]
                    self._selector.unregister(conn.sock)
                    if waiting is self._reading:
                        late.append(conn)
                    else:
                        self._forget_locked(conn)
        for conn in late:
            # Best effort and without waiting: a client this slow may not read it.
            log.debug("HTTP client %s did not send a whole request within %g s", conn.addr, self.timeout)
            resp = self.dispatcher.error(HttpError(408, "request not received in time"), _NO_HEADERS)
            conn.send_nowait(serialize_response(resp.status, resp.headers, resp.body, close=True))
            self._forget(conn)

    def _close_all_waiting(self) -> None:
        with self._lock:
            for waiting in (self._idle, self._reading):
                for conn in list(waiting):
                    self._selector.unregister(conn.sock)
                    self._forget_locked(conn)
                waiting.clear()

    def _forget(self, conn: Connection, linger: float = 0.0) -> None:
        with self._lock:
            self._open.discard(conn)
            self._fd_pause_until = 0.0  # a file descriptor is free again
        conn.close(linger)
        if not self._accepting:
            self._wake()

    def _forget_locked(self, conn: Connection) -> None:
        self._open.discard(conn)
        self._fd_pause_until = 0.0
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
                if not conn.request_buffered(self.limits):
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
            self._send_error(conn, HttpError(500, "internal server error"), head)
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

