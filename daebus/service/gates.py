"""Concurrency limits of actions and listeners, as the intakes apply them.

Each action or listener declared with ``concurrency=`` gets a :class:`Gate`:
at most that many of its calls run at once, and up to ``queue`` more wait in
the gate itself, holding no worker thread, no place on the event loop and no
bus reader, so the service's other handlers are not held up. When a call
ends, the next waiting one takes its place and goes to the pool (or the
loop) behind whatever is already queued there, owed a place that its bound
cannot refuse (see :meth:`daebus.service.pool.WorkerPool.submit`). The
limit is per instance: a group of three instances runs up to three times
``concurrency`` at once.

Example (what an intake does)::

    gate = gates.action("print")
    job = Job("print", executor.run, (message, publish, sent))
    outcome = gates.run(gate, job)     # RUNNING, WAITING, FULL (answer busy) or REFUSED (the pool is full)
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from typing import Callable

from daebus.app.limits import Limit
from daebus.service.dispatch import handler_name

RUNNING, WAITING, FULL, REFUSED = "running", "waiting", "full", "refused"


@dataclasses.dataclass(eq=False)
class Job:
    """One call to run within a gate: ``fn(*args)`` on a worker thread, or
    awaited on the event loop (``on_loop``). ``parked()`` is called when it
    starts waiting and ``resumed()`` when its turn comes (under the gate's
    lock: quick, and never back into the gate); ``lost()`` when its turn
    came and nothing could run it any more (the loop is gone)."""

    name: str
    fn: Callable
    args: tuple
    on_loop: bool = False
    parked: Callable[[], None] | None = None
    resumed: Callable[[], None] | None = None
    lost: Callable[[], None] | None = None


class Gate:
    """The places of one limited action or listener, and its queue."""

    def __init__(self, what: str, limit: Limit):
        self.what = what
        self.limit = limit
        self.running = 0
        self._waiting: collections.deque[Job] = collections.deque()
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def enter(self, job: Job) -> str:
        """RUNNING: ``job`` holds a place now; WAITING: it is queued; FULL: neither."""
        with self._lock:
            if self.running < self.limit.concurrency:
                self.running += 1
                return RUNNING
            if len(self._waiting) >= self.limit.queue:
                return FULL
            self._waiting.append(job)
            if job.parked is not None:
                job.parked()
            return WAITING

    def leave(self) -> Job | None:
        """A call holding a place ended: the waiting job that takes the
        place over, if any (else the place is free)."""
        with self._lock:
            if self._waiting:
                job = self._waiting.popleft()
                if job.resumed is not None:
                    job.resumed()
                return job
            self.running -= 1
            return None


class Gates:
    """The gates of one app, and how a call is run through one on
    ``handlers`` (:class:`~daebus.service.handlers.Handlers`)."""

    def __init__(self, app, handlers):
        self.handlers = handlers
        self._actions = {name: Gate(f"action {name!r}", limit) for name, limit in app.limits.items()}
        self._listeners = {(channel, fn): Gate(f"listener {handler_name(fn)} on {channel!r}", limit)
                           for (channel, fn), limit in app.listen_limits.items()}

    def action(self, name: str) -> Gate | None:
        return self._actions.get(name) if self._actions else None

    def listener(self, channel: str, handler) -> Gate | None:
        return self._listeners.get((channel, handler)) if self._listeners else None

    def run(self, gate: Gate, job: Job, owed: bool = False) -> str:
        """Run ``job`` within ``gate``: RUNNING or WAITING, or FULL (its
        queue) or REFUSED (the pool's bound, unless ``owed``) when it will not run."""
        outcome = gate.enter(job)
        if outcome != RUNNING:
            return outcome
        if self._start(gate, job, owed):
            return RUNNING
        self._next(gate)   # the place goes to whoever started waiting meanwhile
        return REFUSED

    def _start(self, gate: Gate, job: Job, owed: bool) -> bool:
        if job.on_loop:
            return self.handlers.on_loop(job.name, self._run_async, gate, job, owed=owed)
        return self.handlers.submit(self._run, gate, job, owed=owed)

    def _run(self, gate: Gate, job: Job) -> None:
        try:
            job.fn(*job.args)
        finally:
            self._next(gate)

    async def _run_async(self, gate: Gate, job: Job) -> None:
        try:
            await job.fn(*job.args)
        finally:   # cancelled too: the place passes on
            self._next(gate)

    def _next(self, gate: Gate) -> None:
        # Started before this call counts as ended, so a drain waits for it.
        job = gate.leave()
        while job is not None and not self._start(gate, job, owed=True):
            if job.lost is not None:
                job.lost()
            job = gate.leave()
