"""The Redis wire format (version 1, compatible with Daebus 0.0.x).

A request is published on the channel named exactly as the service::

    {"action": "get_status", "payload": {...}, "reply_to": "caller:<uuid>",
     "request_id": "<uuid>", "service": "<target>", "timeout_ms": 5000,
     "sent_at": 1764500000.123, "trace_id": "<the X-Request-ID of the HTTP call>"}

(``timeout_ms``, ``sent_at``, the caller's wall clock in seconds, and
``trace_id`` are optional; peers that don't know a field ignore it)

and answered on ``reply_to`` with::

    {"status": "success" | "error", "payload": ..., "request_id": "<uuid>", "final": true}

A caller that gives up on a request it sent (its timeout, Ctrl-C, a
cancelled task, a page gone) may publish on ``daebus:cancel:<service>``::

    {"request_id": "<uuid>", "reply_to": "caller:<uuid>", "reason": "timeout",
     "remaining_ms": 0}

(optional: 0.0.x services subscribe to no such channel, and a service
honours a cancel only when both ids name a request it holds)

Broadcasts are the bare JSON payload on their channel. What JSON the bus
carries (UTF-8, finite numbers, no lone surrogates, at most 64 levels deep)
is decided in :mod:`daebus.bus.wirejson`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import json
import re
import uuid
from pathlib import PurePath
from typing import Any, NamedTuple

from daebus.bus import wirejson
from daebus.bus.keys import REGISTRY_PREFIX, REPLY_PREFIX  # noqa: F401 - part of the wire format
from daebus.errors import ActionNotFound, BadRequest, RemoteError, ServiceBusy, ServiceStopped

# Error codes carried in ``payload["code"]`` of error replies (declared in
# daebus.errors with their exceptions and HTTP statuses).
ACTION_NOT_FOUND, HANDLER_ERROR = ActionNotFound.code, RemoteError.code
BAD_REQUEST, BUSY = BadRequest.code, ServiceBusy.code
SHUTTING_DOWN = ServiceStopped.code

SUCCESS = "success"
ERROR = "error"


# What a trace id (the id one HTTP request keeps through the gateway, the bus
# and the worker's journal fields) may look like: it reaches log fields and
# response headers, so no spaces, quotes or control characters, and bounded.
TRACE_ID_PATTERN = re.compile(r"[A-Za-z0-9._:@+=/-]{1,128}")


def valid_trace_id(value: Any) -> str | None:
    """``value`` when it is an acceptable trace id, else None."""
    if isinstance(value, str) and TRACE_ID_PATTERN.fullmatch(value):
        return value
    return None


class ProtocolError(ValueError):
    """A message that cannot be understood; ``reply_to``/``request_id`` are
    set when known so the sender can still be told."""

    def __init__(self, message: str, reply_to: str | None = None, request_id: str | None = None):
        super().__init__(message)
        self.reply_to = reply_to
        self.request_id = request_id


class Request(NamedTuple):
    action: str
    payload: Any
    reply_to: str | None
    request_id: str | None
    service: str | None
    timeout_ms: int | None
    raw: dict
    sent_at: float | None = None
    trace_id: str | None = None
    # Group mode: how many times the stream handed this request to an instance.
    delivery: int = 1


# Envelope keys: a Request's fields but what the service adds (the whole
# message, the delivery count). A message on the service channel without
# "payload" (the old send_to_service) carries its data beside these.
ENVELOPE_KEYS = frozenset(Request._fields) - {"raw", "delivery"}


def _default(obj: Any) -> Any:
    # Mirrors what users expect from Flask's JSON provider, with ISO 8601
    # dates because kiosk pages parse them with Date().
    if isinstance(obj, datetime.datetime | datetime.date | datetime.time):
        return obj.isoformat()
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        data = bytes(obj)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(data).decode("ascii")
    if isinstance(obj, uuid.UUID | PurePath):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "__json__"):
        return obj.__json__()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> str:
    """Encode ``obj`` as compact JSON the bus accepts (:mod:`daebus.bus.wirejson`),
    converting dates, decimals, sets, bytes, UUIDs, enums and dataclasses;
    raises ``TypeError`` for anything else and ``ValueError`` for what the
    bus refuses (NaN, infinities, lone surrogates, nesting too deep)."""
    return wirejson.dumps(obj, _default)


def loads(data: str | bytes) -> Any:
    """Decode JSON under the bus's rules (:mod:`daebus.bus.wirejson`);
    ``ValueError`` names what is refused."""
    return wirejson.loads(data)


_ID_FIELDS = {name: re.compile(rb'"%s"\s*:\s*"((?:[^"\\\x00-\x1f]|\\.){1,512})"' % name.encode())
              for name in ("reply_to", "request_id")}


def salvage(data: str | bytes, name: str) -> str | None:
    """The string field ``name`` of a message that did not parse, if it can
    be found (the last occurrence: envelope fields follow the payload)."""
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
    found = None
    for found in _ID_FIELDS[name].finditer(raw):
        pass
    if found is None:
        return None
    try:
        value = json.loads(b'"' + found.group(1) + b'"')
    except ValueError:
        return None
    return value or None


def decode_object(data: str | bytes, max_bytes: int) -> dict:
    """Parse one pub/sub message that must be a JSON object.

    On failure the :class:`ProtocolError` carries the ``reply_to`` and
    ``request_id`` found in the raw text, so the sender can still be told.
    """
    if len(data) > max_bytes:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the {max_bytes} byte limit",
                            salvage(data, "reply_to"), salvage(data, "request_id"))
    try:
        obj = loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}", salvage(data, "reply_to"),
                            salvage(data, "request_id")) from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a JSON object, got {type(obj).__name__}",
                            salvage(data, "reply_to"), salvage(data, "request_id"))
    return obj


def parse_request(obj: dict) -> Request:
    """Validate a decoded request envelope."""
    reply_to = obj.get("reply_to")
    request_id = obj.get("request_id")
    if reply_to is not None and (not isinstance(reply_to, str) or not reply_to):
        raise ProtocolError(f"'reply_to' must be a channel name, got {reply_to!r}")
    if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, str | int)):
        raise ProtocolError(f"'request_id' must be a string, got {type(request_id).__name__}", reply_to)
    action = obj.get("action")
    if not isinstance(action, str) or not action:
        raise ProtocolError("missing or invalid 'action'", reply_to, request_id)
    if "payload" in obj:
        payload = obj["payload"]
        if isinstance(payload, str):
            # Daebus 0.0.x accepted a JSON-encoded string payload.
            try:
                payload = loads(payload)
            except ValueError:
                pass
    else:
        payload = {k: v for k, v in obj.items() if k not in ENVELOPE_KEYS}
    timeout_ms = obj.get("timeout_ms")
    if timeout_ms is not None and (isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int | float)
                                   or timeout_ms <= 0):
        raise ProtocolError(f"'timeout_ms' must be a positive number, got {timeout_ms!r}", reply_to, request_id)
    service = obj.get("service")
    sent_at = obj.get("sent_at")
    if isinstance(sent_at, bool) or not isinstance(sent_at, int | float):
        sent_at = None  # optional and informative only: never a reason to refuse
    return Request(action, payload, reply_to, request_id,
                   service if isinstance(service, str) else None,
                   timeout_ms, obj, sent_at, valid_trace_id(obj.get("trace_id")))


def request_envelope(action: str, payload: Any, reply_to: str, request_id: str,
                     service: str, timeout_ms: int | None, sent_at: float | None = None,
                     trace_id: str | None = None) -> dict:
    msg = {"action": action, "payload": payload, "reply_to": reply_to,
           "request_id": request_id, "service": service}
    if timeout_ms is not None:
        msg["timeout_ms"] = timeout_ms
    if sent_at is not None:
        msg["sent_at"] = round(sent_at, 3)
    if trace_id is not None:
        msg["trace_id"] = trace_id
    return msg


# Why a caller gave up; another word from a newer peer reads as "cancelled".
CANCEL_REASONS = frozenset({"timeout", "interrupted", "cancelled", "disconnected"})


class Cancel(NamedTuple):
    """A caller's word that it no longer waits for a request's reply.
    ``remaining_ms``: how long the request still had (None if not said)."""

    request_id: str | int
    reply_to: str
    reason: str
    remaining_ms: int | None = None


def cancel_envelope(request_id: str, reply_to: str, reason: str, remaining_ms: int) -> dict:
    return {"request_id": request_id, "reply_to": reply_to, "reason": reason,
            "remaining_ms": max(0, int(remaining_ms))}


def parse_cancel(obj: dict) -> Cancel:
    """Validate a decoded cancel; :class:`ProtocolError` names what is wrong."""
    reply_to, request_id = obj.get("reply_to"), obj.get("request_id")
    if not isinstance(reply_to, str) or not reply_to:
        raise ProtocolError(f"a cancel needs its request's 'reply_to', got {reply_to!r:.60}")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int) or request_id == "":
        raise ProtocolError(f"a cancel needs its request's 'request_id', got {request_id!r:.60}")
    reason = obj.get("reason")
    remaining = obj.get("remaining_ms")
    if isinstance(remaining, bool) or not isinstance(remaining, int | float) or not remaining >= 0:
        remaining = None   # optional: an early cancel is then kept the service's default time
    return Cancel(request_id, reply_to, reason if reason in CANCEL_REASONS else "cancelled",
                  None if remaining is None else int(min(remaining, 2 ** 31)))


def reply_envelope(request_id, status: str, payload: Any, final: bool = True) -> dict:
    return {"status": status, "payload": payload, "request_id": request_id, "final": final}


def error_payload(message: str, code: str, details: list | None = None) -> dict:
    """``{"error", "code"}``, plus ``details`` (``[{"path", "message"}]``)
    when the payload broke the action's schema."""
    payload = {"error": message, "code": code}
    if details is not None:
        payload["details"] = details
    return payload
