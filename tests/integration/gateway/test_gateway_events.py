"""GET /api/events: broadcasts as Server-Sent Events, from a real gunicorn."""

import concurrent.futures
import time

from daebus.bus.kept import parse_id


def test_broadcast_reaches_a_stream_within_a_second(start_gateway, publish):
    gw = start_gateway()
    stream = gw.events("news.a", "news.b")
    assert stream.status == 200
    assert stream.response.getheader("Content-Type").startswith("text/event-stream")
    stream.wait_status("up")
    started = time.monotonic()
    publish("news.a", {"headline": "hello"})
    message = stream.next_message(timeout=1)
    assert time.monotonic() - started < 1
    assert message["channel"] == "news.a" and message["data"] == {"headline": "hello"}
    assert parse_id(message["id"]) is not None
    assert stream.retry == "2000"  # the browser reconnects after 2 s


def test_only_requested_channels_arrive_in_order_with_rising_ids(start_gateway, publish):
    gw = start_gateway()
    stream = gw.events("news.a", "news.b")
    stream.wait_status("up")
    publish("news.other", {"n": 0})  # exposed, but not asked for
    publish("news.b", {"n": 1})
    publish("news.a", {"n": 2})
    publish("news.b", [3])  # any JSON value is passed on
    got = [stream.next_message(timeout=2) for _ in range(3)]
    assert [(m["channel"], m["data"]) for m in got] == [("news.b", {"n": 1}), ("news.a", {"n": 2}),
                                                         ("news.b", [3])]
    ids = [parse_id(m["id"]) for m in got]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_overlapping_patterns_deliver_each_message_once(start_gateway, publish):
    gw = start_gateway({"expose_channels": ["news.*", "*.a", "news.a"]})
    stream = gw.events("news.a")
    stream.wait_status("up")
    publish("news.a", {"n": 1})
    publish("news.a", {"n": 2})
    assert stream.next_message(timeout=2)["data"] == {"n": 1}
    assert stream.next_message(timeout=2)["data"] == {"n": 2}
    publish("news.a", {"n": 3})
    assert stream.next_message(timeout=2)["data"] == {"n": 3}


def test_malformed_broadcast_is_dropped_and_the_stream_goes_on(start_gateway, publish, redis_url):
    import redis

    gw = start_gateway()
    stream = gw.events("news.a")
    stream.wait_status("up")
    redis.Redis.from_url(redis_url).publish("news.a", b"{not json")
    publish("news.a", {"ok": True})
    assert stream.next_message(timeout=2)["data"] == {"ok": True}


def test_broadcast_from_a_worker_reaches_the_browser(start_gateway, service):
    service("gateway_echo.py", "echo")
    gw = start_gateway()
    stream = gw.events("echo.tick")
    stream.wait_status("up")
    response = gw.post("/api/services/echo/announce", {"channel": "echo.tick", "data": {"t": 42}})
    assert response.status_code == 200
    assert stream.next_message(timeout=1)["data"] == {"t": 42}


def test_heartbeat_comment_keeps_an_idle_stream_alive(start_gateway):
    gw = start_gateway({"heartbeat": 0.2})
    stream = gw.events("news.a")
    stream.wait_status("up")
    stream.wait_comment("keepalive", timeout=2)


def test_channel_outside_the_exposed_patterns_is_403(start_gateway):
    gw = start_gateway()
    stream = gw.events("news.a", "private.x")
    assert stream.status == 403
    error = stream.body()["error"]
    assert error["code"] == "not_exposed" and "gateway.expose_channels" in error["message"]


def test_no_channel_is_400(start_gateway):
    gw = start_gateway()
    stream = gw.events()
    assert stream.status == 400
    assert stream.body()["error"]["code"] == "no_channel"


def test_twenty_streams_and_action_calls_together(start_gateway, service, publish):
    service("gateway_echo.py", "echo")
    gw = start_gateway()
    streams = [gw.events("news.live") for _ in range(20)]
    try:
        for stream in streams:
            stream.wait_status("up")
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: gw.post("/api/services/echo/echo", {"i": i}, timeout=10),
                                    range(48)))
        assert [a.status_code for a in answers] == [200] * 48
        assert [a.json()["result"]["i"] for a in answers] == list(range(48))
        assert gw.get("/api/health").json()["streams"] == 20
        started = time.monotonic()
        publish("news.live", {"all": True})
        for stream in streams:
            assert stream.next_message(timeout=2)["data"] == {"all": True}
        assert time.monotonic() - started < 2
    finally:
        for stream in streams:
            stream.close()


def test_stalled_stream_is_dropped_and_never_delays_the_others(start_gateway, publish, stalled_client):
    gw = start_gateway({"stream_queue": 8, "send_timeout": 2.0})
    stalled = stalled_client(gw.port, "news.big")
    # Read only the stream's start, so the gateway has registered it; then stop reading.
    head = b""
    while b"event: status" not in head:
        head += stalled.recv(4096)
    healthy = gw.events("news.big")
    healthy.wait_status("up")

    blob = "x" * 64 * 1024
    slowest = 0.0
    for batch in range(50):  # 200 events, 12.8 MB: far more than socket buffers hold
        started = time.monotonic()
        for i in range(4):  # fewer than stream_queue at a time: the healthy reader keeps up
            publish("news.big", {"n": batch * 4 + i, "blob": blob})
        for i in range(4):
            assert healthy.next_message(timeout=2)["data"]["n"] == batch * 4 + i
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 1.0
    health = gw.get("/api/health").json()
    assert health["dropped_streams"] == 1
    assert health["streams"] == 1


def test_streams_beyond_max_streams_get_503_and_actions_still_work(start_gateway, service):
    service("gateway_echo.py", "echo")
    gw = start_gateway({"threads": 4, "max_streams": 2})
    streams = [gw.events("news.a") for _ in range(2)]
    for stream in streams:
        stream.wait_status("up")
    extra = gw.events("news.a")
    assert extra.status == 503
    assert extra.body()["error"]["code"] == "too_many_streams"
    assert gw.post("/api/services/echo/echo", {"still": "served"}).json() == {"result": {"still": "served"}}
    assert gw.get("/api/health").json()["streams"] == 2
    for stream in streams:
        stream.close()
