"""What a service does later: the retries its handlers asked for, kept in
the process (owner-mode requests and broadcasts; a group keeps its own in
Redis, see :mod:`daebus.service.groupretry`).

One thread, started on first use, sleeps until the earliest is due and
hands it on (to the pool, which runs it); with nothing to wait for it sleeps
without waking. A component of the runtime (:mod:`daebus.service.lifecycle`):
its ``stop()`` drops whatever still waits, so that the stop does not wait
out retries, and each is told (its caller gets ``shutting_down``).

Example::

    later = Later()
    later.at(2.0, lambda: pool.submit(run, message), lambda: reply_stopping(message))
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable

log = logging.getLogger("daebus.runtime")


class Later:
    """Calls ``due()`` once ``delay`` seconds have passed, or ``dropped()``
    if the service stops first."""

    name = "retry timer"

    def __init__(self):
        self._heap: list[tuple[float, int, Callable, Callable]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def waiting(self) -> int:
        return len(self._heap)

    def at(self, delay: float, due: Callable[[], None], dropped: Callable[[], None]) -> bool:
        """Call ``due()`` in ``delay`` seconds; False once stopped (nothing is called)."""
        with self._cond:
            if self._closed:
                return False
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), due, dropped))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="daebus-later", daemon=True)
                self._thread.start()
            self._cond.notify()
        return True

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._closed:
                    return
                _, _, due, _ = heapq.heappop(self._heap)
            try:
                due()
            except Exception:  # noqa: BLE001 - one failed hand-over must not stop the others
                log.exception("a retry could not be started")

    # -- lifecycle (see daebus.service.lifecycle) --------------------------------
    def stop(self) -> None:
        with self._cond:
            self._closed = True
            dropped, self._heap = self._heap, []
            self._cond.notify()
        if dropped:
            log.info("stopping: %d retry(s) still waiting are answered now", len(dropped))
        for _, _, _, drop in dropped:
            try:
                drop()
            except Exception:  # noqa: BLE001 - keep answering the others
                log.exception("a waiting retry could not be answered")

    def join(self, timeout: float) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True
