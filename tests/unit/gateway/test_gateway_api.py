"""The Flask app with fakes behind it: status mapping and request checks."""

import time

import pytest

from daebus.bus import registry
from daebus.errors import (ActionNotFound, ConnectionLost, RemoteError, RequestTimeout, ServiceBusy,
                           ServiceUnavailable)

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def app_and_gateway(make_app):
    return make_app(max_body_bytes=64, default_timeout=2, max_timeout=10)


@pytest.fixture
def client(app_and_gateway):
    return app_and_gateway[0].test_client()


@pytest.fixture
def calls(app_and_gateway, monkeypatch):
    """Records calls; set ``calls.answer`` to a value or an exception."""
    gateway = app_and_gateway[1]

    class Calls(list):
        answer = {"ok": True}

    recorded = Calls()

    def call(service, action, payload, timeout, trace_id=None, cancel=None):
        recorded.append((service, action, payload, timeout))
        if isinstance(recorded.answer, Exception):
            raise recorded.answer
        return recorded.answer

    monkeypatch.setattr(gateway, "call", call)
    return recorded


def test_success_wraps_the_result(client, calls):
    response = client.post("/api/services/echo/hi", json={"a": 1})
    assert response.status_code == 200
    assert response.get_json() == {"result": {"ok": True}}
    assert calls == [("echo", "hi", {"a": 1}, 2)]


@pytest.mark.parametrize("error, status, code", [
    (ActionNotFound("no such action"), 404, "action_not_found"),
    (RemoteError("boom"), 502, "handler_error"),
    (RemoteError("custom", code="sensor_offline"), 502, "sensor_offline"),
    (RemoteError("bad", code="bad_request"), 400, "bad_request"),
    (ServiceBusy("busy"), 503, "busy"),
    (ServiceUnavailable("not running"), 503, "service_unavailable"),
    (ConnectionLost("redis gone"), 503, "connection_lost"),
    (RequestTimeout("slow"), 504, "timeout"),
])
def test_daebus_errors_map_to_statuses(client, calls, error, status, code):
    calls.answer = error
    response = client.post("/api/services/echo/x", json={})
    assert response.status_code == status
    assert response.get_json() == {"error": {"code": code, "message": str(error)}}


def test_timeout_parameter_is_capped(client, calls):
    client.post("/api/services/echo/x?timeout=0.5", json={})
    client.post("/api/services/echo/x?timeout=999", json={})
    assert [c[3] for c in calls] == [0.5, 10]


def test_not_exposed_is_checked_before_the_body(client, calls):
    response = client.post("/api/services/other/x", data="not json", headers={"Content-Type": "text/plain"})
    assert response.status_code == 403
    assert calls == []


@pytest.mark.parametrize("kwargs, status, code", [
    ({"data": "{", "headers": JSON}, 400, "bad_json"),
    ({"data": "[1]", "headers": JSON}, 400, "bad_json"),
    ({"data": "{}", "headers": {"Content-Type": "text/plain"}}, 400, "bad_content_type"),
    ({"data": "a=1"}, 400, "bad_content_type"),
    ({"data": '{"x": "' + "y" * 100 + '"}', "headers": JSON}, 413, "payload_too_large"),
])
def test_request_checks(client, calls, kwargs, status, code):
    response = client.post("/api/services/echo/x", **kwargs)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert calls == []


