"""Payload contracts: JSON Schemas declared on actions and listeners.

``jsonschema`` is imported only when a schema is declared, so services
without contracts don't need it. A schema is checked when it is declared
(a mistake fails at import, not at the first request), and a payload is
checked against it before the handler runs; what is wrong is reported as a
list of ``{"path", "message"}`` items, ``path`` being a JSON path such as
``$.items[2].name``::

    contract = Contract.compile({"type": "object", "required": ["name"]}, "action 'greet'")
    contract.problems({"name": 3})   # [] or [{"path": "$", "message": ...}, ...]

Schemas without ``$schema`` follow draft 2020-12, the dialect of OpenAPI 3.1.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from typing import Any

from daebus.app.schemacost import bounded_unique_items, cost_problem

# A hostile payload can break a schema in thousands of places; the reply
# names enough of them to fix the sender and says how many were left out.
MAX_PROBLEMS = 20
MAX_MESSAGE_CHARS = 200

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class SchemaDeclarationError(ValueError):
    """A declared schema is not a valid JSON Schema (raised at declaration)."""


def _jsonschema():
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - depends on the environment
        raise SchemaDeclarationError(
            "payload schemas need the jsonschema library: apt install python3-jsonschema "
            "(or pip install 'daebus[schema]')") from None
    return jsonschema


def json_path(parts) -> str:
    """``["items", 2, "name"]`` -> ``$.items[2].name``."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS - 1] + "…"


class Contract:
    """A compiled schema for one action's payload (and reply) or one listener."""

    __slots__ = ("schema", "reply_schema", "_validator", "_reply_validator")

    def __init__(self, schema, reply_schema, validator, reply_validator):
        self.schema = schema
        self.reply_schema = reply_schema
        self._validator = validator
        self._reply_validator = reply_validator

    @classmethod
    def compile(cls, schema, what: str, reply_schema=None) -> Contract:
        """Check and compile the schemas; :class:`SchemaDeclarationError`
        names ``what`` and the place in the schema that is wrong."""
        return cls(schema, reply_schema,
                   _validator(schema, what) if schema is not None else None,
                   _validator(reply_schema, f"{what} (reply schema)") if reply_schema is not None else None)

    def problems(self, payload: Any) -> list[dict]:
        """What is wrong with ``payload``: an empty list when it is valid."""
        return _problems(self._validator, payload)

    def reply_problems(self, payload: Any) -> list[dict]:
        return _problems(self._reply_validator, payload)

    def published(self) -> dict:
        """The form kept in the registry and listed by the gateway."""
        out = {"payload": self.schema}
        if self.reply_schema is not None:
            out["reply"] = self.reply_schema
        return out


def _validator(schema, what: str):
    if not isinstance(schema, dict | bool):
        raise SchemaDeclarationError(f"{what}: a JSON Schema must be a dict (or a bool), "
                                     f"got {type(schema).__name__}")
    try:
        json.dumps(schema)
    except (TypeError, ValueError) as exc:
        raise SchemaDeclarationError(f"{what}: the schema is not JSON: {exc}") from None
    remote = _remote_ref(schema, [])
    if remote is not None:
        # Older jsonschema releases would fetch it over the network while
        # validating (the gateway reads schemas from Redis): only "#..." refs.
        raise SchemaDeclarationError(f"{what}: only local references (\"#/...\") are supported, "
                                     f"got {remote[1]!r} at {json_path(remote[0])}")
    costly = cost_problem(schema)
    if costly is not None:
        raise SchemaDeclarationError(f"{what}: refused at {json_path(costly[0])}: {costly[1]} "
                                     "(see the payload schema rules in the README)")
    jsonschema = _jsonschema()
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = json_path(exc.absolute_path) if exc.absolute_path else "its top level"
        raise SchemaDeclarationError(f"{what}: invalid JSON Schema at {where}: {_short(exc.message)}") from None
    return _bounded(jsonschema, cls)(schema)


@functools.lru_cache(maxsize=None)
def _bounded(jsonschema, cls):
    """``cls`` with the keywords whose cost :mod:`daebus.app.schemacost` bounds."""
    return jsonschema.validators.extend(cls, {"uniqueItems": bounded_unique_items(cls.VALIDATORS["uniqueItems"])})


def _remote_ref(node, path: list):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str) and not value.startswith("#"):
                return [*path, key], value
            found = _remote_ref(value, [*path, key])
            if found is not None:
                return found
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found = _remote_ref(value, [*path, index])
            if found is not None:
                return found
    return None


def _problems(validator, payload) -> list[dict]:
    if validator is None:
        return []
    errors = list(validator.iter_errors(payload))
    if not errors:
        return []
    errors.sort(key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]))
    found = [{"path": json_path(e.absolute_path), "message": _short(e.message)} for e in errors[:MAX_PROBLEMS]]
    if len(errors) > MAX_PROBLEMS:
        found.append({"path": "$", "message": f"and {len(errors) - MAX_PROBLEMS} more problem(s)"})
    return found


def describe(problems: list[dict]) -> str:
    """One line for an error message: ``$.age: -1 is less than ...; $: ...``."""
    return "; ".join(f"{p['path']}: {p['message']}" for p in problems)


class DropLog:
    """Logs dropped messages on a channel at most once per ``interval``
    seconds, with how many were dropped meanwhile: a sender flooding bad
    payloads must not flood the journal."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0):
        self.logger = logger
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}

    def dropped(self, channel: str, handler: str, problems: list[dict]) -> None:
        now = time.monotonic()
        with self._lock:
            last, skipped = self._last.get(channel, (-self.interval, 0))
            if now - last < self.interval:
                self._last[channel] = (last, skipped + 1)
                return
            self._last[channel] = (now, 0)
        more = f" ({skipped} more dropped since the last report)" if skipped else ""
        self.logger.warning("dropped a message on %r for %s: it does not match the schema: %s%s",
                            channel, handler, describe(problems), more)


def published(app) -> dict:
    """An app's schemas as the registry carries them: ``{"actions": {name:
    {"payload", "reply"}}, "channels": {channel: schema}}``."""
    actions = {name: c.published() for name, c in app.contracts.items()}
    channels: dict[str, Any] = {}
    for (channel, _fn), contract in app.listen_contracts.items():
        channels.setdefault(channel, contract.schema)
    return {"actions": actions, "channels": channels} if actions or channels else {}
