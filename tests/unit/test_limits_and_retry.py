"""Declaring concurrency limits and retries, and the parts that keep them."""

import random
import threading

import pytest

from daebus import Blueprint, Daebus, RemoteError, Retry, RetryExhausted, RetryPolicy, request
from daebus.app.limits import DEFAULT_QUEUE, Limit
from daebus.app.retry import MAX_AFTER, next_wait, wanted
from daebus.service.claims import delivered_before, first_id
from daebus.service.gates import FULL, REFUSED, RUNNING, WAITING, Gate, Gates, Job
from daebus.service.later import Later
from daebus.service.pool import WorkerPool
from daebus.testing import TestClient


# -- declaring -------------------------------------------------------------------
def test_limits_and_policies_are_recorded_by_action_and_listener_also_from_a_blueprint():
    app, bp = Daebus("limits"), Blueprint("device")
    policy = RetryPolicy(attempts=5)

    @bp.action("print", concurrency=1)
    def print_job():
        pass

    @app.action("scan", concurrency=2, queue=5, retry=policy)
    def scan():
        pass

    @app.listen("jobs", concurrency=1, queue=0, retry=policy)
    def on_job(payload):
        pass

    app.register_blueprint(bp)
    assert app.limits == {"print": Limit(1, DEFAULT_QUEUE), "scan": Limit(2, 5)}
    assert app.retries == {"scan": policy}
    assert app.listen_limits == {("jobs", on_job): Limit(1, 0)}
    assert app.listen_retries == {("jobs", on_job): policy}


@pytest.mark.parametrize("kwargs, error", [
    ({"concurrency": 0}, ValueError), ({"concurrency": True}, ValueError), ({"concurrency": 1.5}, ValueError),
    ({"concurrency": "1"}, ValueError), ({"concurrency": 1, "queue": -1}, ValueError),
    ({"queue": 3}, TypeError), ({"retry": 3}, TypeError), ({"retry": Retry}, TypeError)])
def test_a_limit_or_policy_that_cannot_be_one_fails_at_declaration(kwargs, error):
    app = Daebus("bad")
    with pytest.raises(error):
        app.action("x", **kwargs)
    with pytest.raises(error):
        app.listen("c", **kwargs)


@pytest.mark.parametrize("after", [-1, -0.001, MAX_AFTER + 1, float("nan"), float("inf"), "2", True, None, [1]])
def test_retry_refuses_a_wait_it_cannot_keep(after):
    if after is None:
        assert Retry(after=None).after is None
        return
    with pytest.raises((TypeError, ValueError), match="Retry"):
        Retry(after=after)


@pytest.mark.parametrize("kwargs", [
    {"attempts": 0}, {"attempts": 2.0}, {"backoff": -1}, {"cap": MAX_AFTER * 2}, {"factor": 0.5},
    {"factor": 100}, {"jitter": 1.5}, {"jitter": -0.1}, {"retry_on": (ValueError, 3)},
    {"retry_on": KeyboardInterrupt}])
def test_a_policy_with_an_impossible_field_fails_when_made(kwargs):
    with pytest.raises((TypeError, ValueError), match="RetryPolicy"):
        RetryPolicy(**kwargs)


