"""The files that put the demo on the appliance: worker files, the gateway
drop-in and the enable/disable command."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from daebus.service.workers import read_worker
from gateway.expose import Exposure
from gateway.settings import load as load_gateway_settings

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "kiosk_demo"
DEVICE = DEMO / "device"
WORKERS = {"kiosk-sensors": "sensors", "kiosk-display": "display", "kiosk-system": "system"}


@pytest.fixture
def etc(tmp_path):
    return tmp_path / "etc-daebus"


@pytest.fixture
def run_command(tmp_path, etc):
    """Run daebus-kiosk-demo with a systemctl that only records its calls, as
    if systemd were running."""
    log = tmp_path / "systemctl.log"
    fake = tmp_path / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    fake.chmod(0o755)

    def run(*args):
        env = {**os.environ, "DAEBUS_ETC_DIR": str(etc), "DAEBUS_KIOSK_DEMO_DIR": str(DEMO),
               "DAEBUS_KIOSK_DEMO_STATE": str(tmp_path / "state"), "SYSTEMCTL": str(fake),
               "DAEBUS_SYSTEMD_RUNNING": "1"}
        done = subprocess.run([str(DEVICE / "daebus-kiosk-demo"), *args], env=env, check=False,
                              capture_output=True, text=True, timeout=30)
        calls = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return done, calls

    return run


def page_needs() -> tuple[set[tuple[str, str]], list[str]]:
    """The actions and channels the kiosk page uses, read from its script."""
    script = (DEMO / "static" / "app.js").read_text()
    actions = set(re.findall(r'callAction\("(\w+)", "(\w+)"', script))
    channels = re.search(r"const CHANNELS = \[(.*?)\];", script).group(1)
    return actions, re.findall(r'"([\w.]+)"', channels)


@pytest.mark.parametrize("name, service", WORKERS.items())
def test_worker_files_name_the_installed_scripts(name, service):
    config = read_worker(name, DEVICE / "workers")
    assert config.service == service
    assert config.app == f"/usr/share/daebus/kiosk_demo/{service}.py"
    assert (DEMO / f"{service}.py").is_file()


def test_the_drop_in_exposes_what_the_page_uses():
    actions, channels = page_needs()
    assert ("display", "set_brightness") in actions and "sensors.readings" in channels
    exposure = Exposure(**load_gateway_drop_in())
    for service, action in actions:
        assert exposure.action_allowed(service, action), (service, action)
    for channel in channels:
        assert exposure.channel_allowed(channel), channel


def load_gateway_drop_in() -> dict:
    import tomllib

    table = tomllib.loads((DEVICE / "gateway.toml").read_text())["gateway"]
    return {"actions": table["expose_actions"], "channels": table["expose_channels"]}


def test_enable_links_the_files_starts_the_workers_and_restarts_the_gateway(run_command, etc, monkeypatch):
    done, calls = run_command("enable")
    assert done.returncode == 0, done.stderr
    assert "http://127.0.0.1:8080/" in done.stdout
    for name in WORKERS:
        assert (etc / "workers" / f"{name}.toml").resolve() == (DEVICE / "workers" / f"{name}.toml")
    units = " ".join(f"daebus-worker@{name}.service" for name in WORKERS)
    assert calls == [f"--quiet enable {units}", f"restart {units}", "try-restart daebus-gateway.service"]
    # What the gateway reads once the drop-in is linked (its static_dir is
    # the installed page; here the checkout's).
    (etc / "daebus.toml").write_text("[gateway]\nthreads = 8\n")
    monkeypatch.setenv("DAEBUS_CONFIG", str(etc / "daebus.toml"))
    settings = load_gateway_settings({"static_dir": str(DEMO / "static")})
    assert "display/*" in settings.expose_actions and "sensors.*" in settings.expose_channels
    assert settings.threads == 8
    import tomllib

    drop_in = tomllib.loads((etc / "conf.d" / "50-kiosk-demo.toml").read_text())["gateway"]
    assert drop_in["static_dir"] == "/usr/share/daebus/kiosk_demo/static"
    # And what `daebus worker kiosk-sensors` reads.
    assert read_worker("kiosk-sensors", etc / "workers").service == "sensors"


def test_disable_stops_the_workers_and_removes_only_its_own_links(run_command, etc, tmp_path):
    run_command("enable")
    mine = etc / "workers" / "kiosk-system.toml"
    mine.unlink()
    mine.write_text('app = "/opt/other.py"\n')  # the administrator's own file
    done, calls = run_command("disable")
    assert done.returncode == 0, done.stderr
    units = " ".join(f"daebus-worker@{name}.service" for name in WORKERS)
    assert calls == [f"stop {units}", f"--quiet disable {units}", "try-restart daebus-gateway.service"]
    assert not (etc / "workers" / "kiosk-sensors.toml").exists()
    assert not (etc / "conf.d" / "50-kiosk-demo.toml").exists()
    assert mine.read_text() == 'app = "/opt/other.py"\n'
    # The administrator's choice outlives package upgrades.
    assert (tmp_path / "state" / "disabled").is_file()
    run_command("enable")
    assert not (tmp_path / "state" / "disabled").exists()
