"""Resumed event streams admitted at a bounded rate: a reconnect storm costs only itself.

After a network blip or a gateway restart every page reconnects at once
with its ``Last-Event-ID``, and each such stream starts with a replay read
from Redis. Handed to threads all at once they would queue ahead of the
action calls, and the replays' buffers would pile up. So the worker's main
loop (:mod:`gateway.worker`) admits resuming streams from a token bucket
(``replay_rate`` a second, bursts of ``replay_burst``) and answers the rest
itself, without a thread, with a short event stream that names a time to
come back::

    retry: 2350
    event: busy
    data: {"retry_ms":2350}

An ``EventSource`` reconnects by itself after ``retry`` milliseconds, still
with its ``Last-Event-ID``; daebus.js does the same with jitter of its own.
Each refused client gets its own slot, spaced ``1 / replay_rate`` seconds
after the previous one, so the returns come no faster than they are
admitted: a storm of N pages is served within about N / ``replay_rate``
seconds. Fresh streams (no ``Last-Event-ID``) have nothing to replay and are
not counted.

Example::

    admission = Admission(rate=50, burst=20)
    wait = admission.admit()          # None: go ahead; else seconds to come back after
"""

from __future__ import annotations

import json
import random
import re
import threading
import time

EVENTS_PATH = b"/api/events"
# At most this is added to each slot, so that returns spread a little (and
# never more than a burst's worth of tokens covers: none is refused twice).
SLOT_JITTER = 0.25
_HEADER = re.compile(rb"\r\nlast-event-id[ \t]*:[ \t]*[^\r\n \t]", re.I)
_PARAM = re.compile(rb"[?&]last_event_id=[^& ]")


def resumes_stream(head: bytes) -> bool:
    """``head`` (a request's raw head) asks for an event stream that resumes
    after a ``Last-Event-ID`` (the header, or the ``last_event_id`` parameter)."""
    head = head.lstrip(b"\r\n")   # stray CRLFs between requests (RFC 9112 2.2)
    line_end = head.find(b"\r\n")
    line = head[:line_end] if line_end >= 0 else head
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET":
        return False
    target = parts[1]
    path = target.split(b"?", 1)[0]
    if path != EVENTS_PATH:
        return False
    return bool(_PARAM.search(target)) or bool(_HEADER.search(head))


class Admission:
    """A token bucket whose refusals each reserve a later slot."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate, self.burst = float(rate), max(1, int(burst))
        self._clock = clock
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._next_slot = 0.0
        self._lock = threading.Lock()
        self.admitted = self.deferred = 0

    def admit(self) -> float | None:
        """None when admitted now; otherwise the seconds to come back after."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                self.admitted += 1
                return None
            # The line of those told to wait: each comes back one token's time after the last.
            self._next_slot = max(self._next_slot, now) + 1 / self.rate
            self.deferred += 1
            return self._next_slot - now + random.uniform(0, min(SLOT_JITTER, (self.burst - 1) / self.rate))


def busy_answer(wait: float) -> bytes:
    """The whole HTTP answer telling a resuming stream to come back in ``wait`` seconds."""
    ms = max(1, int(wait * 1000))
    body = (f"retry: {ms}\nevent: busy\ndata: " + json.dumps({"retry_ms": ms}, separators=(",", ":"))
            + "\n\n").encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
