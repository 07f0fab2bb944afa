"""An idle service sleeps: no polling loop burns CPU."""

import os
import threading


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_idle_service_uses_almost_no_cpu(service):
    svc = service("basic.py", "idle")
    window = threading.Event()
    before = _cpu_seconds(svc.process.pid)
    window.wait(3)  # a measurement window, not a synchronisation
    used = _cpu_seconds(svc.process.pid) - before
    assert used < 0.06, f"idle service used {used:.2f} s of CPU in 3 s"
