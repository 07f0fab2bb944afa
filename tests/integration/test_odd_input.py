"""Odd input against a real service and Redis: a clear error reply each, no traceback, nothing lost."""

import json
import subprocess
import sys
import time

import pytest

from daebus import BadRequest, DaebusCaller, RequestTimeout, ServiceBusy
from support import ROOT, child_env


def reply_listener(client, channel):
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    assert pubsub.get_message(timeout=5) is None  # the confirmation
    return pubsub


@pytest.mark.parametrize("payload, hint", [(b'{"x":"\\ud800"}', "surrogate"), (b'{"x":1e400}', "too large"),
                                           (b'{"x":"\\udc00"}', "surrogate")])
def test_json_no_peer_can_carry_is_answered_bad_request_naming_it(service, redis_server, payload, hint):
    svc = service("basic.py", "basic")
    client = redis_server.client()
    replies = reply_listener(client, "caller:odd-test")
    started = time.monotonic()
    client.publish("basic", b'{"action":"echo","payload":' + payload +
                   b',"reply_to":"caller:odd-test","request_id":"odd-1"}')
    message = replies.get_message(timeout=5)
    replies.close()
    assert message is not None, "no reply"
    assert time.monotonic() - started < 2
    reply = json.loads(message["data"])
    assert reply["request_id"] == "odd-1" and reply["status"] == "error"
    assert reply["payload"]["code"] == "bad_request" and hint in reply["payload"]["error"], reply
    assert DaebusCaller("basic", redis_url=redis_server.url).send_request("echo", {"a": 1})["echo"] == {"a": 1}
    assert "Traceback" not in svc.log and "UnicodeEncodeError" not in svc.log


def test_a_flood_of_bad_requests_logs_a_line_per_interval(service, redis_server):
    svc = service("basic.py", "basic")
    caller = DaebusCaller("basic", redis_url=redis_server.url)
    client = redis_server.client()
    for n in range(300):
        client.publish("basic", b'{"action":"echo","payload":{"x":1e400},"request_id":"f%d"}' % n)
    for _ in range(300):
        caller.send_to_service({}, action="no_such_action")
    # Everything before it has been read once it is answered; while the
    # 300 are still queued it may be refused as busy, as backpressure says.
    deadline = time.monotonic() + 30
    while True:
        try:
            caller.send_request("echo", {})
            break
        except ServiceBusy:
            assert time.monotonic() < deadline, "the service stayed busy for 30 s"
            time.sleep(0.05)
    assert svc.log.count("dropped malformed request") == 1, svc.log[-2000:]
    assert svc.log.count("no handler for action") == 1, svc.log[-2000:]


def test_a_caller_refuses_what_the_service_would_drop_before_sending_it(service, redis_server):
    service("basic.py", "basic")
    caller = DaebusCaller("basic", redis_url=redis_server.url, timeout=30)
    watch = reply_listener(redis_server.client(), "basic")
    for payload, hint in (({"x": "\ud800"}, "surrogate"), ({"x": float("inf")}, "infinities"),
                          ({"blob": "x" * (2 * 1024 * 1024)}, "byte limit")):
        started = time.monotonic()
        with pytest.raises(BadRequest, match=hint):
            caller.send_request("echo", payload)
        assert time.monotonic() - started < 1
    assert watch.get_message(timeout=0.2) is None, "a refused request reached the bus"
    watch.close()
    assert caller.send_request("echo", {"after": True})["echo"] == {"after": True}


def test_a_timeout_too_short_for_the_first_subscription_is_a_request_timeout(service, redis_server):
    # A fresh process: its reply subscription may not be confirmed within
    # 3 ms; the handler takes a second, so no fast machine answers in time.
    service("basic.py", "basic")
    code = ("import sys\nfrom daebus import DaebusCaller, RequestTimeout, ConnectionLost\n"
            "try:\n    DaebusCaller('basic', timeout=0.003).send_request('slow', {'seconds': 1})\n"
            "except RequestTimeout as e:\n    print('RequestTimeout', e)\n"
            "except ConnectionLost as e:\n    print('ConnectionLost', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         env=child_env(redis_server.url), cwd=ROOT)
    assert out.stdout.startswith("RequestTimeout"), (out.stdout, out.stderr[-2000:])


def test_huge_timeouts_are_refused_up_front(redis_server):
    with pytest.raises(ValueError, match="timeout"):
        DaebusCaller("basic", redis_url=redis_server.url).send_request("echo", {}, timeout=1e308)
    assert RequestTimeout  # the documented error for a call that outlives its timeout
