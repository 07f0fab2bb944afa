"""Reader threads taking turns at one source: :class:`Turns`.

The reader holding the turn reads. When it reads a request and another
reader is waiting, it *lends* the turn and runs the request itself: no
thread switch between reading a request and running its handler. The
waiting reader takes the turn only if that handler is still running after
``patience``, so a long handler never leaves the source unread for longer,
while a quick one never waits for the other thread (which looks at the
holder every ``patience`` only while requests are being lent, and sleeps
untimed when the service is idle).
"""

from __future__ import annotations

import threading
import time

# How long a lent turn may go unread before a waiting reader takes it.
PATIENCE = 0.005


class Turns:
    """The right to read one source, held by one thread at a time.

    Example::

        while turns.take():
            request = read()
            if turns.lend():
                handle(request)           # the turn is ours again after,
                if not turns.reclaim():   # unless another reader took it
                    continue
            else:
                pool.submit(handle, request)
            turns.leave()
    """

    def __init__(self, patience: float = PATIENCE):
        self.patience = patience
        self._cond = threading.Condition(threading.Lock())
        self._holder: threading.Thread | None = None
        self._lent_at: float | None = None   # the holder runs a handler since then
        self._lends = 0
        self._waiting = 0
        # Readers running a request they lent the turn for (until they reclaim).
        self.lending: set[threading.Thread] = set()
        self._watching = False               # a waiting reader looks again within patience
        self._closed = False

    def lent(self) -> bool:
        """The calling thread lent its turn and has not reclaimed it."""
        return threading.current_thread() in self.lending

    @property
    def waiting(self) -> int:
        """Readers waiting for the turn."""
        return self._waiting

    def take(self) -> bool:
        """Wait for the turn; False once :meth:`close` was called."""
        me = threading.current_thread()
        with self._cond:
            self._waiting += 1
            try:
                seen = self._lends
                while True:
                    if self._closed:
                        # One last turn when the holder is busy with a lent
                        # request: what arrived before the stop gets read.
                        if self._lent_at is None or self._holder in (None, me):
                            return False
                        break
                    if self._holder is None or self._holder is me:
                        break
                    if self._lent_at is not None:
                        left = self._lent_at + self.patience - time.monotonic()
                        if left <= 0:
                            break   # its handler runs long: read on in its place
                        self._watching = True
                        self._cond.wait(left)
                    elif self._lends != seen:
                        # Lent lately: it may lend again at once, so keep looking.
                        seen = self._lends
                        self._watching = True
                        self._cond.wait(self.patience)
                    else:
                        self._watching = False
                        self._cond.wait()
                self._holder, self._lent_at = me, None
                return True
            finally:
                self._waiting -= 1

    def lend(self) -> bool:
        """The holder is about to run a request itself: True when another
        reader waits to take over should it run long; False (the turn is
        kept, nothing lent) when none does."""
        with self._cond:
            if not self._waiting or self._holder is not threading.current_thread():
                return False
            self._lent_at = time.monotonic()
            self.lending.add(self._holder)
            self._lends += 1
            if not self._watching:
                self._cond.notify()
            return True

    def reclaim(self) -> bool:
        """After a lent request: True if the turn is still ours."""
        self.lending.discard(threading.current_thread())
        with self._cond:
            if self._holder is threading.current_thread():
                self._lent_at = None
                return True
            return False

    def leave(self) -> None:
        """Give the turn up (if ours)."""
        with self._cond:
            if self._holder is threading.current_thread():
                self._holder, self._lent_at = None, None
                self._cond.notify()

    def close(self) -> None:
        """No more turns: every :meth:`take` returns False, but for one
        last turn taken from a holder busy with a lent request."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def wait_for_reader(thread: threading.Thread, handling: set, deadline: float) -> None:
    """Wait until ``deadline`` for a stopped reader thread to end, unless it
    is in ``handling``.

    A reader running a handler is waited for with the rest of the work in
    flight, not here; one may start a handler just after being asked to stop
    (it read the request before), so ``handling`` is looked at again while
    waiting."""
    while thread.is_alive() and thread not in handling:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        thread.join(min(left, 0.05))
