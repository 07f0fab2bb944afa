"""Running one request or one broadcast, for every intake.

The owner intake (requests published on the service channel) and the group
intake (requests read from the service's stream) hand each request here, as
the bus reader hands each broadcast: one place decides whether a request is
still wanted (its caller may have given up: its ``timeout_ms`` passed, or
it sent a cancel, see :mod:`daebus.service.cancels`), which handler kind
runs it (a thread, or the event loop for ``async def``), counts it, and
remembers the ones accepted but not yet answered, so that a stop that cannot
wait for them still answers their callers.
"""

from __future__ import annotations

import logging
import time

from daebus.app.blueprint import is_async
from daebus.app.cancellation import Cancellation
from daebus.app.retry import Retry
from daebus.bus import protocol
from daebus.service.cancels import Cancels
from daebus.service.dispatch import answer_failure, handler_name, run_action, run_listener

log = logging.getLogger("daebus.runtime")


class Executor:
    """Runs the app's handlers; ``aio`` is the event loop of an app with
    ``async def`` handlers (None otherwise), ``metrics`` its counters,
    ``cancels`` the requests their callers may still cancel."""

    def __init__(self, app, metrics, aio=None, cancels: Cancels | None = None):
        self.app = app
        self.metrics = metrics
        self.aio = aio
        self.cancels = Cancels(app.service, keep_early=False) if cancels is None else cancels
        self.async_actions = frozenset(name for name, fn in app.actions.items() if is_async(fn))
        # Requests accepted and not yet answered, by identity: the ones still
        # here when shutdown_timeout runs out get an error reply.
        self._inflight: dict[int, protocol.Request] = {}

    # -- requests ------------------------------------------------------------
    def accept(self, message: protocol.Request, answer_on_stop: bool = True) -> None:
        """``message`` is the intake's to answer from now on, and its caller
        may cancel it; ``answer_on_stop``: a stop that cannot wait for it
        answers ``shutting_down`` (a group leaves it to another member instead)."""
        self.cancels.watch(message)
        if answer_on_stop:
            self._inflight[id(message)] = message

    def drop(self, message: protocol.Request) -> None:
        """``message`` ended, or will not be run (refused as busy, say)."""
        self._inflight.pop(id(message), None)
        self.cancels.forget(message)

    def expired(self, message: protocol.Request, sent: float) -> bool:
        """True, counted and logged, when ``message``'s caller gave up
        already (``sent``: when it was sent, on this process's monotonic clock)."""
        if message.timeout_ms and (time.monotonic() - sent) * 1000 > message.timeout_ms:
            self.metrics.expired(message.action)
            log.debug("skipped %r request %s: its caller gave up after %d ms",
                      message.action, message.request_id, message.timeout_ms,
                      extra={"daebus_action": message.action,
                             "daebus_request_id": message.trace_id or message.request_id})
            return True
        return False

    def cancelled(self, message: protocol.Request, cancelled: Cancellation | None) -> bool:
        """True, counted and logged, when ``message``'s caller cancelled it
        before it started."""
        if not cancelled:
            return False
        self.metrics.cancelled(message.action)
        log.debug("skipped %r request %s: its caller cancelled it (%s)", message.action,
                  message.request_id, cancelled.reason,
                  extra={"daebus_action": message.action,
                         "daebus_request_id": message.trace_id or message.request_id})
        return True

    def run(self, message: protocol.Request, publish, sent: float | None = None, retry=None) -> None:
        """Run one request on this thread and reply through ``publish``. An
        ``async def`` action runs on the event loop while this thread waits.
        With ``sent``, a request whose caller gave up is skipped, as one
        cancelled is. A :class:`~daebus.Retry` the handler raises goes to
        ``retry(message, sent, exc)``, the intake's: True when it will run the
        request again, else the caller gets the last error now."""
        started = time.monotonic() if sent is None else sent
        try:
            if sent is not None and self.expired(message, sent):
                return
            cancelled = self.cancels.of(message)
            if self.cancelled(message, cancelled):
                return
            try:
                if message.action in self.async_actions:
                    from daebus.service.aio import run_action_async
                    code = self.aio.submit(run_action_async, self.app, message, publish, cancelled,
                                           name=message.action).result()
                else:
                    code = run_action(self.app, message, publish, cancelled)
            except Retry as exc:
                if retry is not None and retry(message, sent, exc):
                    return
                code = answer_failure(self.app, message, publish, exc)
            self._count(message, cancelled, time.monotonic() - started, code)
        finally:
            self.drop(message)

    async def run_async(self, message: protocol.Request, publish, sent: float, retry=None) -> None:
        """Run one ``async def`` action's request on the event loop."""
        from daebus.service.aio import run_action_async
        try:
            cancelled = self.cancels.of(message)
            if not self.expired(message, sent) and not self.cancelled(message, cancelled):
                try:
                    code = await run_action_async(self.app, message, publish, cancelled)
                except Retry as exc:
                    if retry is not None and retry(message, sent, exc):
                        return
                    code = answer_failure(self.app, message, publish, exc)
                self._count(message, cancelled, time.monotonic() - sent, code)
        finally:
            self.drop(message)

    def _count(self, message: protocol.Request, cancelled: Cancellation | None, seconds: float,
               code: str | None) -> None:
        # Its handler ran, cancelled or not: a call. Cancelled meanwhile, its
        # final reply was dropped, so no error code is counted.
        self.metrics.call(message.action, seconds, None if cancelled else code)
        if cancelled:
            self.metrics.cancelled(message.action)

    def abandon(self, reply_error) -> None:
        """Answer every accepted request still unanswered with an error
        (``reply_error(reply_to, request_id, message, code)``): their callers
        would otherwise wait out their whole timeout."""
        for message in list(self._inflight.values()):
            if message.reply_to:
                reply_error(message.reply_to, message.request_id,
                            f"service {self.app.service!r} stopped before answering", protocol.SHUTTING_DOWN)
        self._inflight.clear()

    # -- broadcasts ------------------------------------------------------------
    # ``retry(handler, channel, payload, attempt, exc)``: True when it will
    # hand the broadcast to the listener again (attempt number ``attempt + 1``).
    def listen(self, handler, channel: str, payload: dict, retry=None, attempt: int = 1) -> None:
        started = time.monotonic()
        try:
            ok = run_listener(self.app, handler, channel, payload)
        except Retry as exc:
            ok = self._retried(handler, channel, payload, attempt, exc, retry)
        self.metrics.listener(channel, time.monotonic() - started, not ok)

    async def listen_async(self, handler, channel: str, payload: dict, retry=None, attempt: int = 1) -> None:
        from daebus.service.aio import run_listener_async
        started = time.monotonic()
        try:
            ok = await run_listener_async(self.app, handler, channel, payload)
        except Retry as exc:
            ok = self._retried(handler, channel, payload, attempt, exc, retry)
        self.metrics.listener(channel, time.monotonic() - started, not ok)

    @staticmethod
    def _retried(handler, channel: str, payload: dict, attempt: int, exc: Retry, retry) -> bool:
        # Counted as a failed run either way.
        if retry is None or not retry(handler, channel, payload, attempt, exc):
            log.warning("listener %s for %r asked for a retry after attempt %d, and none is left: "
                        "dropped the message", handler_name(handler), channel, attempt,
                        exc_info=exc.__cause__ or exc)
        return False
