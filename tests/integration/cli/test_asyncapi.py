"""daebus asyncapi against real services on a real redis-server: the kiosk
demo's document is valid AsyncAPI 3.0, schemas go in it, and a registry
holding garbage still gives a valid document and says what it left out."""

from __future__ import annotations

import json
import sys

import pytest

from asyncapi_check import payload_validator, problems
from daebus.bus import protocol, registry
from daebus.cli import Exit
from support import ManagedProcess, Service, child_env

DEMO = {"sensors": ["get_history", "get_readings"], "display": ["get_state", "set_auto", "set_brightness"],
        "system": ["get_status", "run_diagnostics"]}


@pytest.fixture
def kiosk_demo(fresh_redis):
    """The kiosk demo's three workers, each as ``python kiosk_demo/<name>.py`` runs it."""
    env = child_env(fresh_redis.url, {"KIOSK_DISPLAY_BACKLIGHT": "/nonexistent/backlight"})
    workers = []
    try:
        for name in DEMO:
            workers.append(ManagedProcess([sys.executable, f"kiosk_demo/{name}.py"], env, name=name))
        for worker in workers:
            worker.wait_ready(30)
        yield fresh_redis
    finally:
        for worker in workers:
            worker.close()


def test_the_kiosk_demos_document_is_valid_and_names_every_action_and_channel(daebus, kiosk_demo):
    out = daebus("asyncapi", url=kiosk_demo.url)
    assert out.returncode == Exit.OK, out.stderr
    assert out.stderr == ""
    doc = json.loads(out.stdout)
    assert problems(doc) == []
    expected = {f"{service}.{action}" for service, actions in DEMO.items() for action in actions}
    assert set(doc["operations"]) == expected | {"display.on.sensors.readings"}
    assert doc["servers"]["bus"] == {"host": f"127.0.0.1:{kiosk_demo.port}", "pathname": "/0",
                                     "protocol": "redis", "description": "Redis"}
    # What a DaebusCaller sends is what the document says a request is.
    check = payload_validator(doc, "/channels/display/messages/set_brightness/payload")
    assert check.is_valid(protocol.request_envelope("set_brightness", {"brightness": 50}, "caller:x:1", "1",
                                                    "display", 5000, 1.0))
    assert not check.is_valid(protocol.request_envelope("get_state", {}, "caller:x:1", "1", "display", 5000))
    one = json.loads(daebus("asyncapi", "--service", "display", url=kiosk_demo.url).stdout)
    assert problems(one) == []
    assert sorted(one["operations"]) == ["display.get_state", "display.on.sensors.readings",
                                         "display.set_auto", "display.set_brightness"]
    missing = daebus("asyncapi", "--service", "nope", url=kiosk_demo.url)
    assert missing.returncode == Exit.UNAVAILABLE
    assert missing.stderr == "daebus: no live service named 'nope' (see daebus services)\n"


def test_declared_schemas_are_in_the_document(daebus, fresh_redis):
    svc = Service("contracts.py", fresh_redis.url, "alarm-clock")
    try:
        doc = json.loads(daebus("asyncapi", url=fresh_redis.url).stdout)
    finally:
        svc.close()
    assert problems(doc) == []
    check = payload_validator(doc, "/channels/alarm-clock/messages/set_alarm/payload")
    assert check.is_valid(protocol.request_envelope("set_alarm", {"hour": 7}, "caller:x:1", "1", "alarm-clock", 1))
    assert not check.is_valid(protocol.request_envelope("set_alarm", {"hour": 25}, "caller:x:1", "1",
                                                        "alarm-clock", 1))
    alarms = doc["channels"]["alarms"]["messages"]["alarm-clock"]["payload"]
    assert alarms["schema"] == {"type": "object", "required": ["id"]}


def test_garbage_in_the_registry_still_gives_a_valid_document_and_says_so(daebus, fresh_redis):
    client = fresh_redis.client()
    # Records no daebus wrote: no token, so they count as live until their TTL.
    client.hset(registry.key("garbled"), mapping={"name": "garbled", "actions": "{not json",
                                                  "channels": '{"a": 1}', "schemas": "[1, 2"})
    client.hset(registry.key("lying"), mapping={
        "name": "lying", "actions": '["set", 3, "plain"]', "channels": '["news"]',
        "schemas": json.dumps({"actions": {"set": {"payload": {"type": "integer", "minimum": "zero"}},
                                           "plain": {"payload": {"$ref": "file:///etc/passwd"}}},
                               "channels": {"news": {"required": "all"}}})})
    out = daebus("asyncapi", url=fresh_redis.url)
    assert out.returncode == Exit.OK
    doc = json.loads(out.stdout)
    assert problems(doc) == []
    assert sorted(doc["operations"]) == ["lying.on.news", "lying.plain", "lying.set"]
    assert out.stderr.splitlines() == [
        "daebus: asyncapi: service 'garbled': its actions are not JSON: left out",
        "daebus: asyncapi: service 'garbled': its channels are not a list (got dict): left out",
        "daebus: asyncapi: service 'lying': 1 of its actions are not names: left out",
        "daebus: asyncapi: service 'lying' action 'plain': only local references (\"#/...\") are supported, "
        "got 'file:///etc/passwd' at $[\"$ref\"]; the document leaves it open",
        "daebus: asyncapi: service 'lying' action 'set': invalid JSON Schema at $.minimum: 'zero' is not of "
        "type 'number'; the document leaves it open",
        "daebus: asyncapi: service 'lying' listener on 'news': invalid JSON Schema at $.required: 'all' is not "
        "of type 'array'; the document leaves it open",
    ]
    assert doc["info"]["x-daebus-problems"] == [line.split("asyncapi: ", 1)[1] for line in out.stderr.splitlines()]
