"""The work every intake hands over: the worker pool and, for apps with
``async def`` handlers, the event loop. A component of the runtime, started
first and drained last, so that nothing is accepted that nothing can run."""

from __future__ import annotations

import time

# Seconds async handlers still running past the shutdown bound get, once
# cancelled, to send their error reply.
ASYNC_CANCEL_GRACE = 1.0


class Handlers:
    """``pool``: the :class:`~daebus.service.pool.WorkerPool`; ``aio``: the
    :class:`~daebus.service.aio.EventLoop` or None; ``abandon()`` answers the
    requests still unanswered when the drain runs out of time."""

    def __init__(self, pool, aio, abandon):
        self.pool = pool
        self.aio = aio
        self._abandon = abandon
        self.name = f"{pool.unfinished} handler(s)"

    def submit(self, fn, *args, owed: bool = False) -> bool:
        """Run ``fn(*args)`` on a worker thread; False when the queue is full
        (never when ``owed``: see :meth:`~daebus.service.pool.WorkerPool.submit`)."""
        return self.pool.submit(fn, *args, owed=owed)

    def on_loop(self, name: str, fn, *args, owed: bool = False) -> bool:
        """Run ``fn(*args)`` on the event loop, counted by the pool like a
        thread's job (the busy bound and the shutdown drain)."""
        if not self.pool.admit(owed):
            return False
        try:
            future = self.aio.submit(fn, *args, name=name)
        except RuntimeError:  # the loop is gone: shutting down
            self.pool.release()
            return False
        future.add_done_callback(lambda _: self.pool.release())
        return True

    # -- lifecycle (see daebus.service.lifecycle) --------------------------------
    def start(self, app) -> None:
        if self.aio is not None:
            self.aio.start()

    def stop(self) -> None:
        self.pool.stop()

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        # Async handlers still running are cancelled, so they answer
        # themselves, early enough for that to end within the bound.
        grace = min(ASYNC_CANCEL_GRACE, timeout / 2) if self.aio is not None else 0.0
        drained = self.pool.join(max(0.0, timeout - grace))
        if self.aio is not None:
            self.aio.stop(grace=grace)
            drained = drained or self.pool.join(max(0.0, deadline - time.monotonic()))
        self.name = f"{self.pool.unfinished} handler(s)"
        if not drained:
            self._abandon()
        return drained
