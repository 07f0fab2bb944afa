"""Fleet calls through a real broker and bridge into a real worker."""

import json
import subprocess
import sys
import threading
import time

import pytest
import redis

from daebus import RemoteError, RequestTimeout, ServiceUnavailable
from daebus.fleet import FleetCaller, mqtt
from fleet_harness import Listener
from support import ROOT, Service, child_env

ALLOWED = ["basic/*"]


@pytest.fixture
def worker(box_redis):
    service = Service("basic.py", box_redis.url, "basic")
    yield service
    service.close()


@pytest.fixture
def fleet(broker):
    caller = FleetCaller(broker.url, "test", timeout=10)
    yield caller
    caller.close()


def test_a_call_reaches_the_worker_and_its_result_comes_back(worker, bridge, fleet):
    bridge(call_actions=ALLOWED)
    result = fleet.call_device("box", "basic", "echo", {"n": 1}, timeout=5)
    assert result["echo"] == {"n": 1}


def test_progress_comes_before_the_result(worker, bridge, fleet):
    bridge(call_actions=ALLOWED)
    seen = []
    result = fleet.call_device("box", "basic", "progress", {}, timeout=10,
                               on_progress=lambda data, pct: seen.append((data, pct)))
    assert len(seen) == 3, "the progress messages did not all reach the fleet before the result"
    assert result == {"done": True}


def test_an_action_outside_call_actions_answers_forbidden_and_is_not_run(worker, bridge, fleet):
    bridge(call_actions=["basic/echo"])
    with pytest.raises(RemoteError) as caught:
        fleet.call_device("box", "basic", "increment", {}, timeout=5)
    assert caught.value.code == "forbidden"
    # Not run: the worker's counter was never touched.
    assert fleet.call_device("box", "basic", "echo", {}, timeout=5)["echo"] == {}


def test_a_service_that_is_down_answers_service_unavailable_at_once(bridge, fleet):
    bridge(call_actions=["ghost/*"])
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        fleet.call_device("box", "ghost", "anything", {}, timeout=10)
    assert time.monotonic() - started < 3


def test_calls_beyond_max_calls_answer_busy(worker, box_redis, bridge, fleet):
    bridge(call_actions=ALLOWED, max_calls=1)
    pubsub = redis.Redis.from_url(box_redis.url).pubsub()
    pubsub.subscribe("slow_started")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    slow = threading.Thread(target=fleet.call_device, args=("box", "basic", "slow", {"seconds": 3}),
                            kwargs={"timeout": 10})
    slow.start()
    try:
        started = pubsub.get_message(timeout=10)
        assert started and started["type"] == "message", "the slow call never started"
        with pytest.raises(RemoteError) as caught:
            fleet.call_device("box", "basic", "echo", {}, timeout=5)
        assert caught.value.code == "busy"
    finally:
        slow.join(15)
        pubsub.close()
    # The slot is free again once the slow call answered.
    assert fleet.call_device("box", "basic", "echo", {"again": 1}, timeout=5)["echo"] == {"again": 1}


def test_the_progress_body_is_the_data_and_its_percentage(worker, bridge, fleet):
    bridge(call_actions=ALLOWED)
    seen = []
    fleet.call_device("box", "basic", "progress", {}, timeout=10, on_progress=lambda d, p: seen.append((d, p)))
    assert seen == [({"step": 0}, 25.0), ({"step": 1}, 50.0), ({"step": 2}, 75.0)]


def test_the_message_expiry_interval_is_the_calls_deadline(worker, bridge, fleet):
    bridge(call_actions=ALLOWED)
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        fleet.call_device("box", "basic", "slow", {"seconds": 5}, timeout=1.5)
    assert time.monotonic() - started < 3


def test_fleet_call_cli_prints_each_device_and_exits_as_daebus_call(worker, bridge, broker):
    bridge(call_actions=["basic/echo"])
    env = child_env("redis://127.0.0.1:1/0")
    base = [sys.executable, "-m", "daebus.cli", "fleet", "call", "--broker", broker.url, "--fleet", "test"]
    ok = subprocess.run([*base, "all", "basic", "echo", '{"x": 1}'], env=env, cwd=ROOT, capture_output=True,
                        text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    line = json.loads(ok.stdout.splitlines()[0])
    assert line["device"] == "box" and line["result"]["echo"] == {"x": 1}
    refused = subprocess.run([*base, "box", "basic", "increment"], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=30)
    assert refused.returncode == 3 and json.loads(refused.stdout)["error"]["code"] == "forbidden"
    silent = subprocess.run([*base, "--timeout", "1", "nobox", "basic", "echo"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert silent.returncode == 5 and json.loads(silent.stdout)["error"]["code"] == "timeout"
    bad = subprocess.run([*base, "box", "basic", "echo", "[1"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 2 and "invalid JSON" in bad.stderr
    away = subprocess.run([sys.executable, "-m", "daebus.cli", "fleet", "status", "--broker",
                           "mqtt://127.0.0.1:1", "--timeout", "1"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert away.returncode == 6 and "cannot reach the fleet broker" in away.stderr


def test_garbage_on_call_and_broadcast_topics_leaves_the_bridge_up_and_answering(worker, bridge, broker, fleet):
    box = bridge(call_actions=["basic/echo"], receive_channels=["news.*"])
    assert fleet.call_device("box", "basic", "echo", {}, timeout=5) is not None
    before = box.rss_kb()
    sender = Listener(broker)
    assert sender.connected.wait(10)
    reply_to = mqtt.properties("PUBLISH", ResponseTopic="daebus/test/reply/garbage", CorrelationData=b"x")
    kinds = [
        ("daebus/test/box/call/basic/echo", b"\xff\xfe not json", reply_to),
        ("daebus/test/box/call/basic/echo", b"[1, 2]", reply_to),
        ("daebus/test/box/call/basic/echo", b"{}", None),                     # nobody to answer
        ("daebus/test/box/call/basic/echo", b"{" * 5000, reply_to),           # nested too deep
        ("daebus/test/box/call/basic/echo", b"x" * 300_000, reply_to),        # too large
        ("daebus/test/box/call/basic/increment", b"{}", reply_to),            # forbidden
        ("daebus/test/all/broadcast/news.x", b"NaN", None),
        ("daebus/test/all/broadcast/secret", b'{"a": 1}', None),              # not in receive_channels
        ("daebus/test/box/broadcast/news.x", b'"a string"', None),
        ("daebus/test/group/nogroup/broadcast/news.x", b"{}", None),
    ]
    rss = []
    for round_ in range(2):  # 2 x 5,000: the second round must not grow what the first did
        for i in range(5_000):
            topic, payload, props = kinds[i % len(kinds)]
            sender.client.publish(topic, payload, qos=0, properties=props)
        # A QoS 1 message after them, acknowledged: the broker has them all, and
        # forwards them to the bridge before the call that follows.
        sender.client.publish("daebus/test/box/broadcast/news.x", b"{}", qos=1).wait_for_publish(30)
        assert fleet.call_device("box", "basic", "echo", {"round": round_}, timeout=30)["echo"] == {"round": round_}
        assert box.running
        rss.append(box.rss_kb())
    sender.close()
    assert rss[1] - rss[0] < 8_000, f"RSS went from {before} to {rss[0]} then {rss[1]} kB"
    assert rss[1] < 150_000
    lines = [line for line in box.log.splitlines() if "dropped" in line or "refused" in line]
    assert len(lines) < 20, "complaints were not rate-limited:\n" + "\n".join(lines[:30])
    assert "Traceback" not in box.log
