"""Each device's own credentials under the shipped ACL, and TLS with a test CA."""

import os
import time

import pytest

from daebus import ConnectionLost
from daebus.fleet import FleetCaller
from fleet_harness import ACL_FILE, BridgeProcess, Listener, Mosquitto, make_ca, wait_online
from support import Service

USERS = {"box-a": "secret-a", "box-b": "secret-b", "fleet-backend": "secret-backend"}


@pytest.fixture
def acl_broker():
    server = Mosquitto(users=USERS, acl=ACL_FILE).start()
    yield server
    server.close()


def password_file(folder, user: str) -> str:
    path = folder / f"{user}.password"
    path.write_text(USERS[user] + "\n")
    os.chmod(path, 0o600)
    return str(path)


def backend(broker, *filters) -> Listener:
    listener = Listener(broker, *filters, username="fleet-backend", password=USERS["fleet-backend"])
    return listener.wait_subscribed() if filters else listener


def test_a_bridge_with_its_own_credentials_answers_under_the_acl(box_redis, acl_broker, tmp_path):
    worker = Service("basic.py", box_redis.url, "basic")
    box = BridgeProcess(box_redis.url, acl_broker.url, device="box-a", username="box-a",
                        password_file=password_file(tmp_path, "box-a"), call_actions=["basic/echo"], keepalive=5)
    try:
        wait_online(acl_broker, "test", "box-a", username="fleet-backend", password=USERS["fleet-backend"])
        with FleetCaller(acl_broker.url, "test", username="fleet-backend", password=USERS["fleet-backend"]) as fleet:
            assert fleet.call_device("box-a", "basic", "echo", {"v": 1}, timeout=5)["echo"] == {"v": 1}
            assert [s["device"] for s in fleet.status()] == ["box-a"]
    finally:
        box.close()
        worker.close()


def test_a_device_cannot_publish_under_another_devices_prefix(acl_broker):
    watcher = backend(acl_broker, "daebus/test/#")
    intruder = Listener(acl_broker, username="box-a", password=USERS["box-a"])
    assert intruder.connected.wait(10)
    for topic in ("daebus/test/box-b/state", "daebus/test/box-b/events/news", "daebus/test/box-b/call/x/y",
                  "daebus/test/all/broadcast/news", "daebus/test/box-b/broadcast/news"):
        intruder.client.publish(topic, b'{"forged": true}', qos=1).wait_for_publish(10)
    # Its own prefix goes through; the broker forwards one client's messages in order.
    intruder.client.publish("daebus/test/box-a/events/news", b'{"own": true}', qos=1).wait_for_publish(10)
    topic, body = watcher.json(timeout=10)
    assert (topic, body) == ("daebus/test/box-a/events/news", {"own": True})
    intruder.close()
    watcher.close()


def test_a_device_cannot_read_another_devices_calls(acl_broker):
    spy = Listener(acl_broker, "daebus/test/box-b/call/+/+", "daebus/test/box-a/call/+/+",
                   username="box-a", password=USERS["box-a"]).wait_subscribed()
    sender = backend(acl_broker)
    assert sender.connected.wait(10)
    sender.client.publish("daebus/test/box-b/call/basic/echo", b'{"for": "b"}', qos=1).wait_for_publish(10)
    sender.client.publish("daebus/test/box-a/call/basic/echo", b'{"for": "a"}', qos=1).wait_for_publish(10)
    topic, body = spy.json(timeout=10)
    assert (topic, body) == ("daebus/test/box-a/call/basic/echo", {"for": "a"})
    assert spy.messages.empty()
    spy.close()
    sender.close()


def test_wrong_credentials_are_refused(acl_broker):
    with pytest.raises(ConnectionLost):
        FleetCaller(acl_broker.url, "test", username="fleet-backend", password="wrong", timeout=2).status()


@pytest.fixture
def tls_broker(tmp_path):
    certs = make_ca(tmp_path / "ca")
    server = Mosquitto(tls=certs).start()
    server.certs = certs
    yield server
    server.close()


def test_tls_with_a_test_ca(box_redis, tls_broker):
    worker = Service("basic.py", box_redis.url, "basic")
    ca = tls_broker.certs["ca"]
    assert tls_broker.url.startswith("mqtts://")
    box = BridgeProcess(box_redis.url, tls_broker.url, ca_file=ca, call_actions=["basic/*"], keepalive=5)
    try:
        wait_online(tls_broker, "test", "box", ca_file=ca)
        with FleetCaller(tls_broker.url, "test", ca_file=ca) as fleet:
            assert fleet.call_device("box", "basic", "echo", {"tls": 1}, timeout=5)["echo"] == {"tls": 1}
        # Without the CA the broker's certificate is not trusted: no connection.
        started = time.monotonic()
        with pytest.raises(ConnectionLost):
            FleetCaller(tls_broker.url, "test", timeout=2).status()
        assert time.monotonic() - started < 10
    finally:
        box.close()
        worker.close()
