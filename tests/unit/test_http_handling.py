"""From HttpRequest to HttpResponse without sockets (daebus.http.handling)."""

import logging

import pytest

from daebus import BadRequest, Daebus, RemoteError, RequestTimeout, ServiceBusy, HttpRequest, logger, request, response
from daebus.http import CorsPolicy, HttpError, Router
from daebus.http.handling import Dispatcher


@pytest.fixture
def app():
    app = Daebus("handling-test")

    @app.route("/devices/<int:device_id>", methods=["GET", "PATCH"])
    def device(req, device_id):
        assert request._get_current_object() is req
        logger.info("device %s", device_id)
        return response.send({"id": device_id, "method": req.method, "changes": req.json}, 200)

    @app.route("/boom")
    def boom(req):
        raise RuntimeError("secret detail")

    @app.route("/bad")
    def bad(req):
        raise BadRequest("level must be 0-100")

    @app.route("/upstream/<code>")
    def upstream(req, code):
        raise {"timeout": RequestTimeout("sensors did not answer"), "busy": ServiceBusy("sensors is busy"),
               "failed": RemoteError("sensors failed")}[code]

    @app.route("/teapot")
    def teapot(req):
        raise HttpError(418, "no coffee", headers={"X-Pot": "1"})

    @app.route("/sent-then-boom")
    def sent_then_boom(req):
        response.send({"ok": True}, 202)
        raise RuntimeError("after the reply")

    return app


def dispatch(app, *args, cors=None, **kwargs):
    return Dispatcher(app, Router(app.routes), cors).dispatch(HttpRequest(*args, **kwargs))


def test_handler_gets_params_and_the_bound_proxies(app, caplog):
    caplog.set_level(logging.INFO)
    resp = dispatch(app, "PATCH", "/devices/9", {"Content-Type": "application/json"}, b'{"on": 1}')
    assert resp.status == 200
    assert resp.json() == {"id": 9, "method": "PATCH", "changes": {"on": 1}}
    assert "device 9" in caplog.text
    # Bound per call only.
    assert not request


def test_exception_is_a_500_without_the_traceback_but_logged(app, caplog):
    resp = dispatch(app, "GET", "/boom")
    assert resp.status == 500
    assert resp.json() == {"error": {"code": "handler_error", "message": "internal server error"}}
    assert b"secret" not in resp.body and b"Traceback" not in resp.body
    assert "secret detail" in caplog.text and "Traceback" in caplog.text


def test_bad_request_and_http_error_choose_the_status(app):
    resp = dispatch(app, "GET", "/bad")
    assert (resp.status, resp.json()) == (400, {"error": {"code": "bad_request", "message": "level must be 0-100"}})
    resp = dispatch(app, "GET", "/teapot")
    assert resp.status == 418 and resp.headers["X-Pot"] == "1"


def test_a_reply_sent_before_an_exception_stands(app):
    resp = dispatch(app, "GET", "/sent-then-boom")
    assert (resp.status, resp.json()) == (202, {"ok": True})


def test_404_405_and_automatic_options(app):
    assert dispatch(app, "GET", "/nope").status == 404
    resp = dispatch(app, "DELETE", "/devices/1")
    assert resp.status == 405 and resp.headers["Allow"] == "GET, HEAD, OPTIONS, PATCH"
    resp = dispatch(app, "OPTIONS", "/devices/1")
    assert resp.status == 204 and resp.headers["Allow"] == "GET, HEAD, OPTIONS, PATCH"


def test_no_cors_headers_without_a_policy(app):
    for args in (("GET", "/devices/1"), ("OPTIONS", "/devices/1"), ("GET", "/nope")):
        resp = dispatch(app, *args, {"Origin": "http://x", "Access-Control-Request-Method": "GET"})
        assert not [n for n in resp.headers if n.lower().startswith("access-control") or n.lower() == "vary"]


def test_preflight_on_any_route_and_cors_on_errors(app):
    cors = CorsPolicy.from_config({"allowed_origins": ["http://kiosk"]})
    pre = {"Origin": "http://kiosk", "Access-Control-Request-Method": "DELETE"}
    # DELETE is not a method of the route: the preflight still answers, the request gets 405.
    resp = dispatch(app, "OPTIONS", "/devices/3", pre, cors=cors)
    assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "http://kiosk"
    assert dispatch(app, "OPTIONS", "/unknown", pre, cors=cors).status == 404
    resp = dispatch(app, "GET", "/boom", {"Origin": "http://kiosk"}, cors=cors)
    assert resp.status == 500 and resp.headers["Access-Control-Allow-Origin"] == "http://kiosk"


@pytest.mark.parametrize("code, status", [("timeout", 504), ("busy", 503), ("failed", 502)])
def test_a_failed_call_to_another_service_answers_as_the_gateway_would(app, code, status):
    resp = dispatch(app, "GET", f"/upstream/{code}")
    assert resp.status == status and resp.json()["error"]["code"] == {"failed": "handler_error"}.get(code, code)
    assert (resp.headers.get("Retry-After") == "1") == (code == "busy")
