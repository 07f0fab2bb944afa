"""The envelopes of wire format v1 as JSON Schemas, for documents that
describe the bus (``daebus asyncapi``, the gateway's ``/api/asyncapi.json``).

:mod:`daebus.bus.protocol` is what reads and writes the envelopes; these
schemas say the same in a form other tools read. They use only keywords
that every JSON Schema draft from 04 to 2020-12 reads alike (AsyncAPI's own
schema dialect is draft-07's; payload schemas are draft 2020-12 unless they
say otherwise), so one text serves them all::

    jsonschema.validate(protocol.request_envelope("now", {}, "caller:x", "1", "clock", 5000),
                        request_schema())

Each function returns a fresh copy: callers fill in the ``action`` or the
``payload`` of one message.
"""

from __future__ import annotations

import copy

from daebus.bus import protocol
from daebus.bus.keys import REPLY_PREFIX

# Codes the runtime itself puts in error replies; a handler may add its own.
RUNTIME_ERROR_CODES = (protocol.BAD_REQUEST, protocol.HANDLER_ERROR, protocol.ACTION_NOT_FOUND,
                       protocol.BUSY, protocol.SHUTTING_DOWN)

_REQUEST = {
    "type": "object",
    "description": "A request, as Daebus 0.0.x sends it too; fields a peer does not know are ignored.",
    "required": ["action"],
    "properties": {
        "action": {"type": "string", "minLength": 1, "description": "the action's name"},
        "payload": {"description": "the action's payload (a message without it carries its data beside "
                                   "these fields, as 0.0.x's send_to_service does; a JSON text in a "
                                   "string is decoded, as 0.0.x sent it)"},
        "reply_to": {"type": "string", "minLength": 1,
                     "description": f"the caller's reply channel, {REPLY_PREFIX}<user>:<uuid>; "
                                    "a request without it is run and not answered"},
        "request_id": {"type": ["string", "integer"], "description": "echoed in every reply"},
        "service": {"type": "string", "description": "the service the caller meant"},
        # Above 0 in words every draft reads alike (draft-04's exclusiveMinimum is a flag).
        "timeout_ms": {"type": "number", "not": {"maximum": 0},
                       "description": "milliseconds the caller waits, above 0; a request it gave up on is "
                                      "not run"},
        "sent_at": {"type": "number", "description": "the caller's wall clock at sending, in seconds"},
        "trace_id": {"type": "string", "pattern": f"^(?:{protocol.TRACE_ID_PATTERN.pattern})$",
                     "description": "the id of the HTTP request behind the call (a malformed one is "
                                    "ignored)"},
    },
}

_REPLY = {
    "type": "object",
    "description": "A reply, published on the request's reply_to.",
    "required": ["status", "request_id"],
    "properties": {
        "status": {"enum": [protocol.SUCCESS, protocol.ERROR]},
        "payload": {"description": "the result, the progress data, or the error"},
        "request_id": {"type": ["string", "integer", "null"], "description": "the request's request_id"},
        "final": {"type": "boolean", "default": True,
                  "description": "false for a progress update; an error reply is always final"},
    },
}

_ERROR_PAYLOAD = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string", "description": "what went wrong, for a person"},
        "code": {"type": "string", "examples": list(RUNTIME_ERROR_CODES),
                 "description": "a code from daebus's table of error codes, or one the handler chose"},
        "details": {
            "type": "array",
            "description": "each way the payload breaks the action's schema",
            "items": {"type": "object", "required": ["path", "message"],
                      "properties": {"path": {"type": "string", "description": "a JSON path, e.g. $.items[0]"},
                                     "message": {"type": "string"}}},
        },
    },
}


def request_schema() -> dict:
    """The request envelope."""
    return copy.deepcopy(_REQUEST)


def reply_schema() -> dict:
    """Any reply envelope."""
    return copy.deepcopy(_REPLY)


def error_payload_schema() -> dict:
    """The payload of an error reply (:func:`daebus.bus.protocol.error_payload`)."""
    return copy.deepcopy(_ERROR_PAYLOAD)