def test_a_policy_backs_off_by_its_factor_up_to_its_cap_give_or_take_its_jitter():
    steady = RetryPolicy(attempts=10, backoff=1, factor=2, jitter=0, cap=5)
    assert [steady.wait(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    jittery = RetryPolicy(backoff=10, jitter=0.2, cap=100)
    rng = random.Random(7)
    waits = [jittery.wait(1, rng) for _ in range(200)]
    assert all(8 <= w <= 12 for w in waits) and max(waits) - min(waits) > 2
    assert RetryPolicy(retry_on=OSError).retry_on == (OSError,)


def test_what_asks_for_a_retry_and_how_soon():
    policy = RetryPolicy(attempts=2, backoff=3, jitter=0, retry_on=(OSError,))
    explicit = Retry(after=0.5)
    assert wanted(explicit, None) is explicit
    asked = wanted(ConnectionError("down"), policy)
    assert isinstance(asked, Retry) and isinstance(asked.__cause__, ConnectionError)
    assert wanted(ValueError(), policy) is None and wanted(OSError(), None) is None
    assert next_wait(explicit, policy, 1) == 0.5 and next_wait(Retry(), policy, 1) == 3
    assert next_wait(explicit, policy, 2) is None          # the policy's last attempt
    assert next_wait(Retry(), None, 2) is not None and next_wait(Retry(), None, 3) is None   # default: 3


# -- the gate ------------------------------------------------------------------------
def test_a_gate_holds_its_places_and_queue_and_hands_a_place_to_the_next_waiting():
    gate = Gate("action 'x'", Limit(1, 1))
    events = []
    first, second, third = (Job(n, None, (), parked=lambda n=n: events.append(("parked", n)),
                                resumed=lambda n=n: events.append(("resumed", n))) for n in "abc")
    assert gate.enter(first) == RUNNING and gate.enter(second) == WAITING and gate.enter(third) == FULL
    assert gate.leave() is second and (gate.running, gate.waiting) == (1, 0)
    assert gate.leave() is None and gate.running == 0
    assert events == [("parked", "b"), ("resumed", "b")]


class _Handlers:
    """Handlers that run a job when told to, and refuse when full."""

    def __init__(self, refuse=False):
        self.refuse, self.queued = refuse, []

    def submit(self, fn, *args, owed=False):
        if self.refuse and not owed:
            return False
        self.queued.append((fn, args))
        return True

    def run_next(self):
        fn, args = self.queued.pop(0)
        fn(*args)


def test_gates_run_one_at_a_time_and_a_pool_refusal_passes_the_place_on():
    app = Daebus("gated")
    ran = []

    @app.action("x", concurrency=1, queue=5)
    def x():
        pass

    handlers = _Handlers()
    gates = Gates(app, handlers)
    gate = gates.action("x")
    assert gates.action("other") is None and gates.listener("c", x) is None
    assert [gates.run(gate, Job("x", ran.append, (n,))) for n in range(3)] == [RUNNING, WAITING, WAITING]
    assert len(handlers.queued) == 1           # the waiting ones hold no worker
    for _ in range(3):
        handlers.run_next()
    assert ran == [0, 1, 2] and gate.running == 0 and not handlers.queued

    handlers.refuse = True
    assert gates.run(gate, Job("x", ran.append, (3,))) == REFUSED and gate.running == 0


# -- what keeps the waits ------------------------------------------------------------
def test_later_calls_what_is_due_and_drops_what_still_waits_on_stop():
    later = Later()
    due, dropped = threading.Event(), []
    assert later.at(0.01, due.set, lambda: dropped.append("first"))
    assert later.at(3600, lambda: None, lambda: dropped.append("second"))
    assert due.wait(5)
    later.stop()
    assert dropped == ["second"] and later.join(5)
    assert not later.at(0, lambda: None, lambda: None)


def test_an_owed_call_is_taken_by_a_full_or_closed_pool():
    pool = WorkerPool(1, queue_size=0)
    hold, done = threading.Event(), threading.Event()
    assert pool.submit(hold.wait, 5)
    assert not pool.submit(done.set) and pool.submit(done.set, owed=True)
    pool.stop()
    assert not pool.submit(done.set) and pool.submit(lambda: None, owed=True) and pool.admit(owed=True)
    pool.release()
    hold.set()
    assert done.wait(5) and pool.join(5)


@pytest.mark.parametrize("fields, delivered, first", [
    (None, 0, "5-0"), ({}, 0, "5-0"), ({b"delivered": b"2", b"first": b"1-0"}, 2, "1-0"),
    ({"delivered": "abc", "first": "not an id"}, 0, "5-0"), ({b"delivered": b"-3"}, 0, "5-0"),
    ({b"delivered": b"99999999999"}, 0, "5-0"), ({b"first": b"1-0 2 x"}, 0, "5-0")])
def test_a_re_added_entry_names_its_deliveries_and_first_id_or_is_read_as_a_first_one(fields, delivered, first):
    assert delivered_before(fields) == delivered and first_id(fields, "5-0") == first


# -- under test ----------------------------------------------------------------------
def test_test_client_retries_at_once_within_the_attempts_and_records_the_waits():
    app = Daebus("flaky")
    seen = []

    @app.action("flaky")
    def flaky():
        if request.delivery < 3:
            raise Retry(after=2)
        return {"delivery": request.delivery}

    @app.action("always", retry=RetryPolicy(attempts=2, backoff=1, jitter=0, retry_on=(OSError,)))
    def always():
        raise OSError("port busy")

    @app.action("never")
    def never():
        raise Retry(after=1, message="printer offline")

    @app.listen("jobs")
    def on_job(payload):
        seen.append(payload)
        raise Retry(after=0.5)

    with TestClient(app) as client:
        assert client.call("flaky") == {"delivery": 3}
        with pytest.raises(RemoteError, match="port busy") as info:
            client.call("always")
        assert info.value.code == "handler_error"
        with pytest.raises(RetryExhausted, match="printer offline"):
            client.call("never")
        client.publish("jobs", {"n": 1})
        assert client.retries == [("flaky", 2), ("flaky", 2), ("always", 1), ("never", 1), ("never", 1),
                                  ("jobs", 0.5), ("jobs", 0.5)]
    assert seen == [{"n": 1}] * 3


def test_a_worker_of_a_locked_bus_may_keep_its_own_retries_only():
    from daebus.security.acl import Worker, worker_rules
    rules = worker_rules(Worker("sensors", "sensors"))
    assert "~daebus:retry:sensors" in rules and not any(r.startswith("~daebus:retry:*") for r in rules)
