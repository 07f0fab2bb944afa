"""CORS over real sockets: preflights on any route, no headers unless configured."""

import pytest
from http_harness import serve  # noqa: F401 - fixture
from support import free_port

from daebus import Daebus, DaebusHttp

PREFLIGHT = {"Origin": "http://kiosk.local", "Access-Control-Request-Method": "PUT",
             "Access-Control-Request-Headers": "content-type"}


def make_app(**http_kwargs):
    app = Daebus("cors-test")
    http = app.attach(DaebusHttp(port=free_port(), **http_kwargs))

    @app.route("/only-post", methods=["POST"])
    def only_post(req):
        return {"ok": True}

    @app.route("/items/<int:item>", methods=["PUT"])
    def put_item(req, item):
        return {"item": item, "value": req.json}, 200, {"X-Item": str(item)}

    return app, http


def cors_headers(headers):
    return {k: v for k, v in headers.items() if k.lower().startswith("access-control") or k.lower() == "vary"}


def test_no_cors_headers_when_not_configured(serve):
    app, _ = make_app()
    s = serve(app)
    for method, path, headers in (("OPTIONS", "/items/1", PREFLIGHT),
                                  ("PUT", "/items/1", {"Origin": "http://kiosk.local"}),
                                  ("GET", "/missing", {"Origin": "http://kiosk.local"})):
        status, resp_headers, _ = s.request(method, path, b"{}", headers)
        assert cors_headers(resp_headers) == {}, (method, path)
    # The preflight is answered as a plain OPTIONS: the browser will refuse the call.
    assert s.request("OPTIONS", "/items/1", headers=PREFLIGHT)[0] == 204


@pytest.mark.parametrize("path", ["/only-post", "/items/5"])
def test_preflight_is_answered_on_any_route(serve, path):
    app, _ = make_app(cors_config={"allowed_origins": ["http://kiosk.local"], "max_age": 60})
    status, headers, body = serve(app).request("OPTIONS", path, headers=PREFLIGHT)
    assert (status, body) == (204, b"")
    assert headers["Access-Control-Allow-Origin"] == "http://kiosk.local"
    assert "PUT" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Allow-Headers"] == "content-type"
    assert headers["Access-Control-Max-Age"] == "60"


def test_preflight_on_unknown_path_is_404(serve):
    app, _ = make_app(cors_config={})
    assert serve(app).request("OPTIONS", "/nowhere", headers=PREFLIGHT)[0] == 404


def test_actual_request_and_errors_carry_the_grant(serve):
    app, _ = make_app(cors_config={"allowed_origins": "*", "expose_headers": ["X-Item"]})
    s = serve(app)
    status, headers, _ = s.request("PUT", "/items/2", b'{"a": 1}',
                                   {"Origin": "http://kiosk.local", "Content-Type": "application/json"})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Expose-Headers"] == "X-Item"
    # A browser can read the error too, instead of an opaque CORS failure.
    status, headers, _ = s.request("GET", "/items/2", headers={"Origin": "http://kiosk.local"})
    assert status == 405 and headers["Access-Control-Allow-Origin"] == "*"


def test_configure_cors_while_serving(serve):
    app, http = make_app()
    s = serve(app)
    assert "Access-Control-Allow-Origin" not in s.request("POST", "/only-post", b"",
                                                          {"Origin": "http://a.example"})[1]
    http.configure_cors(allowed_origins=["http://a.example"], allow_credentials=True)
    headers = s.request("POST", "/only-post", b"", {"Origin": "http://a.example"})[1]
    assert headers["Access-Control-Allow-Origin"] == "http://a.example"
    assert headers["Access-Control-Allow-Credentials"] == "true"


def test_invalid_cors_config_fails_at_construction():
    with pytest.raises(ValueError, match="allowed_origin"):
        DaebusHttp(port=free_port(), cors_config={"allowed_origin": ["http://x"]})
