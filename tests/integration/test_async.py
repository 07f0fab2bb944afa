"""async def handlers in a real service, called through a real Redis."""

import asyncio
import json
import threading
import time

import pytest
import redis

from daebus import AsyncCaller, DaebusCaller, RemoteError


def started_events(redis_url):
    """A subscription to the service's "a handler started" broadcasts."""
    pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("aio.started")
    pubsub.get_message(timeout=5)
    return pubsub


def wait_started(pubsub, count=1):
    for _ in range(count):
        assert pubsub.get_message(timeout=10) is not None, "the handler never started"


def test_fifty_awaiting_calls_run_at_once(service, redis_url):
    service("async_service.py", "--workers", "50")

    async def main():
        async with AsyncCaller("aio", redis_url=redis_url, timeout=10) as caller:
            await caller.call("echo", {})  # the reply subscription, connected before timing
            began = time.monotonic()
            replies = await asyncio.gather(*(caller.call("nap", {"seconds": 1, "tag": i}) for i in range(50)))
            return time.monotonic() - began, replies

    elapsed, replies = asyncio.run(main())
    assert sorted(r["tag"] for r in replies) == list(range(50))
    assert len({r["request_id"] for r in replies}) == 50  # each call kept its own request
    assert elapsed < 2.0, f"50 concurrent 1 s naps took {elapsed:.2f} s"


def test_sync_and_async_actions_side_by_side(service, redis_url):
    service("async_service.py", "--workers", "4")
    results, errors = {}, []

    def call(action, key):
        try:
            with DaebusCaller("aio", redis_url=redis_url, timeout=10) as caller:
                results[key] = caller.send_request(action, {"seconds": 1, "tag": key})
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(action, f"{action}{i}"))
               for action in ("nap", "sync_nap") for i in range(4)]
    began = time.monotonic()
    for t in threads:
        t.start()
    # While 4 threads sleep and 4 coroutines await, another sync request
    # still waits for a thread, and an async one runs beside them.
    with DaebusCaller("aio", redis_url=redis_url, timeout=10) as caller:
        assert caller.send_request("steps", {}, on_progress=lambda p: None) == "done"
    for t in threads:
        t.join(15)
    assert not errors, errors
    assert len(results) == 8
    assert time.monotonic() - began < 3.0


def test_progress_context_tasks_and_hooks(service, redis_url):
    service("async_service.py")
    progress = []
    with DaebusCaller("aio", redis_url=redis_url, timeout=10) as caller:
        assert caller.send_request("steps", {}, on_progress=progress.append) == "done"
        assert caller.send_request("spawn", {"value": 42}) == 42
        assert caller.send_request("locked", {}) is True  # the on_start hook ran on the loop
    assert [p["step"] for p in progress] == [0, 1, 2]


def test_an_async_action_calls_other_services_without_blocking(service, redis_url):
    service("async_service.py", "--workers", "8")
    with DaebusCaller("aio", redis_url=redis_url, timeout=10) as caller:
        began = time.monotonic()
        result = caller.send_request("relay", {})
    assert sorted(result["tags"]) == [0, 1, 2, 3, 4] and result["echo"] == {"x": 1}
    assert time.monotonic() - began < 2.0  # five 0.5 s naps awaited together


def test_async_listener_and_background_task(service, redis_url):
    service("async_service.py")
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("aio.out")
    pubsub.get_message(timeout=5)
    client.publish("aio.in", json.dumps({"n": 1}))
    message = pubsub.get_message(timeout=10)
    assert message is not None and json.loads(message["data"]) == {"got": {"n": 1}}
    deadline = time.monotonic() + 10
    while int(client.get("aio:aio:ticks") or 0) < 2:
        assert time.monotonic() < deadline, "the async background task did not run"
        time.sleep(0.05)


def test_sigterm_during_an_awaited_handler_delivers_its_reply(service, redis_url):
    svc = service("async_service.py")
    events = started_events(redis_url)
    outcome = []

    def call():
        with DaebusCaller("aio", redis_url=redis_url, timeout=10) as caller:
            outcome.append(caller.send_request("nap", {"seconds": 1.5, "tag": "last"}))

    thread = threading.Thread(target=call)
    thread.start()
    wait_started(events)
    svc.stop()
    thread.join(10)
    assert outcome and outcome[0]["tag"] == "last"
    assert svc.process.returncode == 0


def test_a_handler_past_the_shutdown_bound_is_cancelled_and_answers(service, redis_url):
    svc = service("async_service.py", "--shutdown", "1")
    events = started_events(redis_url)
    outcome = []

    def call():
        try:
            with DaebusCaller("aio", redis_url=redis_url, timeout=20) as caller:
                outcome.append(caller.send_request("forever", {}))
        except Exception as exc:  # noqa: BLE001 - inspected below
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    wait_started(events)
    began = time.monotonic()
    assert svc.stop(timeout=10) == 0
    assert time.monotonic() - began < 5
    thread.join(10)
    assert isinstance(outcome[0], RemoteError) and outcome[0].code == "shutting_down", outcome
    assert redis.Redis.from_url(redis_url).get("aio:aio:cleaned") == b"yes"  # its finally block ran
    assert "Traceback" not in svc.log


