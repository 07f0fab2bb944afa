"""A service's two readers take turns: the one that read a request runs it
while the other reads on, so a long handler never leaves the bus unread."""

import concurrent.futures
import threading
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


def _stop_while_preempted(stop, resume: threading.Event, stopping: threading.Thread) -> float:
    """Seconds from ``stop()`` until ``stopping`` ended, the reader staying
    preempted for the first 0.3 s of it."""
    started = time.monotonic()
    stop()
    threading.Event().wait(0.3)   # stopping is under way while the reader is preempted
    resume.set()
    stopping.join(10)
    assert not stopping.is_alive()
    return time.monotonic() - started


def test_stop_waits_for_no_handler_a_reader_took_on_as_the_service_stops(redis_server, monkeypatch):
    # A reader preempted between lending its turn and noting that it runs a
    # handler, while stop() runs: stop() must not wait for that handler,
    # which is drained with the rest of the work within shutdown_timeout.
    from daebus.bus.subscriber import Subscriber
    from daebus.bus.turns import Turns

    lent, resume, handled = threading.Event(), threading.Event(), threading.Event()
    real_lend = Turns.lend

    def preempted_lend(self):
        if not real_lend(self):
            return False
        lent.set()
        resume.wait(10)
        return True

    monkeypatch.setattr(Turns, "lend", preempted_lend)

    def on_message(channel, data):
        if subscriber.hand_over():
            handled.wait(10)   # a long handler

    subscriber = Subscriber(redis_server.url, ["preempted"], on_message, readers=2)
    subscriber.start()
    try:
        assert subscriber.wait_ready(5)
        redis_server.client().publish("preempted", "work")
        assert lent.wait(5), "the request was not run on its reader"
        stopper = threading.Thread(target=subscriber.stop)
        took = _stop_while_preempted(stopper.start, resume, stopper)
        assert not handled.is_set()
        assert took < 1.5, f"stop() waited {took:.1f} s for a handler"
    finally:
        resume.set()
        handled.set()
        subscriber.stop()


def test_a_group_stopping_waits_for_no_handler_a_reader_took_on_as_it_stops(run_app, redis_url, monkeypatch):
    # The same in group mode: the reader is preempted after taking an entry
    # to run itself, before it counts as running a handler.
    from daebus import Daebus
    from daebus.service.pool import WorkerPool

    borrowing, resume, release = threading.Event(), threading.Event(), threading.Event()
    real_borrow = WorkerPool.borrow

    def preempted_borrow(self):
        borrowing.set()
        resume.wait(10)
        return real_borrow(self)

    monkeypatch.setattr(WorkerPool, "borrow", preempted_borrow)
    app = Daebus("preempted_group", mode="group")

    @app.action("hold")
    def hold():
        release.wait(20)
        return {"held": True}

    outcome: list = []

    def call():
        try:
            outcome.append(caller.send_request("hold"))
        except Exception as exc:  # noqa: BLE001 - a stopped service's answer, looked at below
            outcome.append(exc)

    calling = threading.Thread(target=call, daemon=True)
    try:
        thread = run_app(app, service="preempted_group", shutdown_timeout=0.5)
        caller = DaebusCaller("preempted_group", redis_url=redis_url, timeout=20)
        calling.start()
        assert borrowing.wait(10), "the request was not run on its reader"
        took = _stop_while_preempted(app.stop, resume, thread)
        assert took < 3, f"stopping took {took:.1f} s with a 0.5 s shutdown_timeout"
    finally:
        resume.set()
        release.set()
        # The call ends with this test, not later under another test's name.
        if calling.is_alive() or outcome:
            calling.join(25)
    assert not calling.is_alive() and len(outcome) == 1, outcome
