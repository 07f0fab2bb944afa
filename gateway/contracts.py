"""The payload schemas services publish in the registry, as the gateway
checks them before a request reaches the bus.

A service checks its payloads itself; the gateway checks them first so a
browser's mistake is answered (400, with the same ``details``) without any
message on the bus. Schemas are read from the registry at most once a second
per service and compiled once per distinct schema::

    contracts = Contracts(lambda: redis_client)
    problems = contracts.problems("clock", "set_alarm", {"hour": 25})
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable

from daebus.bus import registry
from daebus.errors import ConnectionLost
from daebus.app.schemas import Contract, SchemaDeclarationError
from daebus.bus.transport import REDIS_ERRORS

log = logging.getLogger("gateway")

# How stale a service's schemas may be: a restarted service with a new
# contract is checked by the gateway within this time (and by itself always).
REFRESH_SECONDS = 1.0
MAX_CACHED = 256


class Contracts:
    """Per-service action schemas from the registry, compiled and cached."""

    def __init__(self, client: Callable[[], object], refresh: float = REFRESH_SECONDS):
        self._client = client
        self.refresh = refresh
        self._lock = threading.Lock()
        self._services: dict[str, tuple[float, dict]] = {}
        self._compiled: dict[str, Contract | None] = {}

    def problems(self, service: str, action: str, payload) -> list[dict]:
        """What is wrong with ``payload`` for ``service/action``; [] when it
        is valid or the action declares no schema."""
        contract = self.contract(service, action)
        return contract.problems(payload) if contract is not None else []

    def contract(self, service: str, action: str) -> Contract | None:
        spec = self._actions(service).get(action)
        if not isinstance(spec, dict) or spec.get("payload") is None:
            return None
        key = json.dumps(spec, sort_keys=True)
        with self._lock:
            if key in self._compiled:
                return self._compiled[key]
        try:
            contract = Contract.compile(spec["payload"], f"{service}/{action}")
        except SchemaDeclarationError as exc:
            # The service checks its own payloads; the gateway only loses its early check.
            log.error("not checking payloads of %s/%s here: %s", service, action, exc)
            contract = None
        with self._lock:
            if len(self._compiled) >= MAX_CACHED:
                self._compiled.clear()
            self._compiled[key] = contract
        return contract

    def _actions(self, service: str) -> dict:
        now = time.monotonic()
        with self._lock:
            cached = self._services.get(service)
        if cached is not None and now - cached[0] < self.refresh:
            return cached[1]
        try:
            raw = self._client().hget(registry.key(service), registry.SCHEMAS)
        except REDIS_ERRORS as exc:
            raise ConnectionLost(f"cannot reach Redis: {exc}") from exc
        actions = registry.ServiceRecord.parse({registry.SCHEMAS: raw}).action_schemas
        with self._lock:
            if len(self._services) >= MAX_CACHED:
                self._services.clear()  # bounded, whatever names "*" lets through
            self._services[service] = (now, actions)
        return actions

