"""A registry hash read back as a ServiceRecord: typed, whatever wrote it
(this version, 0.0.x, a peer writing garbage), and the hash written unchanged."""

import dataclasses
import json
import time

import fakeredis
import pytest

from daebus.bus import registry
from daebus.bus.bus import Bus
from daebus.bus.registry import GROUP, OWNER, ServiceRecord
from daebus.call.sending import Sender
from daebus.ops.metrics import ServiceMetrics

# What Daebus 0.0.x wrote for a service (daebus/registry.py of that release): no mode,
# no token, no schemas, no metrics.
RECORD_0_0 = {"name": "clock", "pid": "812", "host": "kiosk-1", "started_at": "1764300000.25",
              "version": "0.0.3", "actions": '["get_time", "set_alarm"]', "channels": '["ticks"]',
              "status": "running"}


def _written(info: dict) -> dict:
    """The hash as a client reads it back, text or bytes."""
    client = fakeredis.FakeRedis(decode_responses=True)
    registry.publish(client, info, 10)
    return client.hgetall(registry.key(info["name"]))


def test_a_record_this_version_writes_reads_back_typed():
    snapshot = ServiceMetrics(["get_time"]).snapshot(uptime=3.0, queued=0, in_flight=0)
    info = registry.record("clock", actions=["set_alarm", "get_time"], channels=["ticks"], version="1.2",
                           started_at=1764300000.25, status="running",
                           schemas={"actions": {"get_time": {"payload": {"type": "object"}}}}, metrics=snapshot)
    written = _written({**info, "mode": GROUP, "token": "kiosk-1:812:ab12cd34", "stream_max_length": 500,
                        "expired": 2})
    record = ServiceRecord.parse(written)
    assert (record.name, record.mode, record.version, record.status) == ("clock", GROUP, "1.2", "running")
    assert (record.pid, record.host, record.started_at) == (info["pid"], info["host"], 1764300000.25)
    assert record.actions == ("get_time", "set_alarm") and record.channels == ("ticks",)
    assert record.action_schemas == {"get_time": {"payload": {"type": "object"}}}
    assert record.token == "kiosk-1:812:ab12cd34" and record.stream_max_length == 500
    assert record.metrics["actions"]["get_time"]["calls"] == 0 and record.metrics_error is None
    assert record.extra == {"expired": "2"}   # kept, as text: this version names no such field
    # bytes, as from a client that does not decode, read the same
    assert ServiceRecord.parse({k.encode(): v.encode() for k, v in written.items()}) == record


def test_the_hash_written_is_the_one_0_0_x_callers_and_tools_read():
    info = registry.record("clock", actions=["set_alarm", "get_time"], channels=["ticks"], version="0.0.3",
                           started_at=1764300000.25, status="running")
    # The fields and their text exactly as 0.0.x wrote them (plus none: no schemas, no metrics here).
    assert _written(info) == {**RECORD_0_0, "pid": str(info["pid"]), "host": info["host"]}


def test_a_0_0_x_record_is_an_owner_with_defaults_for_what_it_lacks():
    record = ServiceRecord.parse(RECORD_0_0)
    assert record.mode == OWNER and record.token is None
    assert (record.pid, record.host, record.started_at, record.version) == (812, "kiosk-1", 1764300000.25, "0.0.3")
    assert record.actions == ("get_time", "set_alarm") and record.channels == ("ticks",)
    assert record.schemas == {} and record.action_schemas == {}
    assert record.metrics is None and record.metrics_error is None and record.extra == {}
    assert record.stream_max_length == registry.DEFAULT_STREAM_MAX_LENGTH
    info = record.info()
    assert info["mode"] == OWNER and "token" not in info and registry.STREAM_MAX_LENGTH not in info


def test_nothing_at_all_is_a_record_of_defaults_named_by_its_key():
    record = ServiceRecord.parse({}, "sensors")
    assert record == ServiceRecord(name="sensors")
    assert (record.mode, record.pid, record.started_at, record.actions, record.uptime(time.time())) == \
        (OWNER, None, None, (), None)
    assert ServiceRecord.parse({"name": "own"}, "sensors").name == "own"   # its own name wins, as before


GARBAGE = {
    "name": "", "mode": "leader", "pid": "-3", "started_at": "nan", "host": "", "version": "",
    "actions": '{"get_time": 1}', "channels": '[1, "ticks", null, ["x"]]', "schemas": "[1, 2]",
    "stream_max_length": "ten", "metrics": '{"v": 99}', "token": "",
}


