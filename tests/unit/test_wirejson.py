"""The one codec of the bus: what it accepts, what it refuses, and why it says so."""

import json

import pytest

from daebus.bus import protocol, wirejson
from daebus.bus.protocol import ProtocolError, decode_object


@pytest.mark.parametrize("text, hint", [
    ('{"x": "\\ud800"}', "surrogate"),
    ('{"x": "\\udfff tail"}', "surrogate"),
    ('{"\\ud800": 1}', "surrogate"),                 # in a key too
    ('{"x": 1e400}', "too large"),
    ('{"x": -1e400}', "too large"),
    ('[NaN]', "NaN"),
    ('{"x": Infinity}', "Infinity"),
    ("[" * (wirejson.MAX_DEPTH + 1) + "]" * (wirejson.MAX_DEPTH + 1), "nested too deeply"),
    (b"\xff\xfe{}", "UTF-8"),
])
def test_what_the_wire_refuses_is_named(text, hint):
    with pytest.raises(wirejson.WireJSONError, match=hint):
        wirejson.loads(text)
    with pytest.raises(ValueError, match=hint):
        protocol.loads(text)


@pytest.mark.parametrize("text, value", [
    ('{"x": "\\ud83d\\ude00"}', {"x": "\U0001F600"}),   # a pair is one character
    ('{"x": "\\\\ud800"}', {"x": "\\ud800"}),          # an escaped backslash, not a surrogate
    ('{"x": 1.7976931348623157e308}', {"x": 1.7976931348623157e308}),
    (json.dumps({"x": "[" * 100}), {"x": "[" * 100}),          # brackets in a string are text
    ("[" * wirejson.MAX_DEPTH + "]" * wirejson.MAX_DEPTH, None),
])
def test_what_the_wire_accepts(text, value):
    decoded = wirejson.loads(text)
    if value is not None:
        assert decoded == value


@pytest.mark.parametrize("value, hint", [
    ({"x": "\ud800"}, "surrogate"),
    ({"x": float("inf")}, "NaN and infinities"),
    ({"x": float("nan")}, "NaN and infinities"),
])
def test_what_the_wire_refuses_to_write(value, hint):
    with pytest.raises(wirejson.WireJSONError, match=hint):
        protocol.dumps(value)


def test_writing_deeper_than_the_limit_is_refused_so_no_peer_gets_it():
    deep: list = []
    for _ in range(wirejson.MAX_DEPTH):
        deep = [deep]
    with pytest.raises(wirejson.WireJSONError, match="nested too deeply"):
        protocol.dumps(deep)
    assert wirejson.loads(protocol.dumps(deep[0])) == deep[0]


def test_a_request_with_a_lone_surrogate_keeps_its_reply_address():
    raw = b'{"action":"echo","payload":{"x":"\\ud800"},"reply_to":"caller:a","request_id":"r1"}'
    with pytest.raises(ProtocolError) as info:
        decode_object(raw, 1 << 20)
    assert (info.value.reply_to, info.value.request_id) == ("caller:a", "r1")
    assert "surrogate" in str(info.value)


def test_an_array_keeps_its_request_id_when_it_names_one():
    with pytest.raises(ProtocolError) as info:
        decode_object(b'[{"request_id": "r2"}]', 1 << 20)
    assert info.value.request_id == "r2"


def test_size_is_checked_in_utf8_bytes():
    wirejson.check_size("é" * 5, 10)
    with pytest.raises(wirejson.WireJSONError, match="11 bytes exceeds the 10 byte limit"):
        wirejson.check_size("é" * 5 + "a", 10)
