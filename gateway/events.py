"""Server-Sent Events: one Redis subscription per process, fanned out to
bounded per-browser queues.

The hub ``PSUBSCRIBE``\\ s to the exposed channel patterns once, so opening
a stream never talks to Redis. Each broadcast is encoded once, as the bytes
every stream sends, and offered to the queues of the streams that asked for
its channel. Offering never blocks: a browser that falls ``stream_queue``
events behind is dropped (its ``EventSource`` reconnects), so one stalled
client can't delay the others or grow the gateway's memory. Example::

    hub = EventHub(url, exposure, queue_size=64, max_streams=24).start()
    stream = hub.open({"sensors.temp"})
    for chunk in sse_body(hub, stream, heartbeat=15):
        ...  # b"id: 1\\ndata: {\\"channel\\":\\"sensors.temp\\",\\"data\\":{...}}\\n\\n"
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import threading
from typing import Iterator

from daebus import protocol
from daebus.transport import Subscriber

from .expose import Exposure

log = logging.getLogger("gateway.events")

HEARTBEAT = b": keepalive\n\n"
# The browser's reconnect delay after a drop or a restart, in milliseconds.
PREAMBLE = b"retry: 2000\n: connected\n\n"


def sse_event(data: str, *, event_id: int | None = None, event: str | None = None) -> bytes:
    """One SSE event; ``data`` must be a single line (compact JSON is)."""
    head = (f"id: {event_id}\n" if event_id is not None else "") + (f"event: {event}\n" if event else "")
    return f"{head}data: {data}\n\n".encode("utf-8")


def status_event(up: bool) -> bytes:
    """``event: status`` telling the page whether live data is flowing."""
    return sse_event(json.dumps({"redis": "up" if up else "down"}, separators=(",", ":")), event="status")


class TooManyStreams(Exception):
    """``max_streams`` streams are open; new ones are refused."""


class Stream:
    """One browser's bounded queue of encoded events."""

    def __init__(self, channels: frozenset[str], size: int):
        self.channels = channels
        self.size = size
        self.closed: str | None = None  # why the stream ended, once it has
        self.initially_up = False  # Redis state when opened; later changes are queued
        self._items: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()

    def offer(self, chunk: bytes) -> bool:
        """Queue ``chunk`` without waiting; False (and the stream closed)
        when the browser is ``size`` events behind."""
        with self._cond:
            if self.closed:
                return False
            if len(self._items) >= self.size:
                self.closed = "overflow"
                self._items.clear()  # frees the memory now, not at the next write
                self._cond.notify()
                return False
            self._items.append(chunk)
            self._cond.notify()
            return True

    def close(self, reason: str) -> None:
        with self._cond:
            if not self.closed:
                self.closed = reason
            self._cond.notify()

    def take(self, timeout: float) -> bytes | None:
        """Every queued chunk at once, b"" after ``timeout`` with nothing to
        send, None once closed."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            if self.closed:
                return None
            chunk = b"".join(self._items)
            self._items.clear()
            return chunk


class EventHub:
    """The process's broadcast subscription and its open streams."""

    def __init__(self, url: str, exposure: Exposure, *, queue_size: int = 64, max_streams: int = 24,
                 max_message_bytes: int = 1024 * 1024, subscriber_factory=Subscriber):
        self.url = url
        self.exposure = exposure
        self.queue_size = queue_size
        self.max_streams = max_streams
        self.max_message_bytes = max_message_bytes
        self.patterns = exposure.subscription_patterns()
        self._factory = subscriber_factory
        self._subscriber = None
        self._lock = threading.Lock()
        self._by_channel: dict[str, set[Stream]] = collections.defaultdict(set)
        self._streams: set[Stream] = set()
        self._ids = itertools.count(1)
        self._skip: dict[str, int] = {}
        self._warned: set[str] = set()
        self._closing = False
        self.up = False
        self.failed = False  # Redis has failed since start (and the hub knows it)
        self.dropped = 0
        self.delivered = 0

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> EventHub:
        if self._subscriber is None:
            # Even with no channel exposed: the connection still tells the
            # gateway when Redis is down, so calls can fail at once.
            self._subscriber = self._factory(
                self.url, [], self._on_message, name="gateway-events", patterns=self.patterns,
                on_lost=self._on_lost, on_restored=self._on_restored, on_state=self._on_state,
                on_ready=self._on_ready).start()
        return self

    def _on_ready(self) -> None:
        self._set_up(True)

    def wait_ready(self, timeout: float) -> bool:
        return self._subscriber is not None and self._subscriber.wait_ready(timeout)

    @property
    def redis_down(self) -> bool:
        """Redis is known to be unreachable (so calls can fail at once)."""
        return self.failed and not self.up

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def close_streams(self, reason: str = "shutdown") -> None:
        """End every stream and refuse new ones (the worker is stopping)."""
        with self._lock:
            self._closing = True
            streams = list(self._streams)
        for stream in streams:
            stream.close(reason)

    def stop(self) -> None:
        self.close_streams()
        if self._subscriber is not None:
            self._subscriber.stop()

    # -- streams --------------------------------------------------------------
    def open(self, channels) -> Stream:
        stream = Stream(frozenset(channels), self.queue_size)
        with self._lock:
            if self._closing:
                raise TooManyStreams("the gateway is shutting down")
            if len(self._streams) >= self.max_streams:
                raise TooManyStreams(f"{self.max_streams} event streams are open already")
            stream.initially_up = self.up
            self._streams.add(stream)
            for channel in stream.channels:
                self._by_channel[channel].add(stream)
        return stream

    def release(self, stream: Stream) -> None:
        stream.close("released")
        with self._lock:
            self._streams.discard(stream)
            for channel in stream.channels:
                subscribers = self._by_channel.get(channel)
                if subscribers is not None:
                    subscribers.discard(stream)
                    if not subscribers:
                        del self._by_channel[channel]

    # -- Redis side (the subscriber's reader thread) ------------------------
    def _on_message(self, channel: str, data: bytes) -> None:
        # Redis sends one pmessage per matching pattern, back to back, so
        # the copies after the first are skipped.
        if self._skip.get(channel):
            self._skip[channel] -= 1
            return
        copies = self.exposure.copies(channel, self.patterns)
        if copies > 1:
            self._skip[channel] = copies - 1
        with self._lock:
            streams = list(self._by_channel.get(channel, ()))
        if not streams:
            return
        chunk = self._encode(channel, data)
        if chunk is None:
            return
        for stream in streams:
            if stream.offer(chunk):
                self.delivered += 1
            elif stream.closed == "overflow":
                self.dropped += 1
                log.warning("dropped a slow event stream (%d events behind on %s)",
                            self.queue_size, ", ".join(sorted(stream.channels)))
                self.release(stream)

    def _encode(self, channel: str, data: bytes) -> bytes | None:
        try:
            if len(data) > self.max_message_bytes:
                raise ValueError(f"{len(data)} bytes exceed the {self.max_message_bytes} byte limit")
            payload = protocol.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            # Logged once per channel: a chatty bad publisher must not flood the journal.
            level = logging.DEBUG if channel in self._warned else logging.WARNING
            self._warned.add(channel)
            log.log(level, "dropped a malformed message on %r: %s", channel, exc)
            return None
        body = protocol.dumps({"channel": channel, "data": payload})
        return sse_event(body, event_id=next(self._ids))

    def _on_lost(self, exc: Exception) -> None:
        self._skip.clear()
        self.failed = True
        self._set_up(False)

    def _on_state(self, text: str) -> None:
        # Called for "waiting for redis" (never connected) and for a loss.
        self.failed = True
        self._set_up(False)

    def _on_restored(self, outage: float) -> None:
        self._skip.clear()
        self._set_up(True)

    def _set_up(self, up: bool) -> None:
        with self._lock:
            # Under the lock with open(): each stream sees every change once.
            if up == self.up:
                return
            self.up = up
            streams = list(self._streams)
        chunk = status_event(up)
        for stream in streams:
            stream.offer(chunk)


def sse_body(hub: EventHub, stream: Stream, heartbeat: float) -> Iterator[bytes]:
    """The response body of one stream; releases it however it ends."""
    try:
        yield PREAMBLE + status_event(stream.initially_up)
        while True:
            chunk = stream.take(heartbeat)
            if chunk is None:
                return
            yield chunk or HEARTBEAT
    finally:
        hub.release(stream)
