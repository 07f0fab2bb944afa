"""Redis going away and coming back, with the service running."""


import pytest

from daebus import ConnectionLost, DaebusCaller, RemoteError
from support import RedisServer, start_slow_call


def _call_until_ok(url, deadline_s=10):
    """Requests succeed again within ``deadline_s`` of Redis returning."""
    import time
    caller = DaebusCaller("basic", redis_url=url)
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        try:
            return caller.send_request("echo", {"after": "restart"}, timeout=1)
        except (ConnectionLost, RemoteError, TimeoutError) as exc:
            last = exc
        except Exception as exc:  # noqa: BLE001 - ServiceUnavailable until resubscribed
            last = exc
    raise AssertionError(f"no answer within {deadline_s} s: {last!r}")


@pytest.mark.parametrize("kill", [False, True], ids=["shutdown", "sigkill"])
def test_service_recovers_after_redis_restart(service, fresh_redis, kill):
    svc = service("basic.py", "basic", url=fresh_redis.url)
    with DaebusCaller("basic", redis_url=fresh_redis.url) as caller:
        assert caller.send_request("echo", {})["echo"] == {}
    fresh_redis.stop(kill=kill)
    fresh_redis.start()
    assert _call_until_ok(fresh_redis.url)["echo"] == {"after": "restart"}
    log = svc.log
    assert log.count("basic: lost connection to Redis") == 1, log
    assert log.count("basic: Redis connection restored after") == 1, log
    assert svc.process.poll() is None


def test_service_started_before_redis_exists_waits_then_serves(service):
    server = RedisServer()
    # A unix socket in the server's own folder: no other process can be
    # listening there before the server starts, unlike a port.
    url = f"unix://{server.unix_socket}"
    try:
        svc = service("basic.py", "basic", url=url, wait=False)
        # Sent only once an attempt to reach Redis has failed.
        assert svc.notify.wait_for("STATUS=waiting for redis")
        assert "READY=1" not in svc.notify.messages
        server.start()
        svc.wait_ready()
        with DaebusCaller("basic", redis_url=url) as caller:
            assert caller.send_request("echo", {"late": True})["echo"] == {"late": True}
        assert svc.log.count("basic: waiting for Redis") == 1
    finally:
        server.close()


def test_waiting_caller_fails_at_once_when_redis_dies(service, fresh_redis):
    service("basic.py", "basic", url=fresh_redis.url)
    caller = DaebusCaller("basic", redis_url=fresh_redis.url)
    thread, outcome = start_slow_call(caller, fresh_redis, 30, timeout=3600)
    fresh_redis.stop(kill=True)
    thread.join(30)
    assert not thread.is_alive()
    assert outcome and isinstance(outcome[0], ConnectionLost), outcome
    fresh_redis.start()
    assert _call_until_ok(fresh_redis.url)["echo"] == {"after": "restart"}


def test_silent_dead_connection_is_noticed_within_seconds(service, redis_server, tmp_path):
    from support import TcpProxy
    proxy = TcpProxy(redis_server.port)
    conf = tmp_path / "daebus.toml"
    conf.write_text("[redis]\nhealth_check_interval = 1\nsocket_timeout = 2\n")
    try:
        svc = service("basic.py", "basic", url=proxy.url, env={"DAEBUS_CONFIG": str(conf)})
        proxy.freeze()
        # Nothing is closed: only the missing answer to a ping can reveal it.
        assert svc.notify.wait_for("STATUS=redis connection lost, reconnecting", timeout=15), svc.log
        proxy.thaw()
        assert svc.notify.wait_for("STATUS=serving (Redis restored after", timeout=15, prefix=True), svc.log
        with DaebusCaller("basic", redis_url=redis_server.url) as caller:
            assert caller.send_request("echo", {})["echo"] == {}
    finally:
        proxy.close()


def test_new_call_while_redis_is_down_fails_fast_and_works_once_back(fresh_redis):
    from daebus import ServiceUnavailable
    caller = DaebusCaller("nobody", redis_url=fresh_redis.url)
    with pytest.raises(ServiceUnavailable):
        caller.send_request("x", {}, timeout=5)  # connects the reply hub
    fresh_redis.stop(kill=True)
    with pytest.raises(ConnectionLost):
        # Far longer than the test may run: only a prompt failure passes.
        caller.send_request("x", {}, timeout=3600)
    fresh_redis.start()
    with pytest.raises(ServiceUnavailable):
        caller.send_request("x", {}, timeout=3600)


def test_reply_subscription_that_hangs_is_noticed_across_short_calls(redis_server):
    """Calls each shorter than the health interval still add up to noticing
    a reply subscription that went silent: the check spans calls."""
    import time

    from daebus.bus.bus import Bus
    from daebus.call.replies import ReplyHub
    from daebus.errors import RequestTimeout
    from support import TcpProxy

    proxy = TcpProxy(redis_server.port)
    interval = 0.5
    hub = ReplyHub(Bus(proxy.url), health_interval=interval)
    try:
        hub.prepare(time.monotonic() + 5)
        proxy.freeze()
        frozen = time.monotonic()
        outcomes = []
        while time.monotonic() - frozen < 10 and not any(isinstance(o, ConnectionLost) for o in outcomes):
            inbox = hub.expect("r")
            try:
                hub.prepare(time.monotonic() + 0.3)
                hub.next_reply(inbox, time.monotonic() + 0.3)   # a short call that gets no reply
            except (RequestTimeout, ConnectionLost) as exc:
                outcomes.append(exc)
            finally:
                hub.forget("r", inbox)
        noticed = time.monotonic() - frozen
        assert any(isinstance(o, ConnectionLost) for o in outcomes), outcomes[-3:]
        # Two intervals (a PING, then its missing answer) and one poll of the socket.
        assert noticed <= 2 * interval + 1.5, f"noticed after {noticed:.1f} s"
        proxy.thaw()
        hub.prepare(time.monotonic() + 5)   # a fresh subscription, through the thawed proxy
        assert hub.subscribed
    finally:
        proxy.close()
