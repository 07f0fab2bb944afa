"""Cancels: the requests of this instance that their callers may still
cancel, and what a cancel published on ``daebus:cancel:<service>`` does.

A request is watched from the moment its intake accepts it (before it waits
for a worker) until it ends. A cancel that names a watched request by both
its ``request_id`` and its ``reply_to`` sets the request's
:class:`~daebus.app.cancellation.Cancellation`: a request not started yet is
never run, a running ``async def`` handler is cancelled
(:mod:`daebus.service.aio`), a sync one sees ``request.cancelled``, and
replies sent after it are dropped. The executor counts it
(:mod:`daebus.service.executor`).

A cancel is read on the bus reader's thread, with a dictionary look-up: a
full worker pool still hears it, and a flood costs what reading it costs.

What protects a request from a cancel its caller did not send: the pair of
ids. The request id is 128 random bits that travel only on the service's
own channel or stream, which on a locked bus no other role may read
(:mod:`daebus.security.acl`); the reply channel alone (which ``PUBSUB
CHANNELS`` shows anyone) is not enough. Whoever can read the service's
requests could as well answer them in its place.

In group mode a cancel may come before its entry is read (it waits in the
stream, or another member holds it): every member hears it, and one that
does not hold the request keeps it as an early cancel (at most
:data:`MAX_EARLY`, the oldest going first, each for the request's remaining
time, at most :data:`EARLY_SECONDS`). An entry read later that matches is
acknowledged without running. An owner gets each request before its cancel
(one caller's messages arrive in order), so it keeps none.

Example (what the runtime does)::

    cancels = Cancels("sensors", keep_early=False)
    cancellation = cancels.watch(message)     # the intake accepted it
    cancels.on_published(data)                # a message on daebus:cancel:sensors
    cancels.forget(message)                   # it ended
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from daebus.app.cancellation import Cancellation
from daebus.bus import protocol
from daebus.ops.ratelog import RateLimitedLog, kind_of

log = logging.getLogger("daebus.runtime")
# A peer flooding the cancel channel with garbage gets a line per interval.
_garbage = RateLimitedLog(log)

# A cancel is a few ids: anything longer is not one, and is dropped unread.
MAX_CANCEL_BYTES = 4096
MAX_EARLY = 4096
EARLY_SECONDS = 3600.0
# How long an early cancel that does not say its request's remaining time is kept.
EARLY_DEFAULT_SECONDS = 60.0


def _key(reply_to, request_id):
    return (reply_to, request_id) if reply_to and request_id is not None else None


class Cancels:
    """The cancellable requests of one instance of ``service``;
    ``keep_early``: remember cancels of requests not held (group mode)."""

    def __init__(self, service: str, keep_early: bool):
        self.service = service
        self._lock = threading.Lock()
        # (reply_to, request_id) -> [its Cancellation, how many accepted requests share it]
        self._watched: dict[tuple, list] = {}
        self._early: collections.OrderedDict | None = collections.OrderedDict() if keep_early else None
        self.ignored = 0   # cancels of requests this instance does not hold

    def watch(self, message: protocol.Request) -> Cancellation | None:
        """The cancellation of an accepted request (None when it names no
        reply channel: nobody waits for it, so nobody can give up on it)."""
        key = _key(message.reply_to, message.request_id)
        if key is None:
            return None
        with self._lock:
            entry = self._watched.get(key)
            if entry is None:
                entry = self._watched[key] = [Cancellation(), 0]
                early = self._early.pop(key, None) if self._early else None
                if early is not None and early[0] > time.monotonic():
                    entry[0].cancel(early[1])   # no callback yet: nothing runs under the lock
            entry[1] += 1
            return entry[0]

    def of(self, message: protocol.Request) -> Cancellation | None:
        """The cancellation of a watched request (None if not watched)."""
        key = _key(message.reply_to, message.request_id)
        entry = self._watched.get(key) if key is not None else None
        return entry[0] if entry is not None else None

    def forget(self, message: protocol.Request) -> None:
        """An accepted request ended (answered, skipped or refused)."""
        key = _key(message.reply_to, message.request_id)
        if key is None:
            return
        with self._lock:
            entry = self._watched.get(key)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del self._watched[key]

    def on_published(self, data: bytes) -> None:
        """A message on the cancel channel."""
        try:
            cancel = protocol.parse_cancel(protocol.decode_object(data, MAX_CANCEL_BYTES))
        except protocol.ProtocolError as exc:
            _garbage.warning((self.service, kind_of(str(exc))), "dropped a malformed cancel for %r: %s",
                             self.service, exc)
            return
        key = (cancel.reply_to, cancel.request_id)
        with self._lock:
            entry = self._watched.get(key)
            if entry is None:
                self.ignored += 1
                if self._early is not None:
                    self._keep_early(key, cancel)
                return
        if entry[0].cancel(cancel.reason):
            log.debug("request %s was cancelled by its caller (%s)", cancel.request_id, cancel.reason,
                      extra={"daebus_request_id": str(cancel.request_id)})

    def _keep_early(self, key: tuple, cancel: protocol.Cancel) -> None:
        # Under the lock. A flood evicts the oldest: at worst such a request runs.
        seconds = EARLY_DEFAULT_SECONDS if cancel.remaining_ms is None else cancel.remaining_ms / 1000
        early = self._early
        early[key] = (time.monotonic() + min(seconds, EARLY_SECONDS), cancel.reason)
        early.move_to_end(key)
        while len(early) > MAX_EARLY:
            early.popitem(last=False)

    @property
    def watched(self) -> int:
        return len(self._watched)

    @property
    def early(self) -> int:
        return len(self._early) if self._early is not None else 0
