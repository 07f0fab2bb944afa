"""Service registry: ``daebus:service:<name>`` hashes kept alive by a TTL.

A service in the default mode (``owner``) has one record, written by its one
live instance. A ``group`` has a shared record (mode, actions, channels) and
one ``daebus:member:<name>:<token>`` record per live instance. Who may write
which record is :mod:`daebus.service.membership`'s business; this module names the
keys, encodes records, reads them back as :class:`ServiceRecord` and lists them.

Example::

    for service in list_services(redis_client):
        print(service["name"], service["mode"], [i["host"] for i in service["instances"]])
    ServiceRecord.parse(redis_client.hgetall(key("sensors"))).mode     # "owner"
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from daebus.bus import protocol
from daebus.bus.keys import LIVENESS_PREFIX, MEMBER_PREFIX, member_key  # noqa: F401 - re-exported
from daebus.bus.keys import registry_key as key
from daebus.ops import metrics
from daebus.ops.config import SERVICE

# A record's fields that other modules name (the rest: see record()).
MODE = "mode"                             # OWNER or GROUP: how callers reach the service
STREAM_MAX_LENGTH = "stream_max_length"   # a group's stream length bound, for XADD's MAXLEN
SCHEMAS = "schemas"                       # the payload contracts (daebus.app.schemas.published)
OWNER = "owner"
GROUP = "group"
# What a caller reads (HMGET) to route a request: PUBLISH, or XADD with MAXLEN.
ROUTING = (MODE, STREAM_MAX_LENGTH)
# A group whose record names no usable bound gets the setting's default.
DEFAULT_STREAM_MAX_LENGTH: int = SERVICE.keys[STREAM_MAX_LENGTH].default


@dataclass(frozen=True)
class ServiceRecord:
    """One registry hash, typed: read from whatever wrote it (this version,
    0.0.x, a buggy or hostile peer), never trusted. A field that is missing
    or malformed gets the default below, never an exception; fields this
    version does not name are kept, as text, in ``extra``."""

    name: str = ""
    mode: str = OWNER                     # 0.0.x records have none: their services are owners
    status: str | None = None
    version: str | None = None
    host: str | None = None
    pid: int | None = None                # a positive integer, or None
    started_at: float | None = None       # seconds since the epoch, finite, or None
    token: str | None = None              # the instance's liveness token (0.0.x wrote none)
    actions: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    schemas: Mapping[str, Any] = field(default_factory=dict)   # as published, or {}
    stream_max_length: int = DEFAULT_STREAM_MAX_LENGTH          # a positive integer
    metrics: dict | None = None           # a validated snapshot (daebus.ops.metrics)
    metrics_error: str | None = None      # why the snapshot written was refused
    extra: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()        # what was malformed and left out, said for people

    @classmethod
    def parse(cls, raw: Mapping, name: str | None = None) -> ServiceRecord:
        """A record as read back (``HGETALL``, or ``HMGET``'s fields with
        None for those it lacks), text or bytes; ``name`` is the one its key
        gives, for a record that carries none."""
        fields = {_text(k): _text(v) for k, v in raw.items() if v is not None}
        snapshot, problem = _snapshot(fields.pop("metrics", None))
        problems: list[str] = []
        return cls(
            name=fields.pop("name", None) or name or "",
            mode=_one_of(fields.pop(MODE, None), (OWNER, GROUP), OWNER),
            status=fields.pop("status", None) or None, version=fields.pop("version", None) or None,
            host=fields.pop("host", None) or None, token=fields.pop("token", None) or None,
            pid=_positive(fields.pop("pid", None)), started_at=_moment(fields.pop("started_at", None)),
            actions=_names(fields.pop("actions", None), "actions", problems),
            channels=_names(fields.pop("channels", None), "channels", problems),
            schemas=_json(fields.pop(SCHEMAS, None), dict) or {},
            stream_max_length=_positive(fields.pop(STREAM_MAX_LENGTH, None)) or DEFAULT_STREAM_MAX_LENGTH,
            metrics=snapshot, metrics_error=problem, extra=fields, problems=tuple(problems))

    @property
    def action_schemas(self) -> dict:
        """``{action: {"payload": ..., "reply": ...}}`` as published; {} when none or malformed."""
        actions = self.schemas.get("actions")
        return actions if isinstance(actions, dict) else {}

    def uptime(self, now: float) -> float | None:
        return round(now - self.started_at, 1) if self.started_at else None

    def info(self) -> dict:
        """The record as :func:`list_services` gives it: a plain dict."""
        info = {**self.extra, "name": self.name, "pid": self.pid, "host": self.host,
                "started_at": self.started_at, "version": self.version, "status": self.status,
                "actions": list(self.actions), "channels": list(self.channels),
                SCHEMAS: dict(self.schemas), MODE: self.mode, "metrics": self.metrics}
        if self.token is not None:
            info["token"] = self.token
        if self.mode == GROUP:
            info[STREAM_MAX_LENGTH] = self.stream_max_length
        if self.metrics_error is not None:
            info["metrics_error"] = self.metrics_error
        if self.problems:
            info["problems"] = list(self.problems)
        return info


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _one_of(value: str | None, choices: tuple[str, ...], default: str) -> str:
    return value if value in choices else default


def _positive(value: str | None) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _moment(value: str | None) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _json(text: str | None, kind: type):
    """``text`` decoded when it is JSON of ``kind``, else None."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):   # RecursionError: "[[[[..." past the interpreter's limit
        return None
    return value if isinstance(value, kind) else None


def _names(text: str | None, what: str, problems: list[str]) -> tuple[str, ...]:
    """The names a JSON list holds; what else it holds, or a value that is
    not a list, is said in ``problems``."""
    if not text:
        return ()
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        problems.append(f"its {what} are not JSON")
        return ()
    if not isinstance(value, list):
        problems.append(f"its {what} are not a list (got {type(value).__name__})")
        return ()
    names = tuple(item for item in value if isinstance(item, str) and item)
    if len(names) < len(value):
        problems.append(f"{len(value) - len(names)} of its {what} are not names")
    return names


def _snapshot(text: str | None) -> tuple[dict | None, str | None]:
    if not text:
        return None, None
    try:
        return metrics.parse_snapshot(text), None
    except ValueError as exc:
        return None, str(exc)


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


def _instance(member: ServiceRecord, now: float) -> dict:
    return {"host": member.host, "pid": member.pid, "started_at": member.started_at,
            "uptime": member.uptime(now), "status": member.status, "version": member.version,
            "token": member.token}


def _live(client, records: list[ServiceRecord]) -> list[ServiceRecord]:
    """Drop records whose instance no longer holds its liveness channel (it
    was killed: its entry would otherwise linger until the TTL)."""
    tokens = [r.token for r in records]
    channels = [LIVENESS_PREFIX + t for t in tokens if t]
    counts = dict(client.pubsub_numsub(*channels)) if channels else {}
    counts = {(k.decode() if isinstance(k, bytes) else k): v for k, v in counts.items()}
    return [r for r, t in zip(records, tokens) if not t or counts.get(LIVENESS_PREFIX + t)]


def members(client, service: str) -> list[dict]:
    """The live members of a group, oldest first, as :meth:`ServiceRecord.info` gives them."""
    return [member.info() for member in member_records(client, service)]


def member_records(client, service: str) -> list[ServiceRecord]:
    """The live members of a group, oldest first."""
    found = []
    for name in client.scan_iter(match=member_key(service, "*"), count=100):
        raw = client.hgetall(name)
        if raw:
            found.append(ServiceRecord.parse(raw, service))
    return sorted(_live(client, found), key=lambda m: m.started_at or 0)


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
        record = ServiceRecord.parse(raw, name[len(protocol.REGISTRY_PREFIX):])
        if record.mode == OWNER and not _live(client, [record]):
            continue
        info = record.info()
        if record.mode == GROUP:
            group = member_records(client, record.name)
            info["instances"] = [_instance(m, now) for m in group]
            info["metrics"] = metrics.merge([m.metrics for m in group if m.metrics])
            errors = [m.metrics_error for m in group if m.metrics_error]
            if errors:
                info["metrics_error"] = errors[0]
            oldest = group[0] if group else ServiceRecord()
            info.update(pid=oldest.pid, host=oldest.host, started_at=oldest.started_at)
            info["uptime"] = oldest.uptime(now)
        else:
            info["instances"] = [_instance(record, now)]
            info["uptime"] = record.uptime(now)
        services.append(info)
    return sorted(services, key=lambda s: s["name"])
