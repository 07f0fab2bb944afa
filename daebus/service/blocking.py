"""Naming the async handler that blocked the event loop, and for how long.

Each step of a handler (from one ``await`` to the next) is timed as it runs,
so a handler that calls ``time.sleep`` is named itself, whether it runs
alone or while others await, and even when it never awaits at all::

    result = await timed(handler(), "action 'read'", on_blocked)
"""

from __future__ import annotations

import time
from typing import Any, Callable, Coroutine

# A step longer than this held every other handler of the service back.
BLOCKED_WARNING = 0.5


class timed:  # noqa: N801 - used like a function: await timed(...)
    """Await ``coro``, calling ``on_blocked(seconds, name)`` after any one
    of its steps that ran longer than :data:`BLOCKED_WARNING`."""

    __slots__ = ("_coro", "_name", "_on_blocked")

    def __init__(self, coro: Coroutine, name: str, on_blocked: Callable[[float, str], None]):
        self._coro = coro
        self._name = name
        self._on_blocked = on_blocked

    def __await__(self):
        coro = self._coro
        value: Any = None
        error: BaseException | None = None
        while True:
            started = time.monotonic()
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                self._check(started)
                return stop.value
            except BaseException:
                self._check(started)
                raise
            self._check(started)
            try:
                value, error = (yield yielded), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - cancellation and the like go on to the handler
                value, error = None, exc

    def _check(self, started: float) -> None:
        took = time.monotonic() - started
        if took > BLOCKED_WARNING:
            self._on_blocked(took, self._name)
