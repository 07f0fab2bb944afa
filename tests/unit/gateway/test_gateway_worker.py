"""What the gateway's worker waits for before a thread gets a connection (gateway.worker)."""

import pytest

from gateway.worker import MAX_HEAD, request_ready


@pytest.mark.parametrize("data, ready", [
    (b"", False),
    (b"GET / HTTP/1.1\r\nHost: x\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabc", False),
    (b"POST / HTTP/1.1\r\nHost: x\r\ncontent-length : 5\r\n\r\nabcde", True),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n", True),   # the app's 413
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n", True),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * (MAX_HEAD // 6 + 1), None),          # too large: 431
])
def test_request_ready(data, ready):
    assert request_ready(data, max_body=1000) is ready
