"""Fleet messages are untrusted: strict JSON objects of a bounded size,
and complaints about them that cannot flood a log.

Example::

    said = Complaints(log, every=10.0)
    try:
        payload = json_object(message.payload, limit=65536)
    except BadMessage as exc:
        said.warn("call", "dropped a call on %s: %s", message.topic, exc)
"""

from __future__ import annotations

import json
import logging
import threading
import time


class BadMessage(ValueError):
    """A fleet message that is not what its topic takes."""


def _refuse_constant(name: str):
    raise BadMessage(f"{name} is not JSON")


def json_object(raw: bytes, limit: int, *, empty_ok: bool = False) -> dict:
    """``raw`` as a JSON object; BadMessage saying why not."""
    if len(raw) > limit:
        raise BadMessage(f"{len(raw)} bytes, more than the {limit} allowed")
    if not raw and empty_ok:
        return {}
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadMessage(f"not JSON ({str(exc)[:80]})") from None
    if not isinstance(value, dict):
        raise BadMessage(f"a JSON {type(value).__name__}, not an object")
    return value


class Complaints:
    """Warnings by kind, at most one per ``every`` seconds each; the next
    one says how many were held back."""

    def __init__(self, log: logging.Logger, every: float = 10.0):
        self.log, self.every = log, every
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def warn(self, kind: str, msg: str, *args) -> None:
        now = time.monotonic()
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if now - self._last.get(kind, -self.every) < self.every:
                self._held[kind] = self._held.get(kind, 0) + 1
                return
            held = self._held.pop(kind, 0)
            self._last[kind] = now
        if held:
            msg += " (and %d more like it in the last %gs)"
            args = (*args, held, self.every)
        self.log.warning(msg, *args)
