"""Handlers called in-process through daebus.testing, with fakeredis."""

import logging

import pytest

from daebus import BadRequest, Daebus, RemoteError, broadcast, cache, logger, request, response
from daebus.app.context import OutsideContextError
from daebus.testing import TestClient

app = Daebus("unit")


@app.action("greet")
def greet():
    return response.success({"message": f"Hello, {request.payload.get('name', 'World')}!"})


@app.action("returns")
def returns():
    return {"returned": True}


@app.action("silent")
def silent():
    pass


@app.action("twice")
def twice():
    response.success(1)
    response.success(2)


@app.action("fails")
def fails():
    raise KeyError("missing")


@app.action("rejects")
def rejects():
    raise BadRequest("no")


@app.action("steps")
def steps():
    response.progress("half", 50)
    return "done"


@app.action("remember")
def remember():
    cache.set("last", request.payload["value"])
    broadcast.send("remembered", {"value": request.payload["value"]})
    logger.info("remembered %s", request.payload["value"])
    return cache.get("last")


@app.listen("pings")
def on_ping(payload):
    broadcast.send("pongs", payload)


@pytest.fixture
def client():
    with TestClient(app) as c:
        yield c


def test_success_reply(client):
    assert client.call("greet", {"name": "Kiosk"}) == {"message": "Hello, Kiosk!"}


def test_returned_value_and_none_become_success(client):
    assert client.call("returns") == {"returned": True}
    reply = client.request("silent")
    assert reply.ok and reply.payload is None


def test_only_the_first_final_reply_is_sent(client):
    assert client.call("twice") == 1


def test_exception_becomes_handler_error(client, caplog):
    with caplog.at_level(logging.ERROR):
        with pytest.raises(RemoteError) as info:
            client.call("fails")
    assert info.value.code == "handler_error" and "missing" in str(info.value)
    assert any(r.exc_info for r in caplog.records)


def test_bad_request_code(client):
    assert client.request("rejects").payload == {"error": "no", "code": "bad_request"}


def test_unknown_action(client):
    assert client.request("nope").payload["code"] == "action_not_found"


def test_progress_is_recorded_before_the_result(client):
    reply = client.request("steps")
    assert reply.progress == [{"data": "half", "progress_percentage": 50.0}]
    assert reply.payload == "done"


def test_cache_broadcast_and_logger_work_in_handlers(client):
    assert client.call("remember", {"value": "x"}) == "x"
    assert client.broadcasts == [("remembered", {"value": "x"})]


def test_listener(client):
    assert client.publish("pings", {"n": 1}) == 1
    assert client.broadcasts == [("pongs", {"n": 1})]


def test_request_and_response_outside_a_handler_raise_a_clear_error():
    with pytest.raises(OutsideContextError, match="outside of a handler context"):
        request.payload
    with pytest.raises(OutsideContextError, match="outside of a handler context"):
        response.success({})


def test_broadcast_without_an_app_raises_a_clear_error():
    with pytest.raises(OutsideContextError, match="running Daebus app"):
        broadcast.send("x", {})


def test_broadcast_payload_must_be_a_dict(client):
    with pytest.raises(TypeError, match="must be a dict"):
        app.broadcaster.send("x", [1])
