"""Schemas at the gateway: invalid payloads are answered 400 with the paths
and never published; the service list and the OpenAPI and AsyncAPI
documents show them."""

import json

import pytest
import redis

from support import Service


@pytest.fixture
def contracts(redis_url):
    svc = Service("contracts.py", redis_url)
    yield svc
    svc.close()


@pytest.fixture
def gateway(start_gateway, contracts):
    return start_gateway({"expose_actions": ["contracts/set_alarm", "echo/*"], "expose_channels": ["alarms"]},
                         expose=False)


def test_an_invalid_payload_is_400_with_the_paths_and_nothing_is_published(gateway, redis_url):
    bus = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    bus.subscribe("contracts")  # sees every request published for the service
    bus.get_message(timeout=5)
    response = gateway.post("/api/services/contracts/set_alarm", {"hour": -1, "days": "mon"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert error["details"] == [
        {"path": "$.days", "message": "'mon' is not of type 'array'"},
        {"path": "$.hour", "message": "-1 is less than the minimum of 0"},
    ]
    assert "$.days" in error["message"] and "$.hour" in error["message"]
    # A valid request afterwards is the first thing published on the service channel.
    response = gateway.post("/api/services/contracts/set_alarm", {"hour": 7})
    assert response.status_code == 200 and response.json() == {"result": {"hour": 7}}
    published = []
    while (message := bus.get_message(timeout=1)) is not None:
        published.append(json.loads(message["data"]))
    bus.close()
    assert [m["payload"] for m in published] == [{"hour": 7}]


def test_services_lists_the_schemas(gateway):
    [info] = [s for s in gateway.get("/api/services").json()["services"] if s["name"] == "contracts"]
    assert info["actions"] == ["set_alarm"]
    assert info["schemas"]["actions"]["set_alarm"]["payload"]["required"] == ["hour"]
    assert "secret" not in info["schemas"]["actions"]
    assert info["schemas"]["channels"] == {"alarms": {"type": "object", "required": ["id"]}}


def test_openapi_document_validates_and_lists_only_exposed_actions(gateway):
    # A test dependency (pyproject's test extra); the appliance tier runs this
    # suite with Debian's packages, where only the unit tier's copy of this check runs.
    validator = pytest.importorskip("openapi_spec_validator")
    response = gateway.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    validator.validate(doc, cls=validator.OpenAPIV31SpecValidator)
    assert list(doc["paths"]) == ["/api/services/contracts/set_alarm"]
    body = doc["paths"]["/api/services/contracts/set_alarm"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["properties"]["hour"]["maximum"] == 23


def test_asyncapi_document_validates_and_lists_only_exposed_names(gateway):
    from asyncapi_check import payload_validator, problems

    response = gateway.get("/api/asyncapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert problems(doc) == []
    # The gateway's test services may be running too; none of them is exposed here.
    assert sorted(doc["operations"]) == ["contracts.on.alarms", "contracts.set_alarm"]
    assert sorted(doc["channels"]) == ["alarms", "contracts", "contracts.replies"]
    assert "secret" not in response.text
    check = payload_validator(doc, "/channels/contracts/messages/set_alarm/payload")
    assert check.is_valid({"action": "set_alarm", "payload": {"hour": 7}, "reply_to": "caller:gw:1",
                           "request_id": "1"})
    assert not check.is_valid({"action": "set_alarm", "payload": {"hour": 24}})


def test_an_event_stream_request_gets_the_same_400(gateway):
    response = gateway.post("/api/services/contracts/set_alarm", {"hour": 99},
                            headers={"Accept": "text/event-stream"})
    assert response.status_code == 400 and response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["details"] == [{"path": "$.hour",
                                                    "message": "99 is greater than the maximum of 23"}]
