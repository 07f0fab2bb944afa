"""How a caller that gives up tells the service, so the work stops there too.

A call given up before its final reply (its timeout ran out, Ctrl-C, its
task cancelled, its :class:`~daebus.app.cancellation.Cancellation` set)
publishes one cancel on ``daebus:cancel:<service>`` (see
:meth:`daebus.call.exchange.Call.cancel`). It is best effort and bounded:
the cancel gets :data:`SEND_TIMEOUT` seconds, and a Redis that does not take
it in time costs the caller nothing more (the service's own ``timeout_ms``
still bounds the work). Nobody subscribes there for a 0.0.x service: the
PUBLISH reaches nobody and changes nothing.

Example (what :class:`~daebus.DaebusCaller` does around one call)::

    watch = CallWatch(bus, hub, call, inbox)
    undo = cancellation.on_cancel(watch.cancelled)   # from any thread
    deliver(bus, call, hub.channel)
    watch.sent()
    ...                                              # on a timeout:
    watch.give_up("timeout")
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from daebus.bus.bus import Bus
from daebus.bus.transport import REDIS_ERRORS
from daebus.call.exchange import Call
from daebus.errors import Cancelled, ConnectionLost, DaebusError, RemoteError, RequestTimeout

log = logging.getLogger("daebus.caller")

# The longest a cancel may hold its caller (a Ctrl-C must feel immediate);
# the publisher adds its grace to a deadline this short.
SEND_TIMEOUT = 0.25
# Published on a reply channel, an empty message wakes the caller reading
# it and is dropped (see daebus.call.replies).
WAKE = ""


def reason_for(exc: BaseException) -> str | None:
    """Why a call that ended with ``exc`` gave up, or None when there is
    nobody to tell: the service answered, the cancel was told already, or
    Redis is gone."""
    if isinstance(exc, RemoteError | Cancelled | ConnectionLost):
        return None
    if isinstance(exc, RequestTimeout):
        return "timeout"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "cancelled"   # a cancelled task, a callback's exception, ...


def tell(bus: Bus, call: Call, reason: str, wake: str | None = None) -> None:
    """Publish ``call``'s cancel (and, with ``wake``, wake the reader of that
    reply channel in the same round trip); failures are only logged."""
    channel, text = call.cancel(reason)
    commands = [("PUBLISH", channel, text), *([("PUBLISH", wake, WAKE)] if wake else [])]
    try:
        bus.publisher.commands(*commands, deadline=time.monotonic() + SEND_TIMEOUT)
    except (*REDIS_ERRORS, redis.RedisError, DaebusError) as exc:
        log.debug("could not cancel %s request %s: %s", call.name, call.request_id, exc)


class CallWatch:
    """One blocking call's side of giving up: told at most once, and only
    after its request went out (a cancel must not overtake its request).

    :meth:`cancelled` may run on any thread (a :class:`Cancellation`'s
    callback); the others run on the call's own thread.
    """

    def __init__(self, bus: Bus, hub, call: Call, inbox):
        self.bus, self.hub, self.call, self.inbox = bus, hub, call, inbox
        self._lock = threading.Lock()
        self._sent = False
        self._told = False
        self._reason: str | None = None

    def cancelled(self, reason: str) -> None:
        """The call's cancellation was set: it ends with :class:`Cancelled`."""
        with self._lock:
            self._reason = reason
            tell_now = self._sent and not self._told
            self._told = self._told or tell_now
        self.inbox.put(Cancelled(f"{self.call.name} was cancelled ({reason})"))
        if tell_now:
            # The call may be the one reading the reply channel: wake it.
            tell(self.bus, self.call, reason, wake=self.hub.channel if self.hub.reading else None)

    def sent(self) -> None:
        """The request went out: a cancellation that came meanwhile is told now."""
        with self._lock:
            self._sent = True
            reason = self._reason if not self._told else None
            self._told = self._told or reason is not None
        if reason is not None:
            tell(self.bus, self.call, reason)

    def give_up(self, reason: str, maybe_sent: bool = False) -> None:
        """The call ends without its final reply; ``maybe_sent``: it was
        interrupted while sending, so the request may have gone out."""
        with self._lock:
            if self._told or not (self._sent or maybe_sent):
                return
            self._told = True
        tell(self.bus, self.call, reason)
