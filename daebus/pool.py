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

    def submit(self, fn: Callable, *args) -> bool:
        """Queue ``fn(*args)``; False when the pool is full or closed."""
        with self._lock:
            if self._closed or self._unfinished >= self.max_workers + self.queue_size:
                return False
            self._unfinished += 1
            if self._idle:
                self._idle.pop().put((fn, args))
            elif self._threads < self.max_workers:
                self._threads += 1
                threading.Thread(target=self._worker, args=((fn, args),), daemon=True,
                                 name=f"{self.name}-{self._threads}").start()
            else:
                self._backlog.append((fn, args))
        return True

    def admit(self) -> bool:
        """Count one call that runs elsewhere (an async handler on the event
        loop) against the same bound; False when full or closed. Each
        admitted call must be followed by :meth:`release`."""
        with self._lock:
            if self._closed or self._unfinished >= self.max_workers + self.queue_size:
                return False
            self._unfinished += 1
        return True

    def release(self) -> None:
        """An admitted call has ended."""
        with self._lock:
            self._unfinished -= 1
            if self._unfinished == 0:
                self._done.notify_all()

    def _worker(self, job) -> None:
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        while job is not _EXIT:
            fn, args = job
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - keep the worker alive whatever the handler did
                log.exception("unhandled error in %r", fn)
            with self._lock:
                self._unfinished -= 1
                if self._unfinished == 0:
                    self._done.notify_all()
                if self._backlog:
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
