"""Every step of a stop ends within shutdown_timeout, whatever Redis does."""

import signal
import time

import pytest

from daebus import DaebusCaller
from support import start_slow_call

SHUTDOWN_TIMEOUT = 2.0


def _frozen_stop(svc, redis, started_calls):
    redis.process.send_signal(signal.SIGSTOP)
    try:
        signalled = time.monotonic()
        svc.signal(signal.SIGTERM)
        status = svc.wait(SHUTDOWN_TIMEOUT + 30)
        took = time.monotonic() - signalled
    finally:
        redis.process.send_signal(signal.SIGCONT)
    for thread, _ in started_calls:
        thread.join(15)
    return status, took


@pytest.mark.slow
@pytest.mark.parametrize("in_flight", [0, 3])
def test_sigterm_with_redis_frozen_exits_within_shutdown_timeout(service, fresh_redis, in_flight):
    svc = service("basic.py", "basic", url=fresh_redis.url,
                  env={"DAEBUS_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT), "TEST_MAX_WORKERS": "4"})
    caller = DaebusCaller("basic", redis_url=fresh_redis.url, timeout=60)
    assert caller.send_request("echo", {})["echo"] == {}
    # The callers' timeouts end the calls whose error replies the frozen Redis never carried.
    calls = [start_slow_call(caller, fresh_redis, 60, timeout=8) for _ in range(in_flight)]
    status, took = _frozen_stop(svc, fresh_redis, calls)
    print(f"exit {took:.2f} s after SIGTERM, Redis frozen, {in_flight} in flight")  # shown with -rP
    assert took <= SHUTDOWN_TIMEOUT + 1, f"exit {took:.1f} s after SIGTERM with Redis frozen"
    assert status == 0, svc.log[-3000:]
    assert "Traceback" not in svc.log
    if in_flight:
        assert "still running after" in svc.log


def _wait_for_log(svc, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while text not in svc.log:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_sigterm_long_after_redis_froze_is_bounded_too(service, fresh_redis):
    svc = service("basic.py", "basic", url=fresh_redis.url,
                  env={"DAEBUS_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT), "DAEBUS_SOCKET_TIMEOUT": "1"})
    caller = DaebusCaller("basic", redis_url=fresh_redis.url, timeout=60)
    calls = [start_slow_call(caller, fresh_redis, 60, timeout=8)]
    fresh_redis.process.send_signal(signal.SIGSTOP)
    try:
        # The service noticed by itself and is now retrying against the frozen server.
        assert _wait_for_log(svc, "lost", 20), svc.log[-2000:]
        signalled = time.monotonic()
        svc.signal(signal.SIGTERM)
        svc.wait(SHUTDOWN_TIMEOUT + 30)
        took = time.monotonic() - signalled
    finally:
        fresh_redis.process.send_signal(signal.SIGCONT)
    for thread, _ in calls:
        thread.join(15)
    print(f"exit {took:.2f} s after SIGTERM, Redis frozen since the service noticed")  # shown with -rP
    assert took <= SHUTDOWN_TIMEOUT + 1, f"exit {took:.1f} s after SIGTERM with Redis frozen"
