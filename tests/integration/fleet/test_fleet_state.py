"""The retained state and its last will, fleet status, broadcasts into the box."""

import json
import select
import signal
import subprocess
import sys
import time

import pytest
import redis

from daebus import DaebusCaller
from daebus.fleet import FleetCaller
from fleet_harness import Listener, bridge_config
from support import ROOT, Service, child_env, default_signals


def fleet_cli(broker, *args, timeout=30):
    return subprocess.run([sys.executable, "-m", "daebus.cli", "fleet", *args, "--broker", broker.url,
                           "--fleet", "test"], env=child_env("redis://127.0.0.1:1/0"), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def next_state(listener: Listener, timeout: float) -> dict:
    while True:
        topic, body = listener.json(timeout=timeout)
        if topic.endswith("/state"):
            return body


def test_the_retained_state_lists_the_box_and_fleet_status_shows_it(box_redis, broker, bridge):
    worker = Service("basic.py", box_redis.url, "basic")
    try:
        bridge(device="kiosk-1", groups=["lobby", "north"])
        status = fleet_cli(broker, "status", "--json")
        assert status.returncode == 0, status.stderr
        state = json.loads(status.stdout)
        assert state["device"] == "kiosk-1" and state["online"] is True
        assert state["groups"] == ["lobby", "north"] and state["version"]
        assert {"name": "basic", "status": "running"} in state["services"]
        table = fleet_cli(broker, "status")
        assert table.stdout.splitlines()[0].split()[:2] == ["DEVICE", "ONLINE"]
        assert table.stdout.splitlines()[1].split()[:2] == ["kiosk-1", "yes"]
    finally:
        worker.close()


def test_a_killed_bridge_reads_offline_within_one_and_a_half_keepalives(broker, bridge):
    box = bridge(keepalive=5)
    listener = Listener(broker, "daebus/test/box/state").wait_subscribed()
    assert next_state(listener, 10)["online"] is True  # the retained one
    killed = time.monotonic()
    box.process.send_signal(signal.SIGKILL)
    assert next_state(listener, 10) == {"online": False, "device": "box"}
    assert time.monotonic() - killed <= 7.5
    with FleetCaller(broker.url, "test") as fleet:
        assert [(s["device"], s["online"]) for s in fleet.status()] == [("box", False)]
    listener.close()


def test_a_stopped_bridge_says_offline_and_a_new_one_online(broker, bridge):
    box = bridge()
    listener = Listener(broker, "daebus/test/box/state").wait_subscribed()
    assert next_state(listener, 10)["online"] is True
    assert box.stop() == 0
    assert next_state(listener, 10)["online"] is False
    bridge()
    assert next_state(listener, 10)["online"] is True
    listener.close()


def test_fleet_broadcasts_reach_the_boxes_they_name_when_receive_channels_allow(box_redis, broker, bridge):
    bridge(device="kiosk-1", groups=["lobby"], receive_channels=["news.*"])
    pubsub = redis.Redis.from_url(box_redis.url).pubsub()
    pubsub.psubscribe("*")
    assert pubsub.get_message(timeout=5)["type"] == "psubscribe"
    for target, channel in (("all", "news.all"), ("group:lobby", "news.lobby"), ("kiosk-1", "news.mine"),
                            ("group:other", "news.other"), ("kiosk-2", "news.theirs"), ("all", "private")):
        result = fleet_cli(broker, "publish", target, channel, json.dumps({"to": target}))
        assert result.returncode == 0, result.stderr
    # A last one to know the others were handled (the bridge takes them in order).
    assert fleet_cli(broker, "publish", "all", "news.end", "{}").returncode == 0
    heard = []
    while True:
        message = pubsub.get_message(timeout=10)
        assert message is not None, f"news.end never came; heard {heard}"
        channel = message["channel"].decode()
        if channel.startswith("daebus:"):
            continue
        heard.append((channel, json.loads(message["data"])))
        if channel == "news.end":
            break
    assert heard == [("news.all", {"to": "all"}), ("news.lobby", {"to": "group:lobby"}),
                     ("news.mine", {"to": "kiosk-1"}), ("news.end", {})]
    pubsub.close()


def test_publish_refuses_what_is_not_a_json_object_and_unusable_channels(broker):
    assert fleet_cli(broker, "publish", "all", "news", "[1]").returncode == 2
    refused = fleet_cli(broker, "publish", "all", "news/x", "{}")
    assert refused.returncode == 2 and "'/'" in refused.stderr


@pytest.mark.parametrize("key, value, words", [
    ("send_channels", ["ok.*", "a/b"], "send_channels glob 'a/b' holds '/'"),
    ("receive_channels", ["#"], "receive_channels glob '#' holds '#'"),
    ("call_actions", ["display"], "must be SERVICE/ACTION"),
    ("device", "all", "reserved"),
    ("broker", "http://x", "expected mqtt://host:port"),
])
def test_unusable_names_are_refused_at_start_with_file_and_line(tmp_path, key, value, words):
    config = bridge_config(tmp_path / "daebus.toml", "mqtt://127.0.0.1:1", fleet="test",
                           **({key: value} if key != "broker" else {}))
    if key == "broker":
        config.write_text(f'[bridge]\nbroker = "{value}"\n')
    result = subprocess.run([sys.executable, "-m", "daebus.cli", "bridge"], cwd=ROOT, capture_output=True,
                            text=True, timeout=30, env={**child_env("redis://127.0.0.1:1/0"),
                                                        "DAEBUS_CONFIG": str(config)})
    assert result.returncode == 2
    assert f"{config}:" in result.stderr and words in result.stderr


def test_fleet_listen_prints_topic_and_payload_of_what_matches(box_redis, broker, bridge):
    bridge(send_channels=["tick"])
    listen = subprocess.Popen([sys.executable, "-m", "daebus.cli", "fleet", "listen", "+/events/#", "--broker",
                               broker.url, "--fleet", "test"], env=child_env("redis://127.0.0.1:1/0"), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    try:
        # Events are sent until one comes out of the command (its subscription
        # is up by then); the watcher paces them one per delivery.
        watcher = Listener(broker, "daebus/test/+/events/#").wait_subscribed()
        caller = DaebusCaller("t", redis_url=box_redis.url)
        deadline = time.monotonic() + 15
        line = ""
        while not line:
            caller.send_message("tick", {"n": 1})
            watcher.json(timeout=10)
            ready, _, _ = select.select([listen.stdout], [], [], 0.5)
            if ready:
                line = listen.stdout.readline()
            assert time.monotonic() < deadline, "fleet listen printed nothing"
        topic, payload = line.rstrip("\n").split(" ", 1)
        assert topic == "daebus/test/box/events/tick" and json.loads(payload)["data"] == {"n": 1}
        watcher.close()
    finally:
        listen.send_signal(signal.SIGINT)
        assert listen.wait(10) in (0, 130)
