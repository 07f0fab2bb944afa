"""The locked bus: a real redis-server started with the ACL file daebus
renders; each role does what it needs and is refused the rest, and a
refusal is one clear error, never a reconnect loop."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from daebus import DaebusCaller
from daebus.errors import AccessDenied
from support import Service


def test_a_worker_serves_and_calls_under_its_own_identity(acl_bus, monkeypatch):
    basic = Service("basic.py", acl_bus.url, "basic", env=acl_bus.env("worker:basic"))
    try:
        # The caller is another worker's identity: it may publish requests
        # and hear its own replies.
        monkeypatch.setenv("DAEBUS_REDIS_USERNAME", "worker:other")
        monkeypatch.setenv("DAEBUS_REDIS_PASSWORD_FILE", str(acl_bus.password_file("worker:other")))
        with DaebusCaller("basic", redis_url=acl_bus.url, timeout=10) as caller:
            assert caller.send_request("echo", {"x": 1})["echo"] == {"x": 1}
            # A broadcast reaches its listener (the worker may listen to test_events).
            assert caller.send_request("announce", {"n": 1})["receivers"] >= 1
        admin = acl_bus.client("admin")
        record = admin.hgetall("daebus:service:basic")
        assert record["status"] == "running"
    finally:
        stopped = basic.stop()
        basic.close()
    assert stopped == 0


@pytest.mark.parametrize("user", ["admin", "gateway", "worker:basic"])
def test_no_role_may_flush_or_reconfigure(acl_bus, user):
    client = acl_bus.client(user)
    # (DEBUG is refused too, but the server refuses it first to everyone.)
    for command in (("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("KEYS", "*"),
                    ("SHUTDOWN", "NOSAVE"), ("MODULE", "LIST"), ("FUNCTION", "FLUSH")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    client.close()


def test_a_worker_is_refused_what_is_not_its_own(acl_bus):
    worker = acl_bus.client("worker:basic")
    assert worker.set("basic:counter", 1)                 # its cache prefix
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.set("other:counter", 1)                    # another service's cache
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.hset("daebus:service:other", "status", "running")   # another's registry entry
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.xreadgroup("daebus", "me", {"daebus:stream:other": ">"}, count=1)
    assert worker.publish("other", "{}") == 0            # requests to others: allowed
    pubsub = worker.pubsub()
    with pytest.raises(redis.exceptions.NoPermissionError):
        pubsub.subscribe("other")                         # listening to another's requests
        pubsub.get_message(timeout=2)
    pubsub.close()
    worker.close()


def test_the_gateway_may_not_list_keys_or_write_the_registry(acl_bus):
    gateway = acl_bus.client("gateway")
    pubsub = gateway.pubsub()
    pubsub.psubscribe("test_events")                     # an exposed channel: allowed
    assert pubsub.get_message(timeout=2)["type"] == "psubscribe"
    with pytest.raises(redis.exceptions.NoPermissionError):
        pubsub.subscribe("basic")                         # a service's requests: not
        pubsub.get_message(timeout=2)
    pubsub.close()
    with pytest.raises(redis.exceptions.NoPermissionError):
        gateway.keys("*")
    with pytest.raises(redis.exceptions.NoPermissionError):
        gateway.hset("daebus:service:basic", "status", "fake")
    assert gateway.hgetall("daebus:service:nothing") == {}
    gateway.close()


def test_the_default_user_is_off(acl_bus):
    anonymous = redis.Redis(host="127.0.0.1", port=acl_bus.server.port)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    anonymous.close()


def test_a_service_with_a_wrong_password_exits_2_with_one_error_line(acl_bus, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    env = {"DAEBUS_REDIS_USERNAME": "worker:basic", "DAEBUS_REDIS_PASSWORD_FILE": str(wrong)}
    svc = Service("basic.py", acl_bus.url, "basic", env=env, wait=False)
    started = time.monotonic()
    try:
        assert svc.wait(15) == AccessDenied.exit_status == 2
        log = svc.log
    finally:
        svc.close()
    assert time.monotonic() - started < 15
    refusals = [line for line in log.splitlines() if "Redis refused" in line]
    assert len(refusals) == 1, log
    assert "WRONGPASS" in refusals[0] and "worker:basic" in refusals[0]
    assert "Traceback" not in log


def test_a_service_subscribing_beyond_its_acl_exits_2(acl_bus):
    # "other" may not listen to test_events (its worker file lists nothing).
    svc = Service("basic.py", acl_bus.url, "other", env=acl_bus.env("worker:other"), wait=False)
    try:
        assert svc.wait(15) == 2
        log = svc.log
    finally:
        svc.close()
    refusals = [line for line in log.splitlines() if "Redis refused" in line]
    assert len(refusals) == 1 and "NOPERM" in refusals[0], log
    assert "Traceback" not in log


def test_a_call_refused_is_a_clean_error_at_once(acl_bus, monkeypatch, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    wrong.chmod(0o600)
    monkeypatch.setenv("DAEBUS_REDIS_USERNAME", "gateway")
    monkeypatch.setenv("DAEBUS_REDIS_PASSWORD_FILE", str(wrong))
    started = time.monotonic()
    # The URL names the user (a client of its own: clients are shared per URL).
    url = acl_bus.url.replace("redis://", "redis://gateway@")
    with DaebusCaller("basic", redis_url=url, timeout=10) as caller:
        with pytest.raises(AccessDenied) as raised:
            caller.send_request("echo", {})
    assert time.monotonic() - started < 5
    assert raised.value.code == "access_denied"
    assert "WRONGPASS" in str(raised.value)


def test_an_unreadable_password_file_is_a_configuration_error(acl_bus, tmp_path):
    env = {"DAEBUS_REDIS_USERNAME": "worker:basic", "DAEBUS_REDIS_PASSWORD_FILE": str(tmp_path / "missing")}
    svc = Service("basic.py", acl_bus.url, "basic", env=env, wait=False)
    try:
        assert svc.wait(15) == 2
        log = svc.log
    finally:
        svc.close()
    assert "password_file: cannot read" in log and "Traceback" not in log


def test_a_group_serves_under_its_workers_identity_and_keeps_requests(acl_bus, monkeypatch):
    env = {**acl_bus.env("worker:basic"), "DAEBUS_SERVICE_MODE": "group"}
    member = Service("member.py", acl_bus.url, "basic", env=env)
    monkeypatch.setenv("DAEBUS_REDIS_USERNAME", "worker:other")
    monkeypatch.setenv("DAEBUS_REDIS_PASSWORD_FILE", str(acl_bus.password_file("worker:other")))
    with DaebusCaller("basic", redis_url=acl_bus.url, timeout=10) as caller:
        assert caller.send_request("whoami", {})["pid"] == member.process.pid
        assert member.stop() == 0
        # No instance runs: the request waits in the stream (the caller may only XADD there).
        outcome = []
        thread = threading.Thread(target=lambda: outcome.append(caller.send_request("whoami", {}, timeout=20)))
        thread.start()
        admin = acl_bus.client("admin")
        deadline = time.monotonic() + 10
        while admin.xlen("daebus:stream:basic") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        second = Service("member.py", acl_bus.url, "basic", env=env)
        try:
            thread.join(25)
            assert outcome and outcome[0]["pid"] == second.process.pid
            assert "NOPERM" not in second.log and "access_denied" not in second.log
        finally:
            stopped = second.stop()
            second.close()
            member.close()
        assert stopped == 0


def test_a_command_refused_in_a_pipeline_leaves_no_reply_behind_for_the_next_one(fresh_redis):
    from daebus.bus.transport import connect

    admin = fresh_redis.client()
    admin.execute_command("ACL", "SETUSER", "partial", "on", ">secret", "~*", "&*", "+@all", "-xack")
    admin.set("marker", "value")
    client = connect(f"redis://partial:secret@127.0.0.1:{fresh_redis.port}/0")
    pipe = client.pipeline(transaction=False)
    pipe.xack("stream", "group", "1-0")
    pipe.incr("counter")
    with pytest.raises(AccessDenied):
        pipe.execute()
    # The same pooled connection serves the next command: it must get its own reply.
    assert client.get("marker") == "value"


def test_any_role_may_send_a_cancel_and_only_the_worker_hears_it(acl_bus):
    basic = Service("basic.py", acl_bus.url, "basic", env=acl_bus.env("worker:basic"))
    try:
        cancel = '{"request_id": "0123456789abcdef", "reply_to": "caller:gateway:x", "reason": "timeout"}'
        for role in ("gateway", "worker:other"):
            client = acl_bus.client(role)
            assert client.publish("daebus:cancel:basic", cancel) == 1   # the worker subscribed to it
            client.close()
        other = acl_bus.client("worker:other")
        pubsub = other.pubsub()
        with pytest.raises(redis.exceptions.NoPermissionError):
            pubsub.subscribe("daebus:cancel:basic")                # another service's cancels
            pubsub.get_message(timeout=2)
        pubsub.close()
        other.close()
    finally:
        assert basic.stop() == 0
        basic.close()
