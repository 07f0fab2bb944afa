"""/metrics through a real gunicorn gateway and a real worker: exact counts
after a known mix of calls, and a corrupt snapshot beside a good one."""

import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daebus.bus import registry

ACTION = "/api/services/<service>/<action>"


def samples(text: str) -> dict:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def labels(**values) -> frozenset:
    return frozenset(values.items())


def scrape_until(gw, ready, timeout: float = 15) -> dict:
    """Scrape until ``ready(figures)``: services publish with their heartbeat
    (every half second here), so a scrape may come before the last call is in."""
    deadline = time.monotonic() + timeout
    while True:
        response = gw.get("/metrics")
        assert response.status_code == 200
        figures = samples(response.text)
        if ready(figures) or time.monotonic() > deadline:
            return figures
        time.sleep(0.2)


@pytest.fixture
def observed(service, start_gateway):
    worker = service("observed.py", "observed")
    gw = start_gateway({"expose_actions": ["observed/*"], "max_timeout": 10.0})
    yield worker, gw


def test_metrics_report_exactly_the_calls_made(observed, redis_server):
    worker, gw = observed
    client = redis_server.client()
    held = client.pubsub(ignore_subscribe_messages=True)
    held.subscribe("observed.held")
    held.get_message(timeout=5)

    # The only handler thread is held: its caller gives up after 1 s (504).
    results = {}
    holder = threading.Thread(target=lambda: results.update(
        hold=gw.post("/api/services/observed/hold?timeout=1", {}).status_code))
    holder.start()
    assert held.get_message(timeout=10) is not None, "hold never started"
    # One request takes the queue slot; its caller gives up too (504), so
    # the worker will skip it as expired.
    waiter = threading.Thread(target=lambda: results.update(
        queued=gw.post("/api/services/observed/echo?timeout=0.5", {"n": 0}).status_code))
    waiter.start()
    figures = scrape_until(gw, lambda f: f.get(("daebus_service_queue_depth", labels(service="observed"))) == 1)
    assert figures[("daebus_service_queue_depth", labels(service="observed"))] == 1
    # The next one finds the queue full: busy at once (503).
    busy = gw.post("/api/services/observed/echo", {"n": 1})
    assert busy.status_code == 503 and busy.json()["error"]["code"] == "busy"
    holder.join(15)
    waiter.join(15)
    assert results == {"hold": 504, "queued": 504}
    client.rpush("observed:release", "go")
    # Released, the handler thread skips the expired request; only then is
    # the queue free for the calls below (one sent sooner would be busy).
    scrape_until(gw, lambda f: f.get(("daebus_action_expired_total",
                                      labels(service="observed", action="echo"))) == 1
                 and f.get(("daebus_service_queue_depth", labels(service="observed"))) == 0)

    oks = [gw.post("/api/services/observed/echo", {"n": i}).status_code for i in range(3)]
    fails = [gw.post("/api/services/observed/fail", {}).status_code for _ in range(2)]
    reject = gw.post("/api/services/observed/reject", {}).status_code
    assert (oks, fails, reject) == ([200] * 3, [502] * 2, 400)

    def settled(f):
        return (f.get(("daebus_action_calls_total", labels(service="observed", action="hold"))) == 1
                and f.get(("daebus_action_calls_total", labels(service="observed", action="reject"))) == 1)

    figures = scrape_until(gw, settled)
    svc = {"service": "observed"}

    def action(name, **extra):
        return labels(**svc, action=name, **extra)

    expected = {
        ("daebus_action_calls_total", action("echo")): 3,
        ("daebus_action_calls_total", action("hold")): 1,
        ("daebus_action_calls_total", action("fail")): 2,
        ("daebus_action_calls_total", action("reject")): 1,
        ("daebus_action_errors_total", action("fail", code="handler_error")): 2,
        ("daebus_action_errors_total", action("reject", code="bad_request")): 1,
        ("daebus_action_busy_total", action("echo")): 1,
        ("daebus_action_busy_total", action("hold")): 0,
        ("daebus_action_expired_total", action("echo")): 1,
        ("daebus_action_expired_total", action("fail")): 0,
        ("daebus_action_duration_seconds_count", action("echo")): 3,
        ("daebus_action_duration_seconds_count", action("hold")): 1,
        ("daebus_service_queue_depth", labels(**svc)): 0,
        ("daebus_service_up", labels(**svc)): 1,
        ("daebus_service_metrics_valid", labels(**svc)): 1,
        ("daebus_service_reconnects_total", labels(**svc)): 0,
        ("daebus_gateway_bus_calls_total", labels(**svc, outcome="ok")): 3,
        ("daebus_gateway_bus_calls_total", labels(**svc, outcome="timeout")): 2,
        ("daebus_gateway_bus_calls_total", labels(**svc, outcome="busy")): 1,
        ("daebus_gateway_bus_calls_total", labels(**svc, outcome="handler_error")): 2,
        ("daebus_gateway_bus_calls_total", labels(**svc, outcome="bad_request")): 1,
    }
    for status, count in (("200", 3), ("504", 2), ("503", 1), ("502", 2), ("400", 1)):
        expected[("daebus_gateway_http_requests_total", labels(route=ACTION, method="POST", status=status))] = count
    assert {key: figures.get(key) for key in expected} == expected
    assert not [key for key in figures if key[0] == "daebus_action_errors_total"
                and dict(key[1])["action"] == "echo"], "echo never answered with an error"
    # Uptime is the service's own clock, read without waking it.
    assert figures[("daebus_service_uptime_seconds", labels(**svc))] > 0


