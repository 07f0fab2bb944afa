"""SIGTERM/SIGINT: drain in-flight work, stop threads, exit 0, within a bound."""

import signal

import pytest

from daebus import DaebusCaller
from support import start_slow_call


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
