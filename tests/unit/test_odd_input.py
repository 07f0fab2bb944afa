"""Odd input in-process: refused-before-handler calls count as errors, one log line per flood,
costly schemas refused at declaration, stand-ins for the services a handler calls."""

import logging
import time

import pytest

from daebus import BadRequest, Daebus, DaebusCaller, RemoteError, ServiceUnavailable
from daebus.bus import protocol
from daebus.cli.common import dumps, json_escaped, printable, positive_float
from daebus.service.dispatch import run_action
from daebus.ops.ratelog import RateLimitedLog, kind_of
from daebus.app.schemas import Contract, SchemaDeclarationError
from daebus.testing import TestClient


def _message(action, payload):
    return protocol.parse_request(protocol.request_envelope(action, payload, "caller:t", "r1", "svc", None))


def test_calls_refused_before_the_handler_return_their_error_code():
    app = Daebus("counted")

    @app.action("typed", schema={"type": "object", "required": ["n"]})
    def typed():
        return {}

    sent = []
    publish = lambda channel, text: sent.append(protocol.loads(text)) or 1  # noqa: E731
    assert run_action(app, _message("nope", {}), publish) == "action_not_found"
    assert run_action(app, _message("typed", {}), publish) == "bad_request"
    assert run_action(app, _message("typed", {"n": 1}), publish) is None
    assert [r["status"] for r in sent] == ["error", "error", "success"]


def test_a_flood_of_calls_to_unknown_actions_logs_once_per_interval(caplog):
    app = Daebus("flooded")
    publish = lambda channel, text: 1  # noqa: E731
    with caplog.at_level(logging.WARNING, logger="daebus"):
        for _ in range(2000):
            run_action(app, _message("misspelt", {}), publish)
    lines = [r for r in caplog.records if "no handler" in r.getMessage()]
    assert len(lines) == 1, len(lines)


def test_rate_limited_log_reports_what_it_left_out(caplog, monkeypatch):
    now = [100.0]
    monkeypatch.setattr("daebus.ops.ratelog.time.monotonic", lambda: now[0])
    limited = RateLimitedLog(logging.getLogger("daebus.test"), interval=10)
    with caplog.at_level(logging.WARNING, logger="daebus.test"):
        assert [limited.warning("k", "bad thing %s", n) for n in range(5)] == [True] + [False] * 4
        assert limited.warning("other", "another thing")
        now[0] += 10
        assert limited.warning("k", "bad thing %s", 5)
    assert [r.getMessage() for r in caplog.records] == [
        "bad thing 0", "another thing", "bad thing 5 (4 more like it since the last report)"]
    assert kind_of("message of 31457280 bytes") == kind_of("message of 12 bytes")


@pytest.mark.parametrize("schema, where", [
    ({"type": "object", "properties": {"x": {"type": "string", "pattern": "^(a+)+$"}}}, "pattern"),
    ({"type": "object", "patternProperties": {"^(\\w+\\s?)+$": {}}}, "patternProperties"),
    # Branches that start alike (the parser makes a|a into a(?:|), a|aa into a(?:|a)).
    ({"type": "string", "pattern": "^(a|a)+$"}, "pattern"),
    ({"type": "string", "pattern": "^(a|aa)+$"}, "pattern"),
    ({"type": "string", "pattern": "^(a|b|ab)*c$"}, "pattern"),
    ({"type": "string", "pattern": "^(aa?)+$"}, "pattern"),
    # Runs in a row: the square of a megabyte's run is minutes.
    ({"type": "string", "pattern": "^a*a*b$"}, "pattern"),
    ({"type": "string", "pattern": "^[a-z]+[a-z0-9]*!$"}, "pattern"),
    ({"type": "object", "properties": {"child": {"$ref": "#"}}}, "recursive"),
    ({"$defs": {"a": {"properties": {"b": {"$ref": "#/$defs/b"}}},
                "b": {"properties": {"a": {"$ref": "#/$defs/a"}}}}, "$ref": "#/$defs/a"}, "recursive"),
    ({"$dynamicRef": "#meta"}, "recursive"),
    ({"$ref": "#/$defs/missing"}, "points nowhere"),
    ({"type": "array", "uniqueItems": True}, "uniqueItems"),
    ({"type": "array", "uniqueItems": True, "maxItems": 100_000}, "uniqueItems"),
    ({"type": "array", "uniqueItems": True, "items": {"type": ["string", "number"]}}, "uniqueItems"),
])
def test_schemas_whose_check_can_run_away_are_refused_when_declared(schema, where):
    with pytest.raises(SchemaDeclarationError, match=where):
        Contract.compile(schema, "action 'x'")
    app = Daebus("declared")
    with pytest.raises(SchemaDeclarationError):
        app.action("x", schema=schema)(lambda: None)


