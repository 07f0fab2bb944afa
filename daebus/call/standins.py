"""What answers a :class:`~daebus.DaebusCaller` while a TestClient runs.

Under :class:`daebus.testing.TestClient` no call leaves the process: a
handler's ``DaebusCaller(...).send_request`` is answered by the stand-in
the test gave for that service, and a call to a service without one fails
with :class:`~daebus.ServiceUnavailable` instead of reaching a real Redis.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable

from daebus.bus import protocol
from daebus.errors import DaebusError, RemoteError, ServiceUnavailable, remote_error

_lock = threading.Lock()
_active: list = []  # the TestClients running a handler, innermost last


@contextlib.contextmanager
def serving(client):
    """While a TestClient runs a handler, its stand-ins answer every call
    made in the process (a thread the handler waits on included)."""
    with _lock:
        _active.append(client)
    try:
        yield
    finally:
        with _lock:
            _active.remove(client)


def active():
    """The TestClient running a handler, or None (the usual case: real calls)."""
    return _active[-1] if _active else None


def _wire(value: Any) -> Any:
    # What the bus would carry, so a stand-in sees what a service would.
    return protocol.loads(protocol.dumps(value))


class StandIns:
    """The services a TestClient answers for, by name."""

    def __init__(self):
        self._services: dict[str, Callable[[str, Any], Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []

    def add(self, service: str, answer) -> None:
        if hasattr(answer, "call") and hasattr(answer, "app"):
            fn = answer.call  # another app's TestClient
        elif isinstance(answer, dict):
            fn = _by_action(service, answer)
        elif callable(answer):
            fn = answer
        else:
            raise TypeError("a stand-in is a TestClient, a dict of action -> function or value, "
                            f"or a function (action, payload); got {type(answer).__name__}")
        self._services[service] = fn

    def call(self, service: str, action: str, payload: Any, on_progress=None) -> Any:
        payload = _wire({} if payload is None else payload)
        self.calls.append((service, action, payload))
        fn = self._services.get(service)
        if fn is None:
            raise ServiceUnavailable(f"no stand-in for service {service!r}: under TestClient calls "
                                     f"never reach Redis; give one with client.stand_in({service!r}, ...)")
        try:
            return _wire(fn(action, payload))
        except RemoteError:
            raise
        except DaebusError as exc:
            # As the wire would deliver it: the caller sees a RemoteError.
            raise remote_error(protocol.error_payload(str(exc), exc.code, exc.details), service) from None

    def notify(self, service: str, action: str | None, payload: Any) -> int:
        """``send_to_service`` under a TestClient: the stand-in runs, as the
        service would, and nobody hears its answer; the receiver count, 0
        without a stand-in as with nobody subscribed."""
        payload = _wire(payload)
        if action is None and isinstance(payload, dict):  # the 0.0.x form names it inside
            action = payload.get("action")
        self.calls.append((service, action, payload))
        fn = self._services.get(service)
        if fn is None:
            return 0
        try:
            fn(action, payload)
        except DaebusError:
            pass  # a reply nobody waits for, as over the bus
        return 1


def _by_action(service: str, actions: dict):
    def answer(action: str, payload: Any) -> Any:
        if action not in actions:
            raise remote_error(protocol.error_payload(f"service {service!r} has no action {action!r}",
                                                      protocol.ACTION_NOT_FOUND), service)
        found = actions[action]
        return found(payload) if callable(found) else found
    return answer
