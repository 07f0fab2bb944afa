"""Calling services: :class:`DaebusCaller`.

Every caller in a process shares one reply subscription per Redis URL
(:mod:`daebus.call.replies`, a part of the process's
:class:`~daebus.bus.bus.Bus`); a waiting call is woken by its reply, so
nothing polls, and a lost connection fails every waiting call at once.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from daebus.app.cancellation import Cancellation
from daebus.app.context import current_cancellation
from daebus.bus import protocol
from daebus.call.cancelling import CallWatch, reason_for
from daebus.call.exchange import Call
from daebus.call.replies import ReplyHub
from daebus.call import standins
from daebus.call.sending import deliver
from daebus.call.target import Target
from daebus.errors import Cancelled, RequestTimeout

log = logging.getLogger("daebus.caller")


class DaebusCaller(Target):
    """Sends requests and messages to one service.

    Example::

        with DaebusCaller("my_service") as caller:
            status = caller.send_request("get_status", {"detail_level": "full"})

    The Redis URL is, in order: the arguments, the running app's Redis (for a
    caller used inside a service), ``DAEBUS_REDIS_URL``, the config files.
    """

    def send_request(self, action: str, payload: Any = None, timeout: float | None = None,
                     on_progress: Callable[[Any], None] | None = None, trace_id: str | None = None,
                     cancel: Cancellation | None = None) -> Any:
        """Call ``action`` and return the reply's payload.

        Ends within ``timeout`` seconds (plus at most
        :data:`daebus.bus.transport.PUBLISH_GRACE`) whatever Redis does. Raises :class:`RemoteError` (the
        service answered with an error), :class:`ServiceUnavailable` (nobody
        serves it, raised at once; a group's requests wait in its stream for an
        instance instead, up to the timeout), :class:`RequestTimeout` (Redis took the
        request but no reply came in time, or the timeout ran out before the reply
        subscription was confirmed), :class:`BadRequest` (a payload the bus does not
        carry, see :mod:`daebus.bus.wirejson`, refused before sending), :class:`ConnectionLost` (Redis
        refused, dropped or stalled the request or the reply subscription) or
        :class:`MalformedReply` (a reply that is not strict JSON).

        ``trace_id`` (letters, digits and ``._:@+=/-``, at most 128) travels
        with the request into the service's log records; by default a call
        made while handling a request carries that request's id on.

        A call given up before its reply (the timeout, ``KeyboardInterrupt``)
        is cancelled on the service (see :mod:`daebus.call.cancelling`).
        ``cancel``, a :class:`~daebus.Cancellation`, lets any thread give it
        up: the call then raises :class:`Cancelled`. By default a call made
        while handling a request is cancelled with that request.
        """
        call = self.new_call(action, payload, timeout, trace_id)
        standing_in, result = self.stand_in(call)
        if standing_in:
            return result
        cancel = current_cancellation() if cancel is None else cancel
        bus = self.bus()
        hub = bus.part(ReplyHub)
        hub.prepare(call.deadline)
        inbox = hub.expect(call.request_id)
        watch = CallWatch(bus, hub, call, inbox)
        undo = cancel.on_cancel(watch.cancelled) if cancel is not None else None
        sending = True
        try:
            if cancel:
                raise Cancelled(f"{call.name} was cancelled before it was sent ({cancel.reason})")
            deliver(bus, call, hub.channel)
            sending = False
            watch.sent()
            return self._replies(call, hub, inbox, on_progress)
        except BaseException as exc:
            reason = reason_for(exc)
            if reason is not None:
                # Ctrl-C while sending: the request may have gone out all the same.
                watch.give_up(reason, maybe_sent=sending and isinstance(exc, KeyboardInterrupt))
            raise
        finally:
            if undo is not None:
                undo()
            hub.forget(call.request_id, inbox)

    @staticmethod
    def _replies(call: Call, hub: ReplyHub, inbox, on_progress) -> Any:
        while True:
            try:
                reply = hub.next_reply(inbox, call.deadline)
            except RequestTimeout:
                raise call.no_answer() from None
            outcome = call.receive(reply)
            if outcome.final:
                return outcome.payload
            _progress(on_progress, outcome.payload, call)

    def send_message(self, channel: str, payload: dict) -> int:
        """Broadcast ``payload`` on ``channel``; returns the receiver count."""
        return self.broadcast(channel, payload)

    def send_to_service(self, payload: dict, action: str | None = None) -> int:
        """Publish ``payload`` on the service channel without waiting for a
        reply (the Daebus 0.0.x form: the payload's keys plus ``action``)."""
        self._check_open()
        message = {**payload, "action": action} if action else payload
        text = protocol.dumps(message)
        local = standins.active()
        if local is not None:  # under daebus.testing: never the real bus
            return local._stand_ins.notify(self.target_service, action, payload)
        return self.publish(self.target_service, text)

    def __enter__(self) -> DaebusCaller:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _progress(on_progress, payload, call: Call) -> None:
    if on_progress is None:
        return
    try:
        on_progress(payload)
    except Exception:  # noqa: BLE001 - a callback bug must not lose the reply
        log.exception("on_progress callback for %s failed", call.name)
