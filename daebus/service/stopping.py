"""The deadline of a stop, and steps that cannot outlast it.

A stop is a series of steps (stop intake, drain handlers, answer what is
left, leave the registry, close the connection); several talk to Redis, and
a frozen Redis answers none of them. Each step runs against the one
deadline set when the stop began: a step still blocked at the deadline is
left behind on a daemon thread (it ends with the process) and the stop goes
on, so the service exits within ``shutdown_timeout`` plus
:data:`CLEANUP_GRACE` whatever Redis does.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger("daebus.lifecycle")

# After the handlers' share: what leaving the registry and closing the
# connection may add, so a healthy Redis still sees the service leave.
CLEANUP_GRACE = 0.5
# What a component's join() may run past the deadline: the error replies to
# the requests it gives up on at the deadline are sent then.
JOIN_GRACE = 0.25


class StopClock:
    """The deadlines of one stop, from ``shutdown_timeout``."""

    def __init__(self, shutdown_timeout: float):
        self.started = time.monotonic()
        self.deadline = self.started + shutdown_timeout
        self.cleanup_deadline = self.deadline + CLEANUP_GRACE

    def remaining(self, deadline: float | None = None) -> float:
        return max(0.0, (self.deadline if deadline is None else deadline) - time.monotonic())


def bounded(what: str, fn: Callable[..., Any], deadline: float, *args) -> tuple[bool, Any]:
    """Run ``fn(*args)`` until ``deadline`` (a ``time.monotonic()`` value).

    Returns ``(True, result)`` when it finished (an exception is logged
    and gives ``(True, None)``), ``(False, None)`` when it was still running
    at the deadline.
    """
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(fn(*args))
        except Exception:  # noqa: BLE001 - a failed step must not stop the others
            log.exception("%s failed while stopping", what)
            outcome.append(None)

    worker = threading.Thread(target=run, name=f"daebus-stop-{what}", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        log.warning("stopping: %s did not finish in time (Redis stalled?); going on without it", what)
        return False, None
    return True, outcome[0] if outcome else None
