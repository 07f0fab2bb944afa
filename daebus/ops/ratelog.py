"""Log lines that a flood of bad input cannot multiply.

A peer sending the same mistake thousands of times a second gets one line
per kind of mistake per interval, with how many were left out meanwhile::

    bad = RateLimitedLog(logging.getLogger("daebus.runtime"))
    bad.warning("action:reboot", "no handler for action %r", "reboot")
"""

from __future__ import annotations

import logging
import re
import threading
import time

# Keys are remembered until there are this many, then forgotten at once: a
# sender inventing a new action name per request must not grow the table.
MAX_KEYS = 1024


class RateLimitedLog:
    """At most one record per ``key`` every ``interval`` seconds."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0):
        self.logger = logger
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[object, tuple[float, int]] = {}

    def log(self, key: object, level: int, message: str, *args) -> bool:
        """Log unless ``key`` was logged within the interval; True when logged."""
        if not self.logger.isEnabledFor(level):
            return False
        now = time.monotonic()
        with self._lock:
            last, skipped = self._last.get(key, (None, 0))
            if last is not None and now - last < self.interval:
                self._last[key] = (last, skipped + 1)
                return False
            if len(self._last) >= MAX_KEYS:
                self._last.clear()
            self._last[key] = (now, 0)
        if skipped:
            message += " (%d more like it since the last report)"
            args = (*args, skipped)
        self.logger.log(level, message, *args)
        return True

    def warning(self, key: object, message: str, *args) -> bool:
        return self.log(key, logging.WARNING, message, *args)


def kind_of(text: str) -> str:
    """A key for "the same mistake": ``text`` without its numbers, shortened
    (``message of 31457280 bytes exceeds...`` and ``...of 31457281...`` are one)."""
    return re.sub(r"\d+", "#", text)[:80]
