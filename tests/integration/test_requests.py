"""Request/reply against a real redis-server and a service in a subprocess."""

import concurrent.futures
import time

import pytest

from daebus import ActionNotFound, BadRequest, DaebusCaller, RemoteError, RequestTimeout, ServiceUnavailable


@pytest.fixture
def basic(service):
    return service("basic.py", "basic")


@pytest.fixture
def caller(redis_url, basic):
    with DaebusCaller("basic", redis_url=redis_url, timeout=10) as c:
        yield c


def test_echo_returns_the_payload(caller):
    assert caller.send_request("echo", {"a": 1})["echo"] == {"a": 1}


def test_progress_reaches_on_progress_before_the_result(caller):
    seen = []
    result = caller.send_request("progress", {}, on_progress=seen.append)
    assert result == {"done": True}
    assert [p["step"] for p in seen] == [0, 1, 2]
    assert [p["progress_percentage"] for p in seen] == [25.0, 50.0, 75.0]


def test_unknown_action_is_an_error_reply_not_a_timeout(caller):
    with pytest.raises(ActionNotFound) as info:
        caller.send_request("no_such_action", {}, timeout=30)
    assert info.value.code == "action_not_found"
    assert "no_such_action" in str(info.value)


def test_handler_exception_is_a_handler_error_reply(caller, basic):
    with pytest.raises(RemoteError) as info:
        caller.send_request("boom", {}, timeout=30)
    assert info.value.code == "handler_error"
    assert str(info.value) == "kaput"
    assert "Traceback" not in str(info.value.payload)
    assert "Traceback" in basic.log and "ValueError: kaput" in basic.log


def test_bad_request_raised_by_a_handler_keeps_its_code(caller):
    with pytest.raises(RemoteError) as info:
        caller.send_request("invalid", {}, timeout=30)
    assert info.value.code == BadRequest.code


def test_returned_value_is_sent_as_success(caller):
    assert caller.send_request("value", {}) == [1, 2, 3]


def test_none_returned_is_a_null_success(caller):
    assert caller.send_request("nothing", {}) is None


def test_non_json_types_are_encoded(caller):
    assert caller.send_request("odd_types", {}) == {
        "when": "2026-01-02T03:04:05+00:00", "price": "1.10", "tags": ["a"],
        "raw": "/wA=", "text": "hi"}


def test_unencodable_reply_becomes_an_error_reply(caller):
    with pytest.raises(RemoteError) as info:
        caller.send_request("unencodable", {}, timeout=30)
    assert info.value.code == "handler_error"
    assert "not JSON serializable" in str(info.value)


def test_no_subscriber_raises_service_unavailable_at_once(redis_url):
    caller = DaebusCaller("nobody_listens", redis_url=redis_url)
    with pytest.raises(ServiceUnavailable):
        # A timeout far above the test's own limit: only an immediate answer passes.
        caller.send_request("anything", {}, timeout=3600)


def test_silent_service_raises_request_timeout(caller):
    with pytest.raises(RequestTimeout) as info:
        caller.send_request("slow", {"seconds": 2}, timeout=0.2)
    assert isinstance(info.value, TimeoutError)


def test_concurrent_callers_each_get_their_own_reply(caller):
    def call(i):
        reply = caller.send_request("slow", {"seconds": 0.2, "tag": i}, timeout=30)
        return i, reply["tag"]

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(call, range(32)))
    assert all(sent == got for sent, got in results)


def test_concurrent_requests_see_their_own_request_objects(caller):
    def call(i):
        return i, caller.send_request("echo", {"i": i})

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(call, range(200)))
    assert all(reply["echo"] == {"i": i} for i, reply in results)
    assert len({reply["request_id"] for _, reply in results}) == 200


def test_thread_safe_counter_counts_each_number_once(caller):
    n = 100
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        counts = list(pool.map(lambda _: caller.send_request("increment", {})["count"], range(n)))
    assert sorted(counts) == list(range(1, n + 1))


def test_many_callers_in_one_process_share_one_reply_subscription(redis_url, basic, redis_server):
    DaebusCaller("basic", redis_url=redis_url).send_request("echo", {})
    before = set(redis_server.client().pubsub_channels("caller:*"))
    callers = [DaebusCaller("basic", redis_url=redis_url) for _ in range(5)]
    for c in callers:
        c.send_request("echo", {})
    assert set(redis_server.client().pubsub_channels("caller:*")) == before


def test_send_to_service_delivers_without_waiting(redis_url, basic, caller, redis_server):
    redis_server.client().delete("received")
    # The 0.0.x form: payload keys beside "action", no reply expected.
    assert caller.send_to_service({"n": 7}, action="announce") == 1
    deadline = time.monotonic() + 10
    while "action" not in caller.send_request("received", {}):
        assert time.monotonic() < deadline, "announce never ran"


def test_closed_caller_refuses_work_and_close_is_idempotent(redis_url, basic):
    caller = DaebusCaller("basic", redis_url=redis_url)
    caller.close()
    caller.close()
    with pytest.raises(Exception, match="closed"):
        caller.send_request("echo", {})
