"""A payload schema published in the registry, placed inside a larger
document (the bus's AsyncAPI document): checked, its dialect named (an
AsyncAPI multi-format schema), its references pointed at where it now lives.

A service's schema is a JSON Schema of its own (draft 2020-12 unless its
``$schema`` says otherwise) whose ``$ref``s point within it (``#/$defs/x``).
Inside a document those references are read against the document's root,
as AsyncAPI and OpenAPI tools do, so they are rewritten to the schema's new
place::

    placed({"$ref": "#/$defs/id", "$defs": {"id": {"type": "integer"}}}, "/a/b")
    # {"$ref": "#/a/b/$defs/id", "$defs": {"id": {"type": "integer"}}}

A schema read back from Redis is untrusted: :func:`checked` refuses what
:class:`~daebus.app.schemas.Contract` refuses at declaration (not JSON
Schema, remote references, checks whose cost has no bound) and says why.
"""

from __future__ import annotations

import copy
from typing import Any

from daebus.app.schemas import Contract, SchemaDeclarationError

DEFAULT_DIALECT = "draft-2020-12"

# $schema URIs (scheme and trailing "#" aside) and the names AsyncAPI's
# schemaFormat gives their dialects ("application/schema+json;version=draft-07").
_DIALECTS = {
    "json-schema.org/draft-04/schema": "draft-04",
    "json-schema.org/draft-06/schema": "draft-06",
    "json-schema.org/draft-07/schema": "draft-07",
    "json-schema.org/draft/2019-09/schema": "draft-2019-09",
    "json-schema.org/draft/2020-12/schema": DEFAULT_DIALECT,
}

# Keywords whose values are data, not schemas: a "$ref" key inside is not a reference.
_DATA = frozenset({"const", "enum", "default", "examples", "example"})
# Keywords whose values map names to schemas: the names are not keywords.
_NAMED = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas",
                    "dependencies"})


def checked(schema: Any, what: str) -> tuple[Any, str | None]:
    """``(schema, None)`` when ``schema`` is one a service could declare,
    else ``(None, why)``, ``why`` naming ``what`` and the place that is wrong."""
    try:
        Contract.compile(schema, what)
    except SchemaDeclarationError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a validator may trip over any hostile shape
        return None, f"{what}: the schema cannot be read: {type(exc).__name__}: {exc}"
    return schema, None


def dialect(schema: Any) -> str:
    """The dialect a checked schema is read in: its ``$schema``, else (as
    daebus checks payloads) draft 2020-12."""
    declared = schema.get("$schema") if isinstance(schema, dict) else None
    if isinstance(declared, str):
        key = declared.split("://", 1)[-1].rstrip("#")
        return _DIALECTS.get(key, DEFAULT_DIALECT)
    return DEFAULT_DIALECT


def schema_format(name: str) -> str:
    """AsyncAPI's ``schemaFormat`` for a JSON Schema dialect."""
    return f"application/schema+json;version={name}"


def pointer(*parts: str) -> str:
    """A JSON pointer (RFC 6901) to ``parts``, e.g. ``/channels/a~1b``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def multi_format(schema: Any, body: Any) -> dict:
    """An AsyncAPI multi-format schema: ``body`` (``schema`` placed, or an
    envelope holding it) in the dialect ``schema`` is written in."""
    if isinstance(schema, dict) and "$schema" in schema and isinstance(body, dict):
        body = {"$schema": schema["$schema"], **body}  # at the root, where a dialect is named
    return {"schemaFormat": schema_format(dialect(schema)), "schema": body}


def enveloped(envelope: dict, field: str, schema: Any, at: tuple[str, ...]) -> dict:
    """A multi-format schema at JSON pointer ``at``: ``envelope`` (an object
    schema) with ``schema`` as its property ``field``."""
    where = pointer(*at, "schema", "properties", field)
    return multi_format(schema, {**envelope, "properties": {**envelope["properties"], field: placed(schema, where)}})


def placed(schema: Any, at: str) -> Any:
    """A copy of ``schema`` as it reads at JSON pointer ``at`` of a document:
    its own ``$id`` and ``$schema`` dropped (the document says the dialect;
    an ``$id`` would make ``#`` mean the schema again), its local pointer
    references (``#``, ``#/...``) prefixed with ``at``. A part with an
    ``$id`` of its own is a resource whose references mean itself: kept."""
    if not isinstance(schema, dict):
        return copy.deepcopy(schema)
    root = {k: v for k, v in schema.items() if k not in ("$id", "$schema")}
    return _walk(root, at, top=True)


def _walk(node: Any, at: str, top: bool = False) -> Any:
    if isinstance(node, list):
        return [_walk(item, at) for item in node]
    if not isinstance(node, dict):
        return node
    if not top and "$id" in node:
        return copy.deepcopy(node)
    out: dict = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and (value == "#" or value.startswith("#/")):
            out[key] = "#" + at + value[1:]
        elif key in _DATA:
            out[key] = copy.deepcopy(value)
        elif key in _NAMED and isinstance(value, dict):
            out[key] = {name: _walk(sub, at) for name, sub in value.items()}
        else:
            out[key] = _walk(value, at)
    return out
