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
import json
import logging
import threading
from typing import Iterator

from daebus.bus import kept, protocol
from daebus.bus.subscriber import Subscriber

from .expose import Exposure
from .replay import READ_ERRORS, History, Plan

log = logging.getLogger("gateway.events")

HEARTBEAT = b": keepalive\n\n"
REPLAY_BATCH = 32  # kept events written to the browser at once
# The browser's reconnect delay after a drop or a restart, in milliseconds.
PREAMBLE = b"retry: 2000\n: connected\n\n"


def sse_event(data: str, *, event_id: int | str | None = None, event: str | None = None) -> bytes:
    """One SSE event; ``data`` must be a single line (compact JSON is)."""
    head = (f"id: {event_id}\n" if event_id is not None else "") + (f"event: {event}\n" if event else "")
    return f"{head}data: {data}\n\n".encode("utf-8")


def status_event(up: bool, event_id: str | None = None) -> bytes:
    """``event: status`` telling the page whether live data is flowing."""
    return sse_event(json.dumps({"redis": "up" if up else "down"}, separators=(",", ":")),
                     event="status", event_id=event_id)


def gap_event(channels) -> bytes:
    """``event: gap``: events on these channels may have been missed."""
    return sse_event(json.dumps({"channels": list(channels)}, separators=(",", ":")), event="gap")


class TooManyStreams(Exception):
    """``max_streams`` streams are open; new ones are refused."""


class Stream:
    """One browser's bounded queue of encoded events."""

    def __init__(self, channels: frozenset[str], size: int):
        self.channels = channels
        self.size = size
        self.closed: str | None = None  # why the stream ended, once it has
        self.initially_up = False  # Redis state when opened; later changes are queued
        # Kept events up to this id are sent from Redis, not from the queue.
        self.floor: tuple[int, int] | None = None
        # The newest kept event queued: a copy of it or of an older one
        # (a live event the catch-up after a resubscription also read) is dropped.
        self.last_key: tuple[int, int] | None = None
        self._items: collections.deque[tuple[tuple[int, int] | None, bytes]] = collections.deque()
        self._cond = threading.Condition()

    def offer(self, chunk: bytes, key: tuple[int, int] | None = None) -> bool:
        """Queue ``chunk`` without waiting; False (and the stream closed)
        when the browser is ``size`` events behind."""
        with self._cond:
            if self.closed:
                return False
            if key is not None:
                if self.last_key is not None and key <= self.last_key:
                    return True  # already queued
                self.last_key = key
            if len(self._items) >= self.size:
                self.closed = "overflow"
                self._items.clear()  # frees the memory now, not at the next write
                self._cond.notify()
                return False
            self._items.append((key, chunk))
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
            floor = self.floor
            chunk = b"".join(chunk for key, chunk in self._items
                             if key is None or floor is None or key > floor)
            self._items.clear()
            return chunk


