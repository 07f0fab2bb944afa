"""The bridge as the bus's ``bridge`` user of a locked bus: what it does is
allowed, nothing more."""

import json

import pytest
import redis

from daebus import DaebusCaller
from daebus.security.acl import Worker
from daebus.fleet import FleetCaller
from fleet_harness import BridgeProcess, Listener, wait_online
from support import AclBus, Service


@pytest.fixture
def locked_bus():
    bus = AclBus([Worker("basic", "basic", listen=("test_events",))]).start()
    yield bus
    bus.close()


def test_the_bridge_user_calls_sends_and_broadcasts_on_a_locked_bus(locked_bus, broker):
    worker = Service("basic.py", locked_bus.url, "basic", env=locked_bus.env("worker:basic"))
    box = BridgeProcess(locked_bus.url, broker.url, env=locked_bus.env("bridge"), call_actions=["basic/*"],
                        send_channels=["tick"], receive_channels=["news.*"], keepalive=5)
    listener = Listener(broker, "daebus/test/box/events/#").wait_subscribed()
    try:
        state = wait_online(broker, "test", "box")
        assert {"name": "basic", "status": "running"} in state["services"]  # it reads the registry
        with FleetCaller(broker.url, "test", timeout=5) as fleet:
            assert fleet.call_device("box", "basic", "echo", {"locked": 1})["echo"] == {"locked": 1}
            pubsub = locked_bus.client("admin").pubsub()
            pubsub.subscribe("news.flash")
            assert pubsub.get_message(timeout=5)["type"] == "subscribe"
            fleet.publish("all", "news.flash", {"n": 1})
            message = pubsub.get_message(timeout=10)
            assert message and json.loads(message["data"]) == {"n": 1}
            pubsub.close()
        # A broadcast on a sent channel goes out through the outbox.
        admin = DaebusCaller("x", redis_url=f"redis://admin:{locked_bus.secrets['admin']}@127.0.0.1:"
                                            f"{locked_bus.server.port}/0")
        admin.send_message("tick", {"from": "box"})
        topic, body = listener.json(timeout=15)
        assert body["data"] == {"from": "box"}
        assert "NOPERM" not in box.log and "no permissions" not in box.log.lower(), box.log
        # The bridge user reads no cache keys and cannot flush.
        bridge = locked_bus.client("bridge")
        with pytest.raises(redis.exceptions.NoPermissionError):
            bridge.get("basic:secret")
        with pytest.raises(redis.exceptions.NoPermissionError):
            bridge.flushall()
    finally:
        listener.close()
        box.close()
        worker.close()
