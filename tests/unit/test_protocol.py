import dataclasses
import datetime
import decimal
import enum
import json
import uuid

import pytest

from daebus.bus import protocol


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_dumps_encodes_common_python_types():
    data = {"dt": datetime.datetime(2026, 1, 2, 3, 4, 5), "d": datetime.date(2026, 1, 2),
            "dec": decimal.Decimal("3.14"), "set": {1}, "bytes": b"ok", "bin": b"\xff",
            "uuid": uuid.UUID(int=1), "enum": Color.RED, "point": Point(1, 2), "tuple": (1, 2)}
    assert json.loads(protocol.dumps(data)) == {
        "dt": "2026-01-02T03:04:05", "d": "2026-01-02", "dec": "3.14", "set": [1], "bytes": "ok",
        "bin": "/w==", "uuid": "00000000-0000-0000-0000-000000000001", "enum": "red",
        "point": {"x": 1, "y": 2}, "tuple": [1, 2]}


def test_dumps_rejects_unknown_objects_with_type_error():
    with pytest.raises(TypeError, match="object"):
        protocol.dumps({"x": object()})


@pytest.mark.parametrize("data, reason", [
    (b"nope", "not JSON"),
    (b"[1]", "expected a JSON object, got list"),
    (b"\xff", "not JSON"),
    (b'{"a": "' + b"x" * 100 + b'"}', "exceeds the 50 byte limit"),
])
def test_decode_object_rejects_malformed_messages(data, reason):
    with pytest.raises(protocol.ProtocolError, match=reason):
        protocol.decode_object(data, 50)


def test_parse_request_reads_the_envelope():
    msg = protocol.parse_request({"action": "a", "payload": {"k": 1}, "reply_to": "caller:x",
                                  "request_id": "r", "service": "s", "timeout_ms": 500})
    assert (msg.action, msg.payload, msg.reply_to, msg.request_id, msg.timeout_ms) == \
        ("a", {"k": 1}, "caller:x", "r", 500)


def test_parse_request_without_payload_uses_the_other_keys():
    msg = protocol.parse_request({"action": "log_info", "timestamp": 1, "info": "x"})
    assert msg.payload == {"timestamp": 1, "info": "x"} and msg.reply_to is None


@pytest.mark.parametrize("obj, known_reply_to", [
    ({"payload": {}, "reply_to": "caller:x"}, "caller:x"),
    ({"action": 5, "reply_to": "caller:x"}, "caller:x"),
    ({"action": "a", "reply_to": 5}, None),
    ({"action": "a", "reply_to": "caller:x", "request_id": [1]}, "caller:x"),
    ({"action": "a", "reply_to": "caller:x", "timeout_ms": "soon"}, "caller:x"),
    ({"action": "a", "reply_to": "caller:x", "timeout_ms": -1}, "caller:x"),
])
def test_parse_request_rejects_bad_fields_and_keeps_the_reply_address(obj, known_reply_to):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_request(obj)
    assert info.value.reply_to == known_reply_to


def test_reply_envelope_has_exactly_the_compatible_fields():
    assert protocol.reply_envelope("r", "success", None) == \
        {"status": "success", "payload": None, "request_id": "r", "final": True}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_dumps_refuses_non_finite_numbers(value):
    with pytest.raises(ValueError):
        protocol.dumps({"v": value})


@pytest.mark.parametrize("text", ['{"v": NaN}', '{"v": Infinity}', '[-Infinity]'])
def test_loads_refuses_non_finite_numbers(text):
    with pytest.raises(ValueError, match="not valid JSON"):
        protocol.loads(text)


def test_nesting_too_deep_is_a_value_error_both_ways():
    with pytest.raises(ValueError, match="nested too deeply"):
        protocol.loads("[" * 100_000 + "]" * 100_000)
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        protocol.dumps(deep)


def test_a_request_that_does_not_parse_still_names_its_sender():
    data = (b'{"action":"echo","payload":' + b"[" * 100_000 + b"]" * 100_000 +
            b',"reply_to":"caller:abc","request_id":"r\\"1"}')
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol.decode_object(data, 10 * 1024 * 1024)
    assert (exc.value.reply_to, exc.value.request_id) == ("caller:abc", 'r"1')
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol.decode_object(b'{"v": NaN}', 1024)
    assert (exc.value.reply_to, exc.value.request_id) == (None, None)


def test_send_stamp_is_optional_and_never_a_reason_to_refuse():
    envelope = protocol.request_envelope("a", {}, "caller:x", "r1", "svc", 1000, 1764500000.1234)
    assert envelope["sent_at"] == 1764500000.123
    assert protocol.parse_request(envelope).sent_at == 1764500000.123
    assert protocol.parse_request({**envelope, "sent_at": "yesterday"}).sent_at is None
    old = {k: v for k, v in envelope.items() if k != "sent_at"}
    assert protocol.parse_request(old).sent_at is None
    # The 0.0.x form without "payload": the stamp is not part of the payload.
    assert protocol.parse_request({"action": "a", "sent_at": 1.0, "x": 1}).payload == {"x": 1}
