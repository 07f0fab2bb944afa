"""daebus top's window over heartbeats, and the per-action rows."""

from daebus.cli.top import Window, action_rows
from daebus.ops.metrics import ServiceMetrics, parse_snapshot


def info(name, metrics, *, at, uptime):
    snap = parse_snapshot(metrics.snapshot(uptime=uptime, queued=0, in_flight=0))
    snap["at"] = at
    return {"name": name, "metrics": snap}


def test_lifetime_rows_without_a_window():
    metrics = ServiceMetrics(["read"])
    for _ in range(10):
        metrics.call("read", 0.004)
    metrics.call("read", 0.004, "handler_error")
    metrics.busy("read")
    [cells] = action_rows([info("s", metrics, at=100.0, uptime=11.0)])
    assert cells[:5] == ("s/read", "11", "1", "1", "0")
    assert cells[5] == "1.00"
    assert 2.5 < float(cells[6]) <= 5.0 and 2.5 < float(cells[7]) <= 5.0


def test_the_window_covers_the_last_two_distinct_heartbeats():
    metrics = ServiceMetrics(["read"])
    window = Window()
    metrics.call("read", 0.2)
    assert window.update([info("s", metrics, at=100.0, uptime=10.0)]) == {}
    # The same heartbeat read again changes nothing.
    assert window.update([info("s", metrics, at=100.0, uptime=10.0)]) == {}
    for _ in range(20):
        metrics.call("read", 0.004)
    windows = window.update([info("s", metrics, at=105.0, uptime=15.0)])
    rate, counts = windows["s"]["read"]
    assert rate == 4.0 and sum(counts) == 20
    [cells] = action_rows([info("s", metrics, at=105.0, uptime=15.0)], windows)
    assert cells[5] == "4.00"
    assert float(cells[7]) <= 5.0, "the slow call before the window is not in its p99"


def test_a_restarted_service_starts_a_new_window():
    metrics = ServiceMetrics(["read"])
    metrics.call("read", 0.01)
    window = Window()
    window.update([info("s", metrics, at=100.0, uptime=50.0)])
    window.update([info("s", metrics, at=105.0, uptime=55.0)])
    fresh = ServiceMetrics(["read"])
    assert "s" not in window.update([info("s", fresh, at=106.0, uptime=1.0)])
