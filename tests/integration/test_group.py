"""Group mode on a real Redis: shared requests, crashes, dead letters, restarts."""

import collections
import json
import os
import signal
import threading
import time

import pytest

from daebus import DaebusCaller, NameTaken, RemoteError, RequestTimeout, list_services
from daebus.bus.registry import members
from support import wait_until

CLAIM_IDLE = 2.0


@pytest.fixture
def group(service, redis_url, tmp_path):
    """Start ``n`` member.py instances of one group service."""
    conf = tmp_path / "daebus.toml"
    conf.write_text(f"[service]\nclaim_idle = {CLAIM_IDLE}\nregistry_ttl = 6\n")
    log = tmp_path / "handled.log"
    log.touch()

    def start(name, n=1, wait=True, **env):
        env = {"DAEBUS_CONFIG": str(conf), "DAEBUS_SERVICE_MODE": "group", "MEMBER_LOG": str(log), **env}
        return [service("member.py", name, env=env, wait=wait) for _ in range(n)]

    start.log = log
    return start


def handled(log) -> list[tuple[str, int, int, str]]:
    rows = []
    for line in log.read_text().splitlines():
        request_id, pid, delivery, tag = line.split()
        rows.append((request_id, int(pid), int(delivery), tag))
    return rows


def test_group_of_three_answers_2000_requests_from_16_threads_each_exactly_once(group, redis_server, redis_url):
    instances = group("shared", 3)
    replies: list[dict] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work():
        with DaebusCaller("shared", redis_url=redis_url, timeout=30) as caller:
            for _ in range(125):
                try:
                    reply = caller.send_request("record", {})
                except Exception as exc:  # noqa: BLE001 - reported below
                    with lock:
                        errors.append(exc)
                    continue
                with lock:
                    replies.append(reply)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not errors, errors[:3]
    assert len(replies) == 2000
    answered = [r["request_id"] for r in replies]
    assert len(set(answered)) == 2000
    ran = collections.Counter(row[0] for row in handled(group.log))
    assert set(ran) == set(answered), "handled and answered requests differ"
    assert [rid for rid, n in ran.items() if n != 1] == [], "some requests ran twice"
    # The work was shared, and the stream holds nothing once all is answered.
    assert len({r["pid"] for r in replies}) >= 2
    client = redis_server.client()
    # Each entry is acknowledged and deleted just after its reply went out.
    wait_until(lambda: client.xlen("daebus:stream:shared") == 0, 10, "the last entries acknowledged")
    [info] = [s for s in list_services(client) if s["name"] == "shared"]
    assert info["mode"] == "group"
    assert sorted(i["pid"] for i in info["instances"]) == sorted(s.process.pid for s in instances)


def test_killed_instance_requests_are_answered_by_another_within_claim_time(group, redis_server, redis_url):
    group("claimed", 3)
    pubsub = redis_server.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("member_holding")
    pubsub.get_message(timeout=5)  # the confirmation (returned as None)
    outcomes: dict[int, tuple[float, object]] = {}

    def call(i):
        with DaebusCaller("claimed", redis_url=redis_url) as caller:
            try:
                result = caller.send_request("hold", {"seconds": 5}, timeout=30)
            except Exception as exc:  # noqa: BLE001 - inspected below
                result = exc
            outcomes[i] = (time.monotonic(), result)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    first = pubsub.get_message(timeout=15)
    assert first is not None, "no instance started a request"
    victim = json.loads(first["data"])["pid"]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    for t in threads:
        t.join(40)
    held = {row[0] for row in handled(group.log) if row[1] == victim}
    assert held, "the killed instance held no request"
    results = list(outcomes.values())
    assert len(results) == 4 and all(isinstance(r, dict) for _, r in results), results
    by_id = {r["request_id"]: (at, r) for at, r in results}
    for request_id in held:
        at, reply = by_id[request_id]
        assert reply["pid"] != victim and reply["delivery"] > 1, reply
        assert at - killed_at <= CLAIM_IDLE + 1.0, f"answered {at - killed_at:.2f} s after the kill"


def test_handler_that_crashes_every_time_ends_in_the_dead_letter_stream(group, redis_server, redis_url):
    group("doomed", 4)   # three crash in turn, the fourth moves the request aside
    with DaebusCaller("doomed", redis_url=redis_url) as caller:
        with pytest.raises(RemoteError) as info:
            caller.send_request("crash", {"n": 1}, timeout=40)
    assert info.value.code == "dead_letter"
    crashes = [row for row in handled(group.log) if row[3] == "crash"]
    assert sorted(row[2] for row in crashes) == [1, 2, 3]
    assert len({row[1] for row in crashes}) == 3
    [(entry_id, fields)] = redis_server.client().xrange("daebus:dead:doomed")
    request = json.loads(fields["request"])
    assert request["request_id"] == crashes[0][0] and request["action"] == "crash"
    assert fields["deliveries"] == "3"
    wait_until(lambda: redis_server.client().xlen("daebus:stream:doomed") == 0, 10, "the entry deleted")


