"""Service registry: ``daebus:service:<name>`` hashes kept alive by a TTL.

A service in the default mode (``owner``) has one record, written by its one
live instance. A ``group`` has a shared record (mode, actions, channels) and
one ``daebus:member:<name>:<token>`` record per live instance. Who may write
which record is :mod:`daebus.service.membership`'s business; this module names the
keys, encodes records and lists them.

Example::

    for service in list_services(redis_client):
        print(service["name"], service["mode"], [i["host"] for i in service["instances"]])
"""

from __future__ import annotations

import json
import os
import socket
import time

from daebus.bus import protocol
from daebus.bus.keys import LIVENESS_PREFIX, MEMBER_PREFIX, member_key  # noqa: F401 - re-exported
from daebus.bus.keys import registry_key as key
from daebus.ops import metrics

# A record's fields that other modules read by name (the rest: see record()).
MODE = "mode"                             # OWNER or GROUP: how callers reach the service
STREAM_MAX_LENGTH = "stream_max_length"   # a group's stream length bound, for XADD's MAXLEN
OWNER = "owner"
GROUP = "group"


def record(service: str, *, actions, channels, version: str, started_at: float, status: str,
           schemas: dict | None = None, metrics: str | None = None) -> dict:
    info = {"name": service, "pid": os.getpid(), "host": socket.gethostname(),
            "started_at": started_at, "version": version,
            "actions": sorted(actions), "channels": sorted(channels), "status": status}
    if schemas:
        info["schemas"] = schemas  # only services that declare contracts carry the field
    if metrics is not None:
        info["metrics"] = metrics  # the JSON text of a ServiceMetrics snapshot
    return info


def encode(info: dict) -> dict:
    """A record as hash fields: lists and dicts as JSON, the rest as text."""
    return {k: json.dumps(v) if isinstance(v, list | tuple | dict) else str(v) for k, v in info.items()}


def publish(client, info: dict, ttl: float) -> None:
    """Write (or refresh) a record with its TTL in one round trip, without
    any ownership check (tests and tools; services go through
    :class:`daebus.service.membership.Membership`)."""
    pipe = client.pipeline(transaction=False)
    pipe.hset(key(info["name"]), mapping=encode(info))
    pipe.expire(key(info["name"]), max(1, int(ttl)))
    pipe.execute()


def parse(raw: dict) -> dict:
    """A record read back: decoded text, lists, numbers, ``mode``."""
    info: dict = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                  for k, v in raw.items()}
    for field, empty in (("actions", "[]"), ("channels", "[]"), ("schemas", "{}")):
        try:
            info[field] = json.loads(info.get(field, empty))
        except ValueError:
            info[field] = json.loads(empty)
    for field, cast in (("pid", int), ("started_at", float)):
        try:
            info[field] = cast(info[field])
        except (KeyError, ValueError):
            info[field] = None
    info[MODE] = info.get(MODE) or OWNER
    snapshot = info.pop("metrics", None)
    info["metrics"] = None
    if snapshot:
        try:
            info["metrics"] = metrics.parse_snapshot(snapshot)
        except ValueError as exc:
            info["metrics_error"] = str(exc)
    return info


def _instance(info: dict, now: float) -> dict:
    started = info.get("started_at")
    return {"host": info.get("host"), "pid": info.get("pid"), "started_at": started,
            "uptime": round(now - started, 1) if started else None,
            "status": info.get("status"), "version": info.get("version"), "token": info.get("token")}


def _live(client, records: list[dict]) -> list[dict]:
    """Drop records whose instance no longer holds its liveness channel (it
    was killed: its entry would otherwise linger until the TTL)."""
    tokens = [r.get("token") for r in records]
    channels = [LIVENESS_PREFIX + t for t in tokens if t]
    counts = dict(client.pubsub_numsub(*channels)) if channels else {}
    counts = {(k.decode() if isinstance(k, bytes) else k): v for k, v in counts.items()}
    return [r for r, t in zip(records, tokens) if not t or counts.get(LIVENESS_PREFIX + t)]


def members(client, service: str) -> list[dict]:
    """The live members of a group, oldest first."""
    found = []
    for name in client.scan_iter(match=member_key(service, "*"), count=100):
        raw = client.hgetall(name)
        if raw:
            found.append(parse(raw))
    return sorted(_live(client, found), key=lambda m: m.get("started_at") or 0)


def list_services(client) -> list[dict]:
    """Live services, sorted by name, each with its ``mode``, actions,
    channels, ``instances`` (one for an owner, every member of a group) and
    ``metrics`` (a parsed snapshot, the members' added up for a group; None
    with ``metrics_error`` saying why when one was corrupt). An instance
    that was killed is left out at once, not after the TTL."""
    services = []
    now = time.time()
    for name in client.scan_iter(match=protocol.REGISTRY_PREFIX + "*", count=100):
        name = name.decode() if isinstance(name, bytes) else name
        raw = client.hgetall(name)
        if not raw:
            continue
        info = parse(raw)
        info.setdefault("name", name[len(protocol.REGISTRY_PREFIX):])
        if info[MODE] == OWNER and not _live(client, [info]):
            continue
        if info[MODE] == GROUP:
            group = members(client, info["name"])
            info["instances"] = [_instance(m, now) for m in group]
            info["metrics"] = metrics.merge([m["metrics"] for m in group if m.get("metrics")])
            errors = [m["metrics_error"] for m in group if m.get("metrics_error")]
            if errors:
                info["metrics_error"] = errors[0]
            first = group[0] if group else {}
            info.update(pid=first.get("pid"), host=first.get("host"), started_at=first.get("started_at"))
        else:
            info["instances"] = [_instance(info, now)]
        info["uptime"] = round(now - info["started_at"], 1) if info.get("started_at") else None
        services.append(info)
    return sorted(services, key=lambda s: s["name"])
