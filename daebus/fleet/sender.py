"""The bridge's sending side: the outbox read in order, published QoS 1,
and the position moved only past what the broker acknowledged.

At most WINDOW events are unacknowledged at once. When the connection
drops, reading starts again after the last acknowledged one; an event the
broker took twice that way has the same ``id``, which consumers dedupe by.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import threading
import time

from daebus.ops.logs import StateLog
from daebus.bus.transport import REDIS_ERRORS
from daebus.fleet.outbox import Outbox, Position

log = logging.getLogger("daebus.fleet")

WINDOW = 500        # events published and not yet acknowledged
SAVE_EVERY = 0.25   # seconds between writes of the acknowledged position


class Sender:
    def __init__(self, outbox: Outbox, publish, topic_for, complaints):
        self.outbox = outbox
        self.publish = publish          # (topic, text) -> mid, or None when not connected
        self.topic_for = topic_for      # channel -> events topic
        self.complaints = complaints
        self.acks: queue.SimpleQueue = queue.SimpleQueue()
        self.connected = threading.Event()
        self.stopping = threading.Event()
        self.counts = {"sent": 0, "gaps": 0, "dropped": 0, "skipped": 0}
        self.beat = time.monotonic()     # the loop's last turn, for the watchdog
        self._pending: collections.OrderedDict = collections.OrderedDict()  # mid -> entry
        self._done: set[int] = set()
        self._acked: Position | None = None
        self._read: Position | None = None
        self._saved_key = None
        self._rewind = threading.Event()
        self._redis = StateLog(log, "up")
        self._thread = threading.Thread(target=self._loop, name="fleet-sender", daemon=True)

    def start(self) -> Sender:
        self._thread.start()
        return self

    def on_connected(self) -> None:
        self._rewind.set()
        self.connected.set()

    def on_disconnected(self) -> None:
        self.connected.clear()

    def on_ack(self, mid: int) -> None:   # the MQTT thread: never takes our locks
        self.acks.put(mid)

    @property
    def backlog_id(self) -> str | None:
        return None if self._acked is None else f"{self._acked.key[0]}-{self._acked.key[1]}"

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self._thread.join(timeout)

    # -- the loop ------------------------------------------------------------------
    def _loop(self) -> None:
        last_save = 0.0
        while not self.stopping.is_set():
            self.beat = time.monotonic()
            try:
                if self._acked is None:
                    self._acked = self.outbox.load()
                    self._read = self._acked.copy()
                self._take_acks()
                if time.monotonic() - last_save >= SAVE_EVERY:
                    self._save()
                    last_save = time.monotonic()
                if self._rewind.is_set():
                    self._rewind.clear()
                    self._pending.clear()
                    self._done.clear()
                    self._read = self._acked.copy()
                if not self.connected.is_set() or len(self._pending) >= WINDOW:
                    self._wait_acks(0.2)
                    continue
                entries = self.outbox.read(self._read, block_ms=500 if not self._pending else 0)
                if not entries and self._pending:
                    self._wait_acks(0.05)
                for entry in entries[:WINDOW - len(self._pending)]:
                    if not self._send(entry):
                        break
                self._redis.set("up", logging.INFO, "the outbox is readable again")
            except REDIS_ERRORS as exc:
                self._redis.set("down", logging.WARNING, "cannot read the outbox in Redis: %s", exc)
                self.stopping.wait(1.0)
        self._take_acks()
        try:
            self._save()
        except REDIS_ERRORS:
            pass

    def _send(self, entry) -> bool:
        try:
            text = json.dumps(entry.message(), separators=(",", ":"))
        except ValueError:
            self.counts["skipped"] += 1
            self.complaints.warn("event", "not sending event %s on %s: not JSON", entry.id, entry.channel)
            self._pending[("skip", entry.key)] = entry
            self._done.add(("skip", entry.key))
            self._read.advance(entry)
            return True
        mid = self.publish(self.topic_for(entry.channel), text)
        if mid is None:
            return False  # not connected: what was not taken is read again
        if entry.dropped is not None or entry.data is None:
            self.counts["gaps"] += 1
            self.counts["dropped"] += entry.dropped or 0
            log.warning("%s events on %s were dropped before they could be sent (the outbox bound)",
                        entry.dropped if entry.dropped is not None else "some", entry.channel)
        self._pending[mid] = entry
        self._read.advance(entry)
        return True

    def _wait_acks(self, timeout: float) -> None:
        try:
            self._done.add(self.acks.get(timeout=timeout))
        except queue.Empty:
            return
        self._take_acks()

    def _take_acks(self) -> None:
        while True:
            try:
                self._done.add(self.acks.get_nowait())
            except queue.Empty:
                break
        while self._pending:
            mid = next(iter(self._pending))
            if mid not in self._done:
                break
            self._done.discard(mid)
            entry = self._pending.pop(mid)
            self._acked.advance(entry)
            self.counts["sent"] += 1
        if not self._pending:
            self._done.clear()  # acks of a previous connection's resends

    def _save(self) -> None:
        if self._acked is not None and (self._acked.key, len(self._acked.counts)) != self._saved_key:
            self.outbox.save(self._acked)
            self._saved_key = (self._acked.key, len(self._acked.counts))
