"""How long a request waited before it reached the service, across clocks.

A caller stamps each request with its wall clock (``sent_at``). Subtracting
that from the service's wall clock at receipt gives the transit time plus
any difference between the two clocks. The lowest such offset seen lately
stands for the clock difference (some requests always arrive at once), so
the transit of a request is its offset less that baseline: a constant
difference between hosts cancels out, and a clock that was stepped is
forgotten within ``window`` seconds.
"""

from __future__ import annotations

import math
import time


class TransitClock:
    """Estimates each request's time in transit from its ``sent_at``.

    Called from one thread (the service's message reader).

    Example::

        clock = TransitClock()
        waited = clock.transit(message.sent_at)   # seconds, 0.0 without a stamp
    """

    def __init__(self, window: float = 60.0):
        self.window = window
        self._current = math.inf
        self._previous = math.inf
        self._since: float | None = None

    def transit(self, sent_at: float | None, now: float | None = None, tick: float | None = None) -> float:
        """Seconds the request spent between its caller and this service
        (``now`` and ``tick``: this moment's wall and monotonic clocks)."""
        if sent_at is None or not math.isfinite(sent_at):
            return 0.0
        offset = (time.time() if now is None else now) - sent_at
        tick = time.monotonic() if tick is None else tick
        if self._since is None:
            self._since = tick
        # Two half-window buckets: the baseline is the lowest offset of the
        # last window/2 to window seconds.
        if tick - self._since >= self.window / 2:
            self._previous, self._current, self._since = self._current, math.inf, tick
        self._current = min(self._current, offset)
        return max(0.0, offset - min(self._current, self._previous))
