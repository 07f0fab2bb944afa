"""Garbage on the bus (nesting, NaN) gets a clean error; stale requests are skipped by their send time."""

import json
import threading
import time

import pytest

from daebus import DaebusCaller, MalformedReply
from daebus.bus import protocol

NESTED = b"[" * 100_000 + b"]" * 100_000


def reply_listener(client, channel):
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    assert pubsub.get_message(timeout=5) is None  # the confirmation
    return pubsub


def test_a_deeply_nested_request_is_answered_bad_request_in_one_log_line(service, redis_server):
    svc = service("basic.py", "basic")
    client = redis_server.client()
    replies = reply_listener(client, "caller:nested-test")
    before = svc.log.count("\n")
    client.publish("basic", b'{"action":"echo","payload":' + NESTED +
                   b',"reply_to":"caller:nested-test","request_id":"deep-1"}')
    message = replies.get_message(timeout=5)
    assert message is not None, "no reply"
    reply = json.loads(message["data"])
    assert reply["request_id"] == "deep-1" and reply["status"] == "error"
    assert reply["payload"]["code"] == "bad_request" and "nested too deeply" in reply["payload"]["error"]
    client.publish("basic", b'{"action":"echo","payload":{"v":NaN},"reply_to":"caller:nested-test",'
                            b'"request_id":"nan-1"}')
    reply = json.loads(replies.get_message(timeout=5)["data"])
    assert reply["request_id"] == "nan-1" and reply["payload"]["code"] == "bad_request"
    replies.close()
    # Still serving, and one line per bad message, no traceback.
    assert DaebusCaller("basic", redis_url=redis_server.url).send_request("echo", {"a": 1})["echo"] == {"a": 1}
    added = svc.log.splitlines()[before:]
    assert len([line for line in added if "malformed" in line]) == 2, added
    assert "Traceback" not in svc.log


def fake_service(client, channel, answer):
    """Answers the next request on ``channel`` with ``answer(request)`` (raw bytes)."""
    pubsub = reply_listener(client, channel)

    def run():
        message = pubsub.get_message(timeout=10)
        while message is None:
            message = pubsub.get_message(timeout=10)
        request = json.loads(message["data"])
        client.publish(request["reply_to"], answer(request))
        pubsub.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("reply", [
    lambda r: b'{"status":"success","payload":' + NESTED + b',"request_id":"' + r["request_id"].encode() + b'"}',
    lambda r: b'{"status":"success","payload":NaN,"request_id":"' + r["request_id"].encode() + b'"}',
    # A lone surrogate is valid JSON text that no UTF-8 writer can pass on.
    lambda r: b'{"status":"success","payload":"\\ud800","request_id":"' + r["request_id"].encode() + b'"}',
    lambda r: b'{"status":"success","payload":1e400,"request_id":"' + r["request_id"].encode() + b'"}',
    # Not an object, or not JSON at all, naming no request: the only call waiting owns it.
    lambda r: b'["' + r["request_id"].encode() + b'"]',
    lambda r: b"this is not json",
    # An envelope no caller can act on.
    lambda r: json.dumps({"status": "maybe", "payload": 1, "request_id": r["request_id"]}),
    lambda r: json.dumps({"status": "error", "payload": {}, "final": False, "request_id": r["request_id"]}),
    lambda r: json.dumps({"status": "success", "payload": {}, "final": "no", "request_id": r["request_id"]}),
])
def test_a_malformed_reply_is_a_clean_daebus_error_at_once(redis_server, caplog, reply):
    client = redis_server.client()
    fake = fake_service(client, "fake-service", reply)
    caller = DaebusCaller("fake-service", redis_url=redis_server.url)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="daebus"):
        with pytest.raises(MalformedReply) as exc:
            caller.send_request("anything", {}, timeout=10)
    assert time.monotonic() - started < 5  # not the call's 10 s timeout
    assert exc.value.code == "malformed_reply"
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is None
    fake.join(5)
    # The same process's next call works.
    fake = fake_service(client, "fake-service", lambda r: json.dumps(
        {"status": "success", "payload": {"ok": True}, "request_id": r["request_id"]}))
    assert caller.send_request("anything", {}, timeout=10) == {"ok": True}
    fake.join(5)


def test_a_request_that_waited_past_its_timeout_before_arriving_is_skipped(service, redis_server):
    svc = service("basic.py", "basic", env={"DAEBUS_LOG_LEVEL": "debug"})
    caller = DaebusCaller("basic", redis_url=redis_server.url)
    for _ in range(3):  # fresh requests teach the service the usual send-to-receive offset
        caller.send_request("echo", {})
    client = redis_server.client()
    replies = reply_listener(client, "caller:stale-test")
    # Sent 5 s ago with a 1 s timeout (held up in a flood, say), received just now.
    client.publish("basic", protocol.dumps(protocol.request_envelope(
        "echo", {"stale": True}, "caller:stale-test", "stale-1", "basic", 1000, time.time() - 5)))
    client.publish("basic", protocol.dumps(protocol.request_envelope(
        "echo", {"fresh": True}, "caller:stale-test", "fresh-1", "basic", 1000, time.time())))
    # Replies come in order, so the fresh one's arrival shows the stale one had its turn.
    message = replies.get_message(timeout=5)
    assert message is not None and json.loads(message["data"])["request_id"] == "fresh-1"
    assert replies.get_message(timeout=0.2) is None
    replies.close()
    assert "skipped 'echo' request stale-1" in svc.log
