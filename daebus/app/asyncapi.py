"""The AsyncAPI 3.0 document of the bus, built from the registry (never
written by hand): ``daebus asyncapi`` prints it, and the gateway serves the
part it exposes at ``/api/asyncapi.json``.

It takes the services' side: each live service *receives* requests for its
actions and replies on the caller's ``reply_to`` (progress, the result, or
an error), and receives the broadcasts of the channels it listens to::

    doc = document(list_services(client))
    doc["operations"]["clock.now"]["reply"]["address"]   # {"location": "$message.payload#/reply_to", ...}
    problems(doc)                                          # what the registry held that could not be used

Channels: ``<service>`` (its requests; a group's address is its stream),
``<service>.replies`` (the reply channels, whose address each request
names) and one per broadcast channel. A message's payload is the whole
envelope of wire format v1 (:mod:`daebus.bus.wireschema`) with the action's
payload or reply schema in it. Envelopes alone are AsyncAPI schemas; one
that holds a service's schema is written in that schema's JSON Schema
dialect (``schemaFormat``), since AsyncAPI's own is a draft-07 superset.

Map keys are names made of ``A-Z a-z 0-9 . _ -`` (a name with other
characters gets ``_`` for them, and a suffix when two names would meet);
addresses are the names themselves. Whatever the registry holds that is not
usable (a list that is not a list of names, a schema that is not valid JSON
Schema) is left out or left open, and said in ``info["x-daebus-problems"]``:
the document stays valid.
"""

from __future__ import annotations

import copy
import re
from typing import Callable, Iterable

from daebus import __version__ as daebus_version
from daebus.app import schemaembed
from daebus.bus import protocol, registry, wireschema
from daebus.bus.keys import stream_key

ASYNCAPI_VERSION = "3.0.0"
WIRE_FORMAT = 1
CONTENT_TYPE = "application/json"
PROBLEMS = "x-daebus-problems"

_REPLY_TO = "$message.payload#/reply_to"
_CORRELATION = {"location": "$message.payload#/request_id",
                "description": "a reply carries its request's request_id"}
# A final success reply (one without "final" is final too).
_SUCCESS = {"status": {"enum": [protocol.SUCCESS]}, "final": {"enum": [True]}}
_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_MAX_KEY = 120

ActionFilter = Callable[[str, str], bool]
ChannelFilter = Callable[[str], bool]


def document(services: Iterable[dict], *, action_allowed: ActionFilter | None = None,
             channel_allowed: ChannelFilter | None = None, servers: dict | None = None,
             title: str = "Daebus bus", description: str | None = None) -> dict:
    """The AsyncAPI 3.0 document of ``services`` (registry records, as
    :func:`daebus.bus.registry.list_services` gives them), with only the
    actions and channels the filters allow (all when None)."""
    builder = _Builder(action_allowed or (lambda _s, _a: True), channel_allowed or (lambda _c: True),
                       filtered=action_allowed is not None or channel_allowed is not None)
    records = list(services)
    usable = [info for info in records if isinstance(info, dict)]
    if len(usable) < len(records):
        builder.problems.append(f"{len(records) - len(usable)} registry record(s) that are not objects: left out")
    for info in sorted(usable, key=lambda s: str(s.get("name"))):
        builder.service(info)
    return builder.finish(title, description, servers)


def problems(doc: dict) -> list[str]:
    """What the registry held that the document leaves out or open."""
    return list(doc.get("info", {}).get(PROBLEMS, []))


class _Keys:
    """Map keys for names: safe characters, and never the same twice."""

    def __init__(self):
        self.used: set[str] = set()

    def take(self, name: str) -> str:
        base = _KEY_CHARS.sub("_", name)[:_MAX_KEY] or "_"
        key, n = base, 1
        while key in self.used:
            n += 1
            key = f"{base}-{n}"
        self.used.add(key)
        return key


def _address(name: str | None) -> dict:
    # Braces would read as an AsyncAPI address parameter: such a name is told apart.
    if name is not None and ("{" in name or "}" in name):
        return {"address": None, "x-daebus-address": name}
    return {"address": name}


def _ref(*parts: str) -> dict:
    return {"$ref": "#" + schemaembed.pointer(*parts)}


