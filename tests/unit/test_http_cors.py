"""CORS policy (daebus.http.cors)."""

import pytest

from daebus.http import CorsPolicy, Headers, HttpError, HttpRequest

README = {
    'allowed_origins': ['http://localhost:3000', 'https://example.com'],
    'allowed_methods': ['GET', 'POST', 'OPTIONS'],
    'allowed_headers': ['Content-Type', 'Authorization'],
    'expose_headers': ['X-Custom-Header'],
    'allow_credentials': True,
    'max_age': 3600,
}


def preflight(origin="http://localhost:3000", method="POST", headers=None):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        h["Access-Control-Request-Headers"] = headers
    return HttpRequest("OPTIONS", "/api/data", h)


def test_unknown_and_invalid_options_are_refused():
    with pytest.raises(ValueError, match="allowed_origin"):
        CorsPolicy.from_config({"allowed_origin": "*"})
    with pytest.raises(ValueError):
        CorsPolicy.from_config({"allow_credentials": "yes"})
    with pytest.raises(ValueError):
        CorsPolicy.from_config({"max_age": -1})
    with pytest.raises(ValueError):
        CorsPolicy.from_config({"allowed_methods": 5})


def test_keyword_options_and_defaults():
    policy = CorsPolicy.from_config(allowed_origins="https://a.example")
    assert policy.allows_origin("https://a.example") and policy.allows_origin("https://A.example/")
    assert not policy.allows_origin("https://b.example")
    assert policy.methods == ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    assert policy.headers == "*"


def test_readme_policy_on_an_actual_request():
    policy = CorsPolicy.from_config(README)
    resp_headers = Headers()
    policy.apply(Headers({"Origin": "https://example.com"}), resp_headers)
    assert resp_headers["Access-Control-Allow-Origin"] == "https://example.com"
    assert resp_headers["Access-Control-Allow-Credentials"] == "true"
    assert resp_headers["Access-Control-Expose-Headers"] == "X-Custom-Header"
    assert "Origin" in resp_headers.tokens("vary") or "origin" in resp_headers.tokens("vary")


def test_disallowed_or_missing_origin_gets_no_grant():
    policy = CorsPolicy.from_config(README)
    for request_headers in (Headers({"Origin": "https://evil.example"}), Headers()):
        resp_headers = Headers()
        policy.apply(request_headers, resp_headers)
        assert not [n for n in resp_headers if n.lower().startswith("access-control-")]
        assert resp_headers.tokens("vary") == ["origin"]  # the answer depends on Origin


def test_wildcard_origin_without_and_with_credentials():
    h = Headers()
    CorsPolicy.from_config({"allowed_origins": "*"}).apply(Headers({"Origin": "http://x"}), h)
    assert h["Access-Control-Allow-Origin"] == "*" and "Vary" not in h
    h = Headers()
    CorsPolicy.from_config({"allowed_origins": "*", "allow_credentials": True}).apply(
        Headers({"Origin": "http://x"}), h)
    # Browsers reject "*" on credentialed responses: the origin is echoed.
    assert h["Access-Control-Allow-Origin"] == "http://x" and h["Vary"] == "Origin"


def test_readme_preflight_grants():
    resp = CorsPolicy.from_config(README).preflight(preflight(headers="content-type, authorization"))
    h = resp.headers
    assert resp.status == 204
    assert h["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert h["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert h["Access-Control-Allow-Headers"] == "Content-Type, Authorization"
    assert h["Access-Control-Allow-Credentials"] == "true"
    assert h["Access-Control-Max-Age"] == "3600"


@pytest.mark.parametrize("kwargs, reason", [
    ({"origin": "https://evil.example"}, "origin"),
    ({"method": "DELETE"}, "method DELETE"),
    ({"headers": "content-type, x-secret"}, "x-secret"),
])
def test_preflight_refusals_say_why(kwargs, reason):
    with pytest.raises(HttpError) as exc:
        CorsPolicy.from_config(README).preflight(preflight(**kwargs))
    assert exc.value.status == 403 and reason in str(exc.value)


def test_wildcards_echo_what_the_browser_asked():
    policy = CorsPolicy.from_config({"allowed_origins": "*", "allowed_methods": "*", "allowed_headers": "*"})
    h = policy.preflight(preflight(method="PATCH", headers="X-Token, Content-Type")).headers
    assert h["Access-Control-Allow-Origin"] == "*"
    assert h["Access-Control-Allow-Methods"] == "PATCH"
    assert h["Access-Control-Allow-Headers"] == "x-token, content-type"
    assert "Access-Control-Max-Age" not in h


def test_is_preflight_needs_origin_and_requested_method():
    assert CorsPolicy.is_preflight(preflight())
    assert not CorsPolicy.is_preflight(HttpRequest("OPTIONS", "/", {"Origin": "http://x"}))
    assert not CorsPolicy.is_preflight(HttpRequest("GET", "/", {"Origin": "http://x",
                                                                "Access-Control-Request-Method": "GET"}))
