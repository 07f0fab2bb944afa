"""DaebusHttp as an app component (daebus.http.server), started without Redis."""

import http.client
import json

import pytest

from daebus import Daebus, DaebusHttp


def test_constructor_validates_its_settings():
    for kwargs in ({"threads": 0}, {"backlog": 0}, {"max_connections": 0}, {"timeout": 0},
                   {"keepalive_timeout": -1}, {"max_body_size": -1}):
        with pytest.raises(ValueError):
            DaebusHttp(port=0, **kwargs)
    with pytest.raises(ValueError, match="unknown CORS option"):
        DaebusHttp(port=0, cors_config={"origins": "*"})


def test_attach_binds_once():
    http = DaebusHttp(port=0)
    app = Daebus("server-a")
    assert app.attach(http) is http and http.app is app
    app.attach(http)  # attaching again to the same app is harmless
    with pytest.raises(ValueError, match="another app"):
        Daebus("server-b").attach(http)


def test_start_needs_an_app_and_stop_before_start_is_a_no_op():
    http = DaebusHttp(port=0)
    http.stop()
    with pytest.raises(RuntimeError, match="attach"):
        http.start()


@pytest.mark.parametrize("path", ["/bad/<int:x", "/x/<nope:y>"])
def test_a_bad_route_fails_start_before_listening(path):
    app = Daebus("server-bad-route")
    http = app.attach(DaebusHttp(port=0))
    app.route(path)(lambda req, **kw: None)
    with pytest.raises(ValueError):
        http.start()
    assert not http.running and http.port == 0


def test_duplicate_route_fails_start():
    app = Daebus("server-dup")
    http = app.attach(DaebusHttp(port=0))
    app.route("/a")(lambda req: 1)
    app.route("/a", methods=["GET", "POST"])(lambda req: 2)
    with pytest.raises(ValueError, match="GET /a is declared twice"):
        http.start()


def test_start_serve_and_stop_directly():
    app = Daebus("server-direct")
    server = app.attach(DaebusHttp(port=0, threads=2))

    @app.route("/hi")
    def hi(req):
        return {"hi": req.query.get("who")}

    server.start()
    try:
        assert server.running and server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
        with pytest.raises(RuntimeError, match="already serving"):
            server.start()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/hi?who=unit")
        assert json.loads(conn.getresponse().read()) == {"hi": "unit"}
        conn.close()
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", server.port, timeout=5).request("GET", "/hi")
