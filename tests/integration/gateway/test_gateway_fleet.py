"""A fleet broadcast reaches a page on the box through the gateway, with ids
it can resume from."""

import json

import pytest

from daebus.fleet import FleetCaller
from daebus.bus.kept import parse_id
from fleet_harness import BridgeProcess, Mosquitto, mosquitto_binary, wait_online

EVENT_WAIT = 15


@pytest.fixture
def fleet_broker():
    assert mosquitto_binary(), "the fleet tests need mosquitto (./dev test installs it)"
    server = Mosquitto().start()
    yield server
    server.close()


def next_message(stream) -> dict:
    while True:
        event = stream.next_event(EVENT_WAIT)
        assert event is not None, "the stream ended"
        if event["event"] == "message":
            return event


def test_a_fleet_broadcast_reaches_the_page_and_a_reconnecting_page_replays_it(start_gateway, fresh_redis,
                                                                              fleet_broker):
    gw = start_gateway(url=fresh_redis.url)
    box = BridgeProcess(fresh_redis.url, fleet_broker.url, receive_channels=["news.*"], keepalive=5)
    try:
        wait_online(fleet_broker, "test", "box")
        stream = gw.events("news.fleet")
        stream.wait_status("up")
        with FleetCaller(fleet_broker.url, "test") as fleet:
            fleet.publish("all", "news.fleet", {"text": "hello, lobby"})
            first = next_message(stream)
            assert parse_id(first.get("id")) is not None
            assert json.loads(first["data"]) == {"channel": "news.fleet", "data": {"text": "hello, lobby"}}
            stream.close()
            # Broadcast while the page is away: it gets it when it comes back.
            fleet.publish("box", "news.fleet", {"text": "while you were away"})
            wait_kept = gw.events("news.fleet", headers={"Last-Event-ID": first["id"]})
            replayed = next_message(wait_kept)
            assert json.loads(replayed["data"])["data"] == {"text": "while you were away"}
            assert parse_id(replayed["id"]) > parse_id(first["id"])
            wait_kept.close()
    finally:
        box.close()
