"""What a reconnecting page missed: the gateway's side of kept events.

The gateway declares its exposed channel patterns in Redis (see
:mod:`daebus.bus.kept`) and renews the declaration while it runs, so that
publishers keep those channels' recent broadcasts, also while the gateway
restarts. A page that reconnects with ``Last-Event-ID`` gets what was kept
after that id, oldest first; when something it may have missed is no longer
kept, it is told first with an ``event: gap``. Example::

    history = History(client, ["sensors.*"], count=100, age=300)
    history.declare()                                  # renewed every age / 4
    plan = history.plan(["sensors.temp"], "1700000000000-3")
    plan.gap                                           # channels with a gap
    for event_id, channel, data in plan.entries(): ...
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
from typing import Iterator

import redis

from daebus.bus.globs import glob_match
from daebus.bus.kept import (CLOCK, DECLARATIONS, STREAM_PREFIX, TRIMMED, format_id, live_rules,
                             mark_restart, parse_id, redis_ms)

# What reading kept events may raise: Redis gone, or a key of another type.
READ_ERRORS = (redis.RedisError, OSError)

log = logging.getLogger("gateway.events")

PAGE = 32          # entries read per channel and round trip while replaying
MAX_ID_LENGTH = 41  # "<19 digits>-<19 digits>" and a little


class Plan:
    """One reconnection: the channels with a gap, and the kept entries to send."""

    def __init__(self, history: History | None, channels, after=None, until=None, cutoff=None, gap=()):
        self._history = history
        self.channels = list(channels)
        self.after, self.until, self.cutoff = after, until, cutoff
        self.gap: list[str] = list(gap)

    @classmethod
    def unknown(cls, channels, last_event_id: str | None) -> Plan:
        """Nothing can be replayed: a page that asked is told of a gap."""
        return cls(None, channels, gap=channels if last_event_id is not None else ())

    @property
    def start_id(self) -> str | None:
        """The id a fresh page starts from (sent on its first event)."""
        return format_id(self.until) if self.until is not None else None

    def entries(self) -> Iterator[tuple[str, str, bytes]]:
        """``(id, channel, data)`` oldest first, read a page at a time."""
        if self.after is None or self._history is None:
            return iter(())
        streams = [self._history.read(channel, self.after, self.until, self.cutoff)
                   for channel in self.channels]
        return (entry[1:] for entry in heapq.merge(*streams))


class History:
    """The declaration this gateway keeps alive, and replays from Redis."""

    def __init__(self, client, patterns, *, count: int, age: float):
        self.client = client
        self.patterns = list(patterns)
        self.count, self.age = count, age
        self.enabled = count > 0 and bool(self.patterns)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the declaration --------------------------------------------------------------
    def declare(self) -> None:
        """Write or renew this gateway's declaration (one per pattern)."""
        if not self.enabled:
            return
        now = redis_ms(self.client)
        current = dict(live_rules(self.client.hgetall(DECLARATIONS), now))
        restart = None
        fresh = {}
        for pattern in self.patterns:
            rule = current.get(pattern)
            # Kept without a break since "since": renewing keeps it. A
            # declaration that lapsed starts again at a mark past the newest
            # kept id, so a page that saw that one still hears of the lapse,
            # and a page told of it (its stream's first id is the mark or
            # later) does not hear of it twice; with no kept event ever,
            # nothing can have been missed.
            if rule is None and restart is None:
                restart = mark_restart(self.client)
            since = rule["since"] if rule else restart
            count = max(self.count, int(rule["count"])) if rule else self.count
            age = max(self.age, float(rule["age"])) if rule else self.age
            fresh[pattern] = json.dumps({"count": count, "age": age, "since": since,
                                         "until": now + int(self.age * 1000)})
        self.client.hset(DECLARATIONS, mapping=fresh)

    def start(self) -> History:
        """Renew the declaration every ``age / 4`` seconds in a thread."""
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._renew, name="gateway-keep", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _renew(self) -> None:
        interval = max(0.2, min(self.age / 4, 60.0))
        failing = False
        while not self._stop.is_set():
            try:
                self.declare()
                failing = False
            except READ_ERRORS as exc:
                if not failing:  # the event hub logs an outage itself; a refusal is said once
                    log.log(logging.WARNING if isinstance(exc, redis.ResponseError) else logging.DEBUG,
                            "cannot renew the kept-events declaration: %s", exc)
                failing = True
            self._stop.wait(interval if not failing else min(interval, 1.0))

    # -- a reconnection ----------------------------------------------------------
    def clock(self) -> tuple[int, int]:
        """The id of the newest kept event, (0, 0) before the first."""
        return parse_id(self.client.get(CLOCK)) or (0, 0)

    def plan(self, channels, last_event_id: str | None, until: tuple[int, int] | None) -> Plan:
        """What to send a stream that resumes after ``last_event_id``:
        kept entries in ``(last_event_id, until]`` (None: up to the newest)
        and the channels where more than that was missed. A missing id
        means a fresh page; one that is garbage or in the future gets a gap
        on every channel."""
        if last_event_id is None:
            return Plan(self, channels, None, until, None, [])
        after = parse_id(last_event_id) if len(last_event_id) <= MAX_ID_LENGTH else None
        if after is None or (until is not None and after > until) or not self.enabled:
            return Plan(self, channels, None, until, None, list(channels))
        now = redis_ms(self.client)
        cutoff = (now - int(self.age * 1000), 0)
        rules = live_rules(self.client.hgetall(DECLARATIONS), now)
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(TRIMMED, list(channels))
        for channel in channels:
            pipe.xrange(STREAM_PREFIX + channel, "(" + format_id(after), _upper(until), count=1)
        trimmed, *firsts = pipe.execute()
        gap = []
        for channel, dropped, first in zip(channels, trimmed, firsts):
            since = [parse_id(rule["since"]) or (0, 0) for pattern, rule in rules
                     if glob_match(pattern, channel)]
            if (not since or after < min(since)
                    or (parse_id(dropped) or (0, 0)) > after
                    or (first and parse_id(first[0][0]) < cutoff)):
                gap.append(channel)
        return Plan(self, channels, after, until, cutoff, gap)

    def read(self, channel: str, after, until, cutoff) -> Iterator[tuple]:
        """``(key, id, channel, data)`` of ``channel``'s entries in
        ``(after, until]`` no older than ``cutoff``."""
        lower = "(" + format_id(after)
        if cutoff is not None and cutoff > after:
            lower = format_id(cutoff)  # inclusive: entries older than that are not sent
        while True:
            batch = self.client.xrange(STREAM_PREFIX + channel, lower, _upper(until), count=PAGE)
            for raw_id, fields in batch:
                key = parse_id(raw_id)
                data = fields.get(b"d", fields.get("d"))
                if key is None or data is None:
                    continue
                yield key, format_id(key), channel, data if isinstance(data, bytes) else data.encode()
            if len(batch) < PAGE:
                return
            lower = "(" + _text(batch[-1][0])


def _upper(until) -> str:
    return format_id(until) if until is not None else "+"


def _text(value) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value
