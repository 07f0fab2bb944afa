"""The box itself: uptime, load and memory, and a diagnostics run.

What it shows: ``@app.thread`` (a loop that stops as soon as the service
does: ``running.wait`` wakes at once), a long action that reports progress
with ``response.progress`` and broadcasts it for pages that can't receive
replies, and a worker calling other workers with ``DaebusCaller``. Run it
with either of::

    python kiosk_demo/system.py
    daebus run kiosk_demo/system.py

and follow a diagnostics run from Python::

    from daebus import DaebusCaller
    DaebusCaller("system").send_request(
        "run_diagnostics", {}, timeout=30,
        on_progress=lambda step: print(f"{step['progress_percentage']:3.0f}% {step['step']}"))
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid

from daebus import BadRequest, Daebus, DaebusCaller, DaebusError, broadcast, cache, logger, request, response

app = Daebus(__name__)

STATUS_CHANNEL = "system.status"
DIAGNOSTICS_CHANNEL = "system.diagnostics"
# Seconds between status broadcasts.
INTERVAL = float(os.environ.get("KIOSK_SYSTEM_INTERVAL", "2"))
# Seconds between diagnostic steps. The checks take milliseconds; the pause
# lets a person watch the progress bar move.
STEP_PAUSE = 0.5

started = time.time()


# -- readings -----------------------------------------------------------------

def read_uptime(path: str = "/proc/uptime") -> float | None:
    try:
        with open(path) as handle:
            return float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_memory(path: str = "/proc/meminfo") -> dict | None:
    """Total, available and used memory in bytes, from ``/proc/meminfo``."""
    fields: dict[str, int] = {}
    try:
        with open(path) as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    fields[name] = int(parts[0]) * 1024  # the file counts kB
    except OSError:
        return None
    total = fields.get("MemTotal")
    available = fields.get("MemAvailable", fields.get("MemFree"))
    if not total or available is None:
        return None
    return {"total": total, "available": available, "used": total - available,
            "used_pct": round(100 * (total - available) / total, 1)}


def read_cpu_temperature(path: str = "/sys/class/thermal/thermal_zone0/temp") -> float | None:
    """The SoC temperature on a Raspberry Pi (millidegrees in sysfs); None elsewhere."""
    try:
        with open(path) as handle:
            return round(int(handle.read().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None


def snapshot() -> dict:
    """Everything the status card shows."""
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        load = None
    return {
        "time": round(time.time(), 3),
        "hostname": socket.gethostname(),
        "uptime_s": read_uptime(),
        "worker_uptime_s": round(time.time() - started, 1),
        "load": load,
        "cpus": os.cpu_count(),
        "memory": read_memory(),
        "cpu_temp_c": read_cpu_temperature(),
    }


# -- handlers -----------------------------------------------------------------

@app.thread("monitor")
def monitor(running):
    """Broadcast a status every INTERVAL seconds until the service stops."""
    while running():
        broadcast.send(STATUS_CHANNEL, snapshot())
        running.wait(INTERVAL)


@app.action("get_status")
def get_status():
    return snapshot()


def ask(service: str, action: str, timeout: float = 2.0):
    """One request to another worker (replaced in tests)."""
    with DaebusCaller(service, timeout=timeout) as caller:
        return caller.send_request(action, {})


def check_redis():
    began = time.perf_counter()
    cache.ping()
    return True, f"answered in {1000 * (time.perf_counter() - began):.1f} ms"


def check_worker(service: str, action: str):
    def check():
        try:
            ask(service, action)
        except DaebusError as exc:
            return False, f"{service}: {exc.code}"
        return True, f"{service} answered"
    return check


def check_memory():
    memory = read_memory()
    if memory is None:
        return True, "not measured on this system"
    free = 100 - memory["used_pct"]
    return free >= 10, f"{free:.0f}% available"


def check_disk(path: str = "/"):
    usage = shutil.disk_usage(path)
    free = 100 * usage.free / usage.total
    return free >= 5, f"{free:.0f}% free on {path}"


def check_load():
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    return load < 2 * cpus, f"{load:.2f} on {cpus} CPU(s)"


CHECKS = [
    ("Redis round trip", check_redis),
    ("Sensors worker", check_worker("sensors", "get_readings")),
    ("Display worker", check_worker("display", "get_state")),
    ("Memory", check_memory),
    ("Disk space", check_disk),
    ("System load", check_load),
]


def read_pause(payload) -> float:
    pause = (payload or {}).get("pause", STEP_PAUSE)
    if isinstance(pause, bool) or not isinstance(pause, int | float) or not 0 <= pause <= 5:
        raise BadRequest(f"pause must be a number of seconds from 0 to 5, got {pause!r}")
    return float(pause)


@app.action("run_diagnostics")
def run_diagnostics():
    """Run every check, reporting each step as progress; returns a summary.

    Callers with ``on_progress`` get each step as a progress reply; pages get
    them as broadcasts on DIAGNOSTICS_CHANNEL (HTTP has one answer per call).
    """
    pause = read_pause(request.payload)
    run = uuid.uuid4().hex[:8]
    results = []
    began = time.monotonic()
    broadcast.send(DIAGNOSTICS_CHANNEL, {"run": run, "percent": 0, "step": None, "done": False,
                                         "total": len(CHECKS)})
    for index, (name, check) in enumerate(CHECKS, 1):
        try:
            ok, detail = check()
        except Exception as exc:  # noqa: BLE001 - a failing check is a result, not a crash
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results.append({"name": name, "ok": ok, "detail": detail})
        percent = round(100 * index / len(CHECKS))
        step = {"run": run, "percent": percent, "step": name, "ok": ok, "detail": detail,
                "index": index, "total": len(CHECKS), "done": False}
        response.progress(step, percent)
        broadcast.send(DIAGNOSTICS_CHANNEL, step)
        if index < len(CHECKS) and pause:
            time.sleep(pause)
    passed = sum(1 for result in results if result["ok"])
    summary = {"run": run, "passed": passed, "total": len(results), "checks": results,
               "duration_s": round(time.monotonic() - began, 2)}
    broadcast.send(DIAGNOSTICS_CHANNEL, {"run": run, "percent": 100, "done": True,
                                         "passed": passed, "total": len(results)})
    logger.info("diagnostics %s: %d of %d checks passed", run, passed, len(results))
    return summary


if __name__ == "__main__":
    app.run(service="system")
