"""The private Redis of the demo and the tests, started from redis-tools' file."""

from __future__ import annotations

import os

import pytest

from daebus.bus import localredis


@pytest.mark.skipif(not os.path.exists("/usr/bin/redis-check-rdb"), reason="needs Debian's redis-tools")
def test_redis_tools_program_serves_as_redis_server(monkeypatch):
    # As on a box with redis-tools and no redis-server package: only the
    # server program's file under its own name.
    monkeypatch.setattr(localredis, "SERVER_PROGRAMS", ("redis-check-rdb",))
    assert localredis.redis_server_binary() == "/usr/bin/redis-check-rdb"
    server = localredis.RedisServer().start()
    try:
        client = server.client()
        assert client.ping() is True
        assert client.info("server")["tcp_port"] == server.port
        client.close()
    finally:
        server.close()


def test_without_a_server_program_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(localredis, "SERVER_PROGRAMS", ("daebus-no-such-program",))
    assert localredis.redis_server_binary() is None
    server = localredis.RedisServer()
    with pytest.raises(RuntimeError, match="apt-get install redis-tools"):
        server.start()
    server.close()
