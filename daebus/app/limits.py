"""How many calls of one action or listener may run at once.

``@app.action("print", concurrency=1)`` runs one print job at a time: the
requests that arrive meanwhile wait in the action's own queue, holding no
worker thread, and once ``queue`` of them wait the next is answered
``busy``. The service's other actions go on as before. Listeners take the
same arguments; a broadcast beyond a full queue is dropped and logged.
"""

from __future__ import annotations

import dataclasses

# Requests (or broadcasts) that may wait beyond a limited action's running
# ones, unless it says ``queue=``. Those whose caller gave up while waiting
# are skipped without running, so a long queue costs little.
DEFAULT_QUEUE = 100


@dataclasses.dataclass(frozen=True)
class Limit:
    """At most ``concurrency`` calls at once, and ``queue`` more waiting."""

    concurrency: int
    queue: int = DEFAULT_QUEUE


def _count(what: str, name: str, value, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{what}: {name} must be an integer of at least {least}, got {value!r}")
    return value


def limit_of(what: str, concurrency, queue) -> Limit | None:
    """The declared :class:`Limit` (None without ``concurrency``); a clear
    error for a value that cannot be one. ``what`` names the declaration."""
    if concurrency is None:
        if queue is not None:
            raise TypeError(f"{what}: queue= bounds the requests waiting beyond concurrency=; give both")
        return None
    return Limit(_count(what, "concurrency", concurrency, 1),
                 DEFAULT_QUEUE if queue is None else _count(what, "queue", queue, 0))