class _Builder:
    def __init__(self, action_allowed: ActionFilter, channel_allowed: ChannelFilter, filtered: bool):
        self.action_allowed = action_allowed
        self.channel_allowed = channel_allowed
        self.filtered = filtered
        self.channels: dict[str, dict] = {}
        self.operations: dict[str, dict] = {}
        self.tags: list[dict] = []
        self.problems: list[str] = []
        self._channel_keys, self._operation_keys = _Keys(), _Keys()
        self._broadcast_keys: dict[str, str] = {}
        self._message_keys: dict[str, _Keys] = {}

    # -- what the registry says ------------------------------------------------------------

    def service(self, info: dict) -> None:
        name = info.get("name")
        if not isinstance(name, str) or not name:
            self.problems.append(f"a registry record without a usable name ({name!r:.60}): left out")
            return
        # What the registry's reader left out of a malformed record, then what is left here.
        said = [f"service {name!r}: {p}: left out" for p in info.get("problems") or () if isinstance(p, str)]
        actions = [a for a in self._names(info, "actions", name, said) if self.action_allowed(name, a)]
        channels = [c for c in self._names(info, "channels", name, said) if self.channel_allowed(c)]
        if not actions and not channels:
            if not self.filtered:
                self.problems += said
            return  # a service left out by the filters: its problems too (a gateway hides its names)
        self.problems += said
        action_specs, channel_specs = self._schemas(info, name)
        mode = info.get(registry.MODE)
        instances = info.get("instances")
        count = len(instances) if isinstance(instances, list) else 0
        self.tags.append({"name": name, "description": f"{mode} service, version {info.get('version')}, "
                                                      f"{count} live instance(s)"})
        if actions:
            self._requests(name, mode == registry.GROUP, actions, action_specs)
        for channel in channels:
            self._listener(name, channel, channel_specs.get(channel))

    @staticmethod
    def _names(info: dict, field: str, service: str, said: list[str]) -> list[str]:
        value = info.get(field) or []
        if not isinstance(value, list):
            said.append(f"service {service!r}: its {field} are not a list (got {type(value).__name__}): left out")
            return []
        names = [v for v in value if isinstance(v, str) and v]
        if len(names) < len(value):
            said.append(f"service {service!r}: {len(value) - len(names)} of its {field} are not names: left out")
        return sorted(set(names))

    def _schemas(self, info: dict, service: str) -> tuple[dict, dict]:
        raw = info.get("schemas") or {}
        if not isinstance(raw, dict):
            self.problems.append(f"service {service!r}: its schemas are not an object: not used")
            return {}, {}
        found = []
        for part in ("actions", "channels"):
            value = raw.get(part, {})
            if not isinstance(value, dict):
                self.problems.append(f"service {service!r}: the schemas of its {part} are not an object: not used")
                value = {}
            found.append(value)
        return found[0], found[1]

    def _schema(self, schema, what: str):
        """A usable schema, or None (no schema, or a bad one, said)."""
        if schema is None:
            return None
        good, why = schemaembed.checked(schema, what)
        if why is not None:
            self.problems.append(f"{why}; the document leaves it open")
        return good

    # -- channels, messages, operations ----------------------------------------------------

    def _channel(self, name: str, key: str, **fields) -> dict:
        channel = {**_address(name), **fields, "messages": {}}
        self.channels[key] = channel
        self._message_keys[key] = _Keys()
        return channel

    def _message(self, channel_key: str, name: str, message: dict) -> str:
        key = self._message_keys[channel_key].take(name)
        self.channels[channel_key]["messages"][key] = message
        return key

    def _requests(self, service: str, group: bool, actions: list[str], specs: dict) -> None:
        key = self._channel_keys.take(service)
        if group:
            self._channel(stream_key(service), key, title=f"{service} requests", description=(
                f"A group's requests: callers XADD the envelope as the field `request` of the stream (consumer "
                f"group `daebus`); a 0.0.x caller's PUBLISH on the channel {service!r} is bridged into it."))
        else:
            self._channel(service, key, title=f"{service} requests",
                          description="Requests are PUBLISHed on the channel named as the service.")
        replies = self._channel_keys.take(f"{service}.replies")
        self._channel(None, replies, title=f"{service} replies",
                      description="Each request's own reply channel, named by its reply_to.")
        progress = self._message(replies, "progress", _ref("components", "messages", "progress"))
        error = self._message(replies, "error", _ref("components", "messages", "error"))
        for action in actions:
            spec = specs.get(action)
            if spec is not None and not isinstance(spec, dict):
                self.problems.append(f"service {service!r} action {action!r}: its schemas are not an "
                                     "object; the document leaves them open")
                spec = None
            spec = spec or {}
            what = f"service {service!r} action {action!r}"
            payload = self._schema(spec.get("payload"), what)
            result = self._schema(spec.get("reply"), f"{what} (reply schema)")
            asked = self._request_message(key, service, action, payload)
            answered = self._result_message(replies, service, action, result)
            operation = {
                "action": "receive", "channel": _ref("channels", key),
                "title": f"{service}/{action}", "summary": f"{service} answers {action}",
                "messages": [_ref("channels", key, "messages", asked)],
                "tags": [{"name": service}],
                "reply": {"address": {"location": _REPLY_TO, "description": "the request's reply_to"},
                          "channel": _ref("channels", replies),
                          "messages": [_ref("channels", replies, "messages", m)
                                       for m in (answered, progress, error)]},
            }
            self.operations[self._operation_keys.take(f"{service}.{action}")] = operation

    def _request_message(self, channel: str, service: str, action: str, schema) -> str:
        key = self._message_keys[channel].take(action)
        if schema is None:
            payload = {"allOf": [_ref("components", "schemas", "request")],
                       "properties": {"action": {"enum": [action]}}}
        else:
            envelope = wireschema.request_schema()
            envelope["properties"]["action"] = {**envelope["properties"]["action"], "enum": [action]}
            payload = schemaembed.enveloped(envelope, "payload", schema, ("channels", channel, "messages", key,
                                                                          "payload"))
        self.channels[channel]["messages"][key] = {
            "name": action, "title": f"{service}/{action} request", "contentType": CONTENT_TYPE,
            "correlationId": _CORRELATION, "payload": payload}
        return key

    def _result_message(self, channel: str, service: str, action: str, schema) -> str:
        key = self._message_keys[channel].take(f"{action}.result")
        if schema is None:
            payload = {"allOf": [_ref("components", "schemas", "reply")], "properties": _SUCCESS}
        else:
            envelope = wireschema.reply_schema()
            envelope["properties"].update(_SUCCESS)
            payload = schemaembed.enveloped(envelope, "payload", schema, ("channels", channel, "messages", key,
                                                                          "payload"))
        self.channels[channel]["messages"][key] = {
            "name": f"{action}.result", "title": f"{service}/{action} result", "contentType": CONTENT_TYPE,
            "correlationId": _CORRELATION, "payload": payload}
        return key

    def _listener(self, service: str, channel: str, schema) -> None:
        key = self._broadcast_keys.get(channel)
        if key is None:
            key = self._broadcast_keys[channel] = self._channel_keys.take(channel)
            self._channel(channel, key, title=channel,
                          description="Broadcasts: the bare JSON payload, PUBLISHed on the channel.")
        schema = self._schema(schema, f"service {service!r} listener on {channel!r}")
        message = self._message_keys[key].take(service)
        if schema is None:
            payload: dict = {"description": "any JSON value"}
        else:
            where = schemaembed.pointer("channels", key, "messages", message, "payload", "schema")
            payload = schemaembed.multi_format(schema, schemaembed.placed(schema, where))
        self.channels[key]["messages"][message] = {
            "name": channel, "title": f"{channel} as {service} reads it", "contentType": CONTENT_TYPE,
            "payload": payload}
        self.operations[self._operation_keys.take(f"{service}.on.{channel}")] = {
            "action": "receive", "channel": _ref("channels", key),
            "title": f"{service} listens to {channel}", "tags": [{"name": service}],
            "messages": [_ref("channels", key, "messages", message)]}

    # -- the whole -------------------------------------------------------------------------

    def finish(self, title: str, description: str | None, servers: dict | None) -> dict:
        info = {"title": title, "version": daebus_version,
                "description": description or "The live services of a Daebus bus, from its registry.",
                "x-daebus-wire-format": WIRE_FORMAT}
        if self.tags:
            info["tags"] = self.tags
        if self.problems:
            info[PROBLEMS] = self.problems
        doc = {"asyncapi": ASYNCAPI_VERSION, "info": info, "defaultContentType": CONTENT_TYPE}
        if servers:
            doc["servers"] = servers
        doc.update(channels=self.channels, operations=self.operations, components=_components())
        return copy.deepcopy(doc)  # parts are shared while building: the caller gets its own


def _components() -> dict:
    reply = {"allOf": [_ref("components", "schemas", "reply")]}
    return {
        "schemas": {"request": wireschema.request_schema(), "reply": wireschema.reply_schema(),
                    "error": wireschema.error_payload_schema()},
        "messages": {
            "progress": {"name": "progress", "title": "progress", "contentType": CONTENT_TYPE,
                         "summary": "a progress update (response.progress): the data, with "
                                    "progress_percentage (0-100) when the handler gave one",
                         "correlationId": _CORRELATION,
                         "payload": {**reply, "required": ["final"], "properties": {
                             "status": {"enum": [protocol.SUCCESS]}, "final": {"enum": [False]}}}},
            "error": {"name": "error", "title": "error", "contentType": CONTENT_TYPE,
                      "summary": "the final error reply",
                      "correlationId": _CORRELATION,
                      "payload": {**reply, "required": ["payload"],
                                  "properties": {"status": {"enum": [protocol.ERROR]},
                                                 "payload": _ref("components", "schemas", "error")}}},
        },
    }
