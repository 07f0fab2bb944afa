"""The AsyncAPI 3.0 document of the bus, from registry records: valid
(the official JSON Schema of AsyncAPI 3.0.0, tests/asyncapi_check.py), its
messages the real envelopes of wire format v1, and still valid when the
registry holds garbage."""

from __future__ import annotations

import jsonschema
import pytest

from asyncapi_check import payload_validator, problems as invalid
from daebus.app import schemaembed
from daebus.app.asyncapi import document, problems
from daebus.bus import protocol, wireschema
from daebus.bus.keys import stream_key

ITEM = {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}}
ORDER = {"type": "object", "required": ["items"],
         "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
                        "note": {"const": {"$ref": "#/$defs/item"}}},
         "$defs": {"item": ITEM}}
DRAFT7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
          "properties": {"level": {"type": "integer", "exclusiveMinimum": 0}}}


def record(name, actions=(), channels=(), schemas=None, mode="owner", **extra) -> dict:
    info = {"name": name, "mode": mode, "version": "1.2", "instances": [{"host": "box"}],
            "actions": list(actions), "channels": list(channels), "schemas": schemas or {}}
    info.update(extra)
    return info


SHOP = record("shop", ["order", "ping", "alarm"], ["stock.changed"], {
    "actions": {"order": {"payload": ORDER, "reply": {"type": "object", "required": ["id"]}},
                "alarm": {"payload": DRAFT7, "reply": None}},
    "channels": {"stock.changed": {"type": "object", "required": ["sku"]}}})
WORKERS = record("workers", ["resize"], [], {"actions": {"resize": {"payload": True}}}, mode="group")
DISPLAY = record("display", ["get_state"], ["stock.changed"])


def request(action, payload, **kwargs) -> dict:
    return protocol.request_envelope(action, payload, "caller:u:1", "r1", "shop", 5000, 1.5, **kwargs)


def test_the_envelope_schemas_say_what_the_protocol_reads_and_writes():
    for cls in (jsonschema.Draft4Validator, jsonschema.Draft7Validator, jsonschema.Draft202012Validator):
        asked, answered = cls(wireschema.request_schema()), cls(wireschema.reply_schema())
        error = cls(wireschema.error_payload_schema())
        assert asked.is_valid(request("ping", {}, trace_id="t-1"))
        assert asked.is_valid(protocol.request_envelope("ping", None, "caller:u:1", 7, "shop", None))
        assert asked.is_valid({"action": "ping", "x": 1})  # 0.0.x's send_to_service
        for refused in ({}, {"action": ""}, {"action": "a", "reply_to": ""}, {"action": "a", "timeout_ms": 0},
                        {"action": "a", "request_id": True}, {"action": "a", "timeout_ms": -5}):
            with pytest.raises(protocol.ProtocolError):
                protocol.parse_request(refused)
            assert not asked.is_valid(refused), refused
        assert answered.is_valid(protocol.reply_envelope("r1", protocol.SUCCESS, {"x": 1}, final=False))
        assert not answered.is_valid({"status": "ok", "request_id": "r1"})
        assert error.is_valid(protocol.error_payload("bad", "bad_request", [{"path": "$.x", "message": "m"}]))


def test_the_document_of_services_with_contracts_is_valid_asyncapi_3():
    doc = document([SHOP, WORKERS, DISPLAY])
    assert invalid(doc) == []
    assert problems(doc) == []
    assert doc["asyncapi"] == "3.0.0" and doc["info"]["x-daebus-wire-format"] == 1
    assert sorted(doc["operations"]) == ["display.get_state", "display.on.stock.changed", "shop.alarm",
                                         "shop.on.stock.changed", "shop.order", "shop.ping", "workers.resize"]
    order = doc["operations"]["shop.order"]
    assert order["action"] == "receive" and order["channel"] == {"$ref": "#/channels/shop"}
    assert order["reply"]["address"]["location"] == "$message.payload#/reply_to"
    assert [m["$ref"] for m in order["reply"]["messages"]] == [
        "#/channels/shop.replies/messages/order.result", "#/channels/shop.replies/messages/progress",
        "#/channels/shop.replies/messages/error"]
    assert doc["channels"]["shop"]["address"] == "shop"
    assert doc["channels"]["workers"]["address"] == stream_key("workers")
    assert doc["channels"]["shop.replies"]["address"] is None
    # Two services read the same channel, each with its own contract.
    assert sorted(doc["channels"]["stock.changed"]["messages"]) == ["display", "shop"]


