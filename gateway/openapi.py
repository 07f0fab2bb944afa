"""The OpenAPI 3.1 document of the actions the gateway exposes, generated
from the registry (never written by hand).

Each exposed action of a live service is one ``POST
/api/services/<service>/<action>`` operation; its request body is the
action's payload schema and its 200 answer ``{"result": <reply schema>}``.
JSON Schema draft 2020-12 is OpenAPI 3.1's own dialect, so the schemas
services declare are used as they are.
"""

from __future__ import annotations

from daebus import __version__ as daebus_version

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "details": {
                "description": "Each way the payload breaks the action's schema.",
                "type": "array",
                "items": {"type": "object", "required": ["path", "message"],
                          "properties": {"path": {"type": "string", "description": "a JSON path, e.g. $.items[0]"},
                                         "message": {"type": "string"}}},
            },
        },
    }},
}

_ERROR_STATUSES = {
    "400": "invalid JSON, or a payload that breaks the action's schema",
    "403": "not exposed",
    "404": "the service has no such action",
    "413": "the body is too large",
    "502": "the handler failed",
    "503": "the service or Redis is unavailable, or busy",
    "504": "no reply in time",
}


def document(services: list[dict], exposure, *, token: bool) -> dict:
    """The OpenAPI 3.1 document for ``services`` (registry records) as far
    as ``exposure`` lets browsers reach them."""
    paths: dict[str, dict] = {}
    for info in services:
        name = info["name"]
        specs = (info.get("schemas") or {}).get("actions") or {}
        for action in info.get("actions", []):
            if exposure.action_allowed(name, action):
                spec = specs.get(action) if isinstance(specs.get(action), dict) else {}
                paths[f"/api/services/{name}/{action}"] = {"post": _operation(name, action, spec)}
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "Daebus gateway", "version": daebus_version,
                 "description": "The actions this gateway exposes, from the live services' registry."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": _ERROR},
            "responses": {status: {"description": text, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}} for status, text in _ERROR_STATUSES.items()},
        },
    }
    if token:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc


def _operation(service: str, action: str, spec: dict) -> dict:
    payload = spec.get("payload")
    reply = spec.get("reply")
    result = {"type": "object", "required": ["result"], "properties": {"result": reply if reply is not None else {}}}
    return {
        "operationId": f"{service}.{action}",
        "tags": [service],
        "summary": f"Call {action} on {service}",
        "parameters": [{"name": "timeout", "in": "query", "required": False,
                        "description": "seconds to wait for the reply",
                        "schema": {"type": "number", "exclusiveMinimum": 0}}],
        "requestBody": {"required": False, "content": {"application/json": {
            "schema": payload if payload is not None else {"type": "object"}}}},
        "responses": {
            "200": {"description": "the action's reply", "content": {"application/json": {"schema": result}}},
            **{status: {"$ref": f"#/components/responses/{status}"} for status in _ERROR_STATUSES},
        },
    }
