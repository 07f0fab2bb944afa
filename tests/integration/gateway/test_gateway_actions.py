"""POST /api/services/<service>/<action> through gunicorn, Redis and a real worker."""

import threading
import time

import redis
import requests


def error_of(response):
    return response.json()["error"]


def test_echo_returns_the_payload_as_result(shared_gateway):
    response = shared_gateway.post("/api/services/echo/echo", {"a": 1, "text": "héllo"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"result": {"a": 1, "text": "héllo"}}


def test_empty_body_is_an_empty_payload(shared_gateway):
    response = shared_gateway.post("/api/services/echo/echo", data=b"",
                                   headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"result": {}}


def test_handler_exception_is_502(shared_gateway):
    response = shared_gateway.post("/api/services/echo/fail", {})
    assert response.status_code == 502
    assert error_of(response) == {"code": "handler_error", "message": "the handler broke on purpose"}


def test_handler_bad_request_is_400(shared_gateway):
    response = shared_gateway.post("/api/services/echo/reject", {})
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"


def test_unknown_action_is_404(shared_gateway):
    response = shared_gateway.post("/api/services/echo/nope", {})
    assert response.status_code == 404
    assert error_of(response)["code"] == "action_not_found"


def test_action_outside_the_exposed_patterns_is_403_naming_the_key(shared_gateway):
    response = shared_gateway.post("/api/services/secret/reboot", {})
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "not_exposed"
    assert "gateway.expose_actions" in error["message"]
    assert str(shared_gateway.config) in error["message"]


def test_service_nobody_runs_is_503_at_once(shared_gateway):
    started = time.monotonic()
    response = shared_gateway.post("/api/services/ghost/anything", {})
    assert response.status_code == 503
    assert error_of(response)["code"] == "service_unavailable"
    assert time.monotonic() - started < 1.0  # not after the 2 s timeout


def test_timeout_is_504_and_capped_by_max_timeout(shared_gateway):
    started = time.monotonic()
    # Asks for 60 s; the config caps every call at 2 s.
    response = shared_gateway.post("/api/services/echo/slow?timeout=60", {"seconds": 10})
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert error_of(response)["code"] == "timeout"
    assert 1.5 < elapsed < 5


def test_shorter_timeout_parameter_is_honoured(shared_gateway):
    started = time.monotonic()
    response = shared_gateway.post("/api/services/echo/slow?timeout=0.3", {"seconds": 10})
    assert response.status_code == 504
    assert time.monotonic() - started < 1.5


def test_invalid_timeout_parameter_is_400(shared_gateway):
    for value in ("abc", "-1", "0", "nan", "inf"):
        response = shared_gateway.post(f"/api/services/echo/echo?timeout={value}", {})
        assert response.status_code == 400, value
        assert error_of(response)["code"] == "bad_timeout"


def test_invalid_json_is_400(shared_gateway):
    response = shared_gateway.post("/api/services/echo/echo", data=b"{not json",
                                   headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_json"


def test_json_that_is_not_an_object_is_400(shared_gateway):
    response = shared_gateway.post("/api/services/echo/echo", [1, 2])
    assert response.status_code == 400
    assert "object" in error_of(response)["message"]


def test_wrong_content_type_is_400(shared_gateway):
    response = shared_gateway.post("/api/services/echo/echo", data=b'{"a": 1}',
                                   headers={"Content-Type": "text/plain"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_content_type"


def test_body_over_the_limit_is_413(shared_gateway):
    big = {"blob": "x" * 5000}  # max_body_bytes is 4096 here
    response = shared_gateway.post("/api/services/echo/echo", big)
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_chunked_body_over_the_limit_is_413(shared_gateway):
    def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(10):
            yield b" " * 1000
        yield b"{}"

    response = shared_gateway.post("/api/services/echo/echo", data=chunks(),
                                   headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_get_on_an_action_is_405_json(shared_gateway):
    response = shared_gateway.get("/api/services/echo/echo")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_busy_worker_is_503(start_gateway, service, redis_url):
    service("gateway_echo.py", "busy", "--workers", "1", "--queue", "0")
    gw = start_gateway()
    stream = gw.events("busy.started")
    stream.wait_status("up")
    holder = threading.Thread(target=gw.post, args=("/api/services/busy/slow", {"seconds": 3}),
                              kwargs={"params": {"timeout": 5}})
    holder.start()
    try:
        assert stream.next_message()["channel"] == "busy.started"  # its only worker is taken now
        response = gw.post("/api/services/busy/echo", {})
        assert response.status_code == 503
        assert error_of(response)["code"] == "busy"
        assert response.headers["Retry-After"] == "1"
    finally:
        holder.join()
        stream.close()


def test_services_lists_live_services_with_exposed_actions(shared_gateway):
    response = shared_gateway.get("/api/services")
    assert response.status_code == 200
    services = {s["name"]: s for s in response.json()["services"]}
    assert set(services["echo"]["actions"]) >= {"echo", "fail", "slow"}
    assert services["echo"]["status"] == "running"
    assert services["echo"]["uptime"] >= 0


def test_services_hides_actions_that_are_not_exposed(start_gateway, service):
    service("gateway_echo.py", "hidden")  # a name no other running worker has
    gw = start_gateway({"expose_actions": ["hidden/echo"]})
    services = {s["name"]: s for s in gw.get("/api/services").json()["services"]}
    assert services["hidden"]["actions"] == ["echo"]


def test_health_is_200_while_redis_answers(shared_gateway):
    response = shared_gateway.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["redis"] == "up"


def test_redis_down_is_503_everywhere_then_recovers(start_gateway, fresh_redis):
    gw = start_gateway(url=fresh_redis.url)
    stream = gw.events("news.a")
    stream.wait_status("up")
    fresh_redis.stop(kill=True)
    stream.wait_status("down")

    started = time.monotonic()
    response = gw.post("/api/services/echo/echo", {})
    assert response.status_code == 503
    assert error_of(response)["code"] == "connection_lost"
    assert time.monotonic() - started < 1.0  # at once, not after the timeout
    assert gw.get("/api/health").status_code == 503
    assert gw.get("/api/health").json()["redis"] == "down"
    assert gw.get("/api/services").status_code == 503

    fresh_redis.start()
    stream.wait_status("up", timeout=15)
    assert gw.get("/api/health").status_code == 200
    # Back to normal answers: nobody serves "echo" on this Redis.
    assert error_of(gw.post("/api/services/echo/echo", {}))["code"] == "service_unavailable"
    redis.Redis.from_url(fresh_redis.url).publish("news.a", '{"after": "restart"}')
    assert stream.next_message()["data"] == {"after": "restart"}
    stream.close()


def test_redis_down_fails_calls_at_once_with_no_channel_exposed(start_gateway, fresh_redis):
    gw = start_gateway({"expose_channels": []}, url=fresh_redis.url)
    assert gw.get("/api/health").json()["events"] == "off"
    fresh_redis.stop(kill=True)
    assert gw.get("/api/health").status_code == 503
    started = time.monotonic()
    response = gw.post("/api/services/echo/echo", {}, params={"timeout": 10})
    assert response.status_code == 503
    assert error_of(response)["code"] == "connection_lost"
    assert time.monotonic() - started < 5  # not after the 10 s timeout


def test_kiosk_page_and_files_come_from_static_dir(start_gateway, tmp_path):
    (tmp_path / "index.html").write_text("<h1>kiosk</h1>")
    (tmp_path / "app.js").write_text("console.log(1)")
    gw = start_gateway({"static_dir": str(tmp_path)})
    assert gw.get("/").text == "<h1>kiosk</h1>"
    assert gw.get("/app.js").text == "console.log(1)"
    assert gw.get("/missing.js").status_code == 404
    # A traversal never leaves the directory.
    raw = requests.Request("GET", gw.url + "/%2e%2e/%2e%2e/etc/passwd").prepare()
    assert requests.Session().send(raw, timeout=10).status_code == 404
