"""DaebusHttp over real sockets, with the app run by ``app.run()`` against redis-server."""

import datetime
import decimal
import json
import logging
import socket
import uuid

import pytest
import requests
from http_harness import ResponseReader, read_all, serve  # noqa: F401 - serve is a fixture
from support import free_port

from daebus import Blueprint, Daebus, DaebusHttp, HttpRequest, broadcast, cache, logger, request, response


@pytest.fixture
def app():
    app = Daebus("http-test")
    app.attach(DaebusHttp(port=free_port()))

    @app.route("/devices/<int:device_id>")
    def get_device(req, device_id):
        return {"id": device_id, "type": type(device_id).__name__}

    @app.route("/devices/<int:device_id>", methods=["PATCH"])
    def patch_device(req, device_id):
        return response.send({"id": device_id, "patched": req.json}, 200)

    @app.route("/devices/<int:device_id>", methods=["DELETE"])
    def delete_device(req, device_id):
        return None

    @app.route("/temp/<float:value>")
    def temp(req, value):
        return {"value": value, "type": type(value).__name__}

    @app.route("/files/<path:name>")
    def files(req, name):
        return {"name": name}

    @app.route("/control", methods=["GET", "POST", "PUT"])
    def control(req):
        return {"method": req.method, "payload": req.payload, "query": req.query, "params": req.params,
                "form": req.form, "json": req.json, "body": req.body.decode(),
                "agent": req.headers.get("x-agent"), "is_request": isinstance(req, HttpRequest)}

    @app.route("/whoami")
    def whoami(req):
        return {"port": req.remote_port, "addr": req.remote_addr}

    @app.route("/text")
    def text(req):
        return "<p>hi</p>"

    @app.route("/created")
    def created(req):
        return {"made": True}, 201, {"Location": "/made/1"}

    @app.route("/types")
    def types(req):
        return {"when": datetime.datetime(2024, 5, 1, 8, 30, tzinfo=datetime.timezone.utc),
                "price": decimal.Decimal("9.99"), "tags": {"x"}, "blob": b"\x00\xff",
                "id": uuid.UUID(int=1)}

    @app.route("/boom")
    def boom(req):
        raise RuntimeError("database password is hunter2")

    @app.route("/proxies", methods=["POST"])
    def proxies(req):
        assert request._get_current_object() is req
        logger.info("proxies route called with %s", req.json)
        cache.set("http-test:last", req.json["value"])
        broadcast.send("http-test-events", {"value": req.json["value"]})
        return response.send({"request_path": request.path, "cached": cache.get("http-test:last")}, 202)

    return app


def test_converters_over_the_wire(serve, app):
    s = serve(app)
    assert s.json("GET", "/devices/42") == (200, {"id": 42, "type": "int"})
    assert s.json("GET", "/temp/21.5") == (200, {"value": 21.5, "type": "float"})
    assert s.json("GET", "/files/logs/2024/app.log") == (200, {"name": "logs/2024/app.log"})
    assert s.json("GET", "/files/a%20b.txt") == (200, {"name": "a b.txt"})
    assert s.json("GET", "/devices/abc")[0] == 404


def test_several_decorators_and_patch_on_one_path(serve, app):
    s = serve(app)
    assert s.json("PATCH", "/devices/3", {"on": True}) == (200, {"id": 3, "patched": {"on": True}})
    status, headers, body = s.request("DELETE", "/devices/3")
    assert (status, body) == (204, b"")
    assert s.json("GET", "/devices/3")[0] == 200


def test_405_with_allow_and_404_json(serve, app):
    s = serve(app)
    status, headers, body = s.request("POST", "/devices/3")
    assert status == 405
    assert headers["Allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH"
    assert json.loads(body)["error"]["code"] == "method_not_allowed"
    status, headers, body = s.request("GET", "/no/such/path")
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"error": {"code": "not_found", "message": "no route for /no/such/path"}}


