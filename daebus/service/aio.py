"""The service's event loop, for ``async def`` handlers.

A service gets one asyncio loop, on its own thread, only when it declares
``async def`` actions, listeners, background tasks or on_start hooks. The
runtime hands coroutines to it from the message reader; an ``await`` in one
handler lets the others run. At most ``max_workers`` run at once (like the
pool's threads), and what the loop runs is counted by the pool, so the
``busy`` bound and the shutdown drain cover both kinds. Example::

    loop = EventLoop("my_service", limit=10)
    loop.start()
    future = loop.submit(handler_coroutine_fn, arg)   # a concurrent.futures.Future
    loop.stop(grace=1.0)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Callable

from daebus.bus import protocol
from daebus.service.blocking import BLOCKED_WARNING, timed  # noqa: F401 - BLOCKED_WARNING is documented here
from daebus.app.context import app_context, handler_context
from daebus.service.dispatch import begin_action, fail_action, fail_listener, finish_action, listener_accepts
from daebus.errors import ServiceStopped
from daebus.app.pubsub import Publish

log = logging.getLogger("daebus.aio")

# A handler holding the loop past BLOCKED_WARNING (time.sleep, blocking I/O)
# stalls every other async handler: worth a warning that says how to fix it.


async def run_action_async(app, message: protocol.Request, publish: Publish, cancelled=None) -> str | None:
    """:func:`run_action` for an ``async def`` handler, on the event loop.

    Cancelled by its caller (``cancelled`` set), the handler gets
    ``CancelledError`` at its ``await`` and nothing is answered; cancelled at
    shutdown, the request is answered ``shutting_down``.
    """
    handler, req, resp = begin_action(app, message, publish, cancelled)
    if handler is None:
        return resp.error_code
    with handler_context(app, req, resp):
        watch = _TaskCancel(req.cancelled)
        try:
            result = await handler()
        except asyncio.CancelledError:
            if watch.absorbed():
                return None   # the caller's cancel, and nobody else's: the request just ends
            if not resp.finished:
                resp.error(ServiceStopped(f"service {app.service!r} stopped before {message.action!r} finished"))
            raise
        except Exception as exc:  # noqa: BLE001 - every request must end with a reply
            fail_action(resp, message.action, exc, app.retries.get(message.action))
        else:
            finish_action(resp, result)
        finally:
            watch.close()
    return resp.error_code


class _TaskCancel:
    """Cancels the running task when the request's cancellation is set
    (from whichever thread read the cancel), while the handler runs."""

    def __init__(self, cancellation):
        self.loop, self.task = asyncio.get_running_loop(), asyncio.current_task()
        self.running, self.cancelled = True, False
        self._undo = cancellation.on_cancel(self._on_cancel)

    def _on_cancel(self, reason: str) -> None:
        try:
            self.loop.call_soon_threadsafe(self._cancel)
        except RuntimeError:
            pass   # the loop is closed: nothing runs any more

    def _cancel(self) -> None:
        # On the loop: after the handler ended, a late cancel must hit nothing.
        if self.running and not self.cancelled:
            self.cancelled = True
            self.task.cancel()

    def absorbed(self) -> bool:
        """The CancelledError being handled is this cancel's alone (then
        taken back, so that the task goes on as uncancelled)."""
        return self.cancelled and self.task.uncancel() == 0

    def close(self) -> None:
        self.running = False
        self._undo()


async def run_listener_async(app, handler, channel: str, payload: dict) -> bool:
    if not listener_accepts(app, handler, channel, payload):
        return False
    with app_context(app):
        try:
            await handler(payload)
        except Exception as exc:  # noqa: BLE001 - a listener bug must not stop the others
            fail_listener(app, handler, channel, exc)
            return False
    return True


async def call_in_app(app, fn: Callable, *args) -> Any:
    """Await ``fn(*args)`` with ``broadcast``/``cache``/``logger`` bound to ``app``."""
    with app_context(app):
        return await fn(*args)


class EventLoop:
    """One asyncio loop on a daemon thread, started and stopped with the service."""

    def __init__(self, name: str, limit: int):
        self.name = name
        self.limit = limit
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._slots: asyncio.Semaphore | None = None

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        loop = self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name=f"daebus-loop-{self.name}", daemon=True)
        self._thread.start()
        ready.wait()

    def stop(self, grace: float) -> None:
        """Cancel what still runs, give it ``grace`` seconds to end, stop the loop."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return
        try:
            done = asyncio.run_coroutine_threadsafe(self._cancel_all(grace), loop)
            done.result(grace + 1.0)
        except (concurrent.futures.TimeoutError, RuntimeError):
            log.warning("the event loop did not answer within %.1f s (blocked by a handler); "
                        "exiting without it", grace)
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(grace + 1.0)

    async def _cancel_all(self, grace: float) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not tasks:
            return
        log.warning("cancelling %d async handler(s) still running at shutdown", len(tasks))
        for task in tasks:
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=grace)
        if pending:
            log.warning("%d async handler(s) ignored cancellation", len(pending))

    # -- running coroutines ------------------------------------------------------
    def submit(self, fn: Callable, *args, name: str = "") -> concurrent.futures.Future:
        """Run ``fn(*args)`` once one of ``limit`` slots is free; raises
        RuntimeError when the loop is gone."""
        coro = self._slotted(fn, args, name or fn.__name__)
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:
            coro.close()
            raise

    def run(self, fn: Callable, *args, timeout: float | None = None) -> Any:
        """Run ``fn(*args)`` on the loop from another thread and return its
        result (or raise its exception): on_start hooks, background tasks."""
        return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result(timeout)

    async def _slotted(self, fn: Callable, args: tuple, name: str) -> Any:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        async with self._slots:
            return await timed(fn(*args), name, _blocked)


def _blocked(seconds: float, name: str) -> None:
    log.warning("the event loop was blocked for %.1f s while running %s: an async handler "
                "called blocking code (time.sleep, blocking I/O); await asyncio.sleep or "
                "use asyncio.to_thread", seconds, name)
