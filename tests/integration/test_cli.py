"""The daebus command in a subprocess against a real redis-server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from daebus import DaebusCaller
from support import ROOT, ManagedProcess, child_env

WORKER = """
import os
from daebus import Daebus, logger, request, response

app = Daebus(__name__)

@app.action("greet")
def greet():
    logger.warning("greeting %s", request.payload.get("name"))
    return {"greeting": f"{os.environ['GREETING']}, {request.payload.get('name')}!", "pid": os.getpid()}
"""


class Command(ManagedProcess):
    """``python -m daebus.cli ...`` with a notify socket and a log file."""

    def __init__(self, *args: str, redis_url: str, env: dict | None = None, journal: bool = False):
        super().__init__([sys.executable, "-m", "daebus.cli", *args], child_env(redis_url, env),
                         name="daebus " + " ".join(args), journal=journal)

    @property
    def output(self) -> str:
        return self.log


@pytest.fixture
def command(redis_url):
    started = []

    def start(*args, **kwargs):
        cmd = Command(*args, redis_url=kwargs.pop("redis_url", redis_url), **kwargs)
        started.append(cmd)
        return cmd

    yield start
    for cmd in started:
        cmd.close()


@pytest.fixture
def workers(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "greeter_app.py").write_text(WORKER)
    return tmp_path


def services(redis_url: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "daebus.cli", "services", "--json", "--redis-url", redis_url],
                         capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_worker_runs_its_file_with_env_and_stops_on_sigterm(command, workers, redis_url):
    (workers / "greeter.toml").write_text(textwrap.dedent(f"""
        app = "{workers}/lib/greeter_app.py"
        service = "greeter-cli"
        [env]
        GREETING = "Hello"
    """))
    worker = command("worker", "greeter", env={"DAEBUS_WORKERS_DIR": str(workers)})
    worker.wait_ready()
    with DaebusCaller("greeter-cli", redis_url=redis_url, timeout=10) as caller:
        reply = caller.send_request("greet", {"name": "kiosk"})
    assert reply == {"greeting": "Hello, kiosk!", "pid": worker.process.pid}
    listed = {s["name"]: s for s in services(redis_url)}
    assert listed["greeter-cli"]["actions"] == ["greet"]
    assert listed["greeter-cli"]["pid"] == worker.process.pid
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert "greeter-cli" not in {s["name"] for s in services(redis_url)}
    assert "greeting kiosk" in worker.output


def test_worker_loads_a_module_from_python_path(command, workers, redis_url):
    (workers / "modular.toml").write_text(textwrap.dedent(f"""
        app = "greeter_app:app"
        python_path = ["{workers}/lib"]
        [env]
        GREETING = "Hi"
    """))
    worker = command("worker", "modular", env={"DAEBUS_WORKERS_DIR": str(workers)})
    worker.wait_ready()
    with DaebusCaller("modular", redis_url=redis_url, timeout=10) as caller:
        assert caller.send_request("greet", {"name": "x"})["greeting"] == "Hi, x!"


def test_run_serves_a_file_under_the_given_service_name(command, workers, redis_url):
    proc = command("run", f"{workers}/lib/greeter_app.py", "--service", "run-cli",
                   env={"GREETING": "Hey"})
    proc.wait_ready()
    with DaebusCaller("run-cli", redis_url=redis_url, timeout=10) as caller:
        assert caller.send_request("greet", {"name": "y"})["greeting"] == "Hey, y!"
    proc.process.send_signal(signal.SIGINT)
    assert proc.wait() == 0


def test_bad_worker_file_is_one_line_exit_2_and_an_error_under_journald(command, workers):
    (workers / "broken.toml").write_text('app = "/opt/x.py"\n\n[env]\nPORT = [1, 2]\n')
    plain = command("worker", "broken", env={"DAEBUS_WORKERS_DIR": str(workers)})
    assert plain.wait() == 2
    assert plain.output == f"daebus: {workers}/broken.toml:4: env.PORT: expected a string, got list\n"
    journal = command("worker", "broken", env={"DAEBUS_WORKERS_DIR": str(workers)}, journal=True)
    assert journal.wait() == 2
    assert journal.output.startswith("<3>daebus: ") and "Traceback" not in journal.output


def test_a_crashing_import_is_an_error_with_its_traceback(command, workers):
    (workers / "lib" / "crash.py").write_text("raise RuntimeError('broken vendor module')\n")
    proc = command("run", f"{workers}/lib/crash.py", journal=True)
    assert proc.wait() == 1
    lines = proc.output.splitlines()
    assert lines[0].startswith("<3>daebus.cli: loading ")
    assert "<3>daebus.cli: RuntimeError: broken vendor module" in lines
    assert all(line.startswith("<3>") for line in lines), lines


def test_services_reports_an_unreachable_redis_in_one_line():
    out = subprocess.run([sys.executable, "-m", "daebus.cli", "services", "--redis-url", "redis://127.0.0.1:1/0"],
                         capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 6
    assert out.stderr.startswith("daebus: cannot reach Redis") and out.stderr.count("\n") == 1
