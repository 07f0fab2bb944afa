"""Action calls with ``Accept: text/event-stream``: progress, then one final event."""

import json
import socket
import time

import requests

EVENTS = {"Accept": "text/event-stream"}


def call_events(gateway, path, payload, **kwargs):
    """POST as a page asking for events; returns (response, [(event, data)])."""
    response = requests.post(gateway.url + path, json=payload, headers=EVENTS, stream=True,
                             timeout=15, **kwargs)
    if response.headers["Content-Type"] != "text/event-stream; charset=utf-8":
        return response, None
    events, event = [], {}
    for raw in response.iter_lines(decode_unicode=True):
        if raw == "":
            if event:
                events.append((event.get("event", "message"), json.loads(event["data"])))
            event = {}
        elif not raw.startswith(":"):
            field, _, value = raw.partition(": ")
            event[field] = value
    return response, events


def test_progress_replies_arrive_in_order_then_the_result(shared_gateway):
    response, events = call_events(shared_gateway, "/api/services/echo/steps", {"count": 5})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"
    assert events == [("progress", {"step": i, "progress_percentage": 20.0 * i}) for i in range(1, 6)] \
        + [("result", {"result": {"steps": 5}})]


def test_json_clients_get_only_the_result(shared_gateway):
    response = shared_gateway.post("/api/services/echo/steps", {"count": 3})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"result": {"steps": 3}}
    # A browser's fetch() sends */*: JSON too.
    response = shared_gateway.post("/api/services/echo/steps", {"count": 2}, headers={"Accept": "*/*"})
    assert response.json() == {"result": {"steps": 2}}


def test_an_error_after_progress_is_an_error_event_with_its_status(shared_gateway):
    response, events = call_events(shared_gateway, "/api/services/echo/steps", {"count": 2, "fail": True})
    assert response.status_code == 200
    assert [kind for kind, _ in events] == ["progress", "progress", "error"]
    assert events[-1][1] == {"error": {"code": "bad_request", "message": "failed after 2 steps"},
                             "status": 400}


def test_a_timeout_after_progress_is_an_error_event(shared_gateway):
    response, events = call_events(shared_gateway, "/api/services/echo/steps?timeout=1",
                                   {"count": 3, "pause": 0.8})
    assert [kind for kind, _ in events][:1] == ["progress"]
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["code"] == "timeout" and events[-1][1]["status"] == 504


def test_errors_before_any_progress_stay_json_with_their_status(shared_gateway):
    response, events = call_events(shared_gateway, "/api/services/ghost/anything", {})
    assert events is None
    assert response.status_code == 503 and response.json()["error"]["code"] == "service_unavailable"
    response, events = call_events(shared_gateway, "/api/services/echo/reject", {})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"
    response, events = call_events(shared_gateway, "/api/services/nope/x", {})
    assert response.status_code == 403 and response.json()["error"]["code"] == "not_exposed"


def test_an_answer_without_progress_is_one_result_event(shared_gateway):
    response, events = call_events(shared_gateway, "/api/services/echo/echo", {"a": 1})
    assert events == [("result", {"result": {"a": 1}})]


def test_a_page_that_leaves_or_never_reads_costs_nothing_lasting(shared_gateway):
    port = int(shared_gateway.url.rsplit(":", 1)[1])
    body = json.dumps({"count": 3000, "pause": 0}).encode()
    request = (f"POST /api/services/echo/steps HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Accept: text/event-stream\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    stalled, gone = socket.socket(), socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        for sock in (stalled, gone):
            sock.connect(("127.0.0.1", port))
            sock.sendall(request)
        assert gone.recv(64).startswith(b"HTTP/1.1 200")
        gone.close()  # left after the first bytes
        # Thousands of progress replies towards a reader that never reads
        # and one that left: calls and health still answer at once.
        started = time.monotonic()
        assert shared_gateway.post("/api/services/echo/echo", {"b": 2}).json() == {"result": {"b": 2}}
        assert shared_gateway.get("/api/health").status_code == 200
        assert time.monotonic() - started < 5
    finally:
        stalled.close()
        gone.close()
    # Once both calls are over, a streamed call works as before.
    response, events = call_events(shared_gateway, "/api/services/echo/steps", {"count": 2})
    assert [kind for kind, _ in events] == ["progress", "progress", "result"]