def test_garbage_fields_get_their_defaults_and_never_raise():
    record = ServiceRecord.parse(GARBAGE, "clock")
    assert record.name == "clock" and record.mode == OWNER
    assert (record.pid, record.started_at, record.host, record.version, record.token) == (None,) * 5
    assert record.actions == () and record.channels == ("ticks",)   # only the names that are text
    assert record.schemas == {} and record.action_schemas == {}
    assert record.stream_max_length == registry.DEFAULT_STREAM_MAX_LENGTH
    assert record.metrics is None and "unknown snapshot version 99" in record.metrics_error
    assert record.info()["metrics_error"] == record.metrics_error


@pytest.mark.parametrize("field, value", [
    ("pid", "abc"), ("pid", "0"), ("pid", "1.5"), ("pid", ""),
    ("started_at", "inf"), ("started_at", "-1"), ("started_at", "soon"),
    ("stream_max_length", "0"), ("stream_max_length", "-5"), ("stream_max_length", "1e3"),
    ("actions", "5"), ("actions", "not json"), ("actions", "[" * 100000), ("actions", '"a string"'),
    ("schemas", '{"actions": [1]}'), ("schemas", "{" * 100000), ("metrics", "x" * 10),
])
def test_each_malformed_field_alone_reads_as_its_default(field, value):
    record = ServiceRecord.parse({**RECORD_0_0, field: value})
    defaults = ServiceRecord()
    if field == "metrics":
        assert record.metrics is None and record.metrics_error
    elif field == "schemas":
        assert record.action_schemas == {}
    else:
        assert getattr(record, field) == getattr(defaults, field)
    assert record.name == "clock"   # the rest of the record still reads


def test_undecodable_bytes_and_odd_types_read_as_text():
    record = ServiceRecord.parse({b"name": b"cl\xffock", b"host": b"\xfe", "pid": 42, "started_at": 1.5,
                                  b"mode": b"group", "stale": None})
    assert record.name == "cl\ufffdock" and record.host == "\ufffd"
    assert (record.pid, record.started_at, record.mode) == (42, 1.5, GROUP)
    assert record.extra == {}   # a None value (HMGET's "no such field") is no field


def test_a_record_is_frozen():
    record = ServiceRecord.parse(RECORD_0_0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.mode = GROUP


def test_listing_garbage_and_0_0_x_records_gives_clean_entries():
    client = fakeredis.FakeRedis(decode_responses=True)
    client.hset(registry.key("clock"), mapping=RECORD_0_0)          # no token: listed, as before
    client.hset(registry.key("junk"), mapping={k: v for k, v in GARBAGE.items() if k != "name"})
    listed = {s["name"]: s for s in registry.list_services(client)}
    assert listed["clock"]["actions"] == ["get_time", "set_alarm"] and listed["clock"]["mode"] == OWNER
    assert listed["clock"]["instances"][0]["pid"] == 812 and listed["clock"]["uptime"] is not None
    junk = listed["junk"]
    assert (junk["actions"], junk["channels"], junk["schemas"], junk["pid"], junk["uptime"]) == \
        ([], ["ticks"], {}, None, None)
    json.dumps(list(listed.values()), allow_nan=False)   # what `daebus services --json` prints


def test_a_caller_routes_by_the_typed_mode_and_bound(redis_server):
    client = redis_server.client()
    sender = Sender(Bus(redis_server.url))
    deadline = time.monotonic() + 5
    client.hset(registry.key("grouped"), mapping={"mode": GROUP, "stream_max_length": "ten"})
    client.hset(registry.key("old"), mapping=RECORD_0_0)
    client.hset(registry.key("odd"), mapping={"mode": "leader", "stream_max_length": "300"})
    assert sender.mode("grouped", deadline) == (GROUP, registry.DEFAULT_STREAM_MAX_LENGTH)   # no crash
    # No mode: nothing to say, as for no record (a group's stream may still be there).
    assert sender.mode("old", deadline) == (None, registry.DEFAULT_STREAM_MAX_LENGTH)
    assert sender.mode("absent", deadline) == (None, registry.DEFAULT_STREAM_MAX_LENGTH)
    assert sender.mode("odd", deadline) == (OWNER, 300)


@pytest.mark.parametrize("actions, problem", [
    ("{not json", "its actions are not JSON"),
    ('{"a": 1}', "its actions are not a list (got dict)"),
    ('["set", 3, ""]', "2 of its actions are not names"),
])
def test_what_a_record_leaves_out_is_said(actions, problem):
    record = ServiceRecord.parse({"name": "odd", "actions": actions})
    assert record.problems == (problem,)
    assert record.info()["problems"] == [problem]
    assert "problems" not in ServiceRecord.parse({"name": "fine", "actions": '["set"]'}).info()
