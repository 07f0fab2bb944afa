"""SIGTERM/SIGINT: drain in-flight work, stop threads, exit 0, within a bound."""

import signal
import threading

import pytest

from daebus import DaebusCaller


def _start_slow_call(caller, redis_server, seconds, action="slow"):
    pubsub = redis_server.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("slow_started")
    pubsub.get_message(timeout=5)
    result = []

    def call():
        try:
            result.append(caller.send_request(action, {"seconds": seconds, "tag": "t"}, timeout=30))
        except Exception as exc:  # noqa: BLE001 - inspected by the test
            result.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    if action == "slow":
        assert pubsub.get_message(timeout=10) is not None, "slow handler never started"
    pubsub.close()
    return thread, result


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_lets_the_running_handler_reply_then_exits_zero(service, redis_server, redis_url, sig):
    client = redis_server.client()
    client.delete("loop_stopped")
    svc = service("basic.py", "basic")
    caller = DaebusCaller("basic", redis_url=redis_url)
    thread, result = _start_slow_call(caller, redis_server, 1.0)
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
