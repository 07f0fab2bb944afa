"""The bridge through its peers' failures: the box's Redis away, a broker
that stalls, a call that expired before it could run."""

import time
import types

import pytest

from daebus import DaebusCaller, RemoteError
from daebus.fleet import FleetCaller
from daebus.fleet.calls import Calls
from daebus.fleet.guard import Complaints
from fleet_harness import Listener
from support import Service, TcpProxy


@pytest.mark.timeout(90)
def test_the_boxs_redis_away_answers_calls_at_once_and_events_resume_after(broker, bridge, box_redis):
    worker = Service("basic.py", box_redis.url, "basic")
    box = bridge(call_actions=["basic/echo"], send_channels=["tick"])
    listener = Listener(broker, "daebus/test/box/events/#").wait_subscribed()
    try:
        with FleetCaller(broker.url, "test", timeout=10) as fleet:
            assert fleet.call_device("box", "basic", "echo", {}, timeout=5) is not None
            box_redis.stop()
            started = time.monotonic()
            with pytest.raises(RemoteError) as caught:
                fleet.call_device("box", "basic", "echo", {}, timeout=8)
            assert caught.value.code in ("connection_lost", "service_unavailable")
            assert time.monotonic() - started < 6
            assert box.running
            box_redis.start()
            # The worker comes back to the restarted Redis; the bridge sends again.
            deadline = time.monotonic() + 30
            while True:
                try:
                    assert fleet.call_device("box", "basic", "echo", {"back": 1}, timeout=2)["echo"] == {"back": 1}
                    break
                except Exception:  # noqa: BLE001 - retried until the deadline: Redis is coming back
                    assert time.monotonic() < deadline, box.log
            caller = DaebusCaller("t", redis_url=box_redis.url)
            deadline = time.monotonic() + 30
            while True:  # the outbox declaration is renewed onto the empty Redis within a second or so
                caller.send_message("tick", {"after": "restart"})
                try:
                    topic, body = listener.json(timeout=1)
                    if body.get("data") == {"after": "restart"}:
                        break
                except Exception:  # noqa: BLE001 - queue.Empty: not yet
                    assert time.monotonic() < deadline, box.log
        assert "Traceback" not in box.log
    finally:
        listener.close()
        worker.close()


@pytest.mark.timeout(90)
def test_a_stalled_broker_is_left_within_keepalives_and_the_backlog_follows(box_redis, broker):
    from fleet_harness import BridgeProcess, wait_online

    proxy = TcpProxy(broker.port)
    box = BridgeProcess(box_redis.url, f"mqtt://127.0.0.1:{proxy.port}",
                        send_channels=["tick"], keepalive=5)
    listener = Listener(broker, "daebus/test/box/events/#", "daebus/test/box/state").wait_subscribed()
    try:
        wait_online(broker, "test", "box")
        proxy.freeze()
        caller = DaebusCaller("t", redis_url=box_redis.url)
        for i in range(100):
            caller.send_message("tick", {"i": i})
        frozen = time.monotonic()
        # The broker hears nothing: it gives the bridge up (its last will). MQTT
        # says after 1.5 keepalives; mosquitto 2.0.11 checks them on a coarser
        # tick (11.7 s here with a keepalive of 5 s), so 3 are allowed.
        while True:
            topic, body = listener.json(timeout=20)
            if topic.endswith("/state") and body["online"] is False:
                break
        assert time.monotonic() - frozen <= 3 * 5
        proxy.thaw()
        got = []
        while len(got) < 100:
            topic, body = listener.json(timeout=30)
            if "/events/" in topic and body["data"]["i"] not in got:
                got.append(body["data"]["i"])
        assert got == list(range(100))
    finally:
        listener.close()
        box.close()
        proxy.close()


def test_a_call_that_expired_before_a_thread_took_it_is_not_run():
    answers = []
    calls = Calls(["basic/*"], "redis://127.0.0.1:1/0", lambda *a: answers.append(a), max_calls=1,
                  default_timeout=5, limit=1000, complaints=Complaints(__import__("logging").getLogger("t")))
    props = types.SimpleNamespace(ResponseTopic="r", CorrelationData=b"c", MessageExpiryInterval=0)
    calls.handle(types.SimpleNamespace(topic="t", payload=b"{}", retain=False, properties=props), "basic", "echo")
    assert calls.counts["expired"] == 1 and calls.counts["calls"] == 0 and answers == []
    calls.close()
