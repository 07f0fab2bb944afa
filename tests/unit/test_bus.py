"""The process's bus per URL (daebus.bus.bus): what a URL's clients share,
and a forked child that shares none of it with its parent."""

import json
import os
import select
import signal
import time

import pytest

from daebus.bus import failover, transport
from daebus.bus.bus import Bus
from daebus.errors import ConfigError


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def _sentinel_url(redis_server, master="bus"):
    # A plain redis-server stands in for a sentinel (as in test_failover): it
    # carries +switch-master, and the watch shrugs off that it cannot name the master.
    return f"redis+sentinel://127.0.0.1:{redis_server.port}/{master}"


def _watchers(client) -> int:
    return client.pubsub_numsub(failover.SWITCH_CHANNEL)[0][1]


def test_clients_of_one_sentinel_url_share_its_sentinels_and_one_watch(redis_server):
    url = _sentinel_url(redis_server, "shared")
    first, second = transport.connect(url), transport.subscriber_client(url)
    bus = Bus.of(url)
    assert bus is Bus.of(url) and bus.sentinels is Bus.of(url).sentinels
    # One watch: the connections of every client test the same one (one class for all).
    assert first.connection_pool.connection_class is second.connection_pool.connection_class
    other = Bus.of(_sentinel_url(redis_server, "another"))
    assert other.sentinels is not bus.sentinels and other.sentinels.watch is not bus.sentinels.watch


def test_a_plain_url_has_no_sentinels_and_a_malformed_one_is_a_config_error(redis_server):
    assert Bus.of(redis_server.url).sentinels is None
    assert transport.connect(redis_server.url).ping()
    transport.on_master_move(redis_server.url, test_a_plain_url_has_no_sentinels_and_a_malformed_one_is_a_config_error)
    with pytest.raises(ConfigError, match="invalid Redis URL .*expected redis\\+sentinel://"):
        transport.connect("redis+sentinel://127.0.0.1:1/")


def _own_connection_id(bus) -> int:
    bus.publisher("test.bus.fork", "x")   # makes this thread's connection
    return bus.publisher.command(time.monotonic() + 5, "CLIENT", "ID")


def test_a_forked_child_makes_its_own_bus_sentinels_watch_and_connections(redis_server):
    client = redis_server.client()
    url = _sentinel_url(redis_server, "forked")
    parent = Bus.of(url)
    transport.connect(url)   # the parent's watch starts with its first client
    assert _wait(lambda: _watchers(client) >= 1)
    watching = _watchers(client)
    plain = Bus.of(redis_server.url)
    parent_connection = _own_connection_id(plain)

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: report, and never return into pytest
        status = 1
        try:
            os.close(read_end)
            child = Bus.of(url)
            transport.connect(url)
            report = {
                "new bus": child is not parent,
                "new sentinels": child.sentinels is not parent.sentinels,
                "new watch": child.sentinels.watch is not parent.sentinels.watch,
                "watch thread alive": child.sentinels.watch._thread.is_alive(),
                # The parent's watch still listens, the child's own joins it.
                "watch subscribed": _wait(lambda: _watchers(redis_server.client()) > watching),
                "new plain bus": Bus.of(redis_server.url) is not plain,
                "connection": _own_connection_id(Bus.of(redis_server.url)),
            }
            os.write(write_end, json.dumps(report).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30)
        assert ready, "the child reported nothing"
        report = json.loads(os.read(read_end, 65536) or b"{}")
        assert os.waitpid(pid, 0)[1] == 0
        pid = None
    finally:
        os.close(read_end)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    connection = report.pop("connection")
    assert report == dict.fromkeys(report, True) and len(report) == 6, report
    assert connection != parent_connection   # the child wrote on a socket of its own
    # The parent's own bus is untouched by its child's.
    assert Bus.of(url) is parent and parent.sentinels.watch._thread.is_alive()
