"""Concurrency limits per action and listener, on a real Redis, in owner and group mode."""

import concurrent.futures
import json
import queue
import threading
import time
import uuid

import pytest

from daebus import DaebusCaller, ServiceBusy

MODES = ["owner", "group"]


@pytest.fixture(params=MODES)
def limited(request, service):
    name = f"limited-{request.param}-{uuid.uuid4().hex[:6]}"
    svc = service("limited.py", name, env={"DAEBUS_SERVICE_MODE": request.param})
    svc.service_name = name
    return svc


def _never_overlap(replies):
    spans = sorted((r["start"], r["end"]) for r in replies)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, f"calls overlapped: {spans}"


@pytest.mark.parametrize("action", ["print", "aprint"])
def test_ten_calls_of_a_one_at_a_time_action_never_overlap_and_other_actions_answer_meanwhile(
        limited, redis_url, action):
    name = limited.service_name
    with DaebusCaller(name, redis_url=redis_url, timeout=30) as caller:
        caller.send_request("ping", {})      # the mode is known, the reply subscription made
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            calls = [pool.submit(caller.send_request, action, {"seconds": 0.15}) for _ in range(10)]
            latencies = []
            # The ten take 1.5 s one after the other; another action is answered meanwhile,
            # though the service has three workers only.
            while not all(c.done() for c in calls) and len(latencies) < 20:
                started = time.monotonic()
                assert caller.send_request("ping", {}, timeout=5) == {"pong": True}
                latencies.append(time.monotonic() - started)
            pending_after_pings = sum(not c.done() for c in calls)
            replies = [c.result(30) for c in calls]
    _never_overlap(replies)
    assert len(latencies) >= 5 and pending_after_pings > 0, "the pings did not run during the calls"
    assert max(latencies) < 0.05, f"another action waited: {[round(t, 3) for t in latencies]}"


def test_a_call_beyond_the_queue_bound_is_answered_busy_and_the_waiting_ones_run(limited, redis_url):
    name, gate = limited.service_name, uuid.uuid4().hex
    outcomes: queue.Queue = queue.Queue()

    def call(tag):
        with DaebusCaller(name, redis_url=redis_url, timeout=30) as caller:
            try:
                outcomes.put(caller.send_request("hold", {"gate": gate, "tag": tag}))
            except ServiceBusy as exc:
                outcomes.put(exc)

    threads = [threading.Thread(target=call, args=(tag,)) for tag in range(4)]
    for t in threads:
        t.start()
    try:
        # One runs, two wait, all held until the release: the fourth is refused at once.
        first = outcomes.get(timeout=15)
        assert isinstance(first, ServiceBusy) and first.code == "busy", first
        with DaebusCaller(name, redis_url=redis_url) as caller:
            caller.send_request("release", {"gate": gate})
        rest = [outcomes.get(timeout=15) for _ in range(3)]
    finally:
        for t in threads:
            t.join(30)
    assert all(isinstance(r, dict) for r in rest), rest
    assert len({r["tag"] for r in rest}) == 3
    assert "has 1 running and 2 waiting (its limit): answering 'busy'" in limited.log


def test_a_limited_listener_runs_one_at_a_time_and_drops_what_its_queue_cannot_hold(
        limited, redis_server, redis_url):
    name, gate = limited.service_name, uuid.uuid4().hex
    pubsub = redis_server.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("job_started")
    pubsub.get_message(timeout=5)
    try:
        with DaebusCaller(name, redis_url=redis_url) as caller:
            for tag in range(1, 6):   # 1 runs, held; 2 and 3 wait; 4 and 5 find the queue full
                caller.send_message("jobs", {"tag": tag, "gate": gate})
            # Published after the five on the same subscription, so handled after them.
            caller.send_message("release", {"gate": gate})
            started = _started(pubsub, 3)
            caller.send_message("jobs", {"tag": "last"})   # the queue has room again
            started += _started(pubsub, 1)
    finally:
        pubsub.close()
    assert started == [1, 2, 3, "last"]
    assert "has 1 running and 2 waiting (its limit): dropped a message" in limited.log


def _started(pubsub, count):
    tags = []
    while len(tags) < count:
        message = pubsub.get_message(timeout=15)
        assert message is not None, f"listener stalled after {tags}"
        tags.append(json.loads(message["data"])["tag"])
    return tags
