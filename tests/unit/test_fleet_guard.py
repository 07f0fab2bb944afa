"""Untrusted fleet messages: strict JSON objects, complaints that cannot flood."""

import logging

import pytest

from daebus.fleet.calls import progress_body
from daebus.fleet.guard import BadMessage, Complaints, json_object
from daebus.fleet.outbox import PAGE, Entry, Position, _merge


@pytest.mark.parametrize("raw, words", [(b"[1]", "list"), (b"NaN", "not JSON"), (b"\xff", "not JSON"),
                                        (b"[" * 100_000, "not JSON"), (b"x" * 200_001, "more than")])
def test_what_is_not_a_small_json_object_is_refused_with_the_reason(raw, words):
    with pytest.raises(BadMessage, match=words):
        json_object(raw, 200_000)


def test_an_empty_call_payload_is_an_empty_object():
    assert json_object(b"", 100, empty_ok=True) == {}
    with pytest.raises(BadMessage):
        json_object(b"", 100)


def test_complaints_are_said_once_per_interval_then_with_the_count_held_back(caplog):
    clock = [0.0]
    said = Complaints(logging.getLogger("test.fleet"), every=10)
    import daebus.fleet.guard as guard

    real = guard.time.monotonic
    guard.time.monotonic = lambda: clock[0]
    try:
        with caplog.at_level(logging.WARNING, "test.fleet"):
            for _ in range(1000):
                said.warn("call", "dropped %s", "x")
            clock[0] = 11.0
            said.warn("call", "dropped %s", "y")
    finally:
        guard.time.monotonic = real
    assert [r.getMessage() for r in caplog.records] == ["dropped x", "dropped y (and 999 more like it in the last 10s)"]
    assert said.counts == {"call": 1001}


def test_progress_bodies_carry_the_data_and_percentage():
    assert progress_body({"step": 1, "progress_percentage": 50.0}) == {"progress": {"step": 1}, "pct": 50.0}
    assert progress_body({"data": [1], "progress_percentage": 10.0}) == {"progress": [1], "pct": 10.0}
    assert progress_body({"step": 1}) == {"progress": {"step": 1}, "pct": None}


def entry(ms, channel, n):
    return Entry((ms, 0), channel, b"{}", n)


def test_the_outbox_merges_channels_in_id_order_with_a_gap_before_what_was_dropped():
    position = Position((100, 0), {"a": 5, "b": 7})
    entries = {"a": [entry(150, "a", 9), entry(170, "a", 10)], "b": [entry(160, "b", 8)]}
    merged = _merge(["a", "b"], entries, {"a": ((140, 0), b"10")}, position)
    assert [(e.key[0], e.channel, e.dropped) for e in merged] == [(140, "a", 3), (150, "a", None),
                                                                  (160, "b", None), (170, "a", None)]
    assert merged[0].message()["gap"] == {"after": "100-0", "through": "140-0", "dropped": 3}


def test_the_outbox_page_stops_where_a_full_stream_stopped():
    position = Position((0, 0), {})
    full = [entry(i, "a", i) for i in range(1, PAGE + 1)]
    later = [entry(PAGE + 50, "b", 1)]
    merged = _merge(["a", "b"], {"a": full, "b": later}, {}, position)
    assert merged[-1].key == (PAGE, 0) and all(e.channel == "a" for e in merged)
