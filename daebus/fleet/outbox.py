"""Store and forward: what the bridge sends is read from the box's kept
event streams, so nothing is lost while the bridge or the broker is away.

The bridge declares its ``send_channels`` in ``daebus:keep`` (as the gateway
declares the channels pages replay, see :mod:`daebus.kept`), with
``outbox_events`` and ``outbox_seconds`` as the bound. From then on every
publisher writes those broadcasts to ``daebus:kept:<channel>`` with an id
from one clock that only grows, also while the bridge is stopped. The
bridge reads the streams after the newest id the broker has acknowledged,
merged in id order, and keeps that id (and each channel's event count) in
the hash ``daebus:bridge:sent``, so a restart goes on where the broker's
acknowledgements stopped. Events dropped past the bound before they were
sent become one gap entry per channel and stretch::

    outbox = Outbox(client, ["sensors.*"], count=10000, age=86400)
    outbox.declare()                      # renewed by the bridge
    for entry in outbox.read(block_ms=1000): ...
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import threading
import time

from daebus.bus.globs import glob_match
from daebus.bus.kept import CLOCK, DECLARATIONS, SEQ, STREAM_PREFIX, TRIMMED, format_id, live_rules, parse_id, redis_ms
from daebus.fleet.topics import level_problem

SENT = "daebus:bridge:sent"   # hash: "@" -> newest acknowledged id; channel -> its events so far
CURSOR_FIELD = "@"
PAGE = 200                    # entries read per stream and round trip
RESCAN = 2.0                  # seconds between looks for new kept channels


@dataclasses.dataclass(frozen=True)
class Entry:
    """One event to send, or (``dropped`` not None) the gap before it."""

    key: tuple[int, int]
    channel: str
    data: bytes | None
    n: int
    dropped: int | None = None   # a gap: events lost (None: unknown)
    after: str | None = None     # a gap: the newest id sent before it

    @property
    def id(self) -> str:
        return format_id(self.key)

    def message(self) -> dict:
        """The JSON body published on the channel's events topic."""
        body = {"id": self.id, "channel": self.channel, "ts": self.key[0] / 1000}
        if self.dropped is None and self.data is not None:
            body["data"] = json.loads(self.data)
        else:
            body["gap"] = {"after": self.after, "through": self.id, "dropped": self.dropped}
        return body


class Position:
    """How far sending got: the newest id and each channel's count of events."""

    def __init__(self, key: tuple[int, int], counts: dict[str, int]):
        self.key, self.counts = key, dict(counts)

    def copy(self) -> Position:
        return Position(self.key, self.counts)

    def advance(self, entry: Entry) -> None:
        self.key = max(self.key, entry.key)
        self.counts[entry.channel] = max(self.counts.get(entry.channel, 0), entry.n)


