"""Payload contracts: declaration checks, the service's checks before the
handler, listeners, reply schemas under test, and what the registry carries."""

import logging
import subprocess
import sys

import fakeredis
import pytest

from daebus import BadRequest, Blueprint, Daebus, RemoteError, request
from daebus.bus import registry
from daebus.app.schemas import MAX_PROBLEMS, Contract, SchemaDeclarationError, json_path, published
from daebus.testing import TestClient

ALARM = {
    "type": "object",
    "required": ["hour", "label"],
    "properties": {
        "hour": {"type": "integer", "minimum": 0, "maximum": 23},
        "label": {"type": "string", "maxLength": 10},
        "days": {"type": "array", "items": {"enum": ["mon", "tue", "wed"]}},
    },
    "additionalProperties": False,
}


def make_app():
    app = Daebus("contracts")
    seen = []

    @app.action("set_alarm", schema=ALARM, reply_schema={"type": "object", "required": ["id"]})
    def set_alarm():
        seen.append(request.payload)
        return {"id": 7} if request.payload["label"] != "broken" else {"oops": True}

    @app.listen("alarms", schema={"type": "object", "required": ["id"]})
    def on_alarm(payload):
        seen.append(payload)

    return app, seen


def test_json_paths():
    assert json_path([]) == "$"
    assert json_path(["items", 2, "name"]) == "$.items[2].name"
    assert json_path(["a b", "x.y"]) == '$["a b"]["x.y"]'


def test_a_valid_payload_reaches_the_handler():
    app, seen = make_app()
    with TestClient(app) as client:
        assert client.call("set_alarm", {"hour": 7, "label": "wake"}) == {"id": 7}
    assert seen == [{"hour": 7, "label": "wake"}]


def test_every_violation_is_named_with_its_path_and_the_handler_never_runs():
    app, seen = make_app()
    with TestClient(app) as client:
        reply = client.request("set_alarm", {"hour": 25, "days": ["mon", "sun"], "extra": 1})
    assert not reply.ok and seen == []
    assert reply.payload["code"] == "bad_request"
    details = reply.payload["details"]
    paths = [d["path"] for d in details]
    assert set(paths) == {"$", "$.hour", "$.days[1]"}
    messages = " ".join(d["message"] for d in details)
    assert "'label' is a required property" in messages
    assert "25 is greater than the maximum of 23" in messages
    assert "'extra'" in messages  # additionalProperties names the stray key
    # The message names them too, for callers that only print the message.
    for path in ("$.hour", "$.days[1]"):
        assert path in reply.payload["error"]


def test_the_remote_error_carries_the_details():
    app, _ = make_app()
    with TestClient(app) as client, pytest.raises(RemoteError) as caught:
        client.call("set_alarm", {"hour": "seven", "label": "x"})
    assert caught.value.code == "bad_request"
    assert caught.value.details == [{"path": "$.hour", "message": "'seven' is not of type 'integer'"}]


def test_a_flood_of_violations_is_capped():
    app = Daebus("many")

    @app.action("many", schema={"type": "array", "items": {"type": "integer"}})
    def many():
        return None

    with TestClient(app) as client:
        reply = client.request("many", ["x"] * 500)
    assert len(reply.payload["details"]) == MAX_PROBLEMS + 1
    assert reply.payload["details"][-1]["message"] == f"and {500 - MAX_PROBLEMS} more problem(s)"


def test_a_non_object_payload_is_checked_too():
    app, _ = make_app()
    with TestClient(app) as client:
        reply = client.request("set_alarm", [1, 2])
    assert reply.payload["details"] == [{"path": "$", "message": "[1, 2] is not of type 'object'"}]


def test_a_handler_can_raise_bad_request_with_details():
    app = Daebus("own")

    @app.action("own")
    def own():
        raise BadRequest("no", details=[{"path": "$.x", "message": "taken"}])

    with TestClient(app) as client:
        assert client.request("own").payload == {"error": "no", "code": "bad_request",
                                                 "details": [{"path": "$.x", "message": "taken"}]}


def test_errors_without_details_keep_the_old_payload():
    app = Daebus("old")

    @app.action("boom")
    def boom():
        raise ValueError("bad")

    with TestClient(app) as client:
        assert client.request("boom").payload == {"error": "bad", "code": "handler_error"}


