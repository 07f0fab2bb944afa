"""The gateway's AsyncAPI 3.0 document: what it exposes, and nothing else."""

import json
import logging

import fakeredis
import pytest

from asyncapi_check import problems
from daebus.bus import registry

POINT = {"type": "object", "required": ["x"], "properties": {"x": {"type": "integer", "minimum": 0}}}


@pytest.fixture
def redis():
    return fakeredis.FakeRedis(decode_responses=True)


def register(redis, name, actions, schemas, channels=()):
    registry.publish(redis, registry.record(name, actions=actions, channels=channels, version="1",
                                            started_at=1.0, status="running", schemas=schemas), 30)


def test_the_document_is_valid_and_lists_only_exposed_names(make_app, redis, monkeypatch):
    app, gateway = make_app(expose_actions=["echo/*", "other/public"], expose_channels=["news.*"])
    monkeypatch.setattr(gateway, "services", lambda: registry.list_services(redis))
    register(redis, "echo", ["move", "plain"], {"actions": {"move": {"payload": POINT, "reply": {"type": "string"}}},
                                                "channels": {"news.a": POINT, "private.b": POINT}},
             channels=["news.a", "private.b"])
    register(redis, "other", ["public", "hushed"], {"actions": {"hushed": {"payload": POINT}}})
    register(redis, "hidden", ["anything"], {}, channels=["secret.x"])
    response = app.test_client().get("/api/asyncapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    doc = response.get_json()
    assert problems(doc) == []
    assert sorted(doc["operations"]) == ["echo.move", "echo.on.news.a", "echo.plain", "other.public"]
    assert sorted(doc["channels"]) == ["echo", "echo.replies", "news.a", "other", "other.replies"]
    assert [t["name"] for t in doc["info"]["tags"]] == ["echo", "other"]
    text = json.dumps(doc)
    for secret in ("hushed", "private.b", "hidden", "anything", "secret.x"):
        assert secret not in text
    assert "servers" not in doc  # the bus is not for browsers to reach
    move = doc["channels"]["echo"]["messages"]["move"]["payload"]["schema"]["properties"]["payload"]
    assert move == POINT


def test_a_bad_schema_leaves_a_valid_document_a_note_and_one_log_line(make_app, redis, monkeypatch, caplog):
    app, gateway = make_app(expose_actions=["echo/move"], expose_channels=[])
    monkeypatch.setattr(gateway, "services", lambda: registry.list_services(redis))
    register(redis, "echo", ["move", "unexposed"], {"actions": {"move": {"payload": {"type": "nope"}},
                                                                "unexposed": {"payload": {"type": 1}}}})
    # A garbled record of a service with nothing exposed is not named either.
    redis.hset(registry.key("garbled"), mapping={"name": "garbled", "actions": '{"a": 1}', "schemas": "[1"})
    caplog.set_level(logging.WARNING, logger="gateway")
    client = app.test_client()
    docs = [client.get("/api/asyncapi.json").get_json() for _ in range(3)]
    assert problems(docs[0]) == []
    said = ["service 'echo' action 'move': invalid JSON Schema at $.type: 'nope' is not valid under any of the "
            "given schemas; the document leaves it open"]
    assert all(doc["info"]["x-daebus-problems"] == said for doc in docs)
    assert [r.getMessage() for r in caplog.records if "asyncapi" in r.getMessage()] == \
        [f"asyncapi document: {said[0]}"]


def test_no_redis_is_a_503(make_app, monkeypatch):
    from daebus.errors import ConnectionLost

    app, gateway = make_app()

    def lost():
        raise ConnectionLost("cannot reach Redis")
    monkeypatch.setattr(gateway, "services", lost)
    response = app.test_client().get("/api/asyncapi.json")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "connection_lost"
