"""Retry with backoff on a real Redis: owner mode within the caller's deadline,
listeners within the attempts, group mode kept in Redis across a restart."""

import json
import threading
import time
import uuid

import pytest

from daebus import DaebusCaller, RemoteError, RetryExhausted, ServiceStopped

# A retry may start late by the timer's or the beat's step and a loaded
# machine; never early (but for the difference between the wall clock the
# attempts record and the monotonic one the waits are measured on).
SLACK = 0.25
EARLY = 0.01


@pytest.fixture
def retry_log(tmp_path):
    path = tmp_path / "attempts.log"
    path.touch()
    return path


@pytest.fixture
def retrying(service, retry_log):
    """Start retrying.py instances: ``retrying(name, mode)``."""
    def start(name=None, mode="owner", **env):
        name = name or f"retrying-{uuid.uuid4().hex[:6]}"
        svc = service("retrying.py", name, env={"DAEBUS_SERVICE_MODE": mode, "RETRY_LOG": str(retry_log), **env})
        svc.service_name = name
        return svc
    return start


def attempts(path, tag=None) -> list[tuple[str, int, int, float]]:
    rows = []
    for line in path.read_text().splitlines():
        request_id, pid, delivery, at, row_tag = line.split()
        if tag is None or row_tag == tag:
            rows.append((request_id, int(pid), int(delivery), float(at)))
    return rows


def gaps(rows) -> list[float]:
    times = [at for *_, at in rows]
    return [b - a for a, b in zip(times, times[1:])]


