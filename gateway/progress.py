"""Action calls answered as Server-Sent Events, so a page sees progress.

A client that sends ``Accept: text/event-stream`` with its ``POST`` gets
each progress reply of the action as an ``event: progress`` (its data is the
reply's payload), then one ``event: result`` (``{"result": ...}``) or
``event: error`` (``{"error": {"code", "message"}, "status": N}``, with the
status a JSON client would have got), and the stream ends. An error before
the first progress reply (``service_unavailable``, ``busy``...) is answered
as usual, JSON with its HTTP status. Example::

    curl -N -H 'Accept: text/event-stream' -H 'Content-Type: application/json' \\
         -d '{}' http://127.0.0.1:8080/api/services/system/run_diagnostics

The call itself runs in a short-lived thread: it keeps reading replies
while the request's thread writes to the browser, so a slow browser never
delays the replies of other calls in the process.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Iterator

from daebus.app.cancellation import Cancellation
from daebus.bus import protocol
from daebus.errors import DaebusError, RequestTimeout

from .errors import api_error, from_daebus
from .events import HEARTBEAT, sse_event

# Progress replies held for a browser that reads slower than the action
# reports; beyond this the oldest are dropped (the final event never is).
MAX_PENDING_PROGRESS = 256
PREAMBLE = b": call\n\n"


class _Exchange:
    """The replies of one call, handed from its thread to the response."""

    def __init__(self):
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self.final: tuple[str, Any] | None = None
        self.abandoned = False  # the browser went away: keep nothing

    def progress(self, payload: Any) -> None:
        with self._cond:
            if self.abandoned:
                return
            if len(self._items) >= MAX_PENDING_PROGRESS:
                self._items.popleft()
            self._items.append(payload)
            self._cond.notify()

    def abandon(self) -> None:
        with self._cond:
            self.abandoned = True
            self._items.clear()

    def finish(self, kind: str, value: Any) -> None:
        with self._cond:
            self.final = (kind, value)
            self._cond.notify()

    def take(self, timeout: float) -> tuple[list, tuple[str, Any] | None]:
        """Progress payloads so far and the final outcome once known; waits
        up to ``timeout`` for either."""
        with self._cond:
            if not self._items and self.final is None:
                self._cond.wait(timeout)
            items = list(self._items)
            self._items.clear()
            return items, self.final


def _run(call: Callable[..., Any], exchange: _Exchange) -> None:
    try:
        exchange.finish("result", call(on_progress=exchange.progress))
    except DaebusError as exc:
        exchange.finish("error", from_daebus(exc))
    except Exception as exc:  # noqa: BLE001 - reported to the browser, never lost
        exchange.finish("error", api_error("internal_error", f"the gateway failed: {exc}"))


def _final_event(kind: str, value: Any) -> bytes:
    if kind == "result":
        return sse_event(protocol.dumps({"result": value}), event="result")
    return sse_event(protocol.dumps({"error": {"code": value.code, "message": value.message},
                                     "status": value.status}), event="error")


def _progress_events(items: list) -> bytes:
    return b"".join(sse_event(protocol.dumps(item), event="progress") for item in items)


def start_call(call: Callable[..., Any], timeout: float, heartbeat: float,
               cancellation: Cancellation | None = None) -> Iterator[bytes]:
    """Run ``call(on_progress=...)`` in a thread and return the SSE body.

    Waits for the first reply first: an error that comes before any progress
    raises :class:`ApiError` here, so the client gets a JSON answer with a
    status, as without ``Accept: text/event-stream``. A body that ends
    before the result (the browser went away) sets ``cancellation``, the
    call's: the call is cancelled on the service too.
    """
    exchange = _Exchange()
    threading.Thread(target=_run, args=(call, exchange), name="gateway-call", daemon=True).start()
    # The call ends by its own timeout; the margin covers its thread starting late.
    deadline = time.monotonic() + timeout + 5.0
    items: list = []
    final = None
    while not items and final is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise from_daebus(RequestTimeout("no reply within the timeout"))
        items, final = exchange.take(remaining)
    if not items and final is not None and final[0] == "error":
        raise final[1]
    return _body(exchange, items, final, heartbeat, cancellation)


def _body(exchange: _Exchange, items: list, final, heartbeat: float,
          cancellation: Cancellation | None) -> Iterator[bytes]:
    try:
        yield PREAMBLE + _progress_events(items)
        while final is None:
            items, final = exchange.take(heartbeat)
            if items:
                yield _progress_events(items)
            elif final is None:
                yield HEARTBEAT
        yield _final_event(*final)
    finally:
        exchange.abandon()
        if final is None and cancellation is not None:
            cancellation.cancel("disconnected")
