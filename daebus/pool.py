"""A bounded pool of daemon worker threads.

Unlike ``concurrent.futures.ThreadPoolExecutor`` its threads are daemon
threads, so a handler that never returns cannot hold the process past the
shutdown bound, and its queue is bounded so a flood is refused, not stored.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

log = logging.getLogger("daebus.pool")


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
        self._work = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._queue: collections.deque = collections.deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._unfinished = 0
        self._closed = False

    @property
    def unfinished(self) -> int:
        """Queued plus running calls."""
        return self._unfinished

    def submit(self, fn: Callable, *args) -> bool:
        """Queue ``fn(*args)``; False when the pool is full or closed."""
        with self._lock:
            if self._closed or self._unfinished >= self.max_workers + self.queue_size:
                return False
            self._queue.append((fn, args))
            self._unfinished += 1
            if self._idle:
                # Claim the idle thread here, not when it wakes: otherwise two
                # quick submits both count the same thread and the second item
                # waits behind the first however long that one runs.
                self._idle -= 1
                self._work.notify()
            elif len(self._threads) < self.max_workers:
                thread = threading.Thread(target=self._worker, daemon=True,
                                          name=f"{self.name}-{len(self._threads) + 1}")
                self._threads.append(thread)
                thread.start()
        return True

    def _worker(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._idle += 1
                    self._work.wait()
                if not self._queue:
                    return
                fn, args = self._queue.popleft()
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - keep the worker alive whatever the handler did
                log.exception("unhandled error in %r", fn)
            finally:
                with self._lock:
                    self._unfinished -= 1
                    if self._unfinished == 0:
                        self._done.notify_all()

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

    def close(self) -> None:
        """Refuse new work; idle threads exit once the queue is empty."""
        with self._lock:
            self._closed = True
            self._work.notify_all()