def test_requests_sent_while_no_instance_runs_are_served_when_one_starts(group, redis_server, redis_url):
    [first] = group("patient")
    assert first.stop() == 0
    client = redis_server.client()
    with DaebusCaller("patient", redis_url=redis_url) as caller:
        with pytest.raises(RequestTimeout):
            caller.send_request("record", {"late": True}, timeout=0.5)   # its caller gives up
    outcomes = []

    def call():
        with DaebusCaller("patient", redis_url=redis_url) as caller:
            try:
                outcomes.append(caller.send_request("record", {}, timeout=20))
            except Exception as exc:  # noqa: BLE001 - inspected below
                outcomes.append(exc)

    threads = [threading.Thread(target=call) for _ in range(50)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 15
    while client.xlen("daebus:stream:patient") < 51 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.xlen("daebus:stream:patient") == 51
    [second] = group("patient")
    for t in threads:
        t.join(30)
    assert len(outcomes) == 50 and all(isinstance(o, dict) for o in outcomes), outcomes[:3]
    assert all(o["pid"] == second.process.pid for o in outcomes)
    # The request whose caller gave up was dropped unanswered, and counted.
    assert len(handled(group.log)) == 50
    # The count travels with the registry heartbeat (every registry_ttl / 3).
    deadline = time.monotonic() + 6
    while members(client, "patient")[0]["expired"] != "1" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert members(client, "patient")[0]["expired"] == "1"


def test_a_published_v1_request_is_bridged_into_the_stream(group, redis_server):
    group("bridged", 2)
    client = redis_server.client()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("caller:v1")
    pubsub.get_message(timeout=1)
    assert client.publish("bridged", json.dumps({"action": "whoami", "payload": {}, "reply_to": "caller:v1",
                                                 "request_id": "v1-1"})) == 1
    reply = None
    deadline = time.monotonic() + 10
    while reply is None and time.monotonic() < deadline:
        reply = pubsub.get_message(timeout=1)
    assert reply is not None
    assert json.loads(reply["data"])["payload"]["request_id"] == "v1-1"


def test_owner_and_group_of_one_name_refuse_each_other(group, service, redis_url):
    group("mixed", 1)
    owner = service("member.py", "mixed", wait=False)
    assert owner.wait(15) == NameTaken.exit_status
    assert "already served by a group" in owner.log
    service("member.py", "solo")
    [member] = group("solo", wait=False)
    assert member.wait(15) == NameTaken.exit_status


def test_a_long_handler_keeps_its_request_from_being_claimed(group, redis_server, redis_url):
    group("patient_worker", 2)
    # Three times the claim time: a live instance keeps the request to itself.
    seconds = CLAIM_IDLE * 3
    with DaebusCaller("patient_worker", redis_url=redis_url) as caller:
        reply = caller.send_request("hold", {"seconds": seconds}, timeout=seconds + 10)
    assert reply["delivery"] == 1
    runs = [row for row in handled(group.log) if row[0] == reply["request_id"]]
    assert [(row[1], row[2]) for row in runs] == [(reply["pid"], 1)], "another instance ran it too"


def test_garbage_in_the_stream_is_dropped_and_the_group_keeps_serving(group, redis_server, redis_url):
    [member] = group("sturdy")
    client = redis_server.client()
    client.xadd("daebus:stream:sturdy", {"request": "not json"})
    client.xadd("daebus:stream:sturdy", {"something": "else"})
    client.xadd("daebus:stream:sturdy", {"request": json.dumps({"action": 7, "reply_to": "caller:x"})})
    with DaebusCaller("sturdy", redis_url=redis_url) as caller:
        assert caller.send_request("whoami", {})["pid"] == member.process.pid
    # The reply goes out before its entry is acknowledged and deleted.
    wait_until(lambda: client.xlen("daebus:stream:sturdy") == 0, 10, "the entries deleted")
    wait_until(lambda: client.xpending("daebus:stream:sturdy", "daebus")["pending"] == 0, 10,
               "the entries acknowledged")
    assert member.log.count("dropped malformed request") == 3
    assert "Traceback" not in member.log


def test_a_group_without_a_registry_record_still_takes_requests(group, redis_server, redis_url):
    [first] = group("dormant")
    assert first.stop() == 0
    client = redis_server.client()
    client.delete("daebus:service:dormant")   # as when its TTL ran out
    outcome = []
    with DaebusCaller("dormant", redis_url=redis_url) as caller:
        thread = threading.Thread(target=lambda: outcome.append(caller.send_request("whoami", {}, timeout=20)))
        thread.start()
        deadline = time.monotonic() + 10
        while client.xlen("daebus:stream:dormant") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        [second] = group("dormant")
        thread.join(25)
    assert outcome and outcome[0]["pid"] == second.process.pid


def test_a_service_that_never_ran_is_unavailable_at_once_and_gets_no_stream(redis_server, redis_url):
    from daebus import ServiceUnavailable
    started = time.monotonic()
    with DaebusCaller("never_ran", redis_url=redis_url) as caller:
        with pytest.raises(ServiceUnavailable):
            caller.send_request("x", {}, timeout=10)
    assert time.monotonic() - started < 2
    assert not redis_server.client().exists("daebus:stream:never_ran")


def test_a_refusal_met_while_taking_an_entry_stops_the_member_with_one_error_line(service, fresh_redis):
    # May read its stream but not acknowledge: the refusal comes while the
    # reader takes the entry (a malformed one is acknowledged at once), not
    # while it reads. Like any refusal, it stops the service cleanly.
    admin = fresh_redis.client()
    admin.execute_command("ACL", "SETUSER", "member", "on", ">secret", "~*", "&*", "+@all", "-xack")
    url = f"redis://member:secret@127.0.0.1:{fresh_redis.port}/0"
    member = service("member.py", "unacknowledged", url=url, env={"DAEBUS_SERVICE_MODE": "group"})
    admin.xadd("daebus:stream:unacknowledged", {"request": "not json"})
    status = member.wait(15)
    log = member.log
    assert status == 2, log
    refusals = [line for line in log.splitlines() if "Redis refused" in line]
    assert len(refusals) == 1 and "NOPERM" in refusals[0], log
    assert "Traceback" not in log


def test_a_request_left_pending_when_no_worker_took_it_survives_its_instance_leaving(run_app, redis_server,
                                                                                     redis_url):
    # The only worker is busy with an event and nothing may queue: the
    # entry read meanwhile stays pending with this instance, to be claimed
    # again. If the instance leaves first, another one must still get it.
    from daebus import Daebus, request

    def member(started=None, release=None):
        app = Daebus("leftover", mode="group", max_workers=1)

        @app.action("whoami")
        def whoami():
            return {"delivery": request.delivery}

        @app.listen("leftover_busy")
        def busy(payload):
            started.set()
            release.wait(20)

        return app

    started, release = threading.Event(), threading.Event()
    first = member(started, release)
    first_thread = run_app(first, service="leftover", queue_size=0, claim_idle=CLAIM_IDLE)
    client = redis_server.client()
    client.publish("leftover_busy", "{}")
    assert started.wait(10), "the event never reached the only worker"
    outcome = []
    caller = DaebusCaller("leftover", redis_url=redis_url)
    thread = threading.Thread(target=lambda: outcome.append(caller.send_request("whoami", {}, timeout=20)))
    thread.start()
    deadline = time.monotonic() + 10
    while client.xpending("daebus:stream:leftover", "daebus")["pending"] < 1:
        assert time.monotonic() < deadline, "the request was never read"
        time.sleep(0.05)
    release.set()
    first.stop()
    first_thread.join(15)
    assert not first_thread.is_alive()
    run_app(member(), service="leftover", claim_idle=CLAIM_IDLE)
    thread.join(25)
    assert outcome == [{"delivery": 2}]


def test_a_write_refused_by_a_demoted_master_leaves_the_entry_pending_and_the_member_serving(
        service, fresh_redis):
    # As after a failover: the master this member talks to turns replica
    # while a handler runs. Its reply still goes out (PUBLISH works on a
    # replica) but XACK gets READONLY: the entry stays pending, the member
    # logs one line and keeps serving once the server takes writes again.
    url = f"redis://127.0.0.1:{fresh_redis.port}/0"
    admin = fresh_redis.client()
    member = service("member.py", "demoted", url=url, env={"DAEBUS_SERVICE_MODE": "group"})
    holding = admin.pubsub(ignore_subscribe_messages=True)
    holding.subscribe("member_holding")
    assert holding.get_message(timeout=5) is None
    with DaebusCaller("demoted", redis_url=url, timeout=20) as caller:
        result = {}
        thread = threading.Thread(target=lambda: result.update(caller.send_request("hold", {"seconds": 1})))
        thread.start()
        assert holding.get_message(timeout=10) is not None, "hold never started"
        admin.replicaof("127.0.0.1", 1)   # a master that is not there: writes are refused
        try:
            thread.join(15)
            assert result.get("delivery") == 1
            assert admin.xpending("daebus:stream:demoted", "daebus")["pending"] == 1
        finally:
            admin.replicaof("NO", "ONE")
        assert caller.send_request("whoami", timeout=10)["pid"] == member.process.pid
    assert member.running
    assert "read only replica" in member.log and "Traceback" not in member.log, member.log