@pytest.mark.parametrize("schema", [
    {"type": "string", "pattern": "^[a-z]+(-[a-z]+)*$"},
    {"type": "string", "pattern": "^([a-z]+,)*$"},
    {"type": "string", "pattern": "^(\\d{1,3}\\.){3}\\d{1,3}$"},
    {"type": "string", "pattern": "^(?:(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)$"},
    {"type": "string", "pattern": "^[\\w.+-]+@([\\w-]+\\.)+[\\w-]{2,}$"},
    {"type": "string", "pattern": "^(?:[a-z0-9-]+\\.)*[a-z0-9-]+$"},
    {"type": "string", "pattern": "^(ab?)+$"},
    {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
    {"type": "string", "pattern": "^#?([a-f0-9]{6}|[a-f0-9]{3})$"},
    {"type": "array", "uniqueItems": True, "maxItems": 50},
    {"type": "array", "uniqueItems": True, "items": {"type": "string"}},
    {"$defs": {"n": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/n"}, "b": {"$ref": "#/$defs/n"}}},
    {"properties": {"pattern": {"type": "string"}, "uniqueItems": {"type": "boolean"}}},
])
def test_ordinary_schemas_are_kept(schema):
    Contract.compile(schema, "action 'x'")


def test_the_checks_a_kept_schema_allows_are_fast():
    contract = Contract.compile({"type": "array", "uniqueItems": True, "maxItems": 256,
                                 "items": {"type": "object"}}, "a")
    started = time.perf_counter()
    contract.problems([{"i": i, "pad": "x" * 20} for i in range(256)])
    assert time.perf_counter() - started < 1.0
    assert "non-unique" in contract.problems([{"i": 1}, {"i": 1}])[0]["message"]


@pytest.mark.parametrize("schema, payload, hint", [
    # Every keyword is checked: maxItems refusing 8,000 objects once let
    # uniqueItems compare every pair of them first (about a minute).
    ({"type": "array", "uniqueItems": True, "maxItems": 256}, [{"i": i} for i in range(8000)], "{'i': 0}"),
    # Items the declared type refuses are compared pair by pair too.
    ({"type": "array", "uniqueItems": True, "items": {"type": "string"}},
     [str(i) if i % 2 else i for i in range(8000)], "too many to check"),
    ({"type": "array", "uniqueItems": True, "items": {"type": "number"}},
     [{"i": i} for i in range(8000)], "too many to check"),
])
def test_unique_items_over_what_the_schema_allows_are_refused_without_comparing_them(schema, payload, hint):
    contract = Contract.compile(schema, "a")
    started = time.perf_counter()
    problems = contract.problems(payload)
    assert time.perf_counter() - started < 1.0
    assert any(hint in p["message"] for p in problems), problems
    assert contract.problems(sorted({str(i) for i in range(50_000)}) if "items" in schema and
                             schema["items"]["type"] == "string" else []) == []


helper = Daebus("helper")


@helper.action("dim")
def dim():
    level = DaebusCaller("display").send_request("set_brightness", {"level": 10})["level"]
    return {"dimmed_to": level}


@helper.action("ask_sensors")
def ask_sensors():
    try:
        return {"read": DaebusCaller("sensors").send_request("read", {})}
    except ServiceUnavailable as exc:
        return {"unavailable": str(exc)}
    except RemoteError as exc:
        return {"error": exc.code}


def test_stand_ins_answer_the_services_a_handler_calls(monkeypatch):
    # Were the real bus reached, this would fail at once: nothing listens there.
    monkeypatch.setenv("DAEBUS_REDIS_URL", "redis://127.0.0.1:1/0")
    client = TestClient(helper)
    client.stand_in("display", {"set_brightness": lambda p: {"level": p["level"]}})
    assert client.call("dim") == {"dimmed_to": 10}
    assert client.calls == [("display", "set_brightness", {"level": 10})]
    assert "no stand-in for service 'sensors'" in client.call("ask_sensors")["unavailable"]


def test_a_stand_in_can_be_another_apps_test_client_and_its_errors_arrive_as_remote_errors():
    sensors = Daebus("sensors")

    @sensors.action("read")
    def read():
        raise BadRequest("sensor 7 is not wired")

    client = TestClient(helper)
    client.stand_in("sensors", TestClient(sensors))
    assert client.call("ask_sensors") == {"error": "bad_request"}
    client.stand_in("sensors", {"read": {"t": 21.5}})
    assert client.call("ask_sensors") == {"read": {"t": 21.5}}
    assert client.calls == [("sensors", "read", {})] * 2


def test_a_handlers_send_to_service_reaches_the_stand_in_not_the_bus(monkeypatch):
    monkeypatch.setenv("DAEBUS_REDIS_URL", "redis://127.0.0.1:1/0")  # reached, it would fail at once
    app = Daebus("notifier")
    heard = []

    @app.action("poke")
    def poke():
        return {"receivers": [DaebusCaller("display").send_to_service({"level": 3}, action="dim"),
                              DaebusCaller("display").send_to_service({"action": "wake"}),
                              DaebusCaller("nobody").send_to_service({}, action="x")]}

    client = TestClient(app)
    client.stand_in("display", {"dim": lambda p: heard.append(p), "wake": lambda p: heard.append(p)})
    assert client.call("poke") == {"receivers": [1, 1, 0]}
    assert heard == [{"level": 3}, {"action": "wake"}]
    assert client.calls == [("display", "dim", {"level": 3}), ("display", "wake", {"action": "wake"}),
                            ("nobody", "x", {})]


def test_no_stand_in_outside_a_handler_run():
    client = TestClient(helper)
    client.stand_in("display", {"set_brightness": {"level": 1}})
    caller = DaebusCaller("display", redis_url="redis://127.0.0.1:1/0", timeout=1)
    with pytest.raises(Exception) as info:
        caller.send_request("set_brightness", {})
    assert "stand-in" not in str(info.value)


def test_terminal_output_escapes_control_characters():
    assert printable("evil\x1b]0;owned\x07\x9b") == "evil\\x1b]0;owned\\x07\\x9b"
    assert printable("caf\u00e9 \u202eabc") == "caf\u00e9 \\u202eabc"
    assert json_escaped(dumps({"k": "\x1b\x9b\u2066"}, pretty=False)) == '{"k":"\\u001b\\u009b\\u2066"}'
    assert "\n" in dumps({"a": 1}, pretty=True)  # indentation is kept


@pytest.mark.parametrize("text", ["1e308", "inf", "nan", "0", "-1"])
def test_timeouts_that_no_wait_can_take_are_refused(text):
    import argparse
    with pytest.raises(argparse.ArgumentTypeError):
        positive_float(text)


def test_a_caller_refuses_requests_over_the_configured_size_before_sending(monkeypatch, tmp_path):
    from daebus.call.exchange import Call

    large = Call("svc", "echo", {"blob": "x" * (2 * 1024 * 1024)}, 5.0, None)
    with pytest.raises(BadRequest, match="exceeds the 1048576 byte limit"):
        large.envelope("caller:t")
    config = tmp_path / "daebus.toml"
    config.write_text(f"[service]\nmax_message_bytes = {4 * 1024 * 1024}\n")
    monkeypatch.setenv("DAEBUS_CONFIG", str(config))  # the services of this device read more
    assert len(large.envelope("caller:t")) > 2 * 1024 * 1024
    with pytest.raises(BadRequest, match="surrogate"):
        Call("svc", "echo", "\ud800", 5.0, None).envelope("caller:t")
