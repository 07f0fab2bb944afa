"""daebus services and daebus top read the counters a live service publishes."""

import threading
import time

from daebus import DaebusCaller
from daebus.bus import registry
from daebus.ops.metrics import ServiceMetrics


def wait_for_calls(redis_server, service: str, action: str, calls: int, timeout: float = 15) -> None:
    """Until the service's heartbeat has published ``calls`` calls of ``action``."""
    client = redis_server.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = next((s for s in registry.list_services(client) if s["name"] == service), None)
        metrics = (info or {}).get("metrics") or {}
        if metrics.get("actions", {}).get(action, {}).get("calls") == calls:
            return
        time.sleep(0.1)
    raise AssertionError(f"{service}.{action} never reported {calls} calls")


def row(output: str, service: str, action: str) -> list[str]:
    for line in output.splitlines():
        cells = line.split()
        if cells[:1] == [f"{service}/{action}"]:
            return cells
    raise AssertionError(f"no row for {service} {action} in:\n{output}")


def test_services_shows_calls_rate_and_percentiles(service, redis_server, redis_url, daebus):
    service("observed.py", "topped")
    with DaebusCaller("topped", redis_url=redis_url) as caller:
        for i in range(5):
            caller.send_request("echo", {"i": i})
    wait_for_calls(redis_server, "topped", "echo", 5)
    done = daebus("services")
    assert done.returncode == 0, done.stderr
    assert "RATE/s" in done.stdout and "P99 ms" in done.stdout
    cells = row(done.stdout, "topped", "echo")
    # SERVICE/ACTION CALLS ERRORS BUSY EXPIRED RATE/s P50 P99
    assert cells[1:5] == ["5", "0", "0", "0"]
    assert float(cells[5]) > 0 and float(cells[6]) > 0 and float(cells[7]) >= float(cells[6])


def test_top_shows_the_last_interval(service, redis_server, redis_url, daebus):
    service("observed.py", "topped2")
    with DaebusCaller("topped2", redis_url=redis_url) as caller:
        caller.send_request("echo", {})
        wait_for_calls(redis_server, "topped2", "echo", 1)
        # Calls keep coming while top watches, so its window sees them.
        stop = threading.Event()

        def keep_calling():
            while not stop.is_set():
                caller.send_request("echo", {})
                time.sleep(0.02)

        worker = threading.Thread(target=keep_calling)
        worker.start()
        try:
            done = daebus("top", "--iterations", "4", "--interval", "0.7")
        finally:
            stop.set()
            worker.join(10)
    assert done.returncode == 0, done.stderr
    blocks = [b for b in done.stdout.split("-- ") if b.strip()]
    assert len(blocks) == 4
    assert "topped2: up " in blocks[0]
    first = row(blocks[0], "topped2", "echo")
    assert first[5] == "-", "one sight of the counters gives no rate yet"
    last = row(blocks[-1], "topped2", "echo")
    assert float(last[5]) > 0, done.stdout
    assert int(last[1]) > 1


def test_a_corrupt_snapshot_is_shown_as_such(redis_server, daebus):
    client = redis_server.client()
    good = ServiceMetrics(["a"])
    good.call("a", 0.002)
    registry.publish(client, registry.record("fine", actions=["a"], channels=[], version="1", started_at=time.time(),
                                             status="running",
                                             metrics=good.snapshot(uptime=2.0, queued=0, in_flight=0)), 30)
    registry.publish(client, registry.record("broken", actions=["a"], channels=[], version="1",
                                             started_at=time.time(), status="running", metrics="{garbage"), 30)
    try:
        done = daebus("services")
        assert done.returncode == 0, done.stderr
        assert row(done.stdout, "fine", "a")[1] == "1"
        assert "corrupt counters:" in " ".join(row(done.stdout, "broken", "*"))
        top = daebus("top", "--iterations", "1")
        assert top.returncode == 0 and "corrupt counters:" in top.stdout
    finally:
        client.delete(registry.key("fine"), registry.key("broken"))
