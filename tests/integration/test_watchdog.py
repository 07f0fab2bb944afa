"""The watchdog ping comes from the loop that proves liveness."""

import logging
import threading

from daebus import Daebus
from support import NotifySocket


class _Flag(logging.Handler):
    def __init__(self, text):
        super().__init__()
        self.text, self.seen = text, threading.Event()

    def emit(self, record):
        if self.text in record.getMessage():
            self.seen.set()


def test_wedged_reader_lets_the_watchdog_fire(run_app, monkeypatch, redis_server):
    notify = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    flag = _Flag("withholding the watchdog ping")
    logging.getLogger("daebus.runtime").addHandler(flag)
    release = threading.Event()
    try:
        app = Daebus("wedge")
        run_app(app, service="wedge")
        assert notify.wait_for("WATCHDOG=1")
        # Make the reader block inside its message callback, as a deadlock would.
        app._runtime.reader.subscriber.on_message = lambda channel, data: release.wait(60)
        redis_server.client().publish("wedge", "{}")
        assert flag.seen.wait(15)
        count = notify.messages.count("WATCHDOG=1")
        threading.Event().wait(1.5)  # three watchdog periods of observation
        assert notify.messages.count("WATCHDOG=1") == count
    finally:
        release.set()
        logging.getLogger("daebus.runtime").removeHandler(flag)
        notify.close()


def test_a_healthy_start_logs_no_recovery(run_app, monkeypatch, caplog):
    notify = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    caplog.set_level(logging.INFO, logger="daebus")
    try:
        run_app(Daebus("calm"), service="calm")
        # Each ping follows a health check; two of them mean two checks passed.
        assert notify.wait_for("WATCHDOG=1", count=2)
        recoveries = [r.getMessage() for r in caplog.records if "again" in r.getMessage()]
        assert recoveries == []
    finally:
        notify.close()
