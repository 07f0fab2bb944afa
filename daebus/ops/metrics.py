"""Counters a service keeps about itself, cheap enough to be always on.

The runtime counts, per action, the calls, the error replies by code, the
``busy`` refusals, the requests skipped because their caller had given up
(``expired``), those their caller cancelled before they ended
(``cancelled``: skipped before they started, or cancelled while their
handler ran, which also counts as a call) and a latency histogram; per listener channel and background task the runs,
failures and last duration; and the queue depth, reconnections and uptime.

Nothing is sent when a count changes: :meth:`ServiceMetrics.snapshot` is
written into the service's registry entry with the heartbeat it already
makes, so reading the figures (the gateway's ``/metrics``, ``daebus top``)
never wakes a service. Example::

    metrics = ServiceMetrics(["get_status"])
    metrics.call("get_status", 0.004)                  # a success in 4 ms
    metrics.call("get_status", 0.010, "handler_error")
    text = metrics.snapshot(uptime=12.0, queued=0, in_flight=0)
    parse_snapshot(text)["actions"]["get_status"]["calls"]   # 2
"""

from __future__ import annotations

import bisect
import json
import math
import threading
import time

# Latency histogram bounds in seconds (a last, open bucket catches the rest).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Requests for actions the service doesn't have are counted under this name,
# so random action names can't grow the snapshot.
UNKNOWN_ACTION = "(unknown)"
OTHER_CODE = "(other)"
MAX_CODES = 32  # distinct error codes kept per action
MAX_SNAPSHOT_BYTES = 1024 * 1024
VERSION = 1


