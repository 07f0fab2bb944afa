"""HTTP/1.1 framing rules (daebus.http.wire)."""

import pytest

from daebus.http import Headers, HttpError
from daebus.http.wire import (body_length, parse_head, serialize_response, split_target,
                              wants_keep_alive)


def head(text: str):
    return parse_head(text.replace("\n", "\r\n").encode("latin-1"))


def test_headers_are_case_insensitive_ordered_and_keep_repeats():
    h = Headers({"Content-Type": "text/plain"})
    h.add("Set-Cookie", "a=1")
    h.add("set-cookie", "b=2")
    assert h["content-type"] == "text/plain"
    assert h.get_all("SET-COOKIE") == ["a=1", "b=2"]
    assert "CONTENT-TYPE" in h and "x" not in h
    assert len(h) == 2
    h["Set-Cookie"] = "c=3"
    assert h.items() == [("Content-Type", "text/plain"), ("Set-Cookie", "c=3")]
    del h["content-type"]
    assert list(h) == ["Set-Cookie"]
    with pytest.raises(KeyError):
        del h["content-type"]


@pytest.mark.parametrize("name, value", [("X-A", "1\r\nX-Injected: 1"), ("Bad Name", "1"), ("X-A", "caf\u00e9\u20ac")])
def test_headers_refuse_values_that_would_break_the_framing(name, value):
    with pytest.raises(ValueError):
        Headers().add(name, value)


def test_parse_head_reads_request_line_and_fields():
    h = head("POST /a?b=1 HTTP/1.1\nHost: x\nContent-Length:  3 \nX-Empty:")
    assert (h.method, h.target, h.version) == ("POST", "/a?b=1", "HTTP/1.1")
    assert h.headers["content-length"] == "3"
    assert h.headers["X-Empty"] == ""


@pytest.mark.parametrize("text, status", [
    ("GET /a", 400),
    ("GET  /a HTTP/1.1\nHost: x", 400),
    ("GET /a HTTP/2.0\nHost: x", 505),
    ("GET /a FOO/1.1\nHost: x", 400),
    ("G(T /a HTTP/1.1\nHost: x", 400),
    ("GET /a HTTP/1.1", 400),                       # no Host
    ("GET /a HTTP/1.1\nHost : x", 400),             # space before colon
    ("GET /a HTTP/1.1\nHost: x\n folded", 400),     # obsolete line folding
    ("GET /a HTTP/1.1\nHost: x\nno-colon", 400),
])
def test_parse_head_refuses_malformed_requests(text, status):
    with pytest.raises(HttpError) as exc:
        head(text)
    assert exc.value.status == status


def test_http10_needs_no_host():
    assert head("GET / HTTP/1.0").version == "HTTP/1.0"


def test_split_target_decodes_the_path_only():
    assert split_target("/a%20b/c%2Fd?x=%20&y") == ("/a b/c/d", "x=%20&y")
    assert split_target("http://example.com:8080/p?q=1") == ("/p", "q=1")
    assert split_target("http://example.com") == ("/", "")
    with pytest.raises(HttpError):
        split_target("/%ff")
    with pytest.raises(HttpError):
        split_target("*")


@pytest.mark.parametrize("fields, expected", [
    ("", 0), ("\nContent-Length: 12", 12), ("\nContent-Length: 5\nContent-Length: 5", 5),
    ("\nContent-Length: 5, 5", 5), ("\nTransfer-Encoding: chunked", None),
])
def test_body_length(fields, expected):
    assert body_length(head("POST / HTTP/1.1\nHost: x" + fields), 100) == expected


@pytest.mark.parametrize("fields, status", [
    ("\nContent-Length: abc", 400), ("\nContent-Length: -1", 400), ("\nContent-Length: 1.5", 400),
    ("\nContent-Length: 5\nContent-Length: 6", 400), ("\nContent-Length: \u00b2", 400),
    ("\nContent-Length: 101", 413), ("\nContent-Length: 99999999999999999999", 413),
    ("\nTransfer-Encoding: chunked\nContent-Length: 5", 400),
    ("\nTransfer-Encoding: gzip, chunked", 501),
])
def test_body_length_refuses_bad_or_oversized_framing(fields, status):
    with pytest.raises(HttpError) as exc:
        body_length(head("POST / HTTP/1.1\nHost: x" + fields), 100)
    assert exc.value.status == status


def test_keep_alive_defaults_per_version():
    assert wants_keep_alive(head("GET / HTTP/1.1\nHost: x"))
    assert not wants_keep_alive(head("GET / HTTP/1.1\nHost: x\nConnection: Close"))
    assert not wants_keep_alive(head("GET / HTTP/1.0"))
    assert wants_keep_alive(head("GET / HTTP/1.0\nConnection: keep-alive"))


def test_serialize_response():
    data = serialize_response(200, Headers({"Content-Type": "text/plain", "Content-Length": "99"}), b"hi")
    head_part, body = data.split(b"\r\n\r\n")
    lines = head_part.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Content-Length: 2" in lines and "Content-Length: 99" not in lines
    assert any(line.startswith("Date: ") and line.endswith(" GMT") for line in lines)
    assert body == b"hi"


def test_serialize_head_keeps_length_and_204_has_no_body_or_length():
    data = serialize_response(200, Headers(), b"hello", head_only=True, close=True)
    assert data.endswith(b"\r\n\r\n") and b"Content-Length: 5" in data and b"Connection: close" in data
    data = serialize_response(204, Headers(), b"ignored")
    assert data.endswith(b"\r\n\r\n") and b"Content-Length" not in data
    assert b"Connection: keep-alive" in serialize_response(200, Headers(), b"", http10=True)


def test_http_error_payload_and_codes():
    assert HttpError(404).payload == {"error": {"code": "not_found", "message": "Not Found"}}
    assert HttpError(418, "short and stout").payload == {"error": {"code": "i_m_a_teapot", "message": "short and stout"}}
    assert HttpError(409, "busy", code="conflict").code == "conflict"
