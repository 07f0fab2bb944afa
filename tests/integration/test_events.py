"""Broadcasts from handlers, tasks, threads and on_start reach listeners."""

import time

import pytest

from daebus import DaebusCaller


def _wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def caller(redis_url):
    with DaebusCaller("basic", redis_url=redis_url) as c:
        yield c


def test_broadcast_from_every_context_reaches_listeners(service, redis_server, caller):
    redis_server.client().delete("received", "loop_stopped")
    service("basic.py", "basic", env={"TEST_BEAT_INTERVAL": "3600", "TEST_BEAT_AT_START": "1"})
    caller.send_request("announce", {"n": 1})
    assert _wait_for(lambda: {"on_start", "thread", "task", "action"} <= set(caller.send_request("received")))


def test_listener_receives_the_published_dict(service, redis_server, caller, redis_url):
    redis_server.client().delete("received")
    service("basic.py", "basic")
    other = DaebusCaller("unused", redis_url=redis_url)
    assert other.send_message("test_events", {"from": "outside"}) == 1
    assert _wait_for(lambda: "outside" in caller.send_request("received"))


def test_stop_thread_really_stops_that_thread_and_start_restarts_it(service, redis_server, caller):
    client = redis_server.client()
    client.delete("loop_stopped", "received")
    service("basic.py", "basic")
    assert caller.send_request("stop_loop") is True
    assert client.get("loop_stopped") == "yes"
    client.delete("loop_stopped", "received")
    assert caller.send_request("start_loop") is True
    assert _wait_for(lambda: "thread" in caller.send_request("received"))
