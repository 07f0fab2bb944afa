"""Pub/sub request and response objects, and the broadcaster."""

from __future__ import annotations

import logging
from typing import Any, Callable

from daebus.app.cancellation import Cancellation
from daebus.bus import protocol
from daebus.errors import ConnectionLost, DaebusError
from daebus.bus.transport import REDIS_ERRORS

Publish = Callable[[str, str], int]


class PubSubRequest:
    """One request received on the service channel.

    ``payload`` is what the caller sent; ``action``, ``reply_to``,
    ``request_id``, ``service`` and ``trace_id`` come from the envelope,
    ``raw`` is the whole decoded message. ``log_id`` is the id the service's
    log records carry: the trace id when the caller gave one (the HTTP
    request's ``X-Request-ID``), else the request id. ``delivery`` counts
    deliveries (always 1 but for redeliveries in group mode). ``cancelled``
    (a :class:`~daebus.app.cancellation.Cancellation`) turns true when the
    caller gives up; the request's replies are dropped from then on.
    """

    # The envelope's fields, as protocol.Request names them. In group mode
    # ``delivery`` counts how many times the request was handed to an
    # instance: above 1, an earlier instance died holding it (and may have
    # done part of the work); ``request_id`` is the idempotency key.
    __slots__ = (*protocol.Request._fields, "cancelled")

    def __init__(self, message: protocol.Request, cancelled: Cancellation | None = None):
        for name in protocol.Request._fields:
            setattr(self, name, getattr(message, name))
        # One that is never set, for a request nobody can cancel (no reply_to).
        self.cancelled = Cancellation() if cancelled is None else cancelled

    @property
    def log_id(self) -> str | None:
        rid = self.request_id
        return self.trace_id or (str(rid) if rid is not None else None)

    def __repr__(self) -> str:
        return f"PubSubRequest(action={self.action!r}, request_id={self.request_id!r})"


class PubSubResponse:
    """Replies to one :class:`PubSubRequest`.

    Example::

        @app.action("get_status")
        def get_status():
            response.progress({"step": "reading"}, 50)
            return response.success({"ok": True})
    """

    def __init__(self, req: PubSubRequest | None, publish: Publish, log: logging.Logger | None = None):
        self._req = req
        self._publish = publish
        self._log = log or logging.getLogger("daebus")
        self.finished = False
        self.error_code: str | None = None  # the code of the final reply, when an error

    @property
    def request_id(self):
        return self._req.request_id if self._req else None

    def success(self, data: Any = None) -> int:
        """Send the final, successful reply with ``data`` as its payload."""
        return self._reply(protocol.SUCCESS, data, True)

    def send(self, payload: Any = None, final: bool = True) -> int:
        """Send a successful reply; ``final=False`` makes it a progress update."""
        return self._reply(protocol.SUCCESS, payload, final)

    def error(self, err: BaseException | str, code: str | None = None) -> int:
        """Send the final error reply for ``err``.

        The code is ``code``, else ``err.code`` (daebus errors), else
        ``handler_error``.
        """
        code = code or getattr(err, "code", None) or protocol.HANDLER_ERROR
        message = str(err) or type(err).__name__
        details = err.details if isinstance(err, DaebusError) else None
        return self._reply(protocol.ERROR, protocol.error_payload(message, str(code), details), True)

    def progress(self, data: Any = None, progress_percentage: float | None = None) -> int:
        """Send a non-final update; the caller's ``on_progress`` receives it."""
        if progress_percentage is not None:
            pct = min(max(0.0, float(progress_percentage)), 100.0)
            data = {**data, "progress_percentage": pct} if isinstance(data, dict) else \
                {"data": data, "progress_percentage": pct}
        return self._reply(protocol.SUCCESS, data, False)

    def _reply(self, status: str, payload: Any, final: bool) -> int:
        if self.finished:
            self._log.warning("ignoring a reply to request %s: the final reply was already sent",
                              self.request_id)
            return 0
        if final:
            self.finished = True
            if status == protocol.ERROR:
                self.error_code = payload.get("code") if isinstance(payload, dict) else protocol.HANDLER_ERROR
        if self._req is None or not self._req.reply_to or self._req.cancelled:
            return 0   # nobody to answer, or the caller gave up: nobody waits for it
        envelope = protocol.reply_envelope(self._req.request_id, status, payload, final)
        try:
            text = protocol.dumps(envelope)
        except (TypeError, ValueError) as exc:
            self._log.error("reply to %r is not JSON serialisable: %s", self._req.action, exc)
            text = protocol.dumps(protocol.reply_envelope(
                self._req.request_id, protocol.ERROR,
                protocol.error_payload(f"reply not serialisable: {exc}", protocol.HANDLER_ERROR), True))
            self.finished = True
            self.error_code = protocol.HANDLER_ERROR
        try:
            return self._publish(self._req.reply_to, text)
        except REDIS_ERRORS as exc:
            self._log.error("could not send reply to %s: %s", self._req.reply_to, exc)
            return 0


class Broadcaster:
    """Publishes events: ``broadcast.send("system_status", {"ok": True})``."""

    def __init__(self, publish: Publish):
        self._publish = publish

    def send(self, channel: str, payload: dict) -> int:
        """Publish ``payload`` as JSON on ``channel``; returns the number of
        subscribers that received it."""
        if not isinstance(channel, str) or not channel:
            raise ValueError("broadcast channel must be a non-empty string")
        if not isinstance(payload, dict):
            raise TypeError(f"broadcast payload must be a dict, got {type(payload).__name__}")
        text = protocol.dumps(payload)
        try:
            return self._publish(channel, text)
        except REDIS_ERRORS as exc:
            raise ConnectionLost(f"cannot broadcast on {channel!r}: Redis unavailable ({exc})") from exc
