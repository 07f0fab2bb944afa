"""Following a promotion: the watch of the sentinels' announcements, and the
connections that refuse to be used once their master was replaced (daebus.bus.failover)."""

import time

import pytest
import redis

from daebus.bus import failover, sentinel


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def watch(redis_server):
    # A plain redis-server stands in for a sentinel: it carries +switch-master
    # like one, and cannot name the master (which the watch shrugs off).
    target = sentinel.parse(f"redis+sentinel://127.0.0.1:1,127.0.0.1:{redis_server.port}/bus")
    client = redis_server.client()
    before = client.pubsub_numsub(failover.SWITCH_CHANNEL)[0][1]   # other tests' watches live on
    watch = failover.MasterWatch(target)
    assert _wait(lambda: client.pubsub_numsub(failover.SWITCH_CHANNEL)[0][1] > before), \
        "the watch never subscribed (after skipping the unreachable sentinel)"
    return watch, client


def test_an_announced_switch_moves_the_master_and_garbage_does_not(watch):
    watch, client = watch
    for junk in ("", "bus 1.2.3.4", "other 127.0.0.1 1 127.0.0.1 2", "bus a b c notaport", "\xff" * 5):
        client.publish(failover.SWITCH_CHANNEL, junk)
    client.publish(failover.SWITCH_CHANNEL, "bus 127.0.0.1 6379 127.0.0.1 6380")
    assert watch.wait_for_change(None, 5)
    assert watch.address == ("127.0.0.1", 6380)
    assert watch.moved_from(("127.0.0.1", 6379)) and not watch.moved_from(("127.0.0.1", 6380))
    assert watch._thread.is_alive()


class FakeConnection:
    def __init__(self, host, port):
        self.host, self.port, self._sock = host, port, object()
        self.sent, self.disconnects = [], 0

    def disconnect(self):
        self.disconnects += 1
        self._sock = None

    def send_packed_command(self, command, check_health=True):
        self.sent.append((command, self._sock is not None))

    def can_read(self, timeout=0):
        return False


def test_a_connection_to_a_replaced_master_reconnects_before_sending_and_fails_a_poll(watch):
    watch, client = watch
    cls = failover.following(FakeConnection, watch)
    assert failover.following(FakeConnection, watch) is cls   # one class, however many clients
    old = cls("127.0.0.1", 6379)
    assert old.can_read(0) is False and old.disconnects == 0  # nothing known yet: left alone
    client.publish(failover.SWITCH_CHANNEL, "bus 127.0.0.1 6379 127.0.0.1 6380")
    assert watch.wait_for_change(None, 5)
    with pytest.raises(redis.ConnectionError, match="moved the master away from 127.0.0.1:6379"):
        old.can_read(0)
    assert old.disconnects == 1
    stale = cls("127.0.0.1", 6379)
    stale.send_packed_command(b"PING")
    assert stale.disconnects == 1 and stale.sent == [(b"PING", False)]   # sent after reconnecting
    current = cls("127.0.0.1", 6380)
    current.send_packed_command(b"PING")
    assert current.can_read(0) is False and current.disconnects == 0


def test_listeners_hear_of_a_move_and_are_held_weakly(watch):
    watch, client = watch

    class Reader:
        def __init__(self):
            self.moves = 0

        def moved(self):
            self.moves += 1

        def broken(self):
            raise RuntimeError("a listener that fails")

    reader, gone = Reader(), Reader()
    watch.on_move(reader.broken)
    watch.on_move(reader.moved)
    watch.on_move(gone.moved)
    del gone
    client.publish(failover.SWITCH_CHANNEL, "bus 127.0.0.1 6379 127.0.0.1 6380")   # first heard: no move
    assert watch.wait_for_change(None, 5)
    client.publish(failover.SWITCH_CHANNEL, "bus 127.0.0.1 6380 127.0.0.1 6381")
    assert watch.wait_for_change(("127.0.0.1", 6380), 5)
    assert _wait(lambda: reader.moves == 1)
    assert len(watch._listeners) == 2 and watch._thread.is_alive()
