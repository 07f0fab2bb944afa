"""Kept events: ids, announcements, declarations and the publisher's choice."""

import json

import fakeredis

from daebus.bus.kept import (DECLARATIONS, KeepingPublisher, format_id, live_rules, parse_id,
                             parse_notice)


def test_ids_parse_only_in_their_one_form():
    assert parse_id("1700000000000-3") == (1700000000000, 3)
    assert parse_id(b"5-0") == (5, 0)
    assert format_id((5, 0)) == "5-0"
    for bad in ("", "5", "5-", "-1-0", "1-2-3", "a-b", " 5-0", "5-0\n", "9" * 30 + "-0", None, 5):
        assert parse_id(bad) is None, bad


def test_a_notice_carries_id_channel_and_payload_even_with_spaces_in_the_channel():
    channel = "ünï code channel"
    data = f"7-1 {len(channel.encode())} {channel}".encode() + b'{"a": 1}'
    assert parse_notice(data) == ("7-1", channel, b'{"a": 1}')
    for bad in (b"", b"7-1", b"7-1 x chan", b"x 4 chan{}", b"7-1 99 short"):
        assert parse_notice(bad) is None, bad


def test_only_declarations_in_force_count():
    raw = {b"news.*": json.dumps({"count": 5, "age": 60, "since": "1-0", "until": 2000}),
           b"old.*": json.dumps({"count": 5, "age": 60, "since": "1-0", "until": 999}),
           b"odd": b"not json", b"zero": json.dumps({"count": 0, "age": 60, "until": 5000})}
    assert [pattern for pattern, _ in live_rules(raw, 1000)] == ["news.*"]


def test_a_channel_nobody_declared_is_published_as_before():
    client = fakeredis.FakeRedis()
    sent = []
    publish = KeepingPublisher(client, lambda channel, text: sent.append((channel, text)) or 1)
    assert publish("news.a", '{"n": 1}') == 1
    assert sent == [("news.a", '{"n": 1}')]
    assert not client.exists("daebus:kept:news.a")


def test_the_largest_declaration_matching_a_channel_wins():
    client = fakeredis.FakeRedis()
    seconds, _ = client.time()
    until = (int(seconds) + 60) * 1000
    client.hset(DECLARATIONS, mapping={
        "news.*": json.dumps({"count": 5, "age": 10, "since": "1-0", "until": until}),
        "*.a": json.dumps({"count": 50, "age": 1, "since": "1-0", "until": until}),
    })
    keeper = KeepingPublisher(client, lambda channel, text: 0)
    assert keeper._rule("news.a") == (50, 10_000)
    assert keeper._rule("news.b") == (5, 10_000)
    assert keeper._rule("other") is None


def test_a_publisher_refused_by_an_acl_publishes_unkept_and_says_so_once(caplog):
    import redis

    class Refusing(fakeredis.FakeRedis):
        def pipeline(self, *args, **kwargs):
            raise redis.ResponseError("NOPERM this user has no permissions to run the 'hgetall' command")

    sent = []
    publish = KeepingPublisher(Refusing(), lambda channel, text: sent.append(channel) or 1)
    assert publish("news.a", "{}") == 1 and publish("news.b", "{}") == 1
    assert sent == ["news.a", "news.b"]
    assert len([r for r in caplog.records if "unkept" in r.getMessage()]) == 1
