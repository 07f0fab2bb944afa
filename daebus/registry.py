"""Service registry: ``daebus:service:<name>`` hashes kept alive by a TTL.

Example::

    for service in list_services(redis_client):
        print(service["name"], service["actions"])
"""

from __future__ import annotations

import json
import os
import socket
import time

from . import protocol


def key(service: str) -> str:
    return protocol.REGISTRY_PREFIX + service


def record(service: str, *, actions, channels, version: str, started_at: float, status: str,
           schemas: dict | None = None) -> dict:
    info = {"name": service, "pid": os.getpid(), "host": socket.gethostname(),
            "started_at": started_at, "version": version,
            "actions": sorted(actions), "channels": sorted(channels), "status": status}
    if schemas:
        info["schemas"] = schemas  # only services that declare contracts carry the field
    return info


def publish(client, info: dict, ttl: float) -> None:
    """Write (or refresh) the record with its TTL in one round trip."""
    mapping = {k: json.dumps(v) if isinstance(v, list | tuple | dict) else str(v) for k, v in info.items()}
    pipe = client.pipeline(transaction=False)
    pipe.hset(key(info["name"]), mapping=mapping)
    pipe.expire(key(info["name"]), max(1, int(ttl)))
    pipe.execute()


def remove(client, service: str) -> None:
    client.delete(key(service))


def _parse(raw: dict) -> dict:
    info: dict = dict(raw)
    for field, empty in (("actions", "[]"), ("channels", "[]"), ("schemas", "{}")):
        try:
            info[field] = json.loads(raw.get(field, empty))
        except ValueError:
            info[field] = json.loads(empty)
    for field, cast in (("pid", int), ("started_at", float)):
        try:
            info[field] = cast(raw[field])
        except (KeyError, ValueError):
            info[field] = None
    return info


def list_services(client) -> list[dict]:
    """Live services, sorted by name, each with its actions and channels."""
    services = []
    for name in client.scan_iter(match=protocol.REGISTRY_PREFIX + "*", count=100):
        name = name.decode() if isinstance(name, bytes) else name
        raw = client.hgetall(name)
        if raw:
            raw = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                   for k, v in raw.items()}
            raw.setdefault("name", name[len(protocol.REGISTRY_PREFIX):])
            services.append(_parse(raw))
    now = time.time()
    for info in services:
        info["uptime"] = round(now - info["started_at"], 1) if info.get("started_at") else None
    return sorted(services, key=lambda s: s["name"])
