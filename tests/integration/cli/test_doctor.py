"""daebus doctor against a real redis-server, a real gateway and real services."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from daebus.cli import Exit
from gateway.settings import render
from support import ROOT, ManagedProcess, free_port


class Device:
    """A config folder (daebus.toml, conf.d/, workers/) as on the appliance."""

    def __init__(self, redis_url: str, expose: list[str]):
        self.dir = Path(tempfile.mkdtemp(prefix="daebus-doctor-"))
        self.port = free_port()
        self.config = self.dir / "daebus.toml"
        self.config.write_text(render(redis_url, {"bind": f"127.0.0.1:{self.port}", "expose_actions": expose}))
        (self.dir / "conf.d").mkdir()
        (self.dir / "workers").mkdir()
        self.env = {"DAEBUS_CONFIG": str(self.config), "DAEBUS_WORKERS_DIR": str(self.dir / "workers")}
        self.gateway: ManagedProcess | None = None

    def start_gateway(self) -> None:
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT)}
        env.pop("DAEBUS_REDIS_URL", None)
        self.gateway = ManagedProcess([sys.executable, "-m", "gunicorn", "-c", "python:gateway.gunicorn_conf",
                                       "gateway.wsgi:app"], env, name="gateway", new_session=True)
        self.gateway.wait_ready(30)

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def device(redis_url, service):
    service("basic.py", "doc-basic")
    made = Device(redis_url, ["doc-basic/*"])
    (made.dir / "workers" / "doc-basic.toml").write_text(f'app = "{ROOT}/tests/services/basic.py"\n')
    yield made
    made.close()


@pytest.fixture
def daebus_device(daebus):
    """``daebus doctor`` reading the device's files; returns (status, lines)."""
    def run(device, *args):
        # The test environment's Redis URL must not hide the config file's.
        env = {**device.env, "DAEBUS_REDIS_URL": ""}
        out = daebus("doctor", *args, env=env)
        return out.returncode, out.stdout.splitlines()
    return run


def test_a_healthy_device_is_all_green(daebus_device, device):
    device.start_gateway()
    status, lines = daebus_device(device)
    assert status == Exit.OK, lines
    assert lines == [
        f"✔ configuration: {device.config} and 0 drop-ins valid",
        "✔ worker files: doc-basic",
        lines[2],
        "– units: systemd is not running here",
        f"✔ gateway: http://127.0.0.1:{device.port}/api/health: ok, Redis up, 0 event streams",
        "✔ exposed actions: every pattern matches a live action (doc-basic/*)",
        lines[6],
    ]
    assert lines[2].startswith("✔ redis: redis://127.0.0.1:") and "answers (Redis " in lines[2]
    assert lines[6].startswith("✔ instances: one per service (")


def test_each_problem_gets_a_red_line_with_its_fix_and_exit_1(daebus_device, device, redis_server):
    device.start_gateway()
    (device.dir / "conf.d" / "50-vendor.toml").write_text('[gateway]\nexpose_actions = ["ghost/*"]\n')
    (device.dir / "workers" / "broken.toml").write_text('app = "/opt/x.py"\nservce = "x"\n')
    (device.dir / "workers" / "missing.toml").write_text('app = "/opt/nowhere/missing.py"\n')
    # A second process on the service's channel, as an old copy started by hand.
    twin = redis_server.client().pubsub()
    twin.subscribe("doc-basic")
    twin.get_message(timeout=5)
    status, lines = daebus_device(device)
    assert status == Exit.FAILURE
    red = [line for line in lines if line.startswith("✘")]
    assert red == [
        f"✘ worker broken: {device.dir}/workers/broken.toml:2: unknown key 'servce' (known: app, service, "
        "python_path, listen, env); fix: correct it, then: sudo systemctl restart daebus-worker@broken",
        f"✘ worker missing: {device.dir}/workers/missing.toml: app /opt/nowhere/missing.py does not exist; "
        "fix: install the worker's code there, or correct app in the worker file",
        f"✘ exposed actions: 'ghost/*' ({device.dir}/conf.d/50-vendor.toml:2) matches no action of a running "
        "service; fix: start the service that provides it, or correct the pattern; then: sudo systemctl "
        "restart daebus-gateway",
        red[3],
    ]
    assert red[3].startswith("✘ service doc-basic: 2 processes subscribe to its channel, so each request is "
                             "handled 2 times (registered: pid ")
    assert "; fix: stop the extra process serving 'doc-basic'" in red[3]
    assert "✔ worker files: doc-basic" in lines
    twin.close()


def test_a_bad_config_file_is_named_with_its_line(daebus_device, device):
    (device.dir / "conf.d" / "10-typo.toml").write_text('[redis]\nurll = "redis://x"\n')
    status, lines = daebus_device(device)
    assert status == Exit.FAILURE
    assert lines[0].startswith(f"✘ configuration: {device.dir}/conf.d/10-typo.toml:2: ")
    assert lines[0].endswith("; fix: correct that line; then: sudo systemctl restart daebus.target")
    assert "– redis: not checked: the configuration is invalid" in lines


def test_redis_down_and_gateway_down(daebus_device, device):
    status, lines = daebus_device(device, "--redis-url", "redis://127.0.0.1:1/0", "--json")
    assert status == Exit.FAILURE
    checks = {c["check"]: c for c in json.loads("\n".join(lines))}
    assert checks["redis"]["ok"] is False
    assert checks["redis"]["detail"].startswith("cannot reach redis://127.0.0.1:1/0 (from --redis-url): ")
    assert "systemctl start daebus-redis.service" in checks["redis"]["fix"]
    assert checks["gateway"]["ok"] is False and "does not answer" in checks["gateway"]["detail"]
    assert "journalctl -u daebus-gateway" in checks["gateway"]["fix"]
    assert checks["instances"] == {"check": "instances", "ok": None, "detail": "not checked: Redis unreachable",
                                   "fix": ""}
    assert checks["exposed actions"]["ok"] is None


def test_a_gateway_that_lost_redis_is_red(daebus_device, fresh_redis):
    device = Device(fresh_redis.url, [])
    try:
        device.start_gateway()
        fresh_redis.stop(kill=True)
        status, lines = daebus_device(device)
    finally:
        device.close()
    assert status == Exit.FAILURE
    [gateway] = [line for line in lines if " gateway: " in line]
    assert gateway.startswith(f"✘ gateway: http://127.0.0.1:{device.port}/api/health answers 503: ")
