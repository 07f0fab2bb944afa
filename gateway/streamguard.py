"""Event streams and calls that end as soon as their browser is gone, and
streams whose browser stops reading.

Three things a response can't see by itself:

- A browser that closed the connection: nothing is written to an idle
  stream until the next event or heartbeat, so without a watch its slot
  stays taken that long. :class:`PeerWatch` is one thread that waits (epoll)
  on every open stream's socket and ends a stream when its peer hangs up.
- A browser that stopped reading: a write into its full socket would block
  the thread, and when the socket's timeout fired gunicorn would log a
  traceback and close the connection gracefully, lingering up to 2 s on the
  worker's main thread, once per stalled stream. :func:`guard` waits for
  room before each write, at most ``send_timeout`` seconds, and otherwise
  aborts the connection itself (reset, nothing left to linger on).
- A browser that closed the connection of a call still running (a page's
  ``AbortController``, a closed tab): :class:`ClientWatch` puts the call's
  socket in the same :class:`PeerWatch`, and its hang-up cancels the call,
  on the bus too.

Example::

    body = guard(sse_body(hub, stream, heartbeat), sock, send_timeout,
                 on_gone=lambda: stream.close("gone"))
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import selectors
import socket
import struct
import threading
from typing import Callable, Iterable, Iterator

from daebus.app.cancellation import Cancellation

log = logging.getLogger("gateway.events")


class PeerWatch:
    """Calls ``on_gone`` once a watched socket's peer has closed or reset it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._selector: selectors.BaseSelector | None = None
        self._pid: int | None = None

    def _started(self) -> selectors.BaseSelector:
        # Started lazily, in the process that serves (gunicorn forks after loading the app).
        if self._pid != os.getpid():
            self._selector = selectors.DefaultSelector()
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._selector.register(self._wake_r, selectors.EVENT_READ, None)
            self._pid = os.getpid()
            threading.Thread(target=self._run, args=(self._selector,), name="gateway-peer-watch",
                             daemon=True).start()
        return self._selector

    def watch(self, sock: socket.socket, on_gone: Callable[[], None]) -> None:
        with self._lock:
            selector = self._started()
            with contextlib.suppress(KeyError, ValueError, OSError):
                selector.register(sock, selectors.EVENT_READ, on_gone)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")  # select() and poll() only see it after a wake

    def unwatch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._pid == os.getpid():
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self._selector.unregister(sock)

    def _run(self, selector) -> None:
        while True:
            for key, _ in selector.select():
                if key.data is None:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                    continue
                self._check(key)

    def _check(self, key) -> None:
        sock = key.fileobj
        try:
            gone = not sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            gone = True
        # Bytes from the browser (it should send none) also end the watch, so
        # they can't make it spin; the stream then ends at its next write.
        self.unwatch(sock)
        if gone:
            try:
                key.data()
            except Exception:  # noqa: BLE001 - the watch must outlive any one stream
                log.exception("ending a closed event stream failed")


PEERS = PeerWatch()


class ClientWatch:
    """A call's :class:`Cancellation`, set (reason ``disconnected``) when
    its HTTP client hangs up before the answer; ``sock`` is the client's
    socket (None off gunicorn: nothing is watched).

    A client is seen to hang up when its socket reads as closed or reset: a
    browser's ``fetch`` aborted or a tab closed, on a connection of its own
    (a proxy in front passes that on only if it closes its upstream
    connection when its client leaves, as nginx does by default). A client
    that sends more bytes meanwhile (a pipelined request) is no longer
    watched.

    Example::

        with ClientWatch(sock) as client:
            gateway.call(service, action, payload, timeout, cancel=client.cancellation)
    """

    def __init__(self, sock: socket.socket | None):
        self.sock = sock
        self.cancellation = Cancellation()
        if sock is not None:
            PEERS.watch(sock, self.gone)

    def gone(self) -> None:
        # On the watch's thread, which serves every stream: telling the
        # service is a Redis round trip, so it goes on a thread of its own.
        threading.Thread(target=self.cancellation.cancel, args=("disconnected",), name="gateway-cancel",
                         daemon=True).start()

    def unwatch(self) -> None:
        if self.sock is not None:
            PEERS.unwatch(self.sock)

    def __enter__(self) -> ClientWatch:
        return self

    def __exit__(self, *exc_info) -> None:
        self.unwatch()


def writable(sock: socket.socket, timeout: float) -> bool:
    """Whether ``sock`` has room to write within ``timeout`` seconds."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(timeout * 1000))


def abort(sock: socket.socket) -> None:
    """Reset the connection: its queued bytes are dropped and no close lingers."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def guard(body: Iterable[bytes], sock: socket.socket | None, send_timeout: float,
          on_gone: Callable[[], None] | None = None) -> Iterator[bytes]:
    """Yield ``body``'s chunks while the browser reads them; see the module doc."""
    if sock is None:  # not under gunicorn (the development server, tests)
        yield from body
        return
    if on_gone is not None:
        PEERS.watch(sock, on_gone)
    try:
        for chunk in body:
            if not writable(sock, send_timeout):
                log.info("closed an event stream whose browser read nothing for %g s", send_timeout)
                abort(sock)
                return
            yield chunk
    finally:
        if on_gone is not None:
            PEERS.unwatch(sock)
        close = getattr(body, "close", None)
        if close is not None:
            close()
        if not writable(sock, 0):
            # Ended (dropped as too slow, say) with no room left: the closing
            # chunk would block this thread for send_timeout.
            abort(sock)
        # The stream is over: reading the socket again can only find the
        # browser's close, so a graceful close after this has nothing to wait for.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)