def test_a_request_message_is_the_envelope_with_the_actions_schema_and_its_references_work():
    doc = document([SHOP])
    message = doc["channels"]["shop"]["messages"]["order"]
    assert message["payload"]["schemaFormat"] == "application/schema+json;version=draft-2020-12"
    check = payload_validator(doc, "/channels/shop/messages/order/payload")
    assert check.is_valid(request("order", {"items": [{"sku": "a-1"}]}))
    # "#/$defs/item" now points where the item schema went: a wrong item is caught through it.
    assert [e.message for e in check.iter_errors(request("order", {"items": [{"sku": 3}]}))] == \
        ["3 is not of type 'string'"]
    assert not check.is_valid(request("ping", {"items": []}))
    # A "$ref" inside a constant is data, left as it was.
    assert message["payload"]["schema"]["properties"]["payload"]["properties"]["note"] == ORDER["properties"]["note"]
    result = payload_validator(doc, "/channels/shop.replies/messages/order.result/payload")
    assert result.is_valid(protocol.reply_envelope("r1", protocol.SUCCESS, {"id": 9}))
    assert not result.is_valid(protocol.reply_envelope("r1", protocol.SUCCESS, {}))
    error = payload_validator(doc, "/components/messages/error/payload")
    assert error.is_valid(protocol.reply_envelope("r1", protocol.ERROR, protocol.error_payload("no", "busy")))
    progress = payload_validator(doc, "/components/messages/progress/payload")
    assert progress.is_valid(protocol.reply_envelope("r1", protocol.SUCCESS, {"progress_percentage": 5}, False))
    assert not progress.is_valid(protocol.reply_envelope("r1", protocol.SUCCESS, {}))


def test_a_schema_that_names_its_dialect_is_written_in_it():
    doc = document([SHOP])
    payload = doc["channels"]["shop"]["messages"]["alarm"]["payload"]
    assert payload["schemaFormat"] == "application/schema+json;version=draft-07"
    assert payload["schema"]["$schema"] == DRAFT7["$schema"]  # at the root, not inside the envelope
    assert "$schema" not in payload["schema"]["properties"]["payload"]
    # Without a schema, a message is an AsyncAPI schema over the shared envelope.
    ping = doc["channels"]["shop"]["messages"]["ping"]["payload"]
    assert ping == {"allOf": [{"$ref": "#/components/schemas/request"}], "properties": {"action": {"enum": ["ping"]}}}


def test_names_become_safe_distinct_keys_and_stay_the_addresses():
    odd = [record("a b", ["x/y", "x_y"]), record("a_b", ["go"], ["room {1}"]), record("ünï", ["ö"])]
    doc = document(odd)
    assert invalid(doc) == []
    assert doc["channels"]["a_b"]["address"] == "a b"
    assert doc["channels"]["a_b-2"]["address"] == "a_b"
    assert sorted(doc["channels"]["a_b"]["messages"]) == ["x_y", "x_y-2"]
    # Braces would be read as an address parameter.
    [braced] = [c for c in doc["channels"].values() if c.get("x-daebus-address") == "room {1}"]
    assert braced["address"] is None
    assert doc["channels"]["_n_"]["address"] == "ünï"


def test_only_what_the_filters_allow_is_described():
    doc = document([SHOP, WORKERS, DISPLAY], action_allowed=lambda s, a: (s, a) == ("shop", "order"),
                   channel_allowed=lambda c: False)
    assert invalid(doc) == []
    assert list(doc["operations"]) == ["shop.order"]
    assert sorted(doc["channels"]) == ["shop", "shop.replies"]
    assert [t["name"] for t in doc["info"]["tags"]] == ["shop"]
    assert "workers" not in str(doc) and "stock.changed" not in str(doc)


GARBAGE = [
    {"name": None, "actions": ["x"]},
    {"name": 7},
    record("g1", channels=[]) | {"actions": {"a": 1}, "channels": "nope"},
    record("g2", ["ok", 5, None, ""]) | {"schemas": "garbage"},
    record("g3", ["bad", "remote", "costly", "notobj", "weird", "fine"], ["c"], {
        "actions": {"bad": {"payload": {"type": "nope"}}, "remote": {"payload": {"$ref": "http://evil.example/x"}},
                    "costly": {"payload": {"type": "string", "pattern": "^(a+)+$"}}, "notobj": 7,
                    "weird": {"payload": 5, "reply": {"minimum": "x"}}, "fine": {"payload": ITEM}},
        "channels": {"c": {"type": 12}}}),
    record("g4", ["a"], [], {"actions": [], "channels": "x"}),
]


