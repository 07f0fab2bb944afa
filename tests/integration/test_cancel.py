"""A call its caller gives up on is cancelled on the service: real services
and callers over a real Redis (tests/services/cancellable.py reports what
happens to its handlers on ``cancel.events``)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from daebus import AsyncCaller, DaebusCaller, RequestTimeout
from daebus.app.cancellation import Cancellation
from daebus.bus import registry
from daebus.errors import Cancelled
from support import HandlerReports, child_env, default_signals

SERVICE = "cancellable"
CANCELS = f"daebus:cancel:{SERVICE}"
# The bound the handlers must meet after their caller gives up.
PROMPT = 0.2


@pytest.fixture
def events(redis_server):
    watched = HandlerReports(redis_server.client(), "cancel.events")
    yield watched
    watched.close()


@pytest.fixture
def store(redis_server):
    client = redis_server.client()
    client.delete("cancellable:ran", "cancellable:release", f"daebus:stream:{SERVICE}")
    yield client
    client.delete("cancellable:ran", "cancellable:release")
    client.close()


def caller(redis_url, **kwargs) -> DaebusCaller:
    return DaebusCaller(SERVICE, redis_url=redis_url, **kwargs)


def in_thread(fn, *args, **kwargs):
    """Run ``fn`` on a thread; returns the thread and a list that gets its
    result or exception."""
    outcome: list = []

    def run():
        try:
            outcome.append(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - inspected by the test
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def cancelled_counts(client, action: str, expect: int, timeout: float = 10) -> dict:
    """The service's published counters of ``action`` once they show
    ``expect`` cancelled requests (the heartbeat publishes them)."""
    deadline = time.monotonic() + timeout
    while True:
        [info] = [s for s in registry.list_services(client) if s["name"] == SERVICE]
        stats = (info.get("metrics") or {}).get("actions", {}).get(action, {})
        if stats.get("cancelled") == expect or time.monotonic() > deadline:
            return stats
        time.sleep(0.1)


@pytest.mark.parametrize("action", ["nap", "wait"])
def test_a_handler_stops_within_0_2_s_of_its_callers_timeout(service, redis_url, events, action):
    # nap: async def, interrupted by CancelledError; wait: sync, waiting on request.cancelled.
    service("cancellable.py")
    with caller(redis_url) as sensors:
        sensors.send_request("record", {"tag": "warm-up"}, timeout=10)   # the reply subscription
        sent = time.time()
        with pytest.raises(RequestTimeout):
            sensors.send_request(action, {"tag": action, "seconds": 10}, timeout=1)
        gave_up = time.time()
    assert gave_up - sent < 1 + PROMPT   # telling the service holds the caller up no longer
    started = events.wait("started", action)
    cancelled = events.wait("cancelled", action)
    assert cancelled["reason"] == "timeout"
    assert started["at"] < sent + 1
    assert 0 <= cancelled["at"] - (sent + 1) < PROMPT, cancelled["at"] - (sent + 1)
    assert "finished" not in events.of(action)


def test_a_queued_request_whose_caller_timed_out_never_runs(service, redis_url, store, events):
    service("cancellable.py", "--workers", "1")
    with caller(redis_url, timeout=30) as sensors:
        holder, held = in_thread(sensors.send_request, "block", {"tag": "hold"})
        events.wait("started", "hold")
        with pytest.raises(RequestTimeout):
            sensors.send_request("record", {"tag": "late"}, timeout=1)
        store.rpush("cancellable:release", "go")
        holder.join(10)
        assert held == ["released"]
        # The one worker takes requests in order: "late" came first.
        assert sensors.send_request("record", {"tag": "after"}) == "recorded"
    assert store.lrange("cancellable:ran", 0, -1) == ["after"]


def test_a_cancelled_queued_request_never_runs_and_is_counted(service, redis_url, redis_server, store, events):
    # Cancelled well before its timeout: its timeout_ms alone would have let it run.
    service("cancellable.py", "--workers", "1")
    with caller(redis_url, timeout=30) as sensors:
        holder, held = in_thread(sensors.send_request, "block", {"tag": "hold"})
        events.wait("started", "hold")
        cancel = Cancellation()
        timer = threading.Timer(0.3, cancel.cancel)
        timer.start()
        began = time.monotonic()
        with pytest.raises(Cancelled):
            sensors.send_request("record", {"tag": "dropped"}, cancel=cancel)
        assert time.monotonic() - began < 0.3 + PROMPT
        timer.join()
        store.rpush("cancellable:release", "go")
        holder.join(10)
        assert held == ["released"]
        assert sensors.send_request("record", {"tag": "after"}) == "recorded"
    assert store.lrange("cancellable:ran", 0, -1) == ["after"]
    stats = cancelled_counts(redis_server.client(), "record", 1)
    assert (stats["cancelled"], stats["calls"], stats["expired"]) == (1, 1, 0)


def test_a_cancellation_set_from_another_thread_stops_a_running_handler(service, redis_url, events):
    service("cancellable.py")
    cancel = Cancellation()
    with caller(redis_url, timeout=30) as sensors:
        thread, outcome = in_thread(sensors.send_request, "wait", {"tag": "mine"}, cancel=cancel)
        events.wait("started", "mine")
        at = time.time()
        assert cancel.cancel("cancelled")
        thread.join(5)
    assert isinstance(outcome[0], Cancelled)
    report = events.wait("cancelled", "mine")
    assert report["reason"] == "cancelled" and report["at"] - at < PROMPT


def test_a_call_made_in_a_handler_is_cancelled_with_the_handlers_request(service, redis_url, events):
    service("cancellable.py")
    with caller(redis_url) as sensors:
        with pytest.raises(RequestTimeout):
            sensors.send_request("relay", {"tag": "outer"}, timeout=1)
    events.wait("cancelled", "outer")
    inner = events.wait("cancelled", "outer-inner")
    assert inner["reason"] == "timeout"   # the outer request's reason, passed on


def test_an_async_callers_cancelled_task_cancels_the_handler(service, redis_url, redis_server, events):
    service("cancellable.py")

    async def main():
        async with AsyncCaller(SERVICE, redis_url=redis_url, timeout=30) as sensors:
            task = asyncio.create_task(sensors.call("nap", {"tag": "task"}))
            await asyncio.to_thread(events.wait, "started", "task")
            at = time.time()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return at

    at = asyncio.run(main())
    report = events.wait("cancelled", "task")
    assert report["reason"] == "cancelled" and report["at"] - at < PROMPT
    stats = cancelled_counts(redis_server.client(), "nap", 1)
    assert stats["cancelled"] == 1 and stats["errors"] == {}


def test_an_async_callers_timeout_cancels_the_handler(service, redis_url, events):
    service("cancellable.py")

    async def main():
        async with AsyncCaller(SERVICE, redis_url=redis_url) as sensors:
            sent = time.time()
            with pytest.raises(RequestTimeout):
                await sensors.call("wait", {"tag": "aio-timeout"}, timeout=1)
            return sent

    sent = asyncio.run(main())
    report = events.wait("cancelled", "aio-timeout")
    assert report["reason"] == "timeout" and report["at"] - (sent + 1) < PROMPT


def test_ctrl_c_on_daebus_call_cancels_the_call(service, redis_url, events):
    service("cancellable.py")
    command = subprocess.Popen([sys.executable, "-m", "daebus.cli", "call", SERVICE, "nap", '{"tag": "cli"}',
                                "--timeout", "30"], env=child_env(redis_url), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, preexec_fn=default_signals)
    try:
        events.wait("started", "cli")
        at = time.time()
        command.send_signal(signal.SIGINT)
        assert command.wait(10) == 130   # Exit.INTERRUPTED
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
        command.stdout.close()
        command.stderr.close()
    report = events.wait("cancelled", "cli")
    assert report["reason"] == "interrupted" and report["at"] - at < 1.0


# -- group mode ------------------------------------------------------------------
def stream_state(client) -> tuple[int, int]:
    """(entries in the stream, entries pending with some member)."""
    stream = f"daebus:stream:{SERVICE}"
    return client.xlen(stream), client.xpending(stream, "daebus")["pending"]


def test_group_a_cancelled_running_entry_is_acknowledged_not_redelivered(service, redis_url, store, events):
    service("cancellable.py", "--group", "--claim-idle", "1")
    with caller(redis_url) as sensors:
        with pytest.raises(RequestTimeout):
            sensors.send_request("wait", {"tag": "g-run"}, timeout=1)
        assert events.wait("cancelled", "g-run")["reason"] == "timeout"
        # Answered nothing, yet acknowledged: nothing left for another member to claim.
        assert sensors.send_request("record", {"tag": "g-next"}, timeout=10) == "recorded"
    assert stream_state(store) == (0, 0)
    assert [r["delivery"] for r in events.seen if r["tag"] == "g-run" and r["event"] == "started"] == [1]


def test_group_an_entry_cancelled_while_it_waits_in_the_stream_never_runs(service, redis_url, store, events):
    # The one member's one worker is busy, so the entry waits in the stream, unread,
    # when the cancel comes: the member keeps the cancel for when it reads it.
    service("cancellable.py", "--group", "--workers", "1", "--claim-idle", "1")
    with caller(redis_url, timeout=30) as sensors:
        holder, held = in_thread(sensors.send_request, "block", {"tag": "g-hold"})
        events.wait("started", "g-hold")
        cancel = Cancellation()
        timer = threading.Timer(0.3, cancel.cancel)
        timer.start()
        with pytest.raises(Cancelled):
            sensors.send_request("record", {"tag": "g-dropped"}, cancel=cancel)
        timer.join()
        assert stream_state(store)[0] == 2   # held, and waiting
        store.rpush("cancellable:release", "go")
        holder.join(10)
        assert held == ["released"]
        assert sensors.send_request("record", {"tag": "g-after"}) == "recorded"
    assert store.lrange("cancellable:ran", 0, -1) == ["g-after"]
    assert stream_state(store) == (0, 0)


# -- 0.0.x peers -------------------------------------------------------------------
def test_a_0_0_x_service_ignores_cancels_and_keeps_answering(redis_server, redis_url):
    """A 0.0.x service subscribes to its name only: the cancel reaches
    nobody, costs the caller nothing, and the service serves on."""
    client = redis_server.client()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("legacy")
    pubsub.get_message(timeout=5)
    received: list[dict] = []
    done = threading.Event()

    def serve():
        while not done.is_set():
            message = pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            request = json.loads(message["data"])
            received.append(request)
            time.sleep(request["payload"].get("seconds", 0))
            client.publish(request["reply_to"], json.dumps(
                {"status": "success", "payload": {"tag": request["payload"]["tag"]},
                 "request_id": request["request_id"], "final": True}))

    server = threading.Thread(target=serve)
    server.start()
    try:
        with DaebusCaller("legacy", redis_url=redis_url) as legacy:
            began = time.monotonic()
            with pytest.raises(RequestTimeout):
                legacy.send_request("slow", {"tag": "late", "seconds": 1.5}, timeout=0.5)
            assert time.monotonic() - began < 0.5 + PROMPT
            assert legacy.send_request("fast", {"tag": "next"}, timeout=10) == {"tag": "next"}
        assert client.pubsub_numsub("daebus:cancel:legacy") == [("daebus:cancel:legacy", 0)]
        assert [r["action"] for r in received] == ["slow", "fast"]   # requests, nothing else
    finally:
        done.set()
        server.join(5)
        pubsub.close()


# -- hostile peers -----------------------------------------------------------------
def raw_request(client, action: str, payload: dict) -> tuple[str, str, object]:
    """Send a request as a raw caller: (reply_to, request_id, its reply subscription)."""
    reply_to, request_id = f"caller:{uuid.uuid4()}", uuid.uuid4().hex
    replies = client.pubsub(ignore_subscribe_messages=True)
    replies.subscribe(reply_to)
    replies.get_message(timeout=5)
    assert client.publish(SERVICE, json.dumps({"action": action, "payload": payload, "reply_to": reply_to,
                                               "request_id": request_id, "service": SERVICE})) == 1
    return reply_to, request_id, replies


def test_garbage_floods_and_forged_cancels_cancel_nothing(service, redis_server, events):
    svc = service("cancellable.py")
    client = redis_server.client()
    reply_to, request_id, replies = raw_request(client, "wait", {"tag": "victim", "seconds": 30})
    try:
        events.wait("started", "victim")
        garbage = [b"", b"\xff\xfe", b"not json", b"[1, 2]", b"null", b'{"request_id": 5}',
                   json.dumps({"request_id": True, "reply_to": reply_to}).encode(),
                   json.dumps({"request_id": request_id, "reply_to": ""}).encode(),
                   json.dumps({"request_id": request_id, "reply_to": reply_to, "pad": "x" * 10_000}).encode(),
                   b"[" * 100_000]
        forged = [{"request_id": request_id, "reply_to": f"caller:{uuid.uuid4()}"},   # the id, not the channel
                  {"request_id": uuid.uuid4().hex, "reply_to": reply_to},             # the channel, not the id
                  {"request_id": request_id.upper(), "reply_to": reply_to}]
        flood = [{"request_id": uuid.uuid4().hex, "reply_to": f"caller:{uuid.uuid4()}", "reason": "timeout"}
                 for _ in range(5000)]
        pipe = client.pipeline(transaction=False)
        for message in [*garbage, *(json.dumps(m) for m in forged + flood)]:
            pipe.publish(CANCELS, message)
        assert set(pipe.execute()) == {1}
        # Still served at once meanwhile, and the victim still waits.
        with DaebusCaller(SERVICE, redis_url=redis_server.url, timeout=10) as sensors:
            began = time.monotonic()
            assert sensors.send_request("record", {"tag": "meanwhile"}) == "recorded"
            assert time.monotonic() - began < 1.0
        assert events.of("victim") == ["started"]
        # Its own caller's cancel, with both ids, does cancel it.
        client.publish(CANCELS, json.dumps({"request_id": request_id, "reply_to": reply_to,
                                            "reason": "something new"}))
        assert events.wait("cancelled", "victim")["reason"] == "cancelled"   # an unknown reason reads so
        assert replies.get_message(timeout=0.5) is None   # nobody waits for a reply: none is sent
    finally:
        replies.close()
        client.delete("cancellable:ran")
    assert "Traceback" not in svc.log
