"""The gateway under a supervisor: READY/STOPPING, SIGTERM with open streams, journald logs."""

import os
import re
import signal
import subprocess
import time


def test_ready_is_sent_once_after_listening(start_gateway):
    gw = start_gateway()
    assert gw.get("/api/health").status_code == 200  # READY meant it was serving
    assert gw.notify.messages.count("READY=1") == 1
    assert any(line.startswith("STATUS=serving on http://127.0.0.1:") for line in gw.notify.messages)


def test_sigterm_with_open_streams_exits_within_five_seconds(start_gateway):
    gw = start_gateway({"graceful_timeout": 30})  # the streams must end by themselves
    streams = [gw.events("news.a") for _ in range(3)]
    for stream in streams:
        stream.wait_status("up")
    started = time.monotonic()
    assert gw.terminate(timeout=10) == 0
    assert time.monotonic() - started < 5
    assert "STOPPING=1" in gw.notify.messages
    for stream in streams:  # the server ended every stream
        assert [stream.next_event(timeout=5) for _ in range(3)][-1] is None


def test_error_log_has_journald_priority_prefixes(start_gateway):
    gw = start_gateway(env={"JOURNAL_STREAM": "auto"})
    gw.terminate()
    lines = [line for line in gw.log.splitlines() if line]
    assert lines
    assert all(re.match(r"<\d>", line) for line in lines), gw.log
    assert any(line.startswith("<6>gunicorn.error: Listening at") for line in lines)
    assert any(line.startswith("<6>gateway: gateway serving") for line in lines)
    assert not re.search(r"\d{4}-\d\d-\d\d", gw.log)  # the journal has its own timestamps


def test_without_journal_the_log_is_timestamped(start_gateway):
    gw = start_gateway()
    gw.terminate()
    assert re.search(r"\d{4}-\d\d-\d\d", gw.log)
    assert "Listening at" in gw.log


def test_an_app_that_cannot_load_fails_the_start(tmp_path, redis_url):
    """The worker loads the app: an import error must still stop gunicorn
    before READY=1, as the master's own load used to."""
    import os
    import subprocess
    import sys

    from gateway.settings import render
    from support import ROOT, NotifySocket, free_port

    (tmp_path / "broken_app.py").write_text("import gateway.wsgi\nraise ImportError('no such thing')\n")
    config = tmp_path / "daebus.toml"
    config.write_text(render(redis_url, {"bind": f"127.0.0.1:{free_port()}"}))
    notify = NotifySocket()
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "gateway", "-c", "python:gateway.gunicorn_conf",
                               "broken_app:app"], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "DAEBUS_CONFIG": str(config), "NOTIFY_SOCKET": notify.path,
                                   "PYTHONPATH": f"{ROOT}:{tmp_path}"})
        took = time.monotonic() - started
    finally:
        notify.close()
    assert done.returncode != 0, done.stderr[-2000:]
    assert "READY=1" not in notify.messages, notify.messages
    assert "no such thing" in done.stderr
    assert took < 30


def test_python_m_gateway_serves(redis_url, tmp_path):
    """``python3 -m gateway``, what the unit runs: READY=1 once serving, and
    SIGTERM stops it with 0 even when it was started with SIGINT and
    SIGTERM blocked (as a CI runner may leave them)."""
    import os
    import subprocess
    import sys

    import requests

    from gateway.settings import render
    from support import ROOT, NotifySocket, free_port, inherited_signals

    port = free_port()
    config = tmp_path / "daebus.toml"
    config.write_text(render(redis_url, {"bind": f"127.0.0.1:{port}"}))
    notify = NotifySocket()
    process = subprocess.Popen([sys.executable, "-m", "gateway"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               env={**os.environ, "DAEBUS_CONFIG": str(config), "NOTIFY_SOCKET": notify.path,
                                    "PYTHONPATH": str(ROOT)}, preexec_fn=inherited_signals)
    try:
        assert notify.wait_for("READY=1", 30)
        assert requests.get(f"http://127.0.0.1:{port}/api/health", timeout=10).status_code == 200
        process.terminate()
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(15)
        notify.close()


def test_the_watchdog_is_fed_while_the_worker_lives_and_withheld_when_it_freezes(start_gateway):
    gw = start_gateway(env={"WATCHDOG_USEC": "2000000"})   # WatchdogSec=2s: a ping every second
    assert gw.notify.wait_for("WATCHDOG=1", timeout=10, count=3), gw.notify.messages
    worker = int(subprocess.check_output(["pgrep", "-P", str(gw.process.pid)], text=True).split()[0])
    os.kill(worker, signal.SIGSTOP)
    try:
        # Within WatchdogSec of the freeze the pings stop (the log says why)...
        deadline = time.monotonic() + 15
        while "withholding the watchdog ping" not in gw.log:
            assert time.monotonic() < deadline, gw.log
            time.sleep(0.2)
        pings = gw.notify.messages.count("WATCHDOG=1")
        time.sleep(3)   # three ping intervals of observation
        assert gw.notify.messages.count("WATCHDOG=1") == pings
    finally:
        os.kill(worker, signal.SIGCONT)
    # ...and resume once it runs again.
    assert gw.notify.wait_for("WATCHDOG=1", timeout=10, count=pings + 2)
