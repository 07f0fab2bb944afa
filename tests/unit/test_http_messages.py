"""HttpRequest, HttpResponse and the handler return rules (daebus.http.messages)."""

import datetime
import decimal
import json

import pytest

from daebus import HttpRequest, HttpResponse
from daebus.http import HttpError
from daebus.http.handling import make_response


def test_request_parses_json_query_and_params():
    req = HttpRequest("post", "/devices/7", {"Content-Type": "application/json; charset=utf-8"},
                      b'{"on": true}', "verbose=1&tag=a&tag=b", params={"device_id": 7})
    assert req.method == "POST"
    assert req.json == {"on": True}
    assert req.payload == {"on": True}
    assert req.query == {"verbose": "1", "tag": "a"}
    assert req.params == {"verbose": "1", "tag": "a", "device_id": 7}
    assert req.body == b'{"on": true}'
    assert req.form == {}


def test_path_parameters_win_over_query_values():
    req = HttpRequest("GET", "/d/5", query_string="device_id=99&x=1")
    req.set_path_params({"device_id": 5}, "/d/<int:device_id>")
    assert req.params == {"device_id": 5, "x": "1"}
    assert req.route == "/d/<int:device_id>"


def test_payload_is_json_else_form_else_query():
    form = HttpRequest("POST", "/", {"Content-Type": "application/x-www-form-urlencoded"},
                       b"name=Ada+L&x=%C3%A9", "q=1")
    assert form.form == {"name": "Ada L", "x": "\u00e9"}
    assert form.payload == form.form
    assert HttpRequest("GET", "/", query_string="q=1").payload == {"q": "1"}
    # A JSON body that is falsy is still the payload.
    assert HttpRequest("POST", "/", {"Content-Type": "application/json"}, b"[]", "q=1").payload == []
    # Other bodies are only bytes.
    assert HttpRequest("POST", "/", {"Content-Type": "text/plain"}, b"{}", "q=1").json is None


@pytest.mark.parametrize("body", [b"{bad", b'{"a": 1', b"\xff\xfe", b"nul"])
def test_malformed_json_is_a_400(body):
    with pytest.raises(HttpError) as exc:
        HttpRequest("POST", "/", {"Content-Type": "application/json"}, body)
    assert exc.value.status == 400
    assert exc.value.code == "bad_request"


def test_vendor_json_types_are_parsed():
    req = HttpRequest("POST", "/", {"Content-Type": "application/merge-patch+json"}, b'{"a": null}')
    assert req.json == {"a": None}


def test_send_encodes_with_the_pubsub_encoder():
    resp = HttpResponse(None)
    assert resp.send({"when": datetime.datetime(2024, 5, 1, 12, 0), "price": decimal.Decimal("1.50"),
                      "tags": {"a"}, "raw": b"xy"}, 201) is resp
    assert resp.status == 201
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(resp.body) == {"when": "2024-05-01T12:00:00", "price": "1.50", "tags": ["a"], "raw": "xy"}


def test_send_picks_a_content_type_per_body_kind():
    assert HttpResponse().send("<b>hi</b>").headers["Content-Type"] == "text/html; charset=utf-8"
    assert HttpResponse().send(b"\x00\x01").headers["Content-Type"] == "application/octet-stream"
    resp = HttpResponse().send("a,b", 200, {"Content-Type": "text/csv", "X-Rows": 1})
    assert resp.headers["Content-Type"] == "text/csv" and resp.headers["X-Rows"] == "1"
    empty = HttpResponse().send(None, 202)
    assert (empty.status, empty.body, "Content-Type" in empty.headers) == (202, b"", False)


def test_send_once_and_a_failed_send_leaves_the_response_unsent():
    resp = HttpResponse()
    with pytest.raises(TypeError):
        resp.send({"x": object()})
    assert not resp.sent
    with pytest.raises(ValueError):
        resp.send({}, 99)
    assert not resp.sent
    resp.send({"ok": True})
    with pytest.raises(RuntimeError, match="already sent"):
        resp.send({"again": True})


@pytest.mark.parametrize("result, status, body", [
    ({"a": 1}, 200, b'{"a":1}'),
    ([1, 2], 200, b"[1,2]"),
    ("text", 200, b"text"),
    (b"bytes", 200, b"bytes"),
    (None, 204, b""),
    (({"a": 1}, 201), 201, b'{"a":1}'),
    (("gone", 410, {"X-Why": "old"}), 410, b"gone"),
    (({"a": 1}, {"X-Why": "h"}), 200, b'{"a":1}'),
    (7, 200, b"7"),
])
def test_make_response_converts_return_values(result, status, body):
    resp = make_response(result, HttpResponse())
    assert (resp.status, resp.body) == (status, body)
    if isinstance(result, tuple) and isinstance(result[-1], dict):
        assert resp.headers["X-Why"] in ("old", "h")


def test_what_was_sent_wins_over_the_return_value():
    bound = HttpResponse()
    bound.send({"sent": True}, 202)
    assert make_response({"returned": True}, bound) is bound
    other = HttpResponse(None).send({"custom": True}, 200)
    assert make_response(other, bound) is other


@pytest.mark.parametrize("result", [(1,), (1, 2, 3, 4), ({}, {"X": "1"}, 3), ({}, 1000), ({}, "200")])
def test_make_response_refuses_malformed_tuples(result):
    with pytest.raises((TypeError, ValueError)):
        make_response(result, HttpResponse())