class EventHub:
    """The process's broadcast subscription and its open streams."""

    def __init__(self, url: str, exposure: Exposure, *, queue_size: int = 64, max_streams: int = 24,
                 max_message_bytes: int = 1024 * 1024, subscriber_factory=Subscriber,
                 history: History | None = None, socket_timeout: float = 5.0, health_interval: float = 5.0):
        self.url = url
        self.exposure = exposure
        self.queue_size = queue_size
        self.max_streams = max_streams
        self.max_message_bytes = max_message_bytes
        self.patterns = exposure.subscription_patterns()
        self._factory = subscriber_factory
        # How soon a Redis that hangs is noticed: the [redis] keys a service's reader uses too.
        self._timeouts = {"socket_timeout": socket_timeout, "health_interval": health_interval}
        self._subscriber = None
        self._lock = threading.Lock()
        self._by_channel: dict[str, set[Stream]] = collections.defaultdict(set)
        self._streams: set[Stream] = set()
        self.history = history if history is not None and history.enabled else None
        # Channels of the messages still to come that copy one already
        # handled: Redis sends one per matching pattern, back to back, and a
        # kept event's announcement comes right before its broadcast.
        self._copies: collections.deque[str] = collections.deque()
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
                self.url, [kept.NOTICE] if self.history else [], self._on_message, name="gateway-events", patterns=self.patterns,
                on_lost=self._on_lost, on_restored=self._on_restored, on_state=self._on_state,
                on_ready=self._on_ready, **self._timeouts).start()
        return self

    def _on_ready(self) -> None:
        self._set_up(True)
        if self.history is not None:
            self._catch_up()

    def _catch_up(self) -> None:
        """Queue, from Redis, the kept events that open streams missed while
        the subscription was being (re)made. Runs in the reader thread
        before it reads on, so live copies of them come after and are dropped."""
        try:
            self.history.declare()  # a Redis that restarted empty has lost it
        except READ_ERRORS as exc:
            log.debug("cannot renew the kept-events declaration: %s", exc)
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            start = stream.last_key
            if start is None:
                continue  # opened while Redis was unreachable: it had its gap event
            try:
                plan = self.history.plan(sorted(stream.channels), kept.format_id(start), None)
                if plan.gap:
                    stream.offer(gap_event(plan.gap))
                for event_id, channel, data in plan.entries():
                    chunk = self.encode(channel, data, event_id)
                    if chunk is not None and not stream.offer(chunk, kept.parse_id(event_id)):
                        break  # too far behind: dropped, the browser resumes by itself
            except READ_ERRORS as exc:
                # Redis went again: the next subscription catches up from
                # the same place (last_key did not move past what was queued).
                log.debug("cannot catch up on kept events: %s", exc)
                return

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

    def resume(self, stream: Stream, last_event_id: str | None) -> Plan:
        """Where an opened ``stream`` starts: the kept events it missed
        after ``last_event_id`` (the browser's ``Last-Event-ID``) and the
        channels where it missed more than is kept."""
        channels = sorted(stream.channels)
        if self.history is None:
            return Plan.unknown(channels, last_event_id)
        try:
            # Read after the stream was registered: what comes later is
            # queued, what came before is in Redis, and the floor parts them.
            until = self.history.clock()
            plan = self.history.plan(channels, last_event_id, until)
        except READ_ERRORS as exc:
            log.debug("cannot look up kept events: %s", exc)
            return Plan.unknown(channels, last_event_id)
        with stream._cond:
            stream.floor = until
            stream.last_key = max(stream.last_key or until, until)
        return plan

    def replay(self, plan: Plan) -> Iterator[bytes]:
        """The SSE bytes of the plan's kept events, a batch at a time; a gap
        event when Redis fails halfway."""
        batch: list[bytes] = []
        try:
            for event_id, channel, data in plan.entries():
                chunk = self.encode(channel, data, event_id)
                if chunk is not None:
                    batch.append(chunk)
                if len(batch) >= REPLAY_BATCH:
                    yield b"".join(batch)
                    batch.clear()
        except READ_ERRORS as exc:
            log.warning("replay of kept events failed: %s", exc)
            batch.append(gap_event(plan.channels))
        if batch:
            yield b"".join(batch)

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
        copies = self._copies
        if copies:
            if copies[0] == channel:
                copies.popleft()
                return
            copies.clear()  # a copy that never came (a subscription in progress)
        event_id = None
        if channel == kept.NOTICE and self.history is not None:
            copies.extend([channel] * self.exposure.copies(channel, self.patterns))
            notice = kept.parse_notice(data)
            if notice is None:
                return
            event_id, channel, data = notice
            copies.extend([channel] * self.exposure.copies(channel, self.patterns))
        else:
            copies.extend([channel] * (self.exposure.copies(channel, self.patterns) - 1))
        with self._lock:
            streams = list(self._by_channel.get(channel, ()))
        if not streams:
            return
        chunk = self.encode(channel, data, event_id)
        if chunk is None:
            return
        key = kept.parse_id(event_id) if event_id else None
        for stream in streams:
            if stream.offer(chunk, key):
                self.delivered += 1
            elif stream.closed == "overflow":
                self.dropped += 1
                log.warning("dropped a slow event stream (%d events behind on %s)",
                            self.queue_size, ", ".join(sorted(stream.channels)))
                self.release(stream)

    def encode(self, channel: str, data: bytes, event_id: str | None = None) -> bytes | None:
        """The SSE bytes of one broadcast; None (logged) when malformed."""
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
        return sse_event(body, event_id=event_id)

    def _on_lost(self, exc: Exception) -> None:
        self._copies.clear()
        self.failed = True
        self._set_up(False)

    def _on_state(self, text: str) -> None:
        # Called for "waiting for redis" (never connected) and for a loss.
        self.failed = True
        self._set_up(False)

    def _on_restored(self, outage: float) -> None:
        self._copies.clear()
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


def sse_body(hub: EventHub, stream: Stream, heartbeat: float, plan: Plan | None = None) -> Iterator[bytes]:
    """The response body of one stream; releases it however it ends."""
    try:
        plan = plan or Plan.unknown(sorted(stream.channels), None)
        yield (PREAMBLE + status_event(stream.initially_up, plan.start_id)
               + (gap_event(plan.gap) if plan.gap else b""))
        yield from hub.replay(plan)
        while True:
            chunk = stream.take(heartbeat)
            if chunk is None:
                return
            yield chunk or HEARTBEAT
    finally:
        hub.release(stream)
