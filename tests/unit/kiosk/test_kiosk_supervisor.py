"""The launcher restarts a browser that exits or stops sending heartbeats."""

import logging
import sys
import threading
import time

import pytest

import kiosk.__main__ as launcher
from kiosk import frame


class Recorder:
    def __init__(self):
        self.lines = []

    def notify(self, *lines):
        self.lines += lines
        return True


def browser(script: str) -> list[str]:
    return [sys.executable, "-c", script]


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(launcher, "BACKOFF_FIRST", 0.2)
    monkeypatch.setattr(launcher, "FIRST_BEAT", 3.0)


def beat_while_running(heartbeat, stop):
    while not stop.is_set():
        heartbeat.beat("online")
        time.sleep(0.2)


def test_exit_is_noticed_and_the_browser_started_again(tmp_path, caplog):
    heartbeat, recorder = frame.Heartbeat(), Recorder()
    marker = tmp_path / "runs"
    script = f"open({str(marker)!r}, 'a').write('x'); import os; os.kill(os.getpid(), 9)"
    with caplog.at_level(logging.INFO, "daebus.kiosk"):
        launcher.supervise(browser(script), heartbeat, 3.0, recorder, tmp_path, rounds=2)
    assert marker.read_text() == "xx"
    assert sum("exited with status -9" in r.message for r in caplog.records) == 2
    assert "WATCHDOG=1" in recorder.lines


def test_a_hung_page_is_killed(tmp_path, caplog):
    heartbeat, recorder = frame.Heartbeat(), Recorder()
    stop = threading.Event()
    feeder = threading.Thread(target=beat_while_running, args=(heartbeat, stop))
    feeder.start()
    # The page beats for a while, then hangs (the feeder stops); the
    # browser process itself never exits.
    threading.Timer(1.5, stop.set).start()
    started = time.monotonic()
    with caplog.at_level(logging.INFO, "daebus.kiosk"):
        launcher.supervise(browser("import time; time.sleep(600)"), heartbeat, 3.0, recorder, tmp_path,
                           rounds=1)
    feeder.join()
    took = time.monotonic() - started
    assert any("no heartbeat from the page for 3 s" in r.message for r in caplog.records)
    assert 3.0 < took < 30, took
    assert "READY=1" in recorder.lines


def test_a_browser_that_never_beats_counts_as_hung(tmp_path, caplog):
    with caplog.at_level(logging.INFO, "daebus.kiosk"):
        launcher.supervise(browser("import time; time.sleep(600)"), frame.Heartbeat(), 3.0, Recorder(),
                           tmp_path, rounds=1)
    assert any("no heartbeat from the page" in r.message for r in caplog.records)


def test_quick_failures_back_off(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(launcher, "BACKOFF_FIRST", 0.1)
    with caplog.at_level(logging.INFO, "daebus.kiosk"):
        launcher.supervise(browser("raise SystemExit(3)"), frame.Heartbeat(), 3.0, Recorder(), tmp_path,
                           rounds=3)
    waits = [r.message.rsplit("again in ", 1)[1] for r in caplog.records if "again in" in r.message]
    assert len(waits) == 3
