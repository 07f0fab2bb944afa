"""Pure checks behind the gateway's security: hosts, binds, origins, tokens."""

import pytest

from gateway.security import (address_is_loopback, bind_is_loopback, host_allowed, origin_allowed,
                              parse_origin, split_host, token_matches)


@pytest.mark.parametrize("bind, expected", [
    ("127.0.0.1:8080", True), ("localhost:8080", True), ("[::1]:8080", True),
    ("127.0.0.5:80", True), ("unix:/run/daebus/gateway.sock", True),
    ("0.0.0.0:8080", False), ("[::]:8080", False), ("192.168.1.10:8080", False),
    ("kiosk.local:8080", False), ("fd://3", False), ("8080", False),
])
def test_bind_is_loopback(bind, expected):
    assert bind_is_loopback(bind) is expected


def test_address_is_loopback():
    assert address_is_loopback(("127.0.0.1", 8080))
    assert address_is_loopback(("::1", 8080, 0, 0))
    assert address_is_loopback("/run/gateway.sock")
    assert not address_is_loopback(("0.0.0.0", 8080))


@pytest.mark.parametrize("header, host", [
    ("LocalHost:8080", "localhost"), ("[::1]:8080", "::1"), ("[::1]", "::1"),
    ("kiosk.local.", "kiosk.local"), ("127.0.0.1", "127.0.0.1"),
])
def test_split_host(header, host):
    assert split_host(header) == host


def test_host_allowed():
    allowed = ("localhost", "127.0.0.1", "::1", "*.kiosk.lan")
    assert host_allowed("localhost:8080", allowed)
    assert host_allowed("[::1]:8080", allowed)
    assert host_allowed("a.kiosk.lan", allowed)
    assert not host_allowed("evil.example:8080", allowed)
    assert not host_allowed("localhost.evil.example", allowed)
    assert not host_allowed(None, allowed) and not host_allowed("", allowed)
    assert host_allowed("anything", ("*",))


def test_parse_origin():
    assert parse_origin("http://Kiosk.Local:8080") == "http://kiosk.local:8080"
    assert parse_origin("https://a.example/") == "https://a.example"
    for bad in ("null", "kiosk.local", "ftp://a", "http://a/path", "http://u@a"):
        assert parse_origin(bad) is None


def test_origin_allowed():
    assert origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080", ())
    assert not origin_allowed("http://evil.example", "127.0.0.1:8080", ())
    assert origin_allowed("http://kiosk.example", "127.0.0.1:8080", ("http://kiosk.example",))
    assert origin_allowed("http://any.example", "127.0.0.1:8080", ("*",))
    assert not origin_allowed("null", "127.0.0.1:8080", ("*",))


def test_token_matches():
    assert token_matches("abc", "abc")
    assert not token_matches("abd", "abc")
    assert not token_matches(None, "abc") and not token_matches("", "abc")