def test_task_runs_and_failures(observed):
    _, gw = observed
    runs = ("daebus_task_runs_total", labels(service="observed", task="tick"))
    figures = scrape_until(gw, lambda f: f.get(runs, 0) >= 3)
    assert figures[runs] >= 3
    assert figures[("daebus_task_failures_total", labels(service="observed", task="tick"))] == 1
    assert figures[("daebus_task_last_duration_seconds", labels(service="observed", task="tick"))] >= 0


def test_listener_runs_and_failures(observed, redis_server):
    _, gw = observed
    client = redis_server.client()
    key = ("daebus_listener_runs_total", labels(service="observed", listener="observed.news"))
    # One at a time: the worker has a single thread and queue slot.
    for runs, fail in enumerate((False, True, False), 1):
        assert client.publish("observed.news", '{"fail": %s}' % str(fail).lower()) == 1
        figures = scrape_until(gw, lambda f: f.get(key) == runs)
    assert figures[key] == 3
    assert figures[("daebus_listener_failures_total", labels(service="observed", listener="observed.news"))] == 1


def test_async_actions_are_counted_too(observed):
    _, gw = observed
    assert [gw.post("/api/services/observed/aecho", {"i": i}).status_code for i in range(2)] == [200, 200]
    key = ("daebus_action_calls_total", labels(service="observed", action="aecho"))
    assert scrape_until(gw, lambda f: f.get(key) == 2)[key] == 2


def test_a_corrupt_snapshot_beside_a_live_service(observed, redis_server):
    _, gw = observed
    client = redis_server.client()
    registry.publish(client, registry.record("liar", actions=["x"], channels=[], version="9", started_at=1.0,
                                             status="running", metrics='{"v": 1, "actions": {"x": [1, 2, 3]}}'), 30)
    try:
        figures = scrape_until(gw, lambda f: ("daebus_service_up", labels(service="liar")) in f)
        assert figures[("daebus_service_metrics_valid", labels(service="liar"))] == 0
        assert figures[("daebus_service_metrics_valid", labels(service="observed"))] == 1
        assert ("daebus_action_calls_total", labels(service="observed", action="echo")) in figures
        assert "corrupt metrics" in gw.log
    finally:
        client.delete(registry.key("liar"))


def test_a_service_with_metrics_off_publishes_none(service, start_gateway, redis_server):
    service("observed.py", "quiet", "--no-metrics")
    gw = start_gateway({"expose_actions": ["quiet/*"]})
    assert gw.post("/api/services/quiet/echo", {}).status_code == 200
    info = next(s for s in registry.list_services(redis_server.client()) if s["name"] == "quiet")
    assert info["metrics"] is None and "metrics_error" not in info
    figures = samples(gw.get("/metrics").text)
    assert figures[("daebus_service_metrics_valid", labels(service="quiet"))] == 0


def test_metrics_need_the_token_beyond_loopback(start_gateway):
    gw = start_gateway({"token": "t" * 24, "trust_loopback": False})
    assert gw.get("/metrics").status_code == 401
    response = gw.get("/metrics", headers={"Authorization": "Bearer " + "t" * 24})
    assert response.status_code == 200
    assert "daebus_gateway_http_requests_total" in response.text