def wait_for_log(svc, text, timeout=10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in svc.log:
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{svc.log}"
        time.sleep(0.05)


# -- owner mode ---------------------------------------------------------------
@pytest.mark.parametrize("action, after", [("flaky", 0.3), ("aflaky", 0.3)])
def test_owner_retries_within_the_deadline_then_answers(retrying, redis_url, retry_log, action, after):
    svc = retrying()
    with DaebusCaller(svc.service_name, redis_url=redis_url) as caller:
        reply = caller.send_request(action, {"after": after}, timeout=10)
    assert reply["delivery"] == 3
    rows = attempts(retry_log, action)
    assert [row[2] for row in rows] == [1, 2, 3]
    assert all(after - EARLY <= gap < after + SLACK for gap in gaps(rows)), gaps(rows)


def test_owner_retries_past_the_attempts_answer_retry_exhausted(retrying, redis_url, retry_log):
    svc = retrying()
    with DaebusCaller(svc.service_name, redis_url=redis_url) as caller:
        with pytest.raises(RetryExhausted) as info:
            caller.send_request("always", {"after": 0.1}, timeout=10)
    assert info.value.code == "retry_exhausted"
    assert [row[2] for row in attempts(retry_log, "always")] == [1, 2, 3]


def test_a_retry_past_the_callers_deadline_answers_the_last_error_at_once(retrying, redis_url, retry_log):
    svc = retrying()
    with DaebusCaller(svc.service_name, redis_url=redis_url) as caller:
        started = time.monotonic()
        with pytest.raises(RetryExhausted):
            caller.send_request("flaky", {"after": 5}, timeout=2)
        # The exception behind the retry is the last error.
        with pytest.raises(RemoteError) as info:
            caller.send_request("port_busy", {"after": 5}, timeout=2)
        elapsed = time.monotonic() - started
    assert info.value.code == "handler_error" and "serial port busy" in str(info.value)
    assert elapsed < 1.5, f"the caller waited {elapsed:.2f} s for answers due at once"
    assert len(attempts(retry_log)) == 2


def test_a_declared_policy_retries_its_exceptions_with_backoff(retrying, redis_url, retry_log):
    svc = retrying()
    with DaebusCaller(svc.service_name, redis_url=redis_url) as caller:
        assert caller.send_request("modem", {}, timeout=10) == {"delivery": 3}
        rows = attempts(retry_log, "modem")
        [first, second] = gaps(rows)
        assert 0.2 - EARLY <= first < 0.2 + SLACK and 0.4 - EARLY <= second < 0.4 + SLACK, (first, second)
        with pytest.raises(RemoteError) as info:   # past its three attempts: the last error
            caller.send_request("modem", {"succeed_on": 10}, timeout=10)
    assert info.value.code == "handler_error" and "modem down" in str(info.value)
    assert len(attempts(retry_log, "modem")) == 6


@pytest.mark.parametrize("after, says", [(-1, "between 0 and 86400"), (1e9, "between 0 and 86400"),
                                         ("soon", "must be a number"), (True, "must be a number"),
                                         ([], "must be a number")])
def test_a_hostile_wait_is_a_handler_error_and_never_retried(retrying, redis_url, retry_log, after, says):
    svc = retrying()
    with DaebusCaller(svc.service_name, redis_url=redis_url) as caller:
        with pytest.raises(RemoteError) as info:
            caller.send_request("hostile", {"after": after}, timeout=5)
        assert info.value.code == "handler_error" and says in str(info.value), info.value
        assert caller.send_request("flaky", {"after": 0, "succeed_on": 1}, timeout=5)["delivery"] == 1
    assert len(attempts(retry_log, "hostile")) == 1


def test_a_stop_answers_a_waiting_retry_at_once(retrying, redis_url):
    svc = retrying()
    outcome = []

    def call():
        with DaebusCaller(svc.service_name, redis_url=redis_url) as caller:
            try:
                outcome.append(caller.send_request("flaky", {"after": 30}, timeout=60))
            except Exception as exc:  # noqa: BLE001 - inspected below
                outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    try:
        wait_for_log(svc, "asked for a retry: attempt 2")
        stopped = time.monotonic()
        assert svc.stop() == 0
        thread.join(10)
        assert time.monotonic() - stopped < 5
    finally:
        thread.join(60)
    [error] = outcome
    assert isinstance(error, ServiceStopped), error


# -- listeners ------------------------------------------------------------------
def test_a_listener_gets_the_broadcast_again_after_the_wait_within_the_attempts(retrying, redis_server, redis_url):
    svc = retrying()
    pubsub = redis_server.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("reading_attempt")
    pubsub.get_message(timeout=5)
    seen: dict[str, list] = {}
    try:
        with DaebusCaller(svc.service_name, redis_url=redis_url) as caller:
            caller.send_message("readings", {"id": "ok", "succeed_on": 3, "after": 0.3})
            caller.send_message("readings", {"id": "never", "after": 0.1})
        while len(seen.get("ok", ())) < 3 or len(seen.get("never", ())) < 3:
            message = pubsub.get_message(timeout=10)
            assert message is not None, seen
            data = json.loads(message["data"])
            seen.setdefault(data["id"], []).append(data["at"])
        wait_for_log(svc, "asked for a retry after attempt 3, and none is left")
    finally:
        pubsub.close()
    ok = seen["ok"]
    assert all(0.3 - EARLY <= b - a < 0.3 + SLACK for a, b in zip(ok, ok[1:])), ok
    assert len(seen["never"]) == 3


# -- group mode --------------------------------------------------------------------
def test_group_retry_waits_in_redis_across_a_restart(retrying, redis_server, redis_url, retry_log):
    first = retrying(mode="group")
    name = first.service_name
    client = redis_server.client()
    notices = client.pubsub(ignore_subscribe_messages=True)
    notices.subscribe(f"daebus:group:{name}")
    notices.get_message(timeout=5)
    outcome = []

    def call():
        with DaebusCaller(name, redis_url=redis_url) as caller:
            try:
                outcome.append(caller.send_request("flaky", {"after": 2}, timeout=30))
            except Exception as exc:  # noqa: BLE001 - inspected below
                outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    try:
        # A kept retry is announced to the group: once it is in Redis, the
        # instance goes (killed: nothing of it survives but what Redis keeps),
        # and a new one starts.
        while not client.zcard(f"daebus:retry:{name}"):
            assert notices.get_message(timeout=10) is not None, "no retry was kept"
        first.kill()
        second = retrying(name, mode="group")
        thread.join(30)
    finally:
        notices.close()
        thread.join(30)
    [reply] = outcome
    assert isinstance(reply, dict) and reply["delivery"] == 3, reply
    rows = attempts(retry_log, "flaky")
    assert [(pid, delivery) for _, pid, delivery, _ in rows] == [
        (first.process.pid, 1), (second.process.pid, 2), (second.process.pid, 3)]
    assert all(2.0 - EARLY <= gap < 2.5 for gap in gaps(rows)), gaps(rows)
    assert client.zcard(f"daebus:retry:{name}") == 0 and client.xlen(f"daebus:stream:{name}") == 0


def test_group_retries_past_max_deliveries_are_dead_lettered(retrying, redis_server, redis_url, retry_log):
    svc = retrying(mode="group")
    name = svc.service_name
    with DaebusCaller(name, redis_url=redis_url) as caller:
        with pytest.raises(RemoteError) as info:
            caller.send_request("port_busy", {"after": 0.2}, timeout=20)
    assert info.value.code == "dead_letter" and "serial port busy" in str(info.value)
    assert [row[2] for row in attempts(retry_log, "port_busy")] == [1, 2, 3]
    client = redis_server.client()
    [(_, fields)] = client.xrange(f"daebus:dead:{name}")
    assert json.loads(fields["request"])["action"] == "port_busy" and fields["deliveries"] == "3"
    assert client.zcard(f"daebus:retry:{name}") == 0 and client.xlen(f"daebus:stream:{name}") == 0


def test_group_retry_past_the_callers_deadline_answers_at_once(retrying, redis_server, redis_url, retry_log):
    svc = retrying(mode="group")
    name = svc.service_name
    with DaebusCaller(name, redis_url=redis_url) as caller:
        started = time.monotonic()
        with pytest.raises(RetryExhausted):
            caller.send_request("flaky", {"after": 10}, timeout=2)
        assert time.monotonic() - started < 1.5
    client = redis_server.client()
    assert client.zcard(f"daebus:retry:{name}") == 0 and client.xlen(f"daebus:stream:{name}") == 0


def test_garbage_in_the_retry_set_is_dropped_and_the_group_serves_on(retrying, redis_server, redis_url):
    svc = retrying(mode="group")
    name = svc.service_name
    client = redis_server.client()
    client.zadd(f"daebus:retry:{name}", {"garbage": 0, "1-1 2 not json": 0, "1-1 x {}": 0})
    with DaebusCaller(name, redis_url=redis_url) as caller:
        # Its retry wakes the beat that moves what is due, the garbage with it.
        assert caller.send_request("flaky", {"after": 0.2, "succeed_on": 2}, timeout=10)["delivery"] == 2
    wait_for_log(svc, "dropped malformed request")
    assert client.zcard(f"daebus:retry:{name}") == 0
    assert svc.running


@pytest.mark.parametrize("mode", ["owner", "group"])
def test_a_caller_of_0_0_x_just_waits_longer_for_a_retried_answer(retrying, redis_server, mode):
    svc = retrying(mode=mode)
    client = redis_server.client()
    reply_to = f"caller:{uuid.uuid4()}"
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(reply_to)
    pubsub.get_message(timeout=5)
    try:
        # 0.0.x's envelope: no timeout_ms, no sent_at; published even to a group (bridged).
        assert client.publish(svc.service_name, json.dumps({
            "action": "flaky", "payload": {"after": 0.2}, "reply_to": reply_to, "request_id": "old-1",
            "service": svc.service_name})) == 1
        message = pubsub.get_message(timeout=15)
    finally:
        pubsub.close()
    assert message is not None, "no reply"
    reply = json.loads(message["data"])
    assert set(reply) == {"status", "payload", "request_id", "final"}
    assert reply["status"] == "success" and reply["payload"]["delivery"] == 3 and reply["request_id"] == "old-1"
