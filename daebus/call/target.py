"""What :class:`DaebusCaller` and :class:`AsyncCaller` share: the service
they call, the bus they call it on, their default timeout and whether they
are closed. How they wait for replies is theirs alone."""

from __future__ import annotations

import os
from typing import Any

from daebus.app.context import get_daemon
from daebus.bus.bus import Bus
from daebus.bus import protocol
from daebus.bus.transport import REDIS_ERRORS, redact
from daebus.call import standins
from daebus.call.exchange import Call
from daebus.errors import ConnectionLost, DaebusError
from daebus.ops import config


class Target:
    """One service on one bus, as a caller addresses it.

    The Redis URL is, in order: the arguments, the running app's Redis (for a
    caller used inside a service), ``DAEBUS_REDIS_URL``, the config files.
    """

    def __init__(self, target_service: str, redis_host: str | None = None, redis_port: int | None = None,
                 timeout: float = 5, redis_url: str | None = None):
        if not isinstance(target_service, str) or not target_service:
            raise ValueError("target_service must be a non-empty string")
        self.target_service = target_service
        self.timeout = timeout
        self._explicit_url = config.redis_url_from(redis_url, redis_host, redis_port)
        self._closed = False
        self._bus_of: tuple[str, int, Bus] | None = None

    @property
    def redis_url(self) -> str:
        if self._explicit_url:
            return self._explicit_url
        app = get_daemon()
        if app is not None and app.redis_url:
            return app.redis_url
        return config.load().redis_url

    @property
    def redis(self):
        """The bus's command client."""
        return self.bus().client

    def bus(self) -> Bus:
        """The process's bus for this caller's URL (looked up once per URL
        and process: the lookup takes a process-wide lock)."""
        url, known = self.redis_url, self._bus_of
        if known is None or known[0] != url or known[1] != os.getpid():
            known = self._bus_of = (url, os.getpid(), Bus.of(url))
        return known[2]

    def new_call(self, action: str, payload: Any, timeout: float | None, trace_id: str | None) -> Call:
        self._check_open()
        return Call(self.target_service, action, payload, self.timeout if timeout is None else timeout,
                    trace_id)

    def stand_in(self, call: Call):
        """Under :mod:`daebus.testing`, the stand-in's answer to ``call``
        (never the real bus): ``(True, result)``; else ``(False, None)``."""
        local = standins.active()
        if local is None:
            return False, None
        return True, local._stand_ins.call(self.target_service, call.action, call.payload)

    def broadcast(self, channel: str, payload: dict) -> int:
        """Broadcast ``payload`` on ``channel``; returns the receiver count."""
        self._check_open()
        text = protocol.dumps(payload)
        local = standins.active()
        if local is not None:  # under daebus.testing: never the real bus
            return local._publish(channel, text)
        bus = self.bus()
        try:
            return bus.keeper(channel, text)
        except REDIS_ERRORS as exc:
            raise ConnectionLost(f"cannot reach Redis at {redact(bus.url)}: {exc}") from exc

    def publish(self, channel: str, text: str) -> int:
        bus = self.bus()
        try:
            return bus.publisher(channel, text)
        except REDIS_ERRORS as exc:
            raise ConnectionLost(f"cannot reach Redis at {redact(bus.url)}: {exc}") from exc

    def _check_open(self) -> None:
        if self._closed:
            raise DaebusError(f"{type(self).__name__}({self.target_service!r}) is closed")

    def close(self) -> None:
        """Stop using this caller. The shared reply subscription stays for
        the process's other callers. Safe to call twice."""
        self._closed = True