class _Action:
    __slots__ = ("calls", "errors", "busy", "expired", "cancelled", "buckets", "sum")

    def __init__(self):
        self.calls = self.busy = self.expired = self.cancelled = 0
        self.errors: dict[str, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def as_dict(self) -> dict:
        return {"calls": self.calls, "errors": dict(self.errors), "busy": self.busy,
                "expired": self.expired, "cancelled": self.cancelled, "sum": self.sum,
                "buckets": list(self.buckets)}


class _Runs:
    __slots__ = ("runs", "failures", "last_duration")

    def __init__(self):
        self.runs = self.failures = 0
        self.last_duration = 0.0

    def as_dict(self) -> dict:
        return {"runs": self.runs, "failures": self.failures, "last_duration": self.last_duration}


class ServiceMetrics:
    """The counters of one running service; every method is thread-safe."""

    enabled = True

    def __init__(self, actions=(), listeners=(), tasks=()):
        self._lock = threading.Lock()
        # Created up front: the hot path only reads these dicts.
        self.actions = {name: _Action() for name in [*actions, UNKNOWN_ACTION]}
        self.listeners = {name: _Runs() for name in listeners}
        self.tasks = {name: _Runs() for name in tasks}
        self.reconnects = 0

    def _action(self, name: str) -> _Action:
        return self.actions.get(name) or self.actions[UNKNOWN_ACTION]

    def call(self, action: str, seconds: float, code: str | None = None) -> None:
        """One handled request: its latency and, for an error reply, the code."""
        stats = self._action(action)
        index = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            stats.calls += 1
            stats.sum += seconds
            stats.buckets[index] += 1
            if code is not None:
                if code not in stats.errors and len(stats.errors) >= MAX_CODES:
                    code = OTHER_CODE
                stats.errors[code] = stats.errors.get(code, 0) + 1

    def busy(self, action: str) -> None:
        """A request refused with ``busy`` because the work queue was full."""
        stats = self._action(action)
        with self._lock:
            stats.busy += 1

    def expired(self, action: str) -> None:
        """A request skipped because its caller had given up while it waited."""
        stats = self._action(action)
        with self._lock:
            stats.expired += 1

    def cancelled(self, action: str) -> None:
        """A request its caller cancelled: before it started, or while it ran."""
        stats = self._action(action)
        with self._lock:
            stats.cancelled += 1

    def listener(self, channel: str, seconds: float, failed: bool) -> None:
        self._run(self.listeners, channel, seconds, failed)

    def task(self, name: str, seconds: float, failed: bool) -> None:
        self._run(self.tasks, name, seconds, failed)

    def _run(self, table: dict, name: str, seconds: float, failed: bool) -> None:
        with self._lock:
            stats = table.get(name) or table.setdefault(name, _Runs())
            stats.runs += 1
            stats.failures += failed
            stats.last_duration = seconds

    def reconnected(self) -> None:
        with self._lock:
            self.reconnects += 1

    def snapshot(self, *, uptime: float, queued: int, in_flight: int) -> str:
        """The figures as the JSON text stored in the registry entry."""
        with self._lock:
            actions = {name: stats.as_dict() for name, stats in self.actions.items()
                       if name != UNKNOWN_ACTION or stats.calls or stats.busy or stats.expired
                       or stats.cancelled}
            listeners = {name: stats.as_dict() for name, stats in self.listeners.items()}
            tasks = {name: stats.as_dict() for name, stats in self.tasks.items()}
            reconnects = self.reconnects
        return json.dumps({"v": VERSION, "at": time.time(), "uptime": uptime, "queued": queued,
                           "in_flight": in_flight, "reconnects": reconnects, "buckets": list(BUCKETS),
                           "actions": actions, "listeners": listeners, "tasks": tasks},
                          separators=(",", ":"))


class NullMetrics(ServiceMetrics):
    """Counts nothing: a service with ``[service] metrics = false``."""

    enabled = False

    def call(self, action, seconds, code=None):
        pass

    def busy(self, action):
        pass

    def expired(self, action):
        pass

    def cancelled(self, action):
        pass

    def _run(self, table, name, seconds, failed):
        pass

    def reconnected(self):
        pass

    def snapshot(self, **figures) -> None:
        return None


# -- reading snapshots (the gateway, the daebus command) ----------------------
def _count(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: expected a count, got {value!r}")
    return value


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: expected a non-negative number, got {value!r}")
    return float(value)


def _table(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def parse_snapshot(text: str | bytes) -> dict:
    """Validate a snapshot written by another process; ValueError if it is
    not one (a peer may be buggy or hostile, and one bad entry must not
    spoil the figures of the others)."""
    if len(text) > MAX_SNAPSHOT_BYTES:
        raise ValueError(f"snapshot of {len(text)} bytes exceeds {MAX_SNAPSHOT_BYTES}")
    try:
        data = _table(json.loads(text), "snapshot")
    except RecursionError:  # "[[[[..." nested past the interpreter's limit
        raise ValueError("snapshot nested too deeply") from None
    if data.get("v") != VERSION:
        raise ValueError(f"unknown snapshot version {data.get('v')!r}")
    bounds = data.get("buckets")
    if (not isinstance(bounds, list) or not bounds
            or [_number(b, "buckets") for b in bounds] != sorted(set(bounds))):
        raise ValueError("buckets: expected increasing bounds")
    result = {"at": _number(data.get("at"), "at"), "uptime": _number(data.get("uptime"), "uptime"),
              "buckets": [float(b) for b in bounds], "actions": {}, "listeners": {}, "tasks": {}}
    for key in ("queued", "in_flight", "reconnects"):
        result[key] = _count(data.get(key), key)
    for name, stats in _table(data.get("actions"), "actions").items():
        where = f"action {name!r}"
        stats = _table(stats, where)
        counts = stats.get("buckets")
        if not isinstance(counts, list) or len(counts) != len(bounds) + 1:
            raise ValueError(f"{where}: expected {len(bounds) + 1} bucket counts")
        result["actions"][name] = {
            "calls": _count(stats.get("calls"), where), "busy": _count(stats.get("busy"), where),
            "expired": _count(stats.get("expired"), where),
            # Absent from the snapshots of versions that did not count it.
            "cancelled": _count(stats.get("cancelled", 0), where), "sum": _number(stats.get("sum"), where),
            "buckets": [_count(c, where) for c in counts],
            "errors": {str(code): _count(n, where) for code, n in _table(stats.get("errors"), where).items()}}
        if sum(counts) != result["actions"][name]["calls"]:
            raise ValueError(f"{where}: bucket counts don't add up to the calls")
    for kind in ("listeners", "tasks"):
        for name, stats in _table(data.get(kind), kind).items():
            where = f"{kind} {name!r}"
            stats = _table(stats, where)
            result[kind][name] = {"runs": _count(stats.get("runs"), where),
                                  "failures": _count(stats.get("failures"), where),
                                  "last_duration": _number(stats.get("last_duration"), where)}
    return result


def quantile(bounds, counts, q: float) -> float | None:
    """Estimate the ``q`` quantile (0..1) from histogram bucket counts (not
    cumulative; one more count than bounds), interpolating inside the bucket
    as Prometheus's ``histogram_quantile`` does. None without observations."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index == len(bounds):
                return bounds[-1]  # the open bucket: its lower bound is all we know
            lower = bounds[index - 1] if index else 0.0
            return lower + (bounds[index] - lower) * (rank - seen) / count
        seen += count
    return bounds[-1]


def merge(snapshots: list[dict]) -> dict | None:
    """Add up the parsed snapshots of a group's members (None for none).

    Counts and histograms add up; uptime is the oldest member's, and a last
    duration the longest among the members."""
    if not snapshots:
        return None
    first = snapshots[0]
    total = {**first, "actions": {}, "listeners": {}, "tasks": {}, "queued": 0, "in_flight": 0, "reconnects": 0}
    for snap in snapshots:
        if snap["buckets"] != first["buckets"]:
            continue  # a member of another version: its histogram doesn't line up
        total["at"] = max(total["at"], snap["at"])
        total["uptime"] = max(total["uptime"], snap["uptime"])
        for key in ("queued", "in_flight", "reconnects"):
            total[key] += snap[key]
        for name, stats in snap["actions"].items():
            into = total["actions"].setdefault(name, {"calls": 0, "busy": 0, "expired": 0, "cancelled": 0,
                                                      "sum": 0.0, "buckets": [0] * len(stats["buckets"]),
                                                      "errors": {}})
            for key in ("calls", "busy", "expired", "cancelled", "sum"):
                into[key] += stats[key]
            into["buckets"] = [a + b for a, b in zip(into["buckets"], stats["buckets"])]
            for code, count in stats["errors"].items():
                into["errors"][code] = into["errors"].get(code, 0) + count
        for kind in ("listeners", "tasks"):
            for name, stats in snap[kind].items():
                into = total[kind].setdefault(name, {"runs": 0, "failures": 0, "last_duration": 0.0})
                into["runs"] += stats["runs"]
                into["failures"] += stats["failures"]
                into["last_duration"] = max(into["last_duration"], stats["last_duration"])
    return total
