"""The SSE hub: fan-out, bounded queues, duplicate deliveries, status events, kept events."""

import json
import threading

import pytest

from daebus.bus.kept import NOTICE
from gateway.events import HEARTBEAT, PREAMBLE, Stream, TooManyStreams, sse_body, sse_event
from gateway.replay import Plan


def decode(chunk: bytes) -> list[dict]:
    events = []
    for block in chunk.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
            events.append(fields)
    return events


def test_sse_event_format():
    assert sse_event('{"a":1}', event_id=7) == b'id: 7\ndata: {"a":1}\n\n'
    assert sse_event("{}", event="status") == b"event: status\ndata: {}\n\n"


def test_stream_queue_is_bounded_and_closes_on_overflow():
    stream = Stream(frozenset({"a"}), size=2)
    assert stream.offer(b"1") and stream.offer(b"2")
    assert not stream.offer(b"3")
    assert stream.closed == "overflow"
    assert stream.take(0) is None  # the browser is dropped, not sent a gap


def test_take_returns_everything_queued_or_a_heartbeat_marker():
    stream = Stream(frozenset({"a"}), size=4)
    stream.offer(b"1")
    stream.offer(b"2")
    assert stream.take(0) == b"12"
    assert stream.take(0.01) == b""


def test_take_wakes_on_offer():
    stream = Stream(frozenset({"a"}), size=4)
    got = []
    reader = threading.Thread(target=lambda: got.append(stream.take(10)))
    reader.start()
    stream.offer(b"x")
    reader.join(5)
    assert got == [b"x"]


def test_messages_reach_only_streams_of_their_channel(make_hub):
    hub = make_hub()
    a, b = hub.open({"news.a"}), hub.open({"news.b", "news.a"})
    hub._on_message("news.a", b'{"n": 1}')
    hub._on_message("news.b", b'{"n": 2}')
    assert [e["data"] for e in decode(a.take(0))] == [{"channel": "news.a", "data": {"n": 1}}]
    events = decode(b.take(0))
    assert [e["data"]["data"] for e in events] == [{"n": 1}, {"n": 2}]
    # Not kept (no gateway asked publishers to keep them): no id to resume from.
    assert all("id" not in e for e in events)


def test_duplicate_pattern_deliveries_are_skipped(make_hub):
    hub = make_hub(channels=("news.*", "*.a"))
    stream = hub.open({"news.a"})
    for n in (1, 2):  # Redis sends each message once per matching pattern
        hub._on_message("news.a", json.dumps({"n": n}).encode())
        hub._on_message("news.a", json.dumps({"n": n}).encode())
    assert [e["data"]["data"]["n"] for e in decode(stream.take(0))] == [1, 2]


def test_a_lost_connection_resets_the_duplicate_count(make_hub):
    hub = make_hub(channels=("news.*", "*.a"))
    stream = hub.open({"news.a"})
    hub._on_message("news.a", b'{"n": 1}')
    hub._on_lost(ConnectionError("gone"))  # the second copy never came
    hub._on_restored(0.5)
    hub._on_message("news.a", b'{"n": 2}')
    data = [e["data"] for e in decode(stream.take(0))]
    assert [d.get("data", {}).get("n") for d in data if "channel" in d] == [1, 2]


def test_slow_stream_is_dropped_and_the_others_keep_receiving(make_hub):
    hub = make_hub(queue_size=3)
    slow, fast = hub.open({"news.a"}), hub.open({"news.a"})
    for n in range(10):
        hub._on_message("news.a", json.dumps({"n": n}).encode())
        assert decode(fast.take(0))[0]["data"]["data"] == {"n": n}
    assert slow.closed == "overflow"
    assert hub.dropped == 1 and hub.stream_count == 1


def test_malformed_messages_are_dropped(make_hub):
    hub = make_hub(max_message_bytes=100)
    stream = hub.open({"news.a"})
    hub._on_message("news.a", b"{not json")
    hub._on_message("news.a", b"\xff\xfe")
    hub._on_message("news.a", b'"' + b"x" * 200 + b'"')
    hub._on_message("news.a", b"[1]")
    assert [e["data"]["data"] for e in decode(stream.take(0))] == [[1]]


def test_status_events_follow_redis(make_hub):
    hub = make_hub()
    stream = hub.open({"news.a"})
    hub._set_up(True)
    hub._on_lost(ConnectionError("gone"))
    assert hub.redis_down
    hub._on_restored(1.0)
    assert not hub.redis_down
    statuses = [e["data"]["redis"] for e in decode(stream.take(0))]
    assert statuses == ["up", "down", "up"]