class Outbox:
    """The kept streams of ``patterns`` read in id order after a position."""

    def __init__(self, client, patterns, *, count: int, age: float, refuse=None):
        self.client = client
        self.refuse = refuse  # (channel, why): a kept channel that cannot be one topic level
        self.patterns = list(patterns)
        self.count, self.age = count, age
        self._channels: list[str] = []
        self._scanned = 0.0
        self._lock = threading.Lock()

    # -- the declaration ----------------------------------------------------------
    def declare(self) -> None:
        """Write or renew the declaration, merged with a gateway's for the
        same pattern: the larger bound and the later end win."""
        if not self.patterns:
            return
        now = redis_ms(self.client)
        current = dict(live_rules(self.client.hgetall(DECLARATIONS), now))
        clock = parse_id(self.client.get(CLOCK))
        fresh = {}
        for pattern in self.patterns:
            rule = current.get(pattern) or {}
            since = rule.get("since") or (format_id((clock[0], clock[1] + 1)) if clock else "0-0")
            fresh[pattern] = json.dumps({
                "count": max(self.count, int(rule.get("count", 0))),
                "age": max(self.age, float(rule.get("age", 0))), "since": since,
                "until": max(now + int(self.age * 1000), int(rule.get("until", 0)))})
        self.client.hset(DECLARATIONS, mapping=fresh)

    # -- where sending got ---------------------------------------------------------
    def load(self) -> Position:
        """The acknowledged position; the first time, the newest kept id (what
        was broadcast before the bridge ever ran is not sent)."""
        saved = _text_map(self.client.hgetall(SENT))
        key = parse_id(saved.pop(CURSOR_FIELD, ""))
        if key is not None:
            return Position(key, {ch: int(n) for ch, n in saved.items() if n.isdigit()})
        counts = {ch: int(n) for ch, n in _text_map(self.client.hgetall(SEQ)).items() if n.isdigit()}
        position = Position(parse_id(self.client.get(CLOCK)) or (0, 0), counts)
        self.save(position)
        return position

    def save(self, position: Position) -> None:
        self.client.hset(SENT, mapping={CURSOR_FIELD: format_id(position.key), **position.counts})

    # -- reading -------------------------------------------------------------------
    def channels(self) -> list[str]:
        """The kept channels the patterns name (looked up every RESCAN s)."""
        now = time.monotonic()
        if now - self._scanned >= RESCAN:
            found = set()
            for key in self.client.scan_iter(match=STREAM_PREFIX + "*", count=500):
                channel = _text(key)[len(STREAM_PREFIX):]
                if not any(glob_match(p, channel) for p in self.patterns):
                    continue
                problem = level_problem(channel)
                if problem:
                    # "a/b" would become two topic levels: not sent rather than mangled.
                    if self.refuse is not None:
                        self.refuse(channel, problem)
                    continue
                found.add(channel)
            self._channels, self._scanned = sorted(found), now
        return self._channels

    def read(self, position: Position, block_ms: int = 0) -> list[Entry]:
        """The next entries after ``position`` in id order, gaps first where
        events were dropped unsent; waits up to ``block_ms`` for one."""
        channels = self.channels()
        if not channels:
            if block_ms:
                time.sleep(min(block_ms / 1000, RESCAN))
            return []
        streams = {STREAM_PREFIX + ch: format_id(position.key) for ch in channels}
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(TRIMMED, channels)
        pipe.hmget(SEQ, channels)
        pipe.xread(streams, count=PAGE)
        trimmed, seqs, found = pipe.execute()
        entries = _by_channel(found)
        gaps = {ch: (parse_id(t), s) for ch, t, s in zip(channels, trimmed, seqs)
                if t is not None and (parse_id(t) or (0, 0)) > position.key}
        if not entries and not gaps:
            if block_ms:
                self.client.xread(streams, count=1, block=block_ms)
            return []
        return _merge(channels, entries, gaps, position)


def _merge(channels, entries: dict, gaps: dict, position: Position) -> list[Entry]:
    """One page in id order, each gap before its channel's entries, cut
    where a stream's page ended (its later entries were not read yet)."""
    lists, limit = [], None
    for channel in channels:
        own = entries.get(channel, [])
        if len(own) >= PAGE:
            limit = own[-1].key if limit is None else min(limit, own[-1].key)
        if channel in gaps:
            through, seq = gaps[channel]
            first = own[0].n - 1 if own else int(seq or 0)
            known = position.counts.get(channel)
            # Entries without "n" (kept by an older publisher): the count is unknown.
            dropped = max(0, first - known) if known is not None and first > 0 else None
            own = [Entry(through, channel, None, first, dropped, format_id(position.key)), *own]
        lists.append(own)
    merged = heapq.merge(*lists, key=lambda e: e.key)
    return [e for e in merged if limit is None or e.key <= limit]


def _by_channel(found) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {}
    for stream, items in found or []:
        channel = _text(stream)[len(STREAM_PREFIX):]
        rows = out.setdefault(channel, [])
        for raw_id, fields in items:
            key = parse_id(raw_id)
            data = fields.get(b"d", fields.get("d"))
            n = fields.get(b"n", fields.get("n"))
            if key is None or data is None:
                continue  # not written by the kept script: never ours to send
            rows.append(Entry(key, channel, data if isinstance(data, bytes) else data.encode(),
                              int(n) if n is not None and _text(n).isdigit() else 0))
    return out


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _text_map(raw: dict) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}
