"""The vendor's side: call devices, read their states, publish into them.

Example::

    with FleetCaller(fleet="kiosks") as fleet:           # [fleet] of the configuration
        fleet.status()                                   # [{"device", "online", ...}, ...]
        fleet.call_device("kiosk-7", "display", "ping")  # the result, or RemoteError...
        for outcome in fleet.call("group:lobby", "display", "show", {"page": "menu"}):
            print(outcome.device, outcome.result if outcome.ok else outcome.error)
        fleet.publish("all", "announce", {"text": "closing in 10 minutes"})

A call to ``all`` or ``group:NAME`` goes to every device whose retained
state says online (and in the group); each device's outcome comes as it
arrives, those that did not answer as ``timeout`` at the deadline.
"""

from __future__ import annotations

import dataclasses
import queue
import time
import uuid
from typing import Any, Callable, Iterator

from daebus.errors import RequestTimeout, ServiceUnavailable, remote_error
from daebus.fleet.link import Link, check_target
from daebus.fleet.topics import check_device, check_level


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One device's answer: ``result``, or ``error`` ``{"code", "message"}``."""

    device: str
    result: Any = None
    error: dict | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def code(self) -> str | None:
        return None if self.error is None else str(self.error.get("code"))

    def as_json(self) -> dict:
        return {"device": self.device, **({"result": self.result} if self.ok else {"error": self.error})}


def timeout_outcome(device: str, timeout: float) -> Outcome:
    return Outcome(device, error={"code": "timeout", "message": f"{device} did not answer within {timeout:g} s"})


class FleetCaller:
    """Broker and fleet from the arguments, else ``[fleet]`` of the configuration."""

    def __init__(self, broker=None, fleet: str | None = None, **options):
        self.link = Link(broker, fleet, **options)

    @property
    def timeout(self) -> float:
        return self.link.timeout

    def __enter__(self) -> FleetCaller:
        self.link.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self.link.close()

    # -- devices ------------------------------------------------------------------
    def status(self) -> list[dict]:
        """Every device with a retained state, sorted by id: ``device``,
        ``online``, ``version``, ``groups``, ``services``, ``since``, ``seen``."""
        return [state for _, state in sorted(self.link.read_states().items())]

    def targets(self, target: str) -> list[str]:
        """The devices ``target`` names: itself, or the online ones of ``all``/``group:NAME``."""
        check_target(target)
        if target != "all" and not target.startswith("group:"):
            return [check_device(target)]
        group = check_level("group", target[len("group:"):]) if target != "all" else None
        return [s["device"] for s in self.status()
                if s.get("online") and (group is None or group in (s.get("groups") or []))]

    # -- calls ---------------------------------------------------------------------
    def start_call(self, devices, service: str, action: str, payload: Any, timeout: float,
                   sink: Callable[[str, dict], None]) -> Callable[[], None]:
        """Send the call to ``devices``; ``sink(device, body)`` gets each reply
        body (progress too) on the network thread. Returns the cleanup."""
        check_level("service", service)
        check_level("action", action)
        base = uuid.uuid4().hex
        keys = []
        for device in devices:
            key = f"{base}:{device}".encode()
            keys.append(key)
            self.link.request(self.link.topics.call(device, service, action), payload, key, timeout,
                              lambda body, device=device: sink(device, body))

        def cleanup() -> None:
            for key in keys:
                self.link.forget(key)
        return cleanup

    def call(self, target: str, service: str, action: str, payload: Any = None, *,
             timeout: float | None = None, on_progress: Callable[[str, Any, Any], None] | None = None
             ) -> Iterator[Outcome]:
        """Each device's :class:`Outcome` as it comes; ``timeout`` ones at the deadline."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        devices = self.targets(target)
        if not devices:
            return
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        cleanup = self.start_call(devices, service, action, payload, timeout, lambda d, b: inbox.put((d, b)))
        gathering = Gathering(devices, timeout, on_progress)
        try:
            while gathering.waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    outcome = gathering.receive(*inbox.get(timeout=left))
                except queue.Empty:
                    break
                if outcome is not None:
                    yield outcome
            yield from gathering.timed_out()
        finally:
            cleanup()

    def call_device(self, device: str, service: str, action: str, payload: Any = None, *,
                    timeout: float | None = None, on_progress: Callable[[Any, Any], None] | None = None) -> Any:
        """One device's result; raises :class:`RemoteError` (its code from
        the reply), :class:`ServiceUnavailable` or :class:`RequestTimeout`."""
        progress = (lambda _d, data, pct: on_progress(data, pct)) if on_progress else None
        for outcome in self.call(check_device(device), service, action, payload, timeout=timeout,
                                 on_progress=progress):
            return raise_for(outcome, service)
        raise RequestTimeout(f"{device} did not answer")  # not reached: call() yields one outcome

    # -- broadcasts and listening ------------------------------------------------------
    def publish(self, target: str, channel: str, payload: dict, *, timeout: float | None = None) -> None:
        """Broadcast ``payload`` on ``channel`` into the boxes ``target`` names,
        once the broker acknowledged it."""
        if not isinstance(payload, dict):
            raise ValueError("a fleet broadcast is a JSON object")
        check_target(target)
        topic = self.link.topics.broadcast(target, check_level("channel", channel))
        self.link.publish(topic, payload, wait=self.timeout if timeout is None else timeout)

    def listen(self, pattern: str) -> Iterator[tuple[str, bytes]]:
        """``(topic, payload)`` of every message under ``daebus/<fleet>/``
        matching ``pattern`` (an MQTT filter relative to that prefix, or a
        whole one beginning ``daebus/``)."""
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.link.listen(self.full_filter(pattern), lambda topic, payload: inbox.put((topic, payload)))
        while True:
            yield inbox.get()

    def full_filter(self, pattern: str) -> str:
        return pattern if pattern.startswith("daebus/") else f"{self.link.topics.prefix}/{pattern}"


class Gathering:
    """The replies of one fleet call, without I/O: what both fleet callers
    make of each ``(device, body)`` that arrives, and of the deadline."""

    def __init__(self, devices: list[str], timeout: float, on_progress=None):
        self.waiting = set(devices)
        self.timeout = timeout
        self.on_progress = on_progress

    def receive(self, device: str, body: dict) -> Outcome | None:
        """The device's outcome, once; None for progress or a device done already."""
        if device not in self.waiting:
            return None
        if "progress" in body and "result" not in body and "error" not in body:
            if self.on_progress is not None:
                self.on_progress(device, body.get("progress"), body.get("pct"))
            return None
        self.waiting.discard(device)
        return outcome_of(device, body)

    def timed_out(self) -> list[Outcome]:
        """The ``timeout`` outcomes of the devices that never answered."""
        return [timeout_outcome(device, self.timeout) for device in sorted(self.waiting)]


def outcome_of(device: str, body: dict) -> Outcome:
    if "result" in body:
        return Outcome(device, result=body["result"])
    error = body.get("error")
    if not isinstance(error, dict) or "code" not in error:
        error = {"code": "malformed_reply", "message": f"the reply is not a result nor an error: {str(body)[:200]}"}
    return Outcome(device, error={"code": str(error.get("code")), "message": str(error.get("message", ""))})


def raise_for(outcome: Outcome, service: str) -> Any:
    if outcome.ok:
        return outcome.result
    code, message = outcome.code, outcome.error.get("message") or outcome.code
    if code == "timeout":
        raise RequestTimeout(message)
    if code == "service_unavailable":
        raise ServiceUnavailable(message)
    raise remote_error({"error": message, "code": code}, service)
