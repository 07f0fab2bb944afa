"""SIGTERM/SIGINT: drain in-flight work, stop threads, exit 0, within a bound."""

import signal
import threading
import time

import pytest

from daebus import DaebusCaller
from support import inherited_signals, start_slow_call


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_lets_the_running_handler_reply_then_exits_zero(service, redis_server, redis_url, sig):
    client = redis_server.client()
    client.delete("loop_stopped")
    svc = service("basic.py", "basic")
    caller = DaebusCaller("basic", redis_url=redis_url)
    thread, result = start_slow_call(caller, redis_server, 1.0)
    svc.signal(sig)
    assert svc.wait(15) == 0
    thread.join(15)
    assert result == [{"slept": 1.0, "tag": "t"}]
    assert client.get("loop_stopped") == "yes"  # the thread's running() went False
    assert svc.notify.messages.index("STOPPING=1") > svc.notify.messages.index("READY=1")
    assert client.exists("daebus:service:basic") == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_service_started_with_its_stop_signals_blocked_still_stops_on_them(service, redis_url, sig):
    # A runner that blocks SIGINT/SIGTERM for itself passes the mask on.
    svc = service("basic.py", "basic", preexec_fn=inherited_signals)
    svc.signal(sig)
    assert svc.wait(15) == 0
    assert svc.notify.messages.index("STOPPING=1") > svc.notify.messages.index("READY=1")


@pytest.mark.parametrize("mode", ["owner", "group"])
def test_an_idle_service_stops_at_once(service, redis_url, mode):
    # Nothing in flight: a stop waits for no read. A group member's blocked
    # XREADGROUP once reconnected on its own and blocked again for its whole
    # timeout (redis-py 4.3 for longer still) before the service could exit.
    svc = service("basic.py", "basic", env={"DAEBUS_SERVICE_MODE": mode})
    started = time.monotonic()
    svc.signal(signal.SIGTERM)
    assert svc.wait(15) == 0
    assert time.monotonic() - started < 2.5, f"an idle {mode} service took {time.monotonic() - started:.1f} s to stop"


def test_handler_that_ignores_shutdown_does_not_hold_exit(service, redis_server, redis_url):
    svc = service("basic.py", "basic", env={"DAEBUS_SHUTDOWN_TIMEOUT": "0.5"})
    caller = DaebusCaller("basic", redis_url=redis_url)
    caller.send_to_service({}, action="stubborn")
    caller.send_request("echo", {})  # the stubborn request is in a worker by now
    svc.signal(signal.SIGTERM)
    assert svc.wait(15) == 0
    assert "still running after" in svc.log


def test_second_signal_exits_at_once(service, redis_url):
    svc = service("basic.py", "basic", env={"DAEBUS_SHUTDOWN_TIMEOUT": "3600"})
    caller = DaebusCaller("basic", redis_url=redis_url)
    caller.send_to_service({}, action="stubborn")
    caller.send_request("echo", {})
    svc.signal(signal.SIGTERM)
    assert svc.notify.wait_for("STOPPING=1")
    svc.signal(signal.SIGTERM)
    assert svc.wait(15) != 0
    assert "second signal" in svc.log


def test_stop_from_another_thread_returns_run(run_app):
    from daebus import Daebus
    app = Daebus("stoppable")
    thread = run_app(app)
    assert app.is_running()
    app.stop()
    thread.join(15)
    assert not thread.is_alive() and not app.is_running()


@pytest.mark.parametrize("mode", ["owner", "group"])
def test_with_every_worker_busy_the_exit_follows_the_last_reply_within_the_bound(service, redis_server, redis_url,
                                                                                 mode):
    # One worker, busy with a request run on the reader that read it: the
    # other reader waits for a free worker (group) or reads on (owner).
    # SIGTERM then: the reply still goes out and the exit follows it, within
    # shutdown_timeout, whatever the waiting reader was waiting for.
    name = f"busy_{mode}"
    svc = service("basic.py", name, env={"DAEBUS_SERVICE_MODE": mode, "TEST_MAX_WORKERS": "1",
                                         "DAEBUS_SHUTDOWN_TIMEOUT": "3"})
    caller = DaebusCaller(name, redis_url=redis_url)
    thread, result = start_slow_call(caller, redis_server, 1.5)
    threading.Event().wait(0.5)   # well past the 5 ms after which the other reader reads on
    signalled = time.monotonic()
    svc.signal(signal.SIGTERM)
    assert svc.wait(15) == 0
    took = time.monotonic() - signalled
    thread.join(15)
    assert result == [{"slept": 1.5, "tag": "t"}]
    assert took < 3, f"exit {took:.1f} s after SIGTERM, beyond the 3 s shutdown_timeout"
    assert "still running after" not in svc.log
