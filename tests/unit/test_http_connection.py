"""Reading requests off a socket under size and time limits (daebus.http.connection)."""

import socket
import threading
import time

import pytest

from daebus.http import HttpError
from daebus.http.connection import Connection, Limits, Timeout


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    yield Connection(server, ("127.0.0.1", 1234)), client
    server.close()
    client.close()


def soon(seconds=5.0):
    return time.monotonic() + seconds


def test_pipelined_requests_are_read_one_at_a_time(pair):
    conn, client = pair
    client.sendall(b"\r\nPOST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                   b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = conn.read_request(Limits(), soon())
    assert (head.method, head.target, body) == ("POST", "/a", b"abc")
    assert conn.has_data
    head, body = conn.read_request(Limits(), soon())
    assert (head.target, body, conn.has_data) == ("/b", b"", False)


def test_clean_close_between_requests_is_none(pair):
    conn, client = pair
    client.shutdown(socket.SHUT_WR)
    assert conn.read_request(Limits(), soon()) is None


def test_close_in_the_middle_is_a_400(pair):
    conn, client = pair
    client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    client.shutdown(socket.SHUT_WR)
    with pytest.raises(HttpError) as exc:
        conn.read_request(Limits(), soon())
    assert exc.value.status == 400


def test_chunked_body(pair):
    conn, client = pair
    client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n")
    head, body = conn.read_request(Limits(), soon())
    assert body == b"Wikipedia" and not conn.has_data


@pytest.mark.parametrize("chunks", [b"zz\r\n", b"-1\r\n", b"4\r\nWikiXX\r\n", b"0x5\r\nhello\r\n",
                                    b"+5\r\nhello\r\n", b" 5\r\nhello\r\n", b"5_0\r\n",
                                    b"\r\n", b"11111111111111111\r\n"])
def test_bad_chunks_are_a_400(pair, chunks):
    conn, client = pair
    client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    with pytest.raises(HttpError) as exc:
        conn.read_request(Limits(), soon())
    assert exc.value.status == 400


def test_chunked_body_over_the_limit_is_a_413(pair):
    conn, client = pair
    client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"10\r\n0123456789abcdef\r\n10\r\n")
    with pytest.raises(HttpError) as exc:
        conn.read_request(Limits(max_body=20), soon())
    assert exc.value.status == 413


def test_oversized_body_is_refused_before_it_is_sent(pair):
    conn, client = pair
    client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n")
    started = time.monotonic()
    with pytest.raises(HttpError) as exc:
        conn.read_request(Limits(), soon())
    assert exc.value.status == 413
    assert time.monotonic() - started < 1


def test_expect_100_continue_is_answered_only_for_acceptable_bodies(pair):
    conn, client = pair
    client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    result = {}
    reader = threading.Thread(target=lambda: result.update(req=conn.read_request(Limits(), soon())))
    reader.start()
    client.settimeout(5)
    assert client.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.sendall(b"ok")
    reader.join(5)
    assert result["req"][1] == b"ok"
    client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 99\r\n\r\n")
    with pytest.raises(HttpError) as exc:
        conn.read_request(Limits(max_body=10), soon())
    assert exc.value.status == 413


def test_huge_head_is_a_431(pair):
    conn, client = pair
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000)
    with pytest.raises(HttpError) as exc:
        conn.read_request(Limits(), soon())
    assert exc.value.status == 431


def test_deadline_covers_the_whole_request(pair):
    conn, client = pair
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    with pytest.raises(Timeout) as exc:
        conn.read_request(Limits(), soon(0.3))
    assert exc.value.partial
    assert 0.25 < time.monotonic() - started < 2


def test_idle_timeout_is_not_partial(pair):
    conn, _ = pair
    with pytest.raises(Timeout) as exc:
        conn.read_request(Limits(), soon(0.05))
    assert not exc.value.partial


def test_lingering_close_lets_the_client_read_the_answer(pair):
    conn, client = pair
    client.sendall(b"x" * 1000)
    conn.send(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n", 5)
    closer = threading.Thread(target=conn.close, args=(5.0,))
    closer.start()
    client.settimeout(5)
    assert client.recv(100).startswith(b"HTTP/1.1 413")
    assert client.recv(100) == b""  # the server half-closed
    client.close()
    closer.join(5)
    assert not closer.is_alive()


def test_chunk_size_may_carry_spaces_and_an_extension_after_it(pair):
    conn, client = pair
    client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5 ;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n")
    head, body = conn.read_request(Limits(), soon())
    assert body == b"hello0123456789"


def test_request_buffered_waits_for_the_head_and_a_content_length_body(pair):
    conn, client = pair
    limits = Limits(max_head=1024)
    steps = [(b"\r\nGET / HTTP/1.1\r\nHost: x\r\n", False), (b"Content-Length: 3\r\n\r\n", False),
             (b"ab", False), (b"c", True)]
    for data, ready in steps:
        client.sendall(data)
        while conn.fill_nowait() is None:
            time.sleep(0.001)
        assert conn.request_buffered(limits) is ready


@pytest.mark.parametrize("data", [
    b"x" * 2000,                                                            # a head over the limit
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",          # refused at once
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",     # the handler reads chunks
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n",
])
def test_request_buffered_hands_over_what_the_handler_must_answer_itself(pair, data):
    conn, client = pair
    conn.buf += data
    assert conn.request_buffered(Limits(max_head=1024))


def test_fill_nowait_never_waits(pair):
    conn, client = pair
    started = time.monotonic()
    assert conn.fill_nowait() is None
    client.close()
    assert conn.fill_nowait() == 0
    assert time.monotonic() - started < 0.5
