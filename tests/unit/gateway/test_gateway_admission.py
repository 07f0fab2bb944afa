"""Which requests a reconnect storm's admission counts, and how it spaces the rest (gateway.admission)."""

import pytest

from gateway.admission import SLOT_JITTER, Admission, busy_answer, resumes_stream


@pytest.mark.parametrize("head, resumes", [
    (b"GET /api/events?channel=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 17-0\r\n\r\n", True),
    (b"GET /api/events?channel=a HTTP/1.1\r\nHost: x\r\nlast-event-id:17-0\r\n\r\n", True),
    (b"GET /api/events?channel=a&last_event_id=17-0 HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (b"\r\nGET /api/events?last_event_id=1-0&channel=a HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (b"GET /api/events?channel=a HTTP/1.1\r\nHost: x\r\n\r\n", False),                # fresh: nothing to replay
    (b"GET /api/events?channel=a HTTP/1.1\r\nLast-Event-ID: \r\n\r\n", False),        # empty id
    (b"GET /api/events?channel=a&last_event_id= HTTP/1.1\r\nHost: x\r\n\r\n", False),
    (b"POST /api/events HTTP/1.1\r\nLast-Event-ID: 1-0\r\n\r\n", False),
    (b"GET /api/eventsx?last_event_id=1-0 HTTP/1.1\r\n\r\n", False),
    (b"GET /api/services HTTP/1.1\r\nX-Last-Event-ID: 1-0\r\n\r\n", False),
    (b"garbage", False),
])
def test_resumes_stream(head, resumes):
    assert resumes_stream(head) is resumes


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_burst_is_admitted_then_the_rest_get_slots_spaced_at_the_rate():
    clock = Clock()
    gate = Admission(rate=10, burst=3, clock=clock)
    assert [gate.admit() for _ in range(3)] == [None, None, None]
    waits = [gate.admit() for _ in range(5)]
    for n, wait in enumerate(waits, 1):
        assert n * 0.1 <= wait <= n * 0.1 + SLOT_JITTER
    assert (gate.admitted, gate.deferred) == (3, 5)


def test_pages_that_come_back_at_their_slot_are_admitted():
    clock = Clock()
    gate = Admission(rate=10, burst=2, clock=clock)
    waits = [gate.admit() for _ in range(40)]
    returns = sorted(clock.now + w for w in waits if w is not None)
    admitted_again = 0
    for at in returns:
        clock.now = at
        admitted_again += gate.admit() is None
    assert admitted_again == len(returns)   # nobody sent to the back of the line twice


def test_the_line_empties_once_the_storm_is_over():
    clock = Clock()
    gate = Admission(rate=10, burst=2, clock=clock)
    for _ in range(20):
        gate.admit()
    clock.now += 60
    assert [gate.admit() for _ in range(2)] == [None, None]


def test_the_busy_answer_is_a_whole_event_stream_naming_the_wait():
    answer = busy_answer(2.3456)
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/event-stream" in head and b"Connection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert body == b'retry: 2345\nevent: busy\ndata: {"retry_ms":2345}\n\n'
