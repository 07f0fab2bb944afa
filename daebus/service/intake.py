"""Where requests and broadcasts enter a service from its subscriber.

Two intakes take requests, as siblings: :class:`OwnerIntake` here, for the
requests published on the service channel to its one owner, and
:class:`~daebus.service.group.GroupServer`, for a group's stream. Both hand
each request to the :class:`~daebus.service.executor.Executor`.
:class:`Broadcasts` hands each broadcast on a listened channel to the
listeners, in both modes.
"""

from __future__ import annotations

import logging

from daebus.app.blueprint import is_async
from daebus.bus import protocol
from daebus.ops import logs
from daebus.ops.ratelog import RateLimitedLog, kind_of
from daebus.service.expiry import TransitClock

log = logging.getLogger("daebus.runtime")
# One line per interval for a sender flooding garbage, requests or broadcasts.
_malformed = RateLimitedLog(log)


class OwnerIntake:
    """Requests published on the service channel, read by its subscriber."""

    def __init__(self, host):
        self.host = host
        self._transit = TransitClock()
        self._busy_log = logs.StateLog(log, "ok")

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
        if self._submit(message, received - waited):
            self._busy_log.set("ok", logging.INFO, "work queue accepting requests again")
            return
        host.executor.drop(message)
        host.metrics.busy(message.action)
        self._busy_log.set("busy", logging.WARNING, "work queue full (%d workers, %d queued): "
                           "answering 'busy'", host.app.max_workers, host.settings.queue_size)
        if message.reply_to:
            host.reply_error(message.reply_to, message.request_id,
                             f"service {host.service!r} is busy", protocol.BUSY)

    def _submit(self, message: protocol.Request, sent: float) -> bool:
        host = self.host
        executor, handlers = host.executor, host.handlers
        if message.action in executor.async_actions:
            return handlers.on_loop(message.action, executor.run_async, message, host.publish, sent)
        subscriber, pool = host.subscriber, handlers.pool
        # A lone request (nothing else in flight) runs on the reader that read
        # it, in a worker's place, when the other reader can read on. Under
        # load the pool's threads overlap their replies' round trips instead.
        if subscriber is not None and not pool.unfinished and pool.borrow():
            if subscriber.hand_over():
                try:
                    executor.run(message, host.publish, sent)
                finally:
                    pool.give_back()
                return True
            pool.give_back()
        return handlers.submit(executor.run, message, host.publish, sent)


class Broadcasts:
    """Broadcasts on the channels the app listens to, in both modes."""

    def __init__(self, host):
        self.host = host

    def on_published(self, channel: str, data: bytes) -> None:
        host = self.host
        try:
            payload = protocol.decode_object(data, host.settings.max_message_bytes)
        except protocol.ProtocolError as exc:
            _malformed.warning((channel, kind_of(str(exc))), "dropped malformed message on %r: %s", channel, exc)
            return
        executor, handlers = host.executor, host.handlers
        for handler in host.app.listeners.get(channel, ()):
            if is_async(handler):
                accepted = handlers.on_loop(channel, executor.listen_async, handler, channel, payload)
            else:
                accepted = handlers.submit(executor.listen, handler, channel, payload)
            if not accepted:
                log.warning("work queue full: dropped a message on %r", channel)
