"""Kept events: a stream that reconnects with Last-Event-ID gets what it missed."""

import json
import socket
import time

import redis

from daebus.bus.kept import STREAM_PREFIX, parse_id


# How long a test waits for an event that must come: it proves that the event
# comes, not how fast, so the wait is long enough for a loaded machine.
EVENT_WAIT = 15


def messages_until(stream, count, timeout=EVENT_WAIT):
    """The next ``count`` broadcasts and the gap events among them."""
    got, gaps = [], []
    while len(got) < count:
        event = stream.next_event(timeout)
        assert event is not None, "the stream ended"
        if event["event"] == "gap":
            gaps.append(json.loads(event["data"]))
        elif event["event"] == "message":
            got.append({"id": event.get("id"), **json.loads(event["data"])})
    return got, gaps


def first_events(stream, timeout=EVENT_WAIT):
    """The first event of a stream: the status, with the id the page starts from."""
    status = stream.next_event(timeout)
    assert status["event"] == "status"
    return status


def events_up(gw, timeout=20):
    """Wait until the gateway's broadcast subscription is up, so that a
    stream opened now starts with status "up" and misses no broadcast."""
    deadline = time.monotonic() + timeout
    while gw.get("/api/health").json().get("events") != "up":
        assert time.monotonic() < deadline, "the gateway never subscribed"
        time.sleep(0.05)


def last_id_seen(gw, channel, publish):
    """Open a stream, receive one broadcast on ``channel``, leave; its id."""
    stream = gw.events(channel)
    stream.wait_status("up")
    publish(channel, {"n": 1})
    last = messages_until(stream, 1)[0][0]["id"]
    stream.close()
    return last


def test_a_restarted_gateway_replays_what_the_page_missed(start_gateway, fresh_redis, publish_to):
    publish = publish_to(fresh_redis.url)
    gw = start_gateway(url=fresh_redis.url)
    stream = gw.events("news.a", "news.b")
    stream.wait_status("up")
    for n in range(1, 4):
        publish("news.a" if n % 2 else "news.b", {"n": n})
    seen, _ = messages_until(stream, 3)
    last = seen[-1]["id"]
    stream.close()
    assert gw.terminate() == 0
    # Sent while no gateway runs at all.
    for n in range(4, 9):
        publish("news.a" if n % 2 else "news.b", {"n": n})
    publish("news.other", {"n": 0})  # not asked for
    gw = start_gateway(url=fresh_redis.url)
    events_up(gw)
    stream = gw.events("news.a", "news.b", headers={"Last-Event-ID": last})
    assert first_events(stream)["event"] == "status"
    publish("news.a", {"n": 9})
    replayed, gaps = messages_until(stream, 6)
    assert gaps == []
    assert [m["data"]["n"] for m in replayed] == [4, 5, 6, 7, 8, 9]
    ids = [parse_id(m["id"]) for m in seen + replayed]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # monotonic across the restart
    # Nothing comes twice: the next one is new.
    publish("news.b", {"n": 10})
    assert stream.next_message(EVENT_WAIT)["data"] == {"n": 10}


def test_a_fresh_page_gets_a_start_id_and_misses_nothing_after_it(start_gateway, fresh_redis, publish_to):
    publish = publish_to(fresh_redis.url)
    gw = start_gateway(url=fresh_redis.url)
    stream = gw.events("news.a")
    status = first_events(stream)
    assert parse_id(status["id"]) is not None
    stream.close()
    publish("news.a", {"n": 1})
    stream = gw.events("news.a", query={"last_event_id": status["id"]})
    got, gaps = messages_until(stream, 1)
    assert gaps == [] and got[0]["data"] == {"n": 1}


def test_more_missed_than_kept_is_a_gap_event_then_what_is_kept(start_gateway, fresh_redis, publish_to):
    publish = publish_to(fresh_redis.url)
    gw = start_gateway({"keep_events": 3}, url=fresh_redis.url)
    stream = gw.events("news.a", "news.b")
    stream.wait_status("up")
    publish("news.a", {"n": 0})
    publish("news.b", {"n": 0})
    last = messages_until(stream, 2)[0][-1]["id"]
    stream.close()
    for n in range(1, 11):
        publish("news.a", {"n": n})
    publish("news.b", {"n": 1})
    stream = gw.events("news.a", "news.b", headers={"Last-Event-ID": last})
    got, gaps = messages_until(stream, 4)
    assert gaps == [{"channels": ["news.a"]}]  # news.b lost nothing
    assert [(m["channel"], m["data"]["n"]) for m in got] == [("news.a", 8), ("news.a", 9), ("news.a", 10),
                                                            ("news.b", 1)]


def test_a_gateway_away_longer_than_the_kept_window_says_so(start_gateway, fresh_redis, publish_to):
    publish = publish_to(fresh_redis.url)
    gw = start_gateway({"keep_seconds": 1.0}, url=fresh_redis.url)
    last = last_id_seen(gw, "news.a", publish)
    assert gw.terminate() == 0
    publish("news.a", {"n": 2})
    time.sleep(2.5)  # the outage itself: longer than the kept window
    publish("news.a", {"n": 3})
    gw = start_gateway({"keep_seconds": 1.0}, url=fresh_redis.url)
    events_up(gw)
    stream = gw.events("news.a", headers={"Last-Event-ID": last})
    told = first_events(stream)["id"]
    event = stream.next_event(EVENT_WAIT)
    assert event["event"] == "gap" and json.loads(event["data"]) == {"channels": ["news.a"]}
    stream.close()
    # The page was told: coming back from the id it was given, before
    # anything new, it hears of the lapse no more; an older id still does.
    again = gw.events("news.a", headers={"Last-Event-ID": told})
    assert first_events(again)["id"] == told
    stale = gw.events("news.a", headers={"Last-Event-ID": last})
    first_events(stale)
    assert stale.next_event(EVENT_WAIT)["event"] == "gap"
    publish("news.a", {"n": 4})
    got, gaps = messages_until(again, 1)
    assert gaps == [] and got[0]["data"] == {"n": 4}
    assert stale.next_message(EVENT_WAIT)["data"] == {"n": 4}