def test_a_handler_blocking_the_loop_is_reported_and_sync_handlers_go_on(service, redis_url):
    svc = service("async_service.py")
    events = started_events(redis_url)
    outcome = []

    def call(action, payload):
        with DaebusCaller("aio", redis_url=redis_url, timeout=10) as caller:
            outcome.append((action, caller.send_request(action, payload)))

    nap = threading.Thread(target=call, args=("nap", {"seconds": 0.1, "tag": "n"}))
    nap.start()
    wait_started(events)  # the nap is on the loop; now block the loop under it
    hog = threading.Thread(target=call, args=("hog", {"seconds": 1.5}))
    hog.start()
    with DaebusCaller("aio", redis_url=redis_url, timeout=10) as caller:
        began = time.monotonic()
        assert caller.send_request("echo", {"still": "here"}) == {"still": "here"}
        assert time.monotonic() - began < 1.0  # the pool is not the loop
    hog.join(10)
    nap.join(10)
    assert sorted(action for action, _ in outcome) == ["hog", "nap"]
    deadline = time.monotonic() + 5
    while "the event loop was blocked" not in svc.log:
        assert time.monotonic() < deadline, svc.log
        time.sleep(0.05)
    assert "asyncio.to_thread" in svc.log
    # The handler that blocked is named, not the one awaiting beside it.
    blocked = [line for line in svc.log.splitlines() if "the event loop was blocked" in line]
    assert blocked and all("while running hog:" in line for line in blocked), blocked


def test_a_lone_async_handler_that_blocks_the_loop_is_named(service, redis_url):
    svc = service("async_service.py")
    with DaebusCaller("aio", redis_url=redis_url, timeout=10) as caller:
        caller.send_request("hog", {"seconds": 0.8})
        # The warning is logged before the reply is sent, on the same loop.
        caller.send_request("echo", {})
    blocked = [line for line in svc.log.splitlines() if "the event loop was blocked" in line]
    assert len(blocked) == 1 and "while running hog:" in blocked[0], svc.log[-2000:]


def test_an_async_handler_that_raises_answers_handler_error(service, redis_url):
    svc = service("async_service.py")
    with DaebusCaller("aio", redis_url=redis_url, timeout=10) as caller:
        with pytest.raises(RemoteError) as caught:
            caller.send_request("explode", {})
        assert caught.value.code == "handler_error" and "async kaboom" in str(caught.value)
        assert caller.send_request("echo", {"after": 1}) == {"after": 1}
    assert svc.log.count("Traceback") == 1  # logged once, in the service


def test_async_handlers_share_the_busy_bound(service, redis_url):
    service("async_service.py", "--workers", "1", "--queue", "1")
    client = redis.Redis.from_url(redis_url)
    replies = client.pubsub(ignore_subscribe_messages=True)
    replies.subscribe("caller:busy-test")
    replies.get_message(timeout=5)
    # One connection publishes in order: the first runs, the second waits, the third is refused.
    for i in (1, 2, 3):
        client.publish("aio", json.dumps({"action": "nap", "payload": {"seconds": 0.5, "tag": i},
                                          "reply_to": "caller:busy-test", "request_id": str(i)}))
    answers = {}
    while len(answers) < 3:
        message = replies.get_message(timeout=10)
        assert message is not None, answers
        reply = json.loads(message["data"])
        answers[reply["request_id"]] = reply
    assert answers["1"]["status"] == answers["2"]["status"] == "success"
    assert answers["3"]["status"] == "error" and answers["3"]["payload"]["code"] == "busy"


def test_an_async_request_whose_caller_gave_up_is_skipped(service, redis_url):
    service("async_service.py", "--workers", "1")
    events = started_events(redis_url)
    client = redis.Redis.from_url(redis_url)
    replies = client.pubsub(ignore_subscribe_messages=True)
    replies.subscribe("caller:expiry-test")
    replies.get_message(timeout=5)
    # The second waits for the only slot longer than its caller waits for it.
    for tag, seconds, timeout_ms in ((1, 1.0, None), (2, 0.1, 300), (3, 0.1, None)):
        request = {"action": "nap", "payload": {"seconds": seconds, "tag": tag},
                   "reply_to": "caller:expiry-test", "request_id": str(tag)}
        if timeout_ms:
            request["timeout_ms"] = timeout_ms
        client.publish("aio", json.dumps(request))
    answered = []
    while len(answered) < 2:
        message = replies.get_message(timeout=10)
        assert message is not None, answered
        answered.append(json.loads(message["data"])["request_id"])
    assert answered == ["1", "3"]
    started = []
    while (message := events.get_message(timeout=0.5)) is not None:
        started.append(json.loads(message["data"])["tag"])
    assert started == [1, 3]  # the expired one never ran
