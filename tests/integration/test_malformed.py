"""Malformed messages on any channel are logged and dropped; service lives on."""

import json
import uuid

import pytest

from daebus import DaebusCaller


@pytest.fixture
def basic(service):
    return service("basic.py", "basic", env={"DAEBUS_LOG_LEVEL": "debug"})


GARBAGE = [
    b"not json at all",
    b"\xff\xfe\x00binary",
    b"[1, 2, 3]",
    b'"just a string"',
    b"null",
    b'{"payload": {}}',
    b'{"action": 42, "payload": {}}',
    b'{"action": "echo", "reply_to": 5, "request_id": [1]}',
    b'{"action": "echo", "payload": {}, "timeout_ms": "soon"}',
    b"{" * 10000,
]


def test_garbage_on_the_service_channel_is_dropped(redis_server, basic, redis_url):
    client = redis_server.client()
    for data in GARBAGE:
        client.publish("basic", data)
    client.publish("basic", b'{"action": "echo", "payload": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    with DaebusCaller("basic", redis_url=redis_url) as caller:
        assert caller.send_request("echo", {"still": "alive"})["echo"] == {"still": "alive"}
    assert basic.process.poll() is None
    assert basic.log.count("dropped malformed request") >= len(GARBAGE)
    assert "exceeds the 1048576 byte limit" in basic.log


def test_garbage_on_a_listen_channel_is_dropped(redis_server, basic, redis_url):
    client = redis_server.client()
    for data in GARBAGE[:5]:
        client.publish("test_events", data)
    client.delete("received")
    client.publish("test_events", json.dumps({"from": "after-garbage"}))
    with DaebusCaller("basic", redis_url=redis_url) as caller:
        caller.send_request("echo", {})
    assert basic.log.count("dropped malformed message on 'test_events'") == 5
    assert basic.process.poll() is None


def test_request_without_action_but_with_reply_to_gets_bad_request(redis_server, basic):
    client = redis_server.client()
    reply_to = f"caller:{uuid.uuid4()}"
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(reply_to)
    pubsub.get_message(timeout=5)
    client.publish("basic", json.dumps({"payload": {}, "reply_to": reply_to, "request_id": "r"}))
    reply = json.loads(pubsub.get_message(timeout=10)["data"])
    assert reply["status"] == "error"
    assert reply["payload"]["code"] == "bad_request"
    assert reply["request_id"] == "r"
