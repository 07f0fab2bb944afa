"""Where requests and broadcasts enter a service from its subscriber.

Two intakes take requests, as siblings: :class:`OwnerIntake` here, for the
requests published on the service channel to its one owner, and
:class:`~daebus.service.group.GroupServer`, for a group's stream. Both hand
each request to the :class:`~daebus.service.executor.Executor`.
:class:`Broadcasts` hands each broadcast on a listened channel to the
listeners, in both modes.
"""

from __future__ import annotations

import functools
import logging

from daebus.app.blueprint import is_async
from daebus.bus import protocol
from daebus.ops import logs
from daebus.ops.ratelog import RateLimitedLog, kind_of
from daebus.service.expiry import TransitClock
from daebus.service.gates import FULL, REFUSED, Job

log = logging.getLogger("daebus.runtime")
# One line per interval for a sender flooding garbage, requests or broadcasts.
_malformed = RateLimitedLog(log)
# And for a limited action or listener whose queue is full.
_full = RateLimitedLog(log)


class OwnerIntake:
    """Requests published on the service channel, read by its subscriber."""

    def __init__(self, host):
        self.host = host
        self._transit = TransitClock()
        self._busy_log = logs.StateLog(log, "ok")
        # What a handler's Retry becomes (see daebus.service.retries).
        self._retry = functools.partial(host.retries.request, rerun=self._rerun)

    def on_published(self, data: bytes, received: float) -> None:
        host = self.host
        try:
            message = protocol.parse_request(protocol.decode_object(data, host.settings.max_message_bytes))
        except protocol.ProtocolError as exc:
            _malformed.warning((host.service, kind_of(str(exc))), "dropped malformed request on %r: %s",
                               host.service, exc)
            if exc.reply_to:
                host.reply_error(exc.reply_to, exc.request_id, str(exc), protocol.BAD_REQUEST)
            return
        # Measured from when the caller sent it: a request that sat in Redis
        # or a socket buffer during a flood is as stale as one that sat here.
        waited = self._transit.transit(message.sent_at)
        host.executor.accept(message)
        accepted = self._submit(message, received - waited)
        if accepted is True:
            self._busy_log.set("ok", logging.INFO, "work queue accepting requests again")
            return
        self._refuse(message, accepted)

    def _refuse(self, message: protocol.Request, why) -> None:
        # ``why``: False (the work queue is full) or the full Gate of the action.
        host = self.host
        host.executor.drop(message)
        host.metrics.busy(message.action)
        if why is False:
            self._busy_log.set("busy", logging.WARNING, "work queue full (%d workers, %d queued): "
                               "answering 'busy'", host.app.max_workers, host.settings.queue_size)
        else:
            _full.warning(message.action, "%s has %d running and %d waiting (its limit): answering 'busy'",
                          why.what, why.running, why.waiting)
        if message.reply_to:
            host.reply_error(message.reply_to, message.request_id,
                             f"service {host.service!r} is busy", protocol.BUSY)

    def _submit(self, message: protocol.Request, sent: float, owed: bool = False):
        """True once handed over; else False (the pool is full) or the full
        Gate of a limited action. ``owed``: a retry come due."""
        host = self.host
        executor, handlers = host.executor, host.handlers
        gate = host.gates.action(message.action)
        if gate is not None:
            return self._gated(gate, message, sent, owed)
        if message.action in executor.async_actions:
            return handlers.on_loop(message.action, executor.run_async, message, host.publish, sent,
                                    self._retry, owed=owed)
        if owed:
            return handlers.submit(executor.run, message, host.publish, sent, self._retry, owed=True)
        subscriber, pool = host.subscriber, handlers.pool
        # A lone request (nothing else in flight) runs on the reader that read
        # it, in a worker's place, when the other reader can read on. Under
        # load the pool's threads overlap their replies' round trips instead.
        if subscriber is not None and not pool.unfinished and pool.borrow():
            if subscriber.hand_over():
                try:
                    executor.run(message, host.publish, sent, self._retry)
                finally:
                    pool.give_back()
                return True
            pool.give_back()
        return handlers.submit(executor.run, message, host.publish, sent, self._retry)

    def _gated(self, gate, message: protocol.Request, sent: float, owed: bool):
        # A limited action never runs on the reader: its calls wait in the gate.
        host = self.host
        executor = host.executor
        on_loop = message.action in executor.async_actions
        job = Job(message.action, executor.run_async if on_loop else executor.run,
                  (message, host.publish, sent, self._retry), on_loop=on_loop,
                  lost=lambda: self._stopped(message))
        outcome = host.gates.run(gate, job, owed)
        return gate if outcome == FULL else outcome != REFUSED

    def _rerun(self, message: protocol.Request, sent: float | None) -> None:
        """A retry come due: into the gate or the pool again (owed its place there)."""
        accepted = self._submit(message, sent, owed=True)
        if accepted is not True:
            self._refuse(message, accepted)

    def _stopped(self, message: protocol.Request) -> None:
        # Its turn came once the event loop was gone.
        host = self.host
        host.executor.drop(message)
        if message.reply_to:
            host.reply_error(message.reply_to, message.request_id,
                             f"service {host.service!r} stopped before answering", protocol.SHUTTING_DOWN)


class Broadcasts:
    """Broadcasts on the channels the app listens to, in both modes."""

    def __init__(self, host):
        self.host = host
        self._retry = functools.partial(host.retries.broadcast, rerun=self._hand)

    def on_published(self, channel: str, data: bytes) -> None:
        host = self.host
        try:
            payload = protocol.decode_object(data, host.settings.max_message_bytes)
        except protocol.ProtocolError as exc:
            _malformed.warning((channel, kind_of(str(exc))), "dropped malformed message on %r: %s", channel, exc)
            return
        for handler in host.app.listeners.get(channel, ()):
            self._hand(handler, channel, payload)

    def _hand(self, handler, channel: str, payload: dict, attempt: int = 1) -> None:
        """Hand ``payload`` to one listener (``attempt`` > 1: a retry come due)."""
        host = self.host
        executor, handlers, owed = host.executor, host.handlers, attempt > 1
        on_loop = is_async(handler)
        fn = executor.listen_async if on_loop else executor.listen
        args = (handler, channel, payload, self._retry, attempt)
        gate = host.gates.listener(channel, handler)
        if gate is not None:
            outcome = host.gates.run(gate, Job(channel, fn, args, on_loop=on_loop), owed)
            if outcome == FULL:
                _full.warning((channel, handler), "%s has %d running and %d waiting (its limit): dropped a "
                              "message", gate.what, gate.running, gate.waiting)
            accepted = outcome != REFUSED
        elif on_loop:
            accepted = handlers.on_loop(channel, fn, *args, owed=owed)
        else:
            accepted = handlers.submit(fn, *args, owed=owed)
        if not accepted:
            log.warning("work queue full: dropped a message on %r", channel)
