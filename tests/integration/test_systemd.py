"""sd_notify datagrams from a real service, on a socket the test binds."""

import os

from daebus import DaebusCaller


def test_ready_status_watchdog_stopping_in_order(service, redis_url):
    svc = service("basic.py", "basic", env={"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": ""})
    assert svc.notify.wait_for("WATCHDOG=1")
    svc.stop()
    lines = svc.notify.messages
    first = {line: lines.index(line) for line in reversed(lines)}
    assert first["STATUS=connecting to redis"] < first["READY=1"] < first["WATCHDOG=1"] < first["STOPPING=1"]
    assert any(line.startswith("STATUS=serving") for line in lines)


def test_watchdog_pid_of_another_process_disables_pings(service, redis_url):
    svc = service("basic.py", "basic", env={"WATCHDOG_USEC": "100000", "WATCHDOG_PID": str(os.getpid())})
    with DaebusCaller("basic", redis_url=redis_url) as caller:
        caller.send_request("slow", {"seconds": 0.3})  # several watchdog periods
    svc.stop()
    assert "WATCHDOG=1" not in svc.notify.messages
