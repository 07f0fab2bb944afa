"""Calls end within their timeout whatever Redis does: stalled, killed, refusing; no false ConnectionLost."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from support import ROOT, start_slow_call

from daebus import ConnectionLost, DaebusCaller, DaebusError, ServiceStopped

MARGIN = 0.5  # the bound: PUBLISH_GRACE over the timeout, and time to raise on a loaded machine


def timed_call(caller, timeout=1.0):
    started = time.monotonic()
    try:
        outcome = caller.send_request("echo", {"n": 1}, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - inspected by the test
        outcome = exc
    return outcome, time.monotonic() - started


@pytest.mark.slow
def test_a_frozen_redis_bounds_every_call_and_calls_succeed_once_it_resumes(service, fresh_redis):
    service("basic.py", "basic", url=fresh_redis.url)
    caller = DaebusCaller("basic", redis_url=fresh_redis.url, timeout=1)
    assert caller.send_request("echo", {})["echo"] == {}
    fresh_redis.process.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    outcomes = []
    try:
        while time.monotonic() - stopped < 30:
            outcomes.append(timed_call(caller))
    finally:
        fresh_redis.process.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    assert len(outcomes) >= 20
    slowest = max(took for _, took in outcomes)
    assert slowest <= 1.0 + MARGIN, f"a 1 s call took {slowest:.2f} s while Redis was stopped"
    assert all(isinstance(outcome, ConnectionLost) for outcome, _ in outcomes), \
        {type(outcome).__name__ for outcome, _ in outcomes}
    # The request was not taken, or (once the reply subscription was found silent) the
    # subscription made afresh was not confirmed: either way within the call's second.
    assert any(text in str(outcomes[-1][0]) for text in
               ("did not take the request within 1 s", "the reply subscription was not confirmed in time")), outcomes[-1]
    # Resumed: within a second calls succeed again (the service may be a
    # reconnection backoff away from its subscription), and then every one does.
    while not isinstance(outcome := timed_call(caller)[0], dict):
        assert isinstance(outcome, DaebusError) and time.monotonic() - resumed < 1.0, outcome
    assert time.monotonic() - resumed < 1.0, f"first success {time.monotonic() - resumed:.2f} s after SIGCONT"
    after = [timed_call(caller) for _ in range(5)]
    assert all(isinstance(outcome, dict) and took < 1.0 for outcome, took in after), after


def test_calls_over_a_unix_socket_are_bounded_too(service, fresh_redis):
    service("basic.py", "basic", url=fresh_redis.url)
    caller = DaebusCaller("basic", redis_url=f"unix://{fresh_redis.unix_socket}", timeout=1)
    assert caller.send_request("echo", {})["echo"] == {}
    fresh_redis.process.send_signal(signal.SIGSTOP)
    try:
        frozen = [timed_call(caller) for _ in range(3)]
    finally:
        fresh_redis.process.send_signal(signal.SIGCONT)
    assert all(isinstance(outcome, ConnectionLost) and took <= 1.0 + MARGIN for outcome, took in frozen), frozen
    assert isinstance(timed_call(caller, timeout=5)[0], dict)


def test_a_killed_redis_bounds_every_call_and_a_restarted_one_serves_again(service, fresh_redis):
    service("basic.py", "basic", url=fresh_redis.url)
    caller = DaebusCaller("basic", redis_url=fresh_redis.url, timeout=1)
    assert caller.send_request("echo", {})["echo"] == {}
    fresh_redis.stop(kill=True)
    refused = [timed_call(caller) for _ in range(5)]
    assert all(isinstance(outcome, ConnectionLost) and took <= 1.0 + MARGIN for outcome, took in refused), refused
    fresh_redis.start()
    deadline = time.monotonic() + 20
    while True:  # the service resubscribes with its backoff; then every call succeeds
        outcome, took = timed_call(caller, timeout=2)
        assert took <= 2 + MARGIN
        if isinstance(outcome, dict):
            break
        assert isinstance(outcome, DaebusError) and time.monotonic() < deadline, outcome
    assert all(isinstance(timed_call(caller)[0], dict) for _ in range(3))


FLOOD = textwrap.dedent("""
    import collections, json, sys, threading
    from daebus import DaebusCaller

    url, count = sys.argv[1], int(sys.argv[2])
    caller = DaebusCaller("basic", redis_url=url)
    barrier = threading.Barrier(count)
    outcomes = collections.Counter()
    lock = threading.Lock()

    def call(i):
        barrier.wait()
        try:
            caller.send_request("slow", {"seconds": 0.01, "tag": i}, timeout=3)
            kind = "ok"
        except Exception as exc:
            kind = type(exc).__name__
        with lock:
            outcomes[kind] += 1

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(outcomes))
""")


@pytest.mark.slow
def test_a_flood_on_one_worker_never_reports_a_lost_connection(service, redis_url):
    service("basic.py", "basic", env={"TEST_MAX_WORKERS": "1", "DAEBUS_QUEUE_SIZE": "1000"})
    for run in range(10):
        # A fresh process each run: its first calls race to set up the reply subscription,
        # while callers reading the shared subscription hold it until their own reply comes
        # (5 s of work queue for 3 s calls: the late ones time out, none may say Redis is gone).
        result = subprocess.run([sys.executable, "-c", FLOOD, redis_url, "500"], cwd=ROOT, timeout=120,
                                capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert result.returncode == 0, result.stderr[-3000:]
        outcomes = json.loads(result.stdout.strip().splitlines()[-1])
        assert outcomes.get("ConnectionLost", 0) == 0, (run, outcomes)
        assert sum(outcomes.values()) == 500 and outcomes.get("ok", 0) >= 1, (run, outcomes)


def test_requests_abandoned_at_shutdown_get_an_error_reply(service, redis_server, redis_url):
    svc = service("basic.py", "basic", env={"TEST_MAX_WORKERS": "1", "DAEBUS_SHUTDOWN_TIMEOUT": "1"})
    caller = DaebusCaller("basic", redis_url=redis_url)
    running, outcome = start_slow_call(caller, redis_server, 3600, timeout=30)
    watch = redis_server.client().pubsub(ignore_subscribe_messages=True)
    watch.subscribe("basic")
    assert watch.get_message(timeout=5) is None  # confirmed, nothing else yet
    queued, queued_outcome = start_slow_call(caller, redis_server, 0, timeout=30, action="echo")
    # The service receives the queued request as this subscriber does.
    assert watch.get_message(timeout=5) is not None
    watch.close()
    started = time.monotonic()
    svc.signal(signal.SIGTERM)
    running.join(10)
    queued.join(10)
    assert not running.is_alive() and not queued.is_alive()
    assert time.monotonic() - started < 5  # the shutdown bound, not the calls' 30 s
    for result in (outcome, queued_outcome):
        assert isinstance(result[0], ServiceStopped), result
        assert result[0].code == "shutting_down"
    svc.wait(10)
