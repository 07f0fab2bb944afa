"""daebus services (and --watch) and the completion of service names, against real services."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys

from daebus.cli import Exit
from support import ROOT

COMPLETION = ROOT / "debian" / "completion" / "daebus"


def test_services_lists_pid_host_uptime_status_actions_and_channels(daebus, service):
    svc = service("basic.py", "cli-svc")
    out = daebus("services")
    assert out.returncode == Exit.OK
    # The first table lists the services; per-action figures follow after a blank line.
    header, *rows = out.stdout.split("\n\n")[0].splitlines()
    assert header.split() == ["SERVICE", "PID", "HOST", "UP", "STATUS", "ACTIONS", "CHANNELS"]
    [row] = [r for r in rows if r.startswith("cli-svc ")]
    cells = row.split()
    assert cells[1] == str(svc.process.pid) and cells[2] == socket.gethostname()
    assert cells[3].endswith("s") and cells[4] == "running", row
    assert "echo, " in row and "progress" in row
    listed = json.loads(daebus("services", "--json").stdout)
    [entry] = [s for s in listed if s["name"] == "cli-svc"]
    assert entry["pid"] == svc.process.pid and "echo" in entry["actions"]
    assert entry["status"] == "running" and entry["uptime"] >= 0


def test_watch_refreshes_until_ctrl_c_and_sees_a_service_stop(background, service):
    svc = service("basic.py", "cli-watched")
    proc = background("services", "--watch", "--json", "--interval", "0.2")
    first = json.loads(proc.stdout.readline())
    assert "cli-watched" in [s["name"] for s in first]
    svc.process.send_signal(signal.SIGTERM)
    for _ in range(200):  # refreshes every 0.2 s; the service deregisters as it stops
        snapshot = json.loads(proc.stdout.readline())
        if "cli-watched" not in [s["name"] for s in snapshot]:
            break
    else:
        raise AssertionError("the stopped service stayed listed")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == Exit.OK
    assert "Traceback" not in proc.stderr.read()


def test_watch_as_a_table_marks_each_refresh(background, service):
    service("basic.py", "cli-table")
    proc = background("services", "--watch", "--interval", "0.2")
    marks = 0
    while marks < 2:
        line = proc.stdout.readline()
        assert line, "the watch ended"
        marks += line.startswith("-- ")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == Exit.OK


def test_completion_offers_running_services_and_their_actions(service, redis_url, tmp_path):
    service("basic.py", "cli-complete")
    shim = tmp_path / "daebus"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m daebus.cli \"$@\"\n")
    shim.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DAEBUS_REDIS_URL": redis_url,
           "DAEBUS_CONFIG": os.environ["DAEBUS_CONFIG"]}

    def complete(*words: str) -> list[str]:
        script = (f"source {shlex.quote(str(COMPLETION))}\nCOMP_WORDS=({' '.join(map(shlex.quote, words))})\n"
                  f"COMP_CWORD={len(words) - 1}\n_daebus\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
        out = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True, env=env,
                             timeout=60)
        return sorted(w for w in out.stdout.splitlines() if w)

    assert complete("daebus", "call", "cli-comp") == ["cli-complete"]
    assert complete("daebus", "call", "cli-complete", "ec") == ["echo"]
    assert complete("daebus", "call", "--timeout", "3", "cli-complete", "pro") == ["progress"]
    assert complete("daebus", "asyncapi", "--service", "cli-comp") == ["cli-complete"]
    assert complete("daebus", "run", "--service", "cli-comp") == []  # a name to give, not one to find


def test_watch_survives_a_redis_restart(background, fresh_redis):
    proc = background("services", "--watch", "--json", "--interval", "0.2", url=fresh_redis.url)
    assert json.loads(proc.stdout.readline()) == []
    fresh_redis.stop(kill=True)
    assert proc.stderr.readline().startswith("daebus: cannot reach Redis at ")
    fresh_redis.start()
    fresh_redis.client().hset("daebus:service:cli-back", mapping={"name": "cli-back", "pid": "1"})
    for _ in range(200):
        if "cli-back" in [s["name"] for s in json.loads(proc.stdout.readline())]:
            break
    else:
        raise AssertionError("the watch did not come back")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == Exit.OK
