"""Two reader threads taking turns: :class:`Turns`.

A reader that has just read a request gives up its turn when the other
reader is waiting for it, and runs the request itself: no thread switch
between reading a request and running its handler, and the connection is
never left unread while a handler runs. When the other reader is busy with
a request of its own, the work goes to the worker pool as usual.
"""

from __future__ import annotations

import threading


class Turns:
    """The right to read, held by one thread at a time.

    Example::

        turns.take()
        message = read()
        mine = turns.waiting > 0   # the other reader will read on
        turns.leave()
        handle(message) if mine else pool.submit(handle, message)
    """

    def __init__(self):
        self._turn = threading.Lock()
        self._count = threading.Lock()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Threads waiting for the turn."""
        return self._waiting

    def take(self) -> None:
        """Wait for the turn."""
        with self._count:
            self._waiting += 1
        self._turn.acquire()
        with self._count:
            self._waiting -= 1

    def leave(self) -> None:
        """Give the turn to a waiting reader, if any."""
        self._turn.release()
