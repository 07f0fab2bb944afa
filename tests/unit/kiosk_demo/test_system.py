import pytest

from daebus import ServiceUnavailable
from daebus.app.context import app_context
from daebus.testing import TestClient


@pytest.fixture
def system(load_worker, monkeypatch):
    module = load_worker("system")
    answered = []

    def ask(service, action, timeout=2.0):
        answered.append((service, action))
        return {}

    monkeypatch.setattr(module, "ask", ask)
    module.answered = answered
    return module


def test_snapshot_reports_uptime_load_and_memory(system):
    with TestClient(system.app) as client:
        status = client.call("get_status")
    assert status["uptime_s"] > 0
    assert len(status["load"]) == 3
    memory = status["memory"]
    assert 0 < memory["available"] <= memory["total"]
    assert memory["used"] == memory["total"] - memory["available"]
    assert 0 <= memory["used_pct"] <= 100
    assert status["worker_uptime_s"] >= 0
    assert status["hostname"]


def test_meminfo_parsing(system, tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        2000 kB\nMemFree:  100 kB\nMemAvailable:     500 kB\nHugePages_Total: 0\n")
    assert system.read_memory(str(meminfo)) == {"total": 2048000, "available": 512000,
                                                "used": 1536000, "used_pct": 75.0}
    assert system.read_memory(str(tmp_path / "absent")) is None


def test_cpu_temperature_from_sysfs(system, tmp_path):
    (tmp_path / "temp").write_text("48312\n")
    assert system.read_cpu_temperature(str(tmp_path / "temp")) == 48.3
    assert system.read_cpu_temperature(str(tmp_path / "absent")) is None


def test_the_monitor_thread_broadcasts_until_stopped(system):
    class Running:
        """Stops the loop after three rounds, as a stopping service would."""
        def __init__(self):
            self.rounds = 0
            self.waits = []

        def __call__(self):
            return self.rounds < 3

        def wait(self, timeout):
            self.waits.append(timeout)
            self.rounds += 1
            return self.rounds >= 3

    running = Running()
    with TestClient(system.app) as client, app_context(system.app):
        system.app.threads["monitor"].fn(running)
    assert [channel for channel, _ in client.broadcasts] == ["system.status"] * 3
    assert running.waits == [system.INTERVAL] * 3


def test_diagnostics_report_progress_for_every_check(system, monkeypatch):
    # The checks read this machine: a loaded test machine is not a failing device.
    monkeypatch.setattr(system.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    with TestClient(system.app) as client:
        reply = client.request("run_diagnostics", {"pause": 0})
    assert reply.ok
    total = len(system.CHECKS)
    assert [step["index"] for step in reply.progress] == list(range(1, total + 1))
    assert [step["percent"] for step in reply.progress][-1] == 100
    assert reply.payload["passed"] == reply.payload["total"] == total
    assert [check["name"] for check in reply.payload["checks"]] == [name for name, _ in system.CHECKS]
    # The same steps go out as broadcasts for pages, framed by a start and an end.
    steps = [data for channel, data in client.broadcasts if channel == "system.diagnostics"]
    assert steps[0]["percent"] == 0 and steps[-1] == {"run": reply.payload["run"], "percent": 100,
                                                      "done": True, "passed": total, "total": total}
    assert len(steps) == total + 2
    assert ("sensors", "get_readings") in system.answered and ("display", "get_state") in system.answered


def test_a_failing_check_is_reported_not_raised(system, monkeypatch):
    def ask(service, action, timeout=2.0):
        raise ServiceUnavailable(f"no {service}")

    def broken():
        raise OSError("disk on fire")

    monkeypatch.setattr(system, "ask", ask)
    monkeypatch.setattr(system, "CHECKS", [*system.CHECKS[:3], ("Broken", broken)])
    with TestClient(system.app) as client:
        result = client.call("run_diagnostics", {"pause": 0})
    by_name = {check["name"]: check for check in result["checks"]}
    assert by_name["Redis round trip"]["ok"]
    assert by_name["Sensors worker"] == {"name": "Sensors worker", "ok": False,
                                         "detail": "sensors: service_unavailable"}
    assert by_name["Broken"] == {"name": "Broken", "ok": False, "detail": "OSError: disk on fire"}
    assert result["passed"] == 1 and result["total"] == 4


@pytest.mark.parametrize("pause", [-1, 6, "1", True])
def test_diagnostics_reject_a_bad_pause(system, pause):
    with TestClient(system.app) as client:
        reply = client.request("run_diagnostics", {"pause": pause})
    assert reply.payload["code"] == "bad_request"
    assert client.broadcasts == []


def test_diagnostics_take_a_while_by_default(system, monkeypatch):
    pauses = []
    monkeypatch.setattr(system.time, "sleep", pauses.append)
    with TestClient(system.app) as client:
        client.call("run_diagnostics")
    assert pauses == [system.STEP_PAUSE] * (len(system.CHECKS) - 1)