def test_garbage_huge_and_future_ids_get_a_gap_and_a_fresh_start(start_gateway, fresh_redis, publish_to):
    publish = publish_to(fresh_redis.url)
    gw = start_gateway(url=fresh_redis.url)
    events_up(gw)
    publish("news.a", {"n": 0})
    for bad in ("abc", "9" * 5000, "99999999999999-0", "1-2-3", "-1-0", "17"):
        stream = gw.events("news.a", headers={"Last-Event-ID": bad})
        assert stream.status == 200
        status = first_events(stream)
        assert parse_id(status["id"]) is not None  # where the page starts afresh
        event = stream.next_event(EVENT_WAIT)
        assert event["event"] == "gap", bad
        publish("news.a", {"n": 1})
        assert stream.next_message(EVENT_WAIT)["data"] == {"n": 1}  # not the kept n=0
        stream.close()
    assert gw.get("/api/health").status_code == 200


def test_each_event_is_kept_once_whatever_the_number_of_gateways(start_gateway, fresh_redis, publish_to):
    publish = publish_to(fresh_redis.url)
    one, two = start_gateway(url=fresh_redis.url), start_gateway(url=fresh_redis.url)
    streams = [one.events("news.a"), two.events("news.a")]
    for stream in streams:
        stream.wait_status("up")
    for n in range(5):
        publish("news.a", {"n": n})
    got = [messages_until(stream, 5)[0] for stream in streams]
    assert got[0] == got[1]  # the same ids everywhere
    assert redis.Redis.from_url(fresh_redis.url).xlen(STREAM_PREFIX + "news.a") == 5


def test_a_flooding_channel_keeps_its_own_bound_only(start_gateway, fresh_redis, publish_to):
    publish = publish_to(fresh_redis.url)
    gw = start_gateway({"keep_events": 50}, url=fresh_redis.url)
    last = last_id_seen(gw, "news.quiet", publish)
    publish("news.quiet", {"n": 2})
    client = redis.Redis.from_url(fresh_redis.url)
    for n in range(2000):
        publish("news.flood", {"n": n})
    assert client.xlen(STREAM_PREFIX + "news.flood") == 50
    stream = gw.events("news.quiet", headers={"Last-Event-ID": last})
    got, gaps = messages_until(stream, 1)
    assert gaps == [] and got[0]["data"] == {"n": 2}


def test_an_open_stream_catches_up_after_the_gateway_resubscribes(start_gateway, fresh_redis, publish_to):
    publish = publish_to(fresh_redis.url)
    gw = start_gateway(url=fresh_redis.url)
    events_up(gw)
    stream = gw.events("news.a")
    stream.wait_status("up")
    client = redis.Redis.from_url(fresh_redis.url)
    # Cut the gateway's subscription, as a network blip would; Redis stays up
    # and keeps what is broadcast meanwhile.
    assert client.client_kill_filter(_type="pubsub") >= 1
    for n in range(1, 11):
        publish("news.a", {"n": n})
    got, gaps = messages_until(stream, 10, timeout=15)
    assert gaps == []
    assert [m["data"]["n"] for m in got] == list(range(1, 11))  # the same stream, nothing twice
    publish("news.a", {"n": 11})
    assert stream.next_message(EVENT_WAIT)["data"] == {"n": 11}


def test_a_resuming_page_that_never_reads_costs_nobody_else(start_gateway, fresh_redis, publish_to):
    publish = publish_to(fresh_redis.url)
    gw = start_gateway({"send_timeout": 2.0, "keep_events": 200}, url=fresh_redis.url)
    events_up(gw)
    start = first_events(gw.events("news.big"))["id"]
    for n in range(200):
        publish("news.big", {"n": n, "filler": "x" * 16_000})  # 3 MB to replay
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        stalled.connect(("127.0.0.1", gw.port))
        stalled.sendall(f"GET /api/events?channel=news.big HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
                        f"Last-Event-ID: {start}\r\n\r\n".encode())
        # Another page resumes from the same place and gets everything...
        reader = gw.events("news.big", headers={"Last-Event-ID": start})
        got, gaps = messages_until(reader, 200, timeout=10)
        assert gaps == [] and [m["data"]["n"] for m in got] == list(range(200))
        assert gw.get("/api/health").status_code == 200
        # ...and the one that never reads is cut off after send_timeout.
        deadline = time.monotonic() + 15
        while gw.get("/api/health").json()["streams"] > 1:
            assert time.monotonic() < deadline, "the stalled replay still holds its stream"
            time.sleep(0.1)
    finally:
        stalled.close()


def test_a_worker_keeps_after_redis_forgot_its_script(start_gateway, fresh_redis, service):
    service("gateway_echo.py", "echo", url=fresh_redis.url)
    gw = start_gateway(url=fresh_redis.url)
    client = redis.Redis.from_url(fresh_redis.url)
    announce = {"channel": "echo.kept", "data": {"n": 1}}
    assert gw.post("/api/services/echo/announce", announce).status_code == 200
    client.script_flush()  # as after a Redis restart
    assert gw.post("/api/services/echo/announce", {**announce, "data": {"n": 2}}).status_code == 200
    kept = client.xrange(STREAM_PREFIX + "echo.kept")
    assert [json.loads(fields[b"d"])["n"] for _, fields in kept] == [1, 2]
