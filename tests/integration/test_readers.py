"""A service's two readers take turns: the one that read a request runs it
while the other reads on, so a long handler never leaves the bus unread."""

import concurrent.futures
import time

import pytest

from daebus import DaebusCaller, ServiceBusy


@pytest.mark.parametrize("mode", ["owner", "group"])
def test_quick_calls_and_events_pass_a_long_handler_on_the_reader(service, redis_server, redis_url, mode):
    service("member.py", f"turns_{mode}", env={"DAEBUS_SERVICE_MODE": mode})
    holding = redis_server.client().pubsub(ignore_subscribe_messages=True)
    holding.subscribe("member_holding")
    assert holding.get_message(timeout=5) is None
    with DaebusCaller(f"turns_{mode}", redis_url=redis_url, timeout=20) as caller:
        # Idle, so the reader that reads it runs it itself.
        with concurrent.futures.ThreadPoolExecutor(1) as slow:
            held = slow.submit(caller.send_request, "hold", {"seconds": 4})
            assert holding.get_message(timeout=10) is not None, "hold never started"
            started = time.monotonic()
            for n in range(40):
                assert caller.send_request("whoami", timeout=3)["delivery"] == 1
            quick = time.monotonic() - started
            assert not held.done(), "the hold ended before the quick calls: nothing was proved"
            assert held.result(20)["delivery"] == 1
    assert quick < 4


def test_a_handler_on_a_reader_takes_one_of_max_workers_places(service, redis_server, redis_url):
    # observed.py: one worker and a queue of one. The held handler runs on
    # the reader that read it, in the only worker's place: the next request
    # waits in the queue and the one after is refused as busy at once.
    service("observed.py", "bounded")
    client = redis_server.client()
    held = client.pubsub(ignore_subscribe_messages=True)
    held.subscribe("bounded.held")
    assert held.get_message(timeout=5) is None
    with DaebusCaller("bounded", redis_url=redis_url, timeout=10) as caller, \
            concurrent.futures.ThreadPoolExecutor(6) as pool:
        holder = pool.submit(caller.send_request, "hold")
        assert held.get_message(timeout=10) is not None, "hold never started"
        calls = [pool.submit(caller.send_request, "echo", {"n": n}) for n in range(5)]
        # One waits in the queue, the other four are refused at once.
        refused = 0
        for call in concurrent.futures.as_completed(calls[:], timeout=10):
            assert isinstance(call.exception(), ServiceBusy), "answered while the only worker's place was taken"
            refused += 1
            if refused == 4:
                break
        [queued] = [call for call in calls if not call.done()]
        client.rpush("bounded:release", "go")
        assert holder.result(10) == {"held": True}
        assert queued.result(10)["n"] in range(5)
