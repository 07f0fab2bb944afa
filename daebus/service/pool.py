"""A bounded pool of daemon worker threads.

Unlike ``concurrent.futures.ThreadPoolExecutor`` its threads are daemon
threads, so a handler that never returns cannot hold the process past the
shutdown bound, and its queue is bounded so a flood is refused, not stored.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from typing import Callable

log = logging.getLogger("daebus.pool")

_EXIT = object()


class WorkerPool:
    """Runs callables on at most ``max_workers`` threads, with at most
    ``queue_size`` more waiting.

    Example::

        pool = WorkerPool(4, queue_size=16)
        if not pool.submit(handle, message):
            reply_busy(message)
    """

    def __init__(self, max_workers: int, queue_size: int, name: str = "daebus-worker"):
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self.queue_size = queue_size
        self.name = name
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._backlog: collections.deque = collections.deque()
        # Each idle worker sleeps on its own SimpleQueue: handing it a job is
        # one C-level put, far cheaper than waking a Condition waiter.
        self._idle: list[queue.SimpleQueue] = []
        self._threads = 0
        self._borrowed = 0      # calls run on their caller's thread in a worker's place
        self._unfinished = 0
        self._closed = False

    @property
    def unfinished(self) -> int:
        """Queued plus running calls."""
        return self._unfinished

    @property
    def queued(self) -> int:
        """Calls waiting for a free thread."""
        return len(self._backlog)

    def submit(self, fn: Callable, *args, owed: bool = False) -> bool:
        """Queue ``fn(*args)``; False when the pool is full or closed.

        ``owed``: a call accepted earlier and held elsewhere meanwhile (a
        limited action's waiting request, a retry come due), which its own
        bound counted: never refused, also while closing, so the drain runs it."""
        with self._lock:
            if not owed and (self._closed or self._unfinished >= self.max_workers + self.queue_size):
                return False
            self._unfinished += 1
            if self._busy() < self.max_workers:
                self._dispatch((fn, args))
            else:
                self._backlog.append((fn, args))
        return True

    def borrow(self) -> bool:
        """Count a call that the calling thread runs itself as one of the
        ``max_workers`` busy workers; False when they are all busy (then
        :meth:`submit` it). Each borrowed worker must be given back.

        Example::

            if pool.borrow():
                try:
                    handle(message)
                finally:
                    pool.give_back()
        """
        with self._lock:
            if self._closed or self._busy() >= self.max_workers:
                return False
            self._unfinished += 1
            self._borrowed += 1
            return True

    def give_back(self) -> None:
        """A borrowed worker's call has ended: its place may run what waits."""
        with self._lock:
            self._borrowed -= 1
            self._finished()
            if self._backlog and self._busy() < self.max_workers:
                self._dispatch(self._backlog.popleft())

    def _busy(self) -> int:
        return self._threads - len(self._idle) + self._borrowed

    def _dispatch(self, job) -> None:
        # Under the lock, with a worker's place free.
        if self._idle:
            self._idle.pop().put(job)
        else:
            self._threads += 1
            threading.Thread(target=self._worker, args=(job,), daemon=True,
                             name=f"{self.name}-{self._threads}").start()

    def _finished(self) -> None:
        self._unfinished -= 1
        if self._unfinished == 0:
            self._done.notify_all()

    def admit(self, owed: bool = False) -> bool:
        """Count one call that runs elsewhere (an async handler on the event
        loop) against the same bound; False when full or closed (never when
        ``owed``, as for :meth:`submit`). Each admitted call must be
        followed by :meth:`release`."""
        with self._lock:
            if not owed and (self._closed or self._unfinished >= self.max_workers + self.queue_size):
                return False
            self._unfinished += 1
        return True

    def release(self) -> None:
        """An admitted call has ended."""
        with self._lock:
            self._finished()

    def _worker(self, job) -> None:
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        while job is not _EXIT:
            fn, args = job
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - keep the worker alive whatever the handler did
                log.exception("unhandled error in %r", fn)
            with self._lock:
                self._finished()
                # This thread counts as busy until it is idle: with a borrowed
                # worker more, its place may be taken already.
                if self._backlog and self._busy() <= self.max_workers:
                    job = self._backlog.popleft()
                    continue
                if self._closed:
                    break
                self._idle.append(inbox)
            job = inbox.get()
        with self._lock:
            self._threads -= 1

    def join(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or running; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._unfinished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._done.wait(remaining)
        return True

    def stop(self) -> None:
        """Refuse new work; idle threads exit, busy ones once the queue is empty."""
        with self._lock:
            self._closed = True
            for inbox in self._idle:
                inbox.put(_EXIT)
            self._idle.clear()
