"""Event streams end when their browser is gone or stops reading (gateway.streamguard)."""

import socket
import threading
import time

from gateway.streamguard import PeerWatch, guard, writable


def test_peer_watch_reports_a_closed_peer_at_once():
    watch = PeerWatch()
    server, client = socket.socketpair()
    gone = threading.Event()
    watch.watch(server, gone.set)
    assert not gone.wait(0.2)
    client.close()
    assert gone.wait(2)
    server.close()


def test_peer_watch_stops_watching_a_socket_that_sends_bytes():
    watch = PeerWatch()
    server, client = socket.socketpair()
    gone = threading.Event()
    watch.watch(server, gone.set)
    client.sendall(b"x")
    deadline = time.monotonic() + 2
    while server.fileno() in watch._selector.get_map():
        assert time.monotonic() < deadline, "still watched"
        time.sleep(0.01)
    client.close()
    assert not gone.wait(0.3)  # no longer watched: it can't spin on the unread byte
    server.close()


def test_guard_aborts_a_stream_whose_reader_stopped():
    server, client = socket.socketpair()
    server.setblocking(False)
    while True:  # fill every buffer: the reader has stopped reading
        try:
            server.send(b"x" * 65536)
        except BlockingIOError:
            break
    assert not writable(server, 0)
    closed = []

    def body():
        try:
            yield b"event"
            yield b"never"
        finally:
            closed.append(True)

    started = time.monotonic()
    assert list(guard(body(), server, 0.3)) == []
    assert 0.25 < time.monotonic() - started < 2
    assert closed == [True]
    try:
        server.send(b"more", socket.MSG_DONTWAIT)
        raise AssertionError("the socket still takes writes")
    except OSError:
        pass
    server.close()
    client.close()


def test_guard_passes_chunks_through_while_the_reader_reads():
    server, client = socket.socketpair()
    assert list(guard(iter([b"a", b"b"]), server, 1.0)) == [b"a", b"b"]
    assert list(guard(iter([b"c"]), None, 1.0)) == [b"c"]
    server.close()
    client.close()
