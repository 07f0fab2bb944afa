"""Store and forward: events broadcast on a box reach the fleet in order,
through broker outages and bridge restarts, with a gap message past the bound."""

import subprocess
import sys
import time

import pytest

from daebus import DaebusCaller
from fleet_harness import BridgeProcess, Listener, Mosquitto, wait_online
from support import ROOT, child_env


@pytest.fixture
def persistent_broker():
    server = Mosquitto(persistent=True).start()
    yield server
    server.close()


def collect(listener: Listener, count: int, timeout: float, seen: set | None = None) -> list[dict]:
    """``count`` events not ``seen`` before by id (a consumer dedupes by it), in arrival order."""
    seen = set() if seen is None else seen
    events = []
    deadline = time.monotonic() + timeout
    while len(events) < count:
        topic, body = listener.json(timeout=max(0.1, deadline - time.monotonic()))
        if "/events/" not in topic or body["id"] in seen:
            continue
        seen.add(body["id"])
        events.append(body)
    return events


def id_key(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def broadcast(redis_url: str, channel: str, count: int, seconds: float = 0.0, start: int = 0) -> None:
    caller = DaebusCaller("events-test", redis_url=redis_url)
    began = time.monotonic()
    for i in range(start, start + count):
        if seconds:
            # A steady rate: each event at its slot of the interval.
            wait = began + (i - start) * seconds / count - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        caller.send_message(channel, {"i": i})


def test_sent_channels_go_out_in_order_with_growing_ids_and_others_stay_home(box_redis, broker, bridge):
    box = bridge(send_channels=["tick*"])
    listener = Listener(broker, "daebus/test/box/events/#").wait_subscribed()
    caller = DaebusCaller("events-test", redis_url=box_redis.url)
    caller.send_message("private", {"secret": 1})
    caller.send_message("tick/sub", {"two": "levels"})  # matches tick*, but is no topic level
    broadcast(box_redis.url, "tick", 20)
    events = collect(listener, 20, 15)
    assert [e["data"]["i"] for e in events] == list(range(20))
    assert all(e["channel"] == "tick" and isinstance(e["ts"], float) for e in events)
    keys = [id_key(e["id"]) for e in events]
    assert keys == sorted(keys) and len(set(keys)) == 20
    assert listener.messages.empty(), "a channel outside send_channels went out"
    assert "not sending channel 'tick/sub' to the fleet: it holds '/'" in box.log
    # `daebus publish` keeps what the bridge asked for, as a service's broadcast does.
    sent = subprocess.run([sys.executable, "-m", "daebus.cli", "publish", "tick", '{"from": "cli"}'],
                          env=child_env(box_redis.url), cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert sent.returncode == 0, sent.stderr
    assert collect(listener, 1, 15)[0]["data"] == {"from": "cli"}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_sixty_second_broker_outage_loses_nothing_and_keeps_the_order(box_redis, persistent_broker):
    box = BridgeProcess(box_redis.url, persistent_broker.url, send_channels=["tick"], keepalive=5)
    try:
        wait_online(persistent_broker, "test", "box")
        listener = Listener(persistent_broker, "daebus/test/box/events/#", session="fleet-backend").wait_subscribed()
        persistent_broker.stop()
        broadcast(box_redis.url, "tick", 1000, seconds=60)
        persistent_broker.start()
        events = collect(listener, 1000, 60)
        assert [e["data"]["i"] for e in events] == list(range(1000))
        keys = [id_key(e["id"]) for e in events]
        assert keys == sorted(keys)
        assert "Traceback" not in box.log
        listener.close()
    finally:
        box.close()


@pytest.mark.timeout(120)
def test_past_outbox_events_the_oldest_are_dropped_counted_and_a_gap_says_so(box_redis, persistent_broker):
    box = BridgeProcess(box_redis.url, persistent_broker.url, send_channels=["tick"], keepalive=5,
                        outbox_events=300, metrics_interval=1)
    try:
        wait_online(persistent_broker, "test", "box")
        listener = Listener(persistent_broker, "daebus/test/box/events/#", "daebus/test/box/metrics",
                            session="fleet-backend").wait_subscribed()
        broadcast(box_redis.url, "tick", 5)
        # One dedupe set throughout: the broker may deliver again what it had
        # not seen this listener acknowledge before it stopped (QoS 1).
        seen = set()
        assert [e["data"]["i"] for e in collect(listener, 5, 15, seen)] == list(range(5))
        persistent_broker.stop()
        broadcast(box_redis.url, "tick", 1000, start=5)
        persistent_broker.start()
        events = collect(listener, 301, 30, seen)
        gap, rest = events[0], events[1:]
        assert gap["channel"] == "tick" and "data" not in gap
        assert gap["gap"]["dropped"] == 700
        assert id_key(gap["gap"]["after"]) < id_key(gap["id"]) < id_key(rest[0]["id"])
        assert [e["data"]["i"] for e in rest] == list(range(705, 1005))
        deadline = time.monotonic() + 15
        while True:
            topic, body = listener.json(timeout=max(0.1, deadline - time.monotonic()))
            if topic.endswith("/metrics") and body["bridge"]["events"]["dropped"] == 700:
                assert body["bridge"]["events"]["gaps"] == 1
                break
        assert "700 events on tick were dropped" in box.log
    finally:
        box.close()


def test_a_bridge_killed_and_restarted_sends_its_backlog(box_redis, broker):
    first = BridgeProcess(box_redis.url, broker.url, send_channels=["tick"], keepalive=5)
    listener = Listener(broker, "daebus/test/box/events/#").wait_subscribed()
    try:
        wait_online(broker, "test", "box")
        broadcast(box_redis.url, "tick", 50)
        seen = set()
        assert [e["data"]["i"] for e in collect(listener, 50, 15, seen)] == list(range(50))
        first.kill()
        broadcast(box_redis.url, "tick", 200, start=50)   # kept while no bridge runs
    finally:
        first.close()
    second = BridgeProcess(box_redis.url, broker.url, send_channels=["tick"], keepalive=5)
    try:
        # What was acknowledged but not yet saved comes again, with the same ids: deduped.
        events = collect(listener, 200, 30, seen)
        assert [e["data"]["i"] for e in events] == list(range(50, 250))
    finally:
        second.close()
        listener.close()