def test_not_yet_connected_is_not_down(make_hub):
    hub = make_hub()
    assert not hub.up and not hub.redis_down  # still connecting: calls may wait
    hub._on_state("waiting for redis")
    assert hub.redis_down


def test_max_streams(make_hub):
    hub = make_hub(max_streams=2)
    first = hub.open({"news.a"})
    hub.open({"news.a"})
    with pytest.raises(TooManyStreams):
        hub.open({"news.a"})
    hub.release(first)
    hub.open({"news.a"})


def test_body_starts_with_preamble_sends_heartbeats_and_ends_on_close(make_hub):
    hub = make_hub()
    stream = hub.open({"news.a"})
    body = sse_body(hub, stream, heartbeat=0.01)
    first = next(body)
    assert first.startswith(PREAMBLE) and b"event: status" in first
    assert next(body) == HEARTBEAT
    hub.close_streams()
    assert list(body) == []
    assert hub.stream_count == 0
    with pytest.raises(TooManyStreams):
        hub.open({"news.a"})  # a stopping worker takes no new streams


def test_closing_the_body_releases_the_stream(make_hub):
    hub = make_hub()
    body = sse_body(hub, hub.open({"news.a"}), heartbeat=1)
    next(body)
    body.close()  # what the server does when the browser goes away
    assert hub.stream_count == 0


# -- kept events ---------------------------------------------------------------

class EnabledHistory:
    enabled = True


def notice(event_id: str, channel: str, payload: bytes) -> bytes:
    return f"{event_id} {len(channel.encode())} {channel}".encode() + payload


def test_a_kept_event_is_sent_once_with_its_id(make_hub):
    hub = make_hub(channels=("news.*", "*.a"), history=EnabledHistory())
    stream = hub.open({"news.a"})
    hub._on_message(NOTICE, notice("10-0", "news.a", b'{"n": 1}'))
    hub._on_message("news.a", b'{"n": 1}')  # the broadcast itself, once per pattern
    hub._on_message("news.a", b'{"n": 1}')
    hub._on_message("news.a", b'{"n": 2}')  # not kept: no id
    events = decode(stream.take(0))
    assert [(e.get("id"), e["data"]["data"]["n"]) for e in events] == [("10-0", 1), (None, 2)]


def test_the_announcement_matched_by_a_pattern_is_skipped_too(make_hub):
    hub = make_hub(channels=("*",), history=EnabledHistory())
    stream = hub.open({"news.a"})
    hub._on_message(NOTICE, notice("10-0", "news.a", b'{"n": 1}'))
    hub._on_message(NOTICE, notice("10-0", "news.a", b'{"n": 1}'))  # via "*"
    hub._on_message("news.a", b'{"n": 1}')
    assert [e["id"] for e in decode(stream.take(0))] == ["10-0"]


def test_a_garbled_announcement_is_dropped_and_the_stream_goes_on(make_hub):
    hub = make_hub(history=EnabledHistory())
    stream = hub.open({"news.a"})
    hub._on_message(NOTICE, b"garbage")
    hub._on_message("news.a", b'{"n": 2}')
    assert [e["data"]["data"] for e in decode(stream.take(0))] == [{"n": 2}]


def test_events_below_the_floor_come_from_the_replay_not_the_queue(make_hub):
    hub = make_hub(history=EnabledHistory())
    stream = hub.open({"news.a"})
    for n in (1, 2, 3):
        hub._on_message(NOTICE, notice(f"{n}-0", "news.a", b"{}"))
        hub._on_message("news.a", b"{}")
    stream.floor = (2, 0)
    assert [e["id"] for e in decode(stream.take(0))] == ["3-0"]


def test_without_history_a_resuming_page_is_told_of_a_gap(make_hub):
    hub = make_hub()
    stream = hub.open({"news.a", "news.b"})
    plan = hub.resume(stream, "5-0")
    assert plan.gap == ["news.a", "news.b"] and plan.start_id is None
    assert hub.resume(stream, None).gap == []
    assert list(Plan.unknown(["news.a"], "5-0").entries()) == []


def test_a_stream_drops_copies_of_kept_events_it_already_queued():
    stream = Stream(frozenset({"a"}), size=8)
    assert stream.offer(b"1", (5, 0)) and stream.offer(b"2", (6, 0))
    assert stream.offer(b"2 again", (6, 0)) and stream.offer(b"1 again", (5, 0))  # dropped, not closed
    stream.offer(b"status")  # unkept: always queued
    assert stream.take(0) == b"12status" and not stream.closed
