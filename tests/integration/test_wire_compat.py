"""Daebus 0.0.x peers: raw envelopes in, raw replies out."""

import json
import threading
import uuid

import pytest

from daebus import DaebusCaller


@pytest.fixture
def basic(service):
    return service("basic.py", "basic")


def _raw_call(client, service, message, count=1, timeout=10):
    """Publish like a 0.0.x caller: subscribe to its own reply channel first."""
    reply_to = f"caller:{uuid.uuid4()}"
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(reply_to)
    pubsub.get_message(timeout=5)  # subscribe confirmation
    message = {**message, "reply_to": reply_to}
    assert client.publish(service, json.dumps(message)) == 1
    replies = []
    while len(replies) < count:
        got = pubsub.get_message(timeout=timeout)
        assert got is not None, "no reply"
        replies.append(json.loads(got["data"]))
    pubsub.close()
    return replies


def test_old_request_envelope_gets_a_reply_with_the_old_fields(redis_server, basic):
    [reply] = _raw_call(redis_server.client(), "basic", {
        "action": "echo", "payload": {"x": 1}, "request_id": "r-1", "service": "basic"})
    assert set(reply) == {"status", "payload", "request_id", "final"}
    assert reply["status"] == "success" and reply["final"] is True
    assert reply["request_id"] == "r-1"
    assert reply["payload"]["echo"] == {"x": 1}


def test_old_envelope_with_string_payload_is_decoded(redis_server, basic):
    [reply] = _raw_call(redis_server.client(), "basic", {
        "action": "echo", "payload": json.dumps({"y": 2}), "request_id": "r-2", "service": "basic"})
    assert reply["payload"]["echo"] == {"y": 2}


def test_progress_is_success_not_final_then_final(redis_server, basic):
    replies = _raw_call(redis_server.client(), "basic", {
        "action": "progress", "payload": {}, "request_id": "r-3", "service": "basic"}, count=4)
    assert [r["final"] for r in replies] == [False, False, False, True]
    assert all(r["status"] == "success" for r in replies)


def test_error_reply_carries_error_and_code(redis_server, basic):
    [reply] = _raw_call(redis_server.client(), "basic", {
        "action": "missing", "payload": {}, "request_id": "r-4", "service": "basic"})
    assert reply["status"] == "error" and reply["final"] is True
    assert reply["payload"]["code"] == "action_not_found"
    assert "missing" in reply["payload"]["error"]


def test_our_caller_talks_to_an_old_style_service(redis_server, redis_url):
    """An 0.0.x service answers with status/payload/request_id/final only."""
    client = redis_server.client()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("legacy")
    pubsub.get_message(timeout=5)
    done = threading.Event()

    def serve():
        while not done.is_set():
            msg = pubsub.get_message(timeout=0.5)
            if msg is None:
                continue
            req = json.loads(msg["data"])
            assert req["service"] == "legacy" and req["action"] == "add"
            rid = req["request_id"]
            client.publish(req["reply_to"], json.dumps(
                {"status": "success", "payload": {"progress_percentage": 50}, "request_id": rid,
                 "final": False}))
            total = req["payload"]["a"] + req["payload"]["b"]
            client.publish(req["reply_to"], json.dumps(
                {"status": "success", "payload": {"sum": total}, "request_id": rid, "final": True}))

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        progress = []
        with DaebusCaller("legacy", redis_url=redis_url) as caller:
            assert caller.send_request("add", {"a": 2, "b": 3}, on_progress=progress.append) == {"sum": 5}
        assert progress == [{"progress_percentage": 50}]
    finally:
        done.set()
        server.join(5)
        pubsub.close()