def test_json_with_charset_is_accepted(client, calls):
    response = client.post("/api/services/echo/x", data="{}",
                           headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 200


def test_redis_known_down_fails_at_once(app_and_gateway):
    app, gateway = app_and_gateway
    gateway.hub._on_state("waiting for redis")
    started = time.monotonic()
    response = app.test_client().post("/api/services/echo/x", json={})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "connection_lost"
    assert time.monotonic() - started < 1


def test_health(app_and_gateway):
    app, gateway = app_and_gateway
    assert app.test_client().get("/api/health").get_json()["redis"] == "up"

    class Down:
        def ping(self):
            raise ConnectionError("refused")

    gateway._health_client = Down()
    response = app.test_client().get("/api/health")
    assert response.status_code == 503
    assert response.get_json()["error"]["message"] == "refused"


def test_services_from_the_registry(app_and_gateway, monkeypatch):
    import fakeredis

    app, gateway = app_and_gateway
    fake = fakeredis.FakeRedis(decode_responses=True)
    registry.publish(fake, registry.record("echo", actions=["hi", "secret"], channels=["news.a", "x"],
                                           version="1", started_at=time.time(), status="running"), 30)
    monkeypatch.setattr(gateway, "client", lambda: fake)
    gateway.exposure.actions = ("echo/hi",)
    services = app.test_client().get("/api/services").get_json()["services"]
    assert services[0]["name"] == "echo"
    assert services[0]["actions"] == ["hi"] and services[0]["channels"] == ["news.a"]
    assert "pid" not in services[0]
    assert services[0]["mode"] == "owner"
    assert [set(i) for i in services[0]["instances"]] == [{"host", "started_at", "uptime", "status"}]


def test_events_validation(client):
    assert client.get("/api/events").status_code == 400
    response = client.get("/api/events?channel=secret")
    assert response.status_code == 403
    assert "gateway.expose_channels" in response.get_json()["error"]["message"]


def test_events_stream_headers(client):
    response = client.get("/api/events?channel=news.a")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    response.close()


def test_host_check(client):
    assert client.get("/api/health", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400


def test_token_required_for_remote_clients(make_app):
    app, _ = make_app(token="t" * 20)
    client = app.test_client()
    remote = {"REMOTE_ADDR": "192.0.2.7"}
    assert client.get("/api/services", environ_base=remote).status_code == 401
    assert client.get("/api/health", environ_base=remote).status_code == 200
    ok = client.get("/api/events?channel=news.a&access_token=" + "t" * 20, environ_base=remote)
    assert ok.status_code == 200
    ok.close()
    local = client.get("/api/events?channel=news.a", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert local.status_code == 200
    local.close()


def test_unknown_api_path_is_json_404_and_pages_are_html(client):
    response = client.get("/api/nothing")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    assert client.get("/missing.html").mimetype == "text/html"


def test_builtin_page_says_how_to_install_a_kiosk_page(make_app):
    app, _ = make_app()
    response = app.test_client().get("/")
    assert response.status_code == 200 and b"Daebus gateway" in response.data
    assert b"apt install daebus-kiosk-demo" in response.data and b"static_dir" in response.data
    assert app.test_client().get("/app.js").status_code == 404


def test_api_responses_are_not_cached(client, calls):
    response = client.post("/api/services/echo/x", json={})
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_token_in_the_url_counts_only_on_the_event_stream(make_app):
    app, _ = make_app(token="t" * 20)
    client = app.test_client()
    remote = {"REMOTE_ADDR": "192.0.2.7"}
    query = "?access_token=" + "t" * 20
    assert client.post("/api/services/echo/x" + query, json={}, environ_base=remote).status_code == 401
    assert client.get("/api/services" + query, environ_base=remote).status_code == 401
    assert client.get("/metrics" + query, environ_base=remote).status_code == 401
    assert client.post("/api/services/echo/x", json={}, environ_base=remote,
                       headers={"Authorization": "Bearer " + "t" * 20}).status_code != 401


def test_the_host_with_a_trailing_dot_is_another_host(client, make_app):
    assert client.get("/api/health", headers={"Host": "localhost."}).status_code == 400
    assert client.get("/api/health", headers={"Host": "localhost.:8080"}).status_code == 400
    assert client.get("/api/health", headers={"Host": "localhost:8080"}).status_code == 200
    app, _ = make_app(allowed_hosts=["kiosk.lan."])
    assert app.test_client().get("/api/health", headers={"Host": "kiosk.lan."}).status_code == 200
    assert app.test_client().get("/api/health", headers={"Host": "kiosk.lan"}).status_code == 400


def test_a_symlink_out_of_the_static_folder_is_not_served(make_app, tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<p>kiosk</p>")
    (static / "app.js").write_text("ok()")
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2")
    (static / "leak.txt").symlink_to(secret)
    (static / "etc").symlink_to(tmp_path)
    (static / "inside.js").symlink_to(static / "app.js")  # within the folder: fine
    app, _ = make_app(static_dir=str(static))
    client = app.test_client()
    assert client.get("/app.js").data == b"ok()"
    assert client.get("/inside.js").data == b"ok()"
    for path in ("/leak.txt", "/etc/secret.txt"):
        response = client.get(path)
        assert response.status_code == 404 and b"hunter2" not in response.data, path
