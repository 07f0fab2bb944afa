"""Reconnect pacing and silence detection, shared by every reader of Redis."""

from __future__ import annotations

import time

import redis


class Backoff:
    """Capped exponential delays: 0.1, 0.2, 0.4 ... ``cap`` seconds."""

    def __init__(self, first: float = 0.1, cap: float = 5.0):
        self.first, self.cap, self.delay = first, cap, first

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.delay = self.first


class Liveness:
    """Notices a subscription that went silent: after ``interval`` without a
    message it sends a PING, and if that gets no answer within another
    ``interval`` the connection is declared dead, even though no socket
    error ever came (a half-open connection).

    Example::

        liveness = Liveness(5.0)
        message = pubsub.get_message(timeout=1.0)
        if message is None:
            liveness.idle(pubsub)        # may ping, or raise redis.TimeoutError
        else:
            liveness.heard()
    """

    def __init__(self, interval: float):
        self.interval = interval
        self.last_rx = time.monotonic()
        self.ping_sent: float | None = None

    def heard(self) -> None:
        self.last_rx, self.ping_sent = time.monotonic(), None

    def idle(self, pubsub) -> None:
        now = time.monotonic()
        if self.ping_sent is not None and now - self.ping_sent > self.interval:
            raise redis.TimeoutError(f"no answer from Redis for {now - self.last_rx:.0f} s")
        if self.ping_sent is None and now - self.last_rx >= self.interval:
            pubsub.ping()
            self.ping_sent = now
