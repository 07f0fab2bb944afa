"""Service counters: counting, snapshots, and reading snapshots that a peer got wrong."""

import json

import pytest

from daebus.ops.metrics import (BUCKETS, MAX_CODES, OTHER_CODE, UNKNOWN_ACTION, NullMetrics, ServiceMetrics,
                                merge, parse_snapshot, quantile)


def snapshot(metrics, **figures):
    figures = {"uptime": 1.0, "queued": 0, "in_flight": 0, **figures}
    return parse_snapshot(metrics.snapshot(**figures))


def test_counts_calls_errors_busy_and_expired_per_action():
    metrics = ServiceMetrics(["read", "write"])
    metrics.call("read", 0.003)
    metrics.call("read", 0.2, "handler_error")
    metrics.call("read", 30.0, "handler_error")
    metrics.busy("read")
    metrics.expired("write")
    figures = snapshot(metrics, queued=2, in_flight=1)
    read = figures["actions"]["read"]
    assert (read["calls"], read["busy"], read["expired"]) == (3, 1, 0)
    assert read["errors"] == {"handler_error": 2}
    assert read["sum"] == pytest.approx(30.203)
    # 3 ms falls in the 5 ms bucket, 30 s in the open one.
    assert read["buckets"][BUCKETS.index(0.005)] == 1
    assert read["buckets"][BUCKETS.index(0.25)] == 1
    assert read["buckets"][-1] == 1
    assert figures["actions"]["write"]["expired"] == 1
    assert (figures["queued"], figures["in_flight"]) == (2, 1)


def test_a_bound_is_its_own_bucket():
    metrics = ServiceMetrics(["a"])
    metrics.call("a", BUCKETS[0])
    assert snapshot(metrics)["actions"]["a"]["buckets"][0] == 1


def test_unknown_actions_share_one_entry():
    metrics = ServiceMetrics(["a"])
    assert UNKNOWN_ACTION not in snapshot(metrics)["actions"]
    for i in range(50):
        metrics.call(f"random-{i}", 0.001, "action_not_found")
    actions = snapshot(metrics)["actions"]
    assert set(actions) == {"a", UNKNOWN_ACTION}
    assert actions[UNKNOWN_ACTION]["errors"] == {"action_not_found": 50}


def test_error_codes_per_action_are_bounded():
    metrics = ServiceMetrics(["a"])
    for i in range(MAX_CODES + 10):
        metrics.call("a", 0.001, f"code_{i}")
    errors = snapshot(metrics)["actions"]["a"]["errors"]
    assert len(errors) == MAX_CODES + 1
    assert errors[OTHER_CODE] == 10


def test_listeners_tasks_and_reconnects():
    metrics = ServiceMetrics([], ["news"], ["tick"])
    metrics.listener("news", 0.5, False)
    metrics.listener("news", 0.25, True)
    metrics.task("tick", 1.5, True)
    metrics.reconnected()
    figures = snapshot(metrics)
    assert figures["listeners"]["news"] == {"runs": 2, "failures": 1, "last_duration": 0.25}
    assert figures["tasks"]["tick"] == {"runs": 1, "failures": 1, "last_duration": 1.5}
    assert figures["reconnects"] == 1


def test_disabled_metrics_publish_nothing():
    metrics = NullMetrics(["a"])
    metrics.call("a", 0.1, "x")
    metrics.busy("a")
    assert metrics.snapshot(uptime=1.0, queued=0, in_flight=0) is None


def _valid() -> dict:
    metrics = ServiceMetrics(["a"])
    metrics.call("a", 0.01)
    return json.loads(metrics.snapshot(uptime=1.0, queued=0, in_flight=0))


@pytest.mark.parametrize("corrupt", [
    lambda d: "not json",
    lambda d: "[1, 2]",
    lambda d: json.dumps({**d, "v": 99}),
    lambda d: json.dumps({**d, "queued": -1}),
    lambda d: json.dumps({**d, "uptime": "long"}),
    lambda d: json.dumps({**d, "buckets": [1, 0.5]}),
    lambda d: json.dumps({**d, "actions": []}),
    lambda d: json.dumps({**d, "actions": {"a": {**d["actions"]["a"], "calls": True}}}),
    lambda d: json.dumps({**d, "actions": {"a": {**d["actions"]["a"], "calls": 7}}}),
    lambda d: json.dumps({**d, "actions": {"a": {**d["actions"]["a"], "buckets": [1]}}}),
    lambda d: json.dumps({**d, "actions": {"a": {**d["actions"]["a"], "errors": {"x": 1.5}}}}),
    lambda d: json.dumps({**d, "tasks": {"t": {"runs": 1}}}),
    lambda d: json.dumps({**d, "pad": "x" * (1024 * 1024)}),
], ids=["text", "list", "version", "negative", "type", "bounds", "actions", "bool", "sum-mismatch",
        "bucket-count", "error-count", "task", "huge"])
def test_corrupt_snapshots_are_refused(corrupt):
    with pytest.raises(ValueError):
        parse_snapshot(corrupt(_valid()))


def test_quantiles_interpolate_inside_buckets():
    bounds = [0.1, 0.2, 0.4]
    assert quantile(bounds, [0, 0, 0, 0], 0.5) is None
    assert quantile(bounds, [10, 0, 0, 0], 0.5) == pytest.approx(0.05)
    assert quantile(bounds, [0, 10, 0, 0], 0.99) == pytest.approx(0.199)
    assert quantile(bounds, [50, 0, 50, 0], 0.5) == pytest.approx(0.1)
    assert quantile(bounds, [0, 0, 0, 5], 0.5) == 0.4  # the open bucket


def test_a_group_adds_up_its_members():
    one, two = ServiceMetrics(["a"], ["news"]), ServiceMetrics(["a"], ["news"])
    one.call("a", 0.01)
    two.call("a", 0.02, "busy_code")
    two.busy("a")
    one.listener("news", 0.5, False)
    two.listener("news", 0.1, True)
    total = merge([snapshot(one, uptime=5.0, queued=1), snapshot(two, uptime=9.0, queued=2)])
    a = total["actions"]["a"]
    assert (a["calls"], a["busy"], sum(a["buckets"]), a["errors"]) == (2, 1, 2, {"busy_code": 1})
    assert (total["uptime"], total["queued"]) == (9.0, 3)
    assert total["listeners"]["news"] == {"runs": 2, "failures": 1, "last_duration": 0.5}
    assert merge([]) is None