def test_head_is_answered_for_get_routes(serve, app):
    s = serve(app)
    get_status, get_headers, get_body = s.request("GET", "/devices/5")
    sock = s.raw()
    # HEAD then GET on one connection: if HEAD sent a body, the GET response would be garbled.
    sock.sendall(b"HEAD /devices/5 HTTP/1.1\r\nHost: t\r\n\r\nGET /text HTTP/1.1\r\nHost: t\r\n\r\n")
    reader = ResponseReader(sock)
    status, headers, body = reader.read("HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(len(get_body))
    assert reader.read()[2] == b"<p>hi</p>"
    sock.close()


def test_options_lists_the_allowed_methods(serve, app):
    status, headers, body = serve(app).request("OPTIONS", "/control")
    assert status == 204
    assert headers["Allow"] == "GET, HEAD, OPTIONS, POST, PUT"


def test_request_fields(serve, app):
    s = serve(app)
    status, data = s.json("POST", "/control?x=1&x=2&y=", {"a": [1, 2]}, headers={"X-Agent": "kiosk"})
    assert status == 200
    assert data["json"] == data["payload"] == {"a": [1, 2]}
    assert data["query"] == {"x": "1", "y": ""}
    assert data["params"] == {"x": "1", "y": ""}
    assert data["agent"] == "kiosk" and data["is_request"] is True
    r = requests.put(f"http://127.0.0.1:{s.port}/control", data={"name": "Ada", "n": "1"}, timeout=10)
    assert r.json()["form"] == r.json()["payload"] == {"name": "Ada", "n": "1"}
    r = requests.get(f"http://127.0.0.1:{s.port}/control?only=query", timeout=10)
    assert r.json()["payload"] == {"only": "query"}


def test_chunked_request_body(serve, app):
    s = serve(app)
    conn = s.connection()
    # An iterator body without a length makes http.client send it chunked.
    conn.request("POST", "/control", body=iter([b'{"par', b'ts": 2}']),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read())["json"] == {"parts": 2}
    conn.close()


def test_return_values_and_content_types(serve, app):
    s = serve(app)
    status, headers, body = s.request("GET", "/text")
    assert (status, headers["Content-Type"], body) == (200, "text/html; charset=utf-8", b"<p>hi</p>")
    status, headers, body = s.request("GET", "/created")
    assert (status, headers["Location"], json.loads(body)) == (201, "/made/1", {"made": True})


def test_json_uses_the_pubsub_encoder(serve, app):
    assert serve(app).json("GET", "/types") == (200, {
        "when": "2024-05-01T08:30:00+00:00", "price": "9.99", "tags": ["x"], "blob": "AP8=",
        "id": "00000000-0000-0000-0000-000000000001"})


def test_handler_exception_is_500_without_traceback(serve, app, caplog):
    status, headers, body = serve(app).request("GET", "/boom")
    assert status == 500
    assert json.loads(body) == {"error": {"code": "handler_error", "message": "internal server error"}}
    assert b"hunter2" not in body and b"Traceback" not in body
    assert any(r.exc_info and "hunter2" in str(r.exc_info[1]) for r in caplog.records)


def test_proxies_work_in_http_handlers(serve, app, redis_server, caplog):
    caplog.set_level(logging.INFO)
    s = serve(app)
    client = redis_server.client()
    sub = client.pubsub()
    sub.subscribe("http-test-events")
    assert sub.get_message(timeout=5)["type"] == "subscribe"
    assert s.json("POST", "/proxies", {"value": "v1"}) == (202, {"request_path": "/proxies", "cached": "v1"})
    assert client.get("http-test:last") == "v1"
    message = sub.get_message(timeout=5)
    assert json.loads(message["data"]) == {"value": "v1"}
    assert "proxies route called with {'value': 'v1'}" in caplog.text
    sub.close()


def test_two_requests_on_one_keep_alive_connection(serve, app):
    s = serve(app)
    conn = s.connection()
    conn.request("GET", "/whoami")
    first = conn.getresponse()
    assert first.getheader("Connection") is None  # HTTP/1.1 default: stays open
    first_port = json.loads(first.read())["port"]
    sock = conn.sock
    conn.request("GET", "/whoami")
    second_port = json.loads(conn.getresponse().read())["port"]
    assert conn.sock is sock  # http.client did not reconnect
    assert first_port == second_port == sock.getsockname()[1]
    conn.close()


def test_pipelined_requests_are_answered_in_order(serve, app):
    sock = serve(app).raw()
    sock.sendall(b"GET /devices/1 HTTP/1.1\r\nHost: t\r\n\r\n"
                 b"GET /devices/2 HTTP/1.1\r\nHost: t\r\n\r\n"
                 b"GET /devices/3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    reader = ResponseReader(sock)
    assert [json.loads(reader.read()[2])["id"] for _ in range(3)] == [1, 2, 3]
    assert read_all(sock) == b""  # closed after the third, as asked
    sock.close()


def test_http10_closes_unless_keep_alive_is_asked(serve, app):
    s = serve(app)
    sock = s.raw()
    sock.sendall(b"GET /devices/1 HTTP/1.0\r\n\r\n")
    data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in data
    sock.close()
    sock = s.raw()
    sock.sendall(b"GET /devices/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    reader = ResponseReader(sock)
    status, headers, _ = reader.read()
    assert headers["Connection"] == "keep-alive"
    sock.sendall(b"GET /devices/2 HTTP/1.0\r\n\r\n")
    assert json.loads(reader.read()[2]) == {"id": 2, "type": "int"}
    sock.close()


def test_blueprints_and_routes_declared_after_attach(serve):
    app = Daebus("http-bp-test")
    http_server = app.attach(DaebusHttp(port=0))
    bp = Blueprint("display", url_prefix="/display")

    @bp.route("/brightness/<int:level>", methods=["PUT"])
    def brightness(req, level):
        return {"level": level}

    @bp.route("/mode")
    def mode(req):
        return {"mode": "day"}

    @app.route("/late")
    def late(req):
        return {"late": True}

    app.register_blueprint(bp)
    s = serve(app)
    assert http_server.port != 0  # port 0 picks a free one; the real one is published
    assert s.json("PUT", "/display/brightness/80") == (200, {"level": 80})
    assert s.json("GET", "/display/mode") == (200, {"mode": "day"})
    assert s.json("GET", "/late") == (200, {"late": True})
    assert s.json("GET", "/mode")[0] == 404


def test_stop_closes_idle_connections_and_the_port(serve, app):
    s = serve(app)
    idle = s.raw()
    idle.sendall(b"GET /devices/1 HTTP/1.1\r\nHost: t\r\n\r\n")
    ResponseReader(idle).read()
    s.app.stop()
    s.thread.join(20)
    assert not s.thread.is_alive() and not s.errors
    idle.settimeout(5)
    assert idle.recv(100) == b""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", s.port), timeout=5)


def test_can_serve_again_after_a_restart(serve, app):
    first = serve(app)
    first.app.stop()
    first.thread.join(20)
    second = serve(app)
    assert second.json("GET", "/devices/8") == (200, {"id": 8, "type": "int"})


def test_http_client_sees_http11(serve, app):
    conn = serve(app).connection()
    conn.request("GET", "/devices/1")
    resp = conn.getresponse()
    assert resp.version == 11 and resp.reason == "OK"
    assert resp.getheader("Date", "").endswith("GMT")
    resp.read()
    conn.close()