def test_a_registry_of_garbage_still_gives_a_valid_document_that_says_what_it_left_out():
    doc = document(GARBAGE)
    assert invalid(doc) == []
    said = problems(doc)
    assert said == [
        "a registry record without a usable name (7): left out",
        "a registry record without a usable name (None): left out",
        "service 'g1': its actions are not a list (got dict): left out",
        "service 'g1': its channels are not a list (got str): left out",
        "service 'g2': 3 of its actions are not names: left out",
        "service 'g2': its schemas are not an object: not used",
        "service 'g3' action 'bad': invalid JSON Schema at $.type: 'nope' is not valid under any of the given "
        "schemas; the document leaves it open",
        "service 'g3' action 'costly': refused at $.pattern: the pattern '^(a+)+$' can backtrack without end "
        "(see the payload schema rules in the README); the document leaves it open",
        "service 'g3' action 'notobj': its schemas are not an object; the document leaves them open",
        "service 'g3' action 'remote': only local references (\"#/...\") are supported, got "
        "'http://evil.example/x' at $[\"$ref\"]; the document leaves it open",
        "service 'g3' action 'weird': a JSON Schema must be a dict (or a bool), got int; the document leaves it open",
        "service 'g3' action 'weird' (reply schema): invalid JSON Schema at $.minimum: 'x' is not of type "
        "'number'; the document leaves it open",
        "service 'g3' listener on 'c': invalid JSON Schema at $.type: 12 is not valid under any of the given "
        "schemas; the document leaves it open",
        "service 'g4': the schemas of its actions are not an object: not used",
        "service 'g4': the schemas of its channels are not an object: not used",
    ]
    # What could be used is there; what could not is left open, not dropped.
    assert sorted(doc["operations"]) == ["g2.ok", "g3.bad", "g3.costly", "g3.fine", "g3.notobj", "g3.on.c",
                                         "g3.remote", "g3.weird", "g4.a"]
    assert doc["channels"]["g3"]["messages"]["fine"]["payload"]["schemaFormat"].endswith("draft-2020-12")
    assert "schemaFormat" not in doc["channels"]["g3"]["messages"]["bad"]["payload"]
    assert "evil.example" not in str(doc["channels"]) and "(a+)+" not in str(doc["channels"])


def test_placing_a_schema_rewrites_only_its_own_pointer_references():
    schema = {"$id": "urn:x", "$schema": "https://json-schema.org/draft/2020-12/schema",
              "properties": {"$ref": {"$ref": "#"}, "a": {"$ref": "#/$defs/a"}, "b": {"$ref": "#anchor"},
                             "c": {"$id": "urn:inner", "$ref": "#/$defs/own"}, "d": {"enum": [{"$ref": "#/x"}]}},
              "$defs": {"a": {"$anchor": "anchor"}}}
    placed = schemaembed.placed(schema, schemaembed.pointer("channels", "a/b", "x~y"))
    assert "$id" not in placed and "$schema" not in placed
    props = placed["properties"]
    assert props["$ref"] == {"$ref": "#/channels/a~1b/x~0y"}
    assert props["a"] == {"$ref": "#/channels/a~1b/x~0y/$defs/a"}
    assert props["b"] == {"$ref": "#anchor"}                        # an anchor is found wherever it is
    assert props["c"] == schema["properties"]["c"]                  # a resource of its own: its "#" is itself
    assert props["d"] == schema["properties"]["d"]                  # data
    assert schema["properties"]["a"] == {"$ref": "#/$defs/a"}       # the original is untouched


@pytest.mark.parametrize("spoil, said", [
    (lambda d: d["operations"]["shop.order"].update(action="call"), "'call' is not one of ['send', 'receive']"),
    (lambda d: d["channels"]["shop"].update(topic="shop"), "'topic' does not match any of the regexes"),
    (lambda d: d["info"].pop("version"), "'version' is a required property"),
    (lambda d: d["operations"]["shop.ping"]["channel"].update({"$ref": "#/channels/nowhere"}), "points nowhere"),
    (lambda d: d["operations"]["shop.ping"]["messages"][0].update({"$ref": "#/channels/shop.replies/messages/error"}),
     "is not of #/channels/shop"),
    (lambda d: d["channels"]["shop"]["messages"]["order"]["payload"]["schema"].update(type="objet"),
     "not valid draft-2020-12"),
])
def test_the_check_can_fail(spoil, said):
    doc = document([SHOP])
    spoil(doc)
    found = invalid(doc)
    assert any(said in problem for problem in found), found
