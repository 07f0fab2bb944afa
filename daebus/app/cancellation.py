"""A call's cancellation: what a caller that gives up sets, and what a
handler checks or waits on.

One object serves both sides:

- in a handler, ``request.cancelled`` is its request's: false until the
  caller gives up (its timeout, Ctrl-C, a cancelled task, a page that went
  away), then true, with the ``reason``. A sync handler checks it between
  steps or waits on it; an ``async def`` handler gets ``CancelledError`` at
  its ``await`` instead (and may check it too);
- a caller may pass one to ``DaebusCaller.send_request(..., cancel=...)`` and
  call :meth:`Cancellation.cancel` from any thread: the call raises
  :class:`~daebus.errors.Cancelled` at once and the service is told. A call
  made inside a handler is cancelled with the handler's request by default.

Example::

    @app.action("scan")
    def scan():
        for block in range(100):
            if request.cancelled:              # the caller gave up: stop early
                return None
            read_block(block)
        return "done"

    @app.action("wait_for_card")
    def wait_for_card():
        if request.cancelled.wait(30):         # True: cancelled within the 30 s
            return None
        return reader.last_card()
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger("daebus")

# One lock for every cancellation: they are set rarely and waited on rarely,
# so it is never contended, and a request costs no lock of its own.
_lock = threading.Lock()


def _nothing() -> None:
    pass


class Cancellation:
    """False until :meth:`cancel` is called, then true for good.

    ``reason`` says why (None until cancelled): ``"timeout"`` (the caller's
    timeout ran out), ``"interrupted"`` (Ctrl-C in the caller),
    ``"disconnected"`` (the gateway's HTTP client went away) or
    ``"cancelled"`` (a cancelled task, or :meth:`cancel` called by code).
    """

    __slots__ = ("reason", "_event", "_callbacks")

    def __init__(self):
        self.reason: str | None = None
        self._event: threading.Event | None = None     # made by the first wait()
        self._callbacks: list | None = None

    def is_set(self) -> bool:
        """True once cancelled (``threading.Event``'s name for it)."""
        return self.reason is not None

    __bool__ = is_set

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or ``timeout`` seconds passed; True if cancelled."""
        if self.reason is not None:
            return True
        with _lock:
            if self.reason is not None:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    def cancel(self, reason: str = "cancelled") -> bool:
        """Cancel, once (later calls change nothing); True if this call did.
        Callbacks given to :meth:`on_cancel` run now, on this thread."""
        with _lock:
            if self.reason is not None:
                return False
            self.reason = reason
            event, callbacks, self._callbacks = self._event, self._callbacks, None
        if event is not None:
            event.set()
        for callback in callbacks or ():
            try:
                callback(reason)
            except Exception:  # noqa: BLE001 - one listener's bug must not keep the others uncancelled
                log.exception("a cancellation callback failed")
        return True

    def on_cancel(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Have ``callback(reason)`` called once cancelled (now, if it is
        already); returns a function that takes the callback back."""
        with _lock:
            if self.reason is None:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return lambda: self._remove(callback)
            reason = self.reason
        callback(reason)
        return _nothing

    def _remove(self, callback) -> None:
        with _lock:
            if self._callbacks:
                self._callbacks = [c for c in self._callbacks if c is not callback]

    def __repr__(self) -> str:
        return f"<Cancellation {'cancelled: ' + self.reason if self.reason else 'not cancelled'}>"