def test_invalid_listener_payloads_are_logged_once_and_dropped(caplog):
    app, seen = make_app()
    with TestClient(app) as client, caplog.at_level(logging.WARNING, logger="daebus"):
        for _ in range(5):
            client.publish("alarms", {"name": "no id"})
        client.publish("alarms", {"id": 1})
    assert seen == [{"id": 1}]
    drops = [r for r in caplog.records if "does not match the schema" in r.getMessage()]
    assert len(drops) == 1
    assert "$: 'id' is a required property" in drops[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


def test_a_reply_against_the_reply_schema_fails_the_test():
    app, _ = make_app()
    with TestClient(app) as client, pytest.raises(AssertionError, match="reply_schema"):
        client.call("set_alarm", {"hour": 1, "label": "broken"})


@pytest.mark.parametrize("schema, where", [
    ({"type": "strnig"}, "$.type"),
    ({"properties": {"a": {"minimum": "zero"}}}, "$.properties.a.minimum"),
    ({"required": "name"}, "$.required"),
])
def test_invalid_schemas_are_refused_at_declaration(schema, where):
    app = Daebus("bad")
    with pytest.raises(SchemaDeclarationError) as caught:
        @app.action("x", schema=schema)
        def x():
            pass
    assert "action 'x'" in str(caught.value) and where in str(caught.value)
    assert "x" not in app.actions


def test_only_local_references_are_followed():
    local = Contract.compile({"$defs": {"h": {"type": "integer"}}, "properties": {"h": {"$ref": "#/$defs/h"}}}, "x")
    assert local.problems({"h": "x"}) == [{"path": "$.h", "message": "'x' is not of type 'integer'"}]
    with pytest.raises(SchemaDeclarationError, match=r'only local references .* at \$\.properties\.h\["\$ref"\]'):
        Contract.compile({"properties": {"h": {"$ref": "http://127.0.0.1:9/h.json"}}}, "x")


def test_schemas_that_are_not_json_are_refused():
    with pytest.raises(SchemaDeclarationError, match="must be a dict"):
        Daebus("bad").listen("c", schema="{}")
    with pytest.raises(SchemaDeclarationError, match="not JSON"):
        Daebus("bad").action("x", schema={"enum": [object()]})


def test_blueprint_contracts_are_registered():
    bp = Blueprint("alarms")

    @bp.action("set", schema={"type": "object"})
    def set_():
        return None

    app = Daebus("with_bp")
    app.register_blueprint(bp)
    assert app.contracts["set"].schema == {"type": "object"}


def test_the_registry_carries_the_schemas():
    app, _ = make_app()
    client = fakeredis.FakeRedis(decode_responses=True)
    registry.publish(client, registry.record("contracts", actions=app.actions, channels=app.listeners,
                                             version="1", started_at=1.0, status="running",
                                             schemas=published(app)), 10)
    [info] = registry.list_services(client)
    assert info["schemas"]["actions"]["set_alarm"] == {"payload": ALARM,
                                                       "reply": {"type": "object", "required": ["id"]}}
    assert info["schemas"]["channels"] == {"alarms": {"type": "object", "required": ["id"]}}


def test_services_without_schemas_publish_no_field_and_list_an_empty_one():
    client = fakeredis.FakeRedis(decode_responses=True)
    registry.publish(client, registry.record("plain", actions=["a"], channels=[], version="1",
                                             started_at=1.0, status="running", schemas={}), 10)
    assert "schemas" not in client.hgetall(registry.key("plain"))
    assert registry.list_services(client)[0]["schemas"] == {}


def test_draft_7_schemas_keep_their_dialect():
    contract = Contract.compile({"$schema": "http://json-schema.org/draft-07/schema#",
                                 "items": [{"type": "integer"}]}, "x")
    assert contract.problems(["a"]) == [{"path": "$[0]", "message": "'a' is not of type 'integer'"}]


def test_jsonschema_is_imported_only_when_a_schema_is_declared():
    code = ("import sys; from daebus import Daebus; app = Daebus('x'); app.action('a')(lambda: 1); "
            "assert 'jsonschema' not in sys.modules; app.action('b', schema={'type': 'object'})(lambda: 1); "
            "assert 'jsonschema' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
