"""GET /metrics and X-Request-ID on the Flask app, with fakes behind it."""

import logging
import re

import fakeredis
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daebus.bus import registry
from daebus.errors import ConnectionLost, RemoteError, RequestTimeout
from daebus.ops.metrics import ServiceMetrics

GENERATED = re.compile(r"[0-9a-f]{32}")


def samples(text: str) -> dict:
    """{(sample name, frozenset of labels): value} from the exposition text."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def fake_registry(make_app, monkeypatch):
    """(app, gateway, redis): the gateway reads its registry from fakeredis."""
    app, gateway = make_app()
    client = fakeredis.FakeRedis(decode_responses=True)
    monkeypatch.setattr(gateway, "services", lambda: registry.list_services(client))
    return app, gateway, client


def stub_bus(monkeypatch, gateway, answer):
    """``gateway._call`` answers with ``answer(*args)`` (service, action, payload, timeout,
    on_progress, trace_id, cancel); no contracts to check."""
    monkeypatch.setattr(gateway.contracts, "problems", lambda *args: [])
    monkeypatch.setattr(gateway, "_call", answer)


def publish(client, name, snapshot):
    info = registry.record(name, actions=["read"], channels=[], version="1", started_at=1.0, status="running",
                           metrics=snapshot)
    registry.publish(client, info, 60)


def test_a_sane_request_id_is_kept_and_returned(make_app, monkeypatch):
    app, gateway = make_app()
    seen = []
    stub_bus(monkeypatch, gateway, lambda *args: seen.append(args[5]) or {"ok": 1})
    response = app.test_client().post("/api/services/echo/x", json={}, headers={"X-Request-ID": "kiosk:42/a-b_c.d"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "kiosk:42/a-b_c.d"
    assert seen == ["kiosk:42/a-b_c.d"]


@pytest.mark.parametrize("garbage", ["", "a" * 129, "two words", "caf\u00e9", '"quoted"', "a;b", "<script>",
                                     "x\x7fy", "%0d%0aSet-Cookie:x"])
def test_a_garbage_request_id_is_replaced(make_app, monkeypatch, garbage):
    app, gateway = make_app()
    seen = []
    stub_bus(monkeypatch, gateway, lambda *args: seen.append(args[5]) or {"ok": 1})
    response = app.test_client().post("/api/services/echo/x", json={}, headers={"X-Request-ID": garbage})
    assert response.status_code == 200
    assert GENERATED.fullmatch(response.headers["X-Request-ID"])
    assert seen == [response.headers["X-Request-ID"]]


def test_every_answer_has_an_id_even_a_refusal(make_app):
    app, _ = make_app()
    response = app.test_client().get("/api/health", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert GENERATED.fullmatch(response.headers["X-Request-ID"])


def test_http_figures_and_bus_outcomes(make_app, monkeypatch):
    app, gateway = make_app()
    outcomes = iter([{"ok": 1}, {"ok": 2}, RemoteError("broke", code="handler_error"), RequestTimeout("slow"),
                     ConnectionLost("gone")])

    def fake_call(*args):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    stub_bus(monkeypatch, gateway, fake_call)
    monkeypatch.setattr(gateway, "services", lambda: [])
    client = app.test_client()
    statuses = [client.post("/api/services/echo/x", json={}).status_code for _ in range(5)]
    assert statuses == [200, 200, 502, 504, 503]
    client.post("/api/services/hidden/x", json={})  # 403, not a bus call
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    figures = samples(response.get_data(as_text=True))
    route = "/api/services/<service>/<action>"
    for status, count in (("200", 2), ("502", 1), ("504", 1), ("503", 1), ("403", 1)):
        key = ("daebus_gateway_http_requests_total", frozenset({"route": route, "method": "POST", "status": status}.items()))
        assert figures[key] == count, status
    for outcome, count in (("ok", 2), ("handler_error", 1), ("timeout", 1), ("connection_lost", 1)):
        assert figures[("daebus_gateway_bus_calls_total",
                        frozenset({"service": "echo", "outcome": outcome}.items()))] == count
    assert figures[("daebus_gateway_http_request_duration_seconds_count", frozenset({"route": route}.items()))] == 6
    assert figures[("daebus_gateway_event_streams", frozenset())] == 0
    assert figures[("daebus_registry_up", frozenset())] == 1


def test_service_counters_are_labelled_by_service_and_action(fake_registry):
    app, _, client = fake_registry
    metrics = ServiceMetrics(["read"], ["news"], ["tick"])
    metrics.call("read", 0.004)
    metrics.call("read", 0.3, "handler_error")
    metrics.busy("read")
    metrics.listener("news", 0.01, True)
    metrics.task("tick", 2.0, False)
    publish(client, "sensors", metrics.snapshot(uptime=42.0, queued=3, in_flight=1))
    figures = samples(app.test_client().get("/metrics").get_data(as_text=True))
    svc = frozenset({"service": "sensors"}.items())
    read = frozenset({"service": "sensors", "action": "read"}.items())
    assert figures[("daebus_service_up", svc)] == 1
    assert figures[("daebus_service_metrics_valid", svc)] == 1
    assert figures[("daebus_service_uptime_seconds", svc)] == 42
    assert figures[("daebus_service_queue_depth", svc)] == 3
    assert figures[("daebus_action_calls_total", read)] == 2
    assert figures[("daebus_action_busy_total", read)] == 1
    assert figures[("daebus_action_errors_total",
                    frozenset({"service": "sensors", "action": "read", "code": "handler_error"}.items()))] == 1
    assert figures[("daebus_action_duration_seconds_count", read)] == 2
    assert figures[("daebus_action_duration_seconds_bucket", read | {("le", "0.005")})] == 1
    assert figures[("daebus_action_duration_seconds_bucket", read | {("le", "+Inf")})] == 2
    assert figures[("daebus_listener_failures_total", frozenset({"service": "sensors", "listener": "news"}.items()))] == 1
    assert figures[("daebus_task_last_duration_seconds", frozenset({"service": "sensors", "task": "tick"}.items()))] == 2


@pytest.mark.parametrize("corrupt", ["not json", '{"v": 1, "actions": "lots"}', "{}", "[" * 100000])
def test_a_corrupt_snapshot_spoils_only_its_own_service(fake_registry, caplog, corrupt):
    app, _, client = fake_registry
    good = ServiceMetrics(["read"])
    good.call("read", 0.01)
    publish(client, "good", good.snapshot(uptime=1.0, queued=0, in_flight=0))
    publish(client, "bad", corrupt)
    with caplog.at_level(logging.WARNING, logger="gateway.metrics"):
        for _ in range(3):
            response = app.test_client().get("/metrics")
            assert response.status_code == 200
            figures = samples(response.get_data(as_text=True))
    assert figures[("daebus_service_up", frozenset({"service": "bad"}.items()))] == 1
    assert figures[("daebus_service_metrics_valid", frozenset({"service": "bad"}.items()))] == 0
    assert figures[("daebus_action_calls_total", frozenset({"service": "good", "action": "read"}.items()))] == 1
    assert not any(dict(labels).get("service") == "bad" for name, labels in figures
                   if name.startswith("daebus_action_"))
    warnings = [r for r in caplog.records if "corrupt metrics" in r.getMessage()]
    assert len(warnings) == 1, "a corrupt snapshot is reported once, not at every scrape"


def test_an_unreadable_registry_still_renders_the_gateway_figures(make_app, monkeypatch):
    app, gateway = make_app()

    def down():
        raise ConnectionLost("gone")

    monkeypatch.setattr(gateway, "services", down)
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert samples(response.get_data(as_text=True))[("daebus_registry_up", frozenset())] == 0


def test_metrics_follow_the_api_token_rules(make_app, monkeypatch):
    app, gateway = make_app(token="s" * 20, trust_loopback=False)
    monkeypatch.setattr(gateway, "services", lambda: [])
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-xxxxxx"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer " + "s" * 20}).status_code == 200
    app, gateway = make_app(token="s" * 20)  # loopback is trusted by default, as for the API
    monkeypatch.setattr(gateway, "services", lambda: [])
    client = app.test_client()
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 401


def test_odd_methods_are_counted_together(make_app, monkeypatch):
    app, gateway = make_app()
    monkeypatch.setattr(gateway, "services", lambda: [])
    client = app.test_client()
    for method in ("BREW", "WHEN", "X" * 40):
        client.open("/api/health", method=method)
    figures = samples(client.get("/metrics").get_data(as_text=True))
    odd = [labels for name, labels in figures if name == "daebus_gateway_http_requests_total"
           and dict(labels)["method"] not in ("GET",)]
    assert [dict(labels)["method"] for labels in odd] == ["(other)"]
    assert figures[("daebus_gateway_http_requests_total", odd[0])] == 3


def test_prometheus_client_is_loaded_only_by_a_scrape():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    code = ("import sys; from gateway import create_app; app = create_app({'redis_url': 'redis://127.0.0.1:1'}); "
            "app.test_client().get('/api/health'); print('prometheus_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
