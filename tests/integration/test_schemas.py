"""Payload contracts in a running service: callers get every violation's
path, listeners never see a payload that breaks their schema."""

import json

import pytest
import redis

from daebus import DaebusCaller, RemoteError, list_services


@pytest.fixture
def contracts(service):
    return service("contracts.py")


def test_invalid_payloads_get_every_path(contracts, redis_url):
    with DaebusCaller("contracts", redis_url=redis_url) as caller:
        assert caller.send_request("set_alarm", {"hour": 6}) == {"hour": 6}
        with pytest.raises(RemoteError) as caught:
            caller.send_request("set_alarm", {"hour": 24, "days": ["mon", "sun"], "snooze": True})
    error = caught.value
    assert error.code == "bad_request"
    assert [d["path"] for d in error.details] == ["$", "$.hour", "$.days[1]"]
    assert error.payload["details"] == error.details
    for path in ("$.hour", "$.days[1]", "'snooze'"):
        assert path in str(error)


def test_invalid_broadcasts_are_dropped_and_logged_once(contracts, redis_url):
    client = redis.Redis.from_url(redis_url)
    seen = client.pubsub(ignore_subscribe_messages=True)
    seen.subscribe("alarms.seen")
    seen.get_message(timeout=5)  # the subscribe confirmation
    for _ in range(3):
        client.publish("alarms", json.dumps({"name": "no id"}))
    client.publish("alarms", json.dumps({"id": 1}))
    client.publish("alarms", json.dumps({"id": 2}))
    got = []
    while len(got) < 2:
        message = seen.get_message(timeout=10)
        assert message is not None, f"listener answers missing; log:\n{contracts.log}"
        got.append(json.loads(message["data"])["id"])
    assert sorted(got) == [1, 2]  # nothing from the invalid ones
    seen.close()
    contracts.stop()
    log = contracts.log
    assert log.count("does not match the schema") == 1, log
    assert "$: 'id' is a required property" in log
    assert "Traceback" not in log


def test_the_registry_publishes_the_schemas(contracts, redis_url):
    [info] = [s for s in list_services(redis.Redis.from_url(redis_url)) if s["name"] == "contracts"]
    assert info["schemas"]["actions"]["set_alarm"]["payload"]["required"] == ["hour"]
    assert info["schemas"]["actions"]["set_alarm"]["reply"] == {"type": "object", "required": ["hour"]}
    assert info["schemas"]["channels"] == {"alarms": {"type": "object", "required": ["id"]}}
