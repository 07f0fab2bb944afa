"""The demo workers run the ways the device and a developer start them:
``daebus worker NAME`` (what daebus-worker@NAME.service runs) and
``daebus run FILE.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, NotifySocket, default_signals

from daebus import DaebusCaller, RemoteError

DEMO = ROOT / "kiosk_demo"


def start(argv: list[str], env: dict) -> tuple[subprocess.Popen, NotifySocket]:
    notify = NotifySocket()
    process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env, "NOTIFY_SOCKET": notify.path},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=default_signals)
    return process, notify


def stop(process: subprocess.Popen, notify: NotifySocket) -> str:
    process.terminate()
    out, _ = process.communicate(timeout=30)
    notify.close()
    assert process.returncode == 0, out
    return out


def test_a_device_worker_file_runs_under_daebus_worker(tmp_path: Path, redis_url):
    # The packaged file, with the script's path of this checkout.
    text = (DEMO / "device" / "workers" / "kiosk-display.toml").read_text()
    workers = tmp_path / "workers"
    workers.mkdir()
    (workers / "kiosk-display.toml").write_text(
        text.replace("/usr/share/daebus/kiosk_demo/", f"{DEMO}/"))
    daebus = Path(sys.executable).with_name("daebus")
    argv = [str(daebus)] if daebus.exists() else [sys.executable, "-m", "daebus.cli"]
    process, notify = start(argv + ["worker", "kiosk-display"],
                            {"DAEBUS_WORKERS_DIR": str(workers), "DAEBUS_REDIS_URL": redis_url})
    try:
        assert notify.wait_for("READY=1", 30), process.stdout.read() if process.poll() is not None else ""
        with DaebusCaller("display", redis_url=redis_url) as display:
            assert display.send_request("set_brightness", {"brightness": 12})["brightness"] == 12
            with pytest.raises(RemoteError) as caught:
                display.send_request("set_brightness", {"brightness": "max"})
            assert caught.value.code == "bad_request"
    finally:
        stop(process, notify)


@pytest.mark.parametrize("name, action", [("sensors", "get_readings"), ("system", "get_status")])
def test_a_worker_runs_under_daebus_run(name, action, redis_url):
    argv = [sys.executable, "-m", "daebus.cli", "run", str(DEMO / f"{name}.py"), "--redis-url", redis_url]
    process, notify = start(argv, {})
    try:
        assert notify.wait_for("READY=1", 30)
        # The service is named after the file, as with `python kiosk_demo/<name>.py`.
        with DaebusCaller(name, redis_url=redis_url) as caller:
            assert caller.send_request(action, {})
    finally:
        stop(process, notify)
