"""The fleet side for asyncio: :class:`FleetCaller`'s semantics, awaited.

Example::

    async with AsyncFleetCaller(fleet="kiosks") as fleet:
        async for outcome in fleet.call("all", "display", "ping"):
            print(outcome.device, outcome.ok)
        result = await fleet.call_device("kiosk-7", "display", "ping")

paho's network thread hands replies to the event loop with
``call_soon_threadsafe``; nothing here blocks the loop but connecting and
publishing, which run in the loop's default executor.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from daebus.fleet.caller import FleetCaller, Gathering, Outcome, raise_for
from daebus.fleet.topics import check_device


class AsyncFleetCaller:
    def __init__(self, broker=None, fleet: str | None = None, **options):
        self._sync = FleetCaller(broker, fleet, **options)

    @property
    def timeout(self) -> float:
        return self._sync.timeout

    async def __aenter__(self) -> AsyncFleetCaller:
        await asyncio.get_running_loop().run_in_executor(None, self._sync.link.open)
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._sync.close)

    async def status(self) -> list[dict]:
        return await asyncio.get_running_loop().run_in_executor(None, self._sync.status)

    async def publish(self, target: str, channel: str, payload: dict, *, timeout: float | None = None) -> None:
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self._sync.publish(target, channel, payload, timeout=timeout))

    async def call(self, target: str, service: str, action: str, payload: Any = None, *,
                   timeout: float | None = None, on_progress=None) -> AsyncIterator[Outcome]:
        """Each device's :class:`Outcome` as it comes; ``timeout`` ones at the deadline."""
        loop = asyncio.get_running_loop()
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        devices = await loop.run_in_executor(None, self._sync.targets, target)
        if not devices:
            return
        inbox: asyncio.Queue = asyncio.Queue()
        sink = lambda device, body: loop.call_soon_threadsafe(inbox.put_nowait, (device, body))  # noqa: E731
        cleanup = await loop.run_in_executor(
            None, lambda: self._sync.start_call(devices, service, action, payload, timeout, sink))
        gathering = Gathering(devices, timeout, on_progress)
        try:
            while gathering.waiting:
                try:
                    arrived = await asyncio.wait_for(inbox.get(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
                outcome = gathering.receive(*arrived)
                if outcome is not None:
                    yield outcome
            for outcome in gathering.timed_out():
                yield outcome
        finally:
            cleanup()

    async def call_device(self, device: str, service: str, action: str, payload: Any = None, *,
                          timeout: float | None = None, on_progress=None) -> Any:
        progress = (lambda _d, data, pct: on_progress(data, pct)) if on_progress else None
        async for outcome in self.call(check_device(device), service, action, payload, timeout=timeout,
                                       on_progress=progress):
            return raise_for(outcome, service)
