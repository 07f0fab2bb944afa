"""Calling services from async code: :class:`AsyncCaller`.

It shares the process's reply subscription with every :class:`DaebusCaller`
(:mod:`daebus.call.replies`) and never blocks the event loop: a waiting call is an
awaited event that the reply wakes. Blocking socket work (publishing, and
reading the subscription when no other caller is reading it) runs on a few
helper threads, one reader at a time per Redis URL whatever the number of
calls in flight. Nothing polls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import queue
import threading
import time
from typing import Any, Callable

from daebus.call.cancelling import reason_for, tell
from daebus.call.exchange import Call
from daebus.call.replies import ReplyHub
from daebus.call.sending import deliver
from daebus.call.target import Target
from daebus.errors import ConnectionLost, RequestTimeout

log = logging.getLogger("daebus.caller")

# Publishing and the reading role; a handful is enough, since at most one
# thread per Redis URL reads and a PUBLISH takes well under a millisecond.
IO_THREADS = 4
_STOP = object()  # put in an abandoned inbox: its reader thread returns
_lock = threading.Lock()
_executor: concurrent.futures.ThreadPoolExecutor | None = None


def _io() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(IO_THREADS, thread_name_prefix="daebus-aio")
        return _executor


class _Inbox:
    """A reply queue the hub fills from any thread that also wakes the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._loop = loop
        self.event = asyncio.Event()

    def put(self, item) -> None:
        self._queue.put(item)
        try:
            self._loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:
            pass  # the loop is closed: nobody awaits this call any more

    def get_nowait(self):
        return self._queue.get_nowait()


class AsyncCaller(Target):
    """Sends requests and messages to one service from async code.

    Example::

        async with AsyncCaller("sensors") as sensors:
            reading = await sensors.call("read", {"id": 3}, timeout=2)

    The arguments, the Redis URL and the errors are those of
    :class:`DaebusCaller`; inside a running service it uses the service's Redis.
    A call whose task is cancelled (``task.cancel()``, ``asyncio.timeout``,
    an ``async def`` handler whose own request was cancelled) or whose
    timeout runs out is cancelled on the service too.
    """

    async def call(self, action: str, payload: Any = None, timeout: float | None = None,
                   on_progress: Callable[[Any], Any] | None = None, trace_id: str | None = None) -> Any:
        """Call ``action`` and return the reply's payload; ``on_progress``
        (a function or an ``async def``) gets each progress payload;
        ``trace_id`` as for :meth:`DaebusCaller.send_request`."""
        call = self.new_call(action, payload, timeout, trace_id)
        standing_in, result = self.stand_in(call)
        if standing_in:
            return result
        loop = asyncio.get_running_loop()
        bus = self.bus()
        hub = bus.part(ReplyHub)
        if not (hub.subscribed and hub.reading):
            # Connecting or checking an idle socket may block: not on the loop.
            await _in_thread(loop, call.deadline, hub.prepare, call.deadline)
        inbox = hub.expect(call.request_id, _Inbox(loop))
        sending = _io().submit(deliver, bus, call, hub.channel)
        try:
            await _within(call.deadline, asyncio.wrap_future(sending))
            while True:
                try:
                    reply = await _next_reply(loop, hub, inbox, call.deadline)
                except RequestTimeout:
                    raise call.no_answer() from None
                outcome = call.receive(reply)
                if outcome.final:
                    return outcome.payload
                await _progress(on_progress, outcome.payload, call)
        except BaseException as exc:
            # The task cancelled, the timeout: the service stops working on it too.
            reason = reason_for(exc)
            if reason is not None:
                _tell_after(sending, bus, call, reason)
            raise
        finally:
            hub.forget(call.request_id, inbox)
            inbox.put(_STOP)  # a thread still reading for this call stops

    send_request = call

    async def send_message(self, channel: str, payload: dict) -> int:
        """Broadcast ``payload`` on ``channel``; returns the receiver count."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_io(), self.broadcast, channel, payload)

    async def __aenter__(self) -> AsyncCaller:
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.close()


async def _in_thread(loop, deadline: float, fn, *args):
    return await _within(deadline, loop.run_in_executor(_io(), fn, *args))


async def _within(deadline: float, work):
    timer = asyncio.timeout(max(0.0, deadline - time.monotonic()))
    try:
        async with timer:
            return await work
    except TimeoutError:
        if timer.expired():
            raise ConnectionLost("Redis did not answer in time") from None
        raise


def _tell_after(sending: concurrent.futures.Future, bus, call: Call, reason: str) -> None:
    """Cancel ``call`` on the service once its request is out, without
    waiting for it here; a request still waiting for a thread never goes."""
    if sending.cancel():
        return

    def sent(done: concurrent.futures.Future) -> None:
        if not done.cancelled() and done.exception() is None:
            try:
                _io().submit(tell, bus, call, reason)
            except RuntimeError:
                pass   # the interpreter is exiting: the request's own timeout_ms stands

    sending.add_done_callback(sent)


async def _next_reply(loop, hub: ReplyHub, inbox: _Inbox, deadline: float) -> dict:
    while True:
        inbox.event.clear()
        item = hub.take(inbox)
        if item is not None:
            return item
        if not hub.reading:
            # Nobody reads the subscription: read it for everyone, in a thread.
            item = await loop.run_in_executor(_io(), hub.read_for, inbox, deadline)
            if item is not None:
                return _checked(item)
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout("no reply")
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
        # cancellation that arrives as the event is set.
        timer = asyncio.timeout(remaining)
        try:
            async with timer:
                await inbox.event.wait()
        except TimeoutError:
            if timer.expired():
                raise RequestTimeout("no reply") from None
            raise


def _checked(item):
    if isinstance(item, Exception):
        raise item
    return item


async def _progress(on_progress, payload, call: Call) -> None:
    if on_progress is None:
        return
    try:
        result = on_progress(payload)
        if inspect.isawaitable(result):
            await result
    except Exception:  # noqa: BLE001 - a callback bug must not lose the reply
        log.exception("on_progress callback for %s failed", call.name)
