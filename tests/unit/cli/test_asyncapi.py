"""daebus asyncapi: the bus's server object, without credentials."""

import pytest

from daebus.cli.asyncapi import server_of


@pytest.mark.parametrize("url, server", [
    ("redis://:s3cret@10.0.0.5:6380/2", {"host": "10.0.0.5:6380", "pathname": "/2", "protocol": "redis",
                                         "description": "Redis"}),
    ("rediss://worker:pw@bus.local", {"host": "bus.local", "protocol": "redis", "description": "Redis over TLS"}),
    ("unix:///run/redis/redis-server.sock?db=1", {"host": "localhost", "pathname": "/run/redis/redis-server.sock",
                                                  "protocol": "redis", "description": "Redis on a unix socket"}),
    ("redis+sentinel://:pw@a:26379,b:26379/bus/0", {"host": "a:26379,b:26379", "pathname": "/bus/0",
                                                    "protocol": "redis",
                                                    "description": "Redis, its master found through Sentinel"}),
])
def test_the_server_is_the_url_without_its_credentials(url, server):
    assert server_of(url) == server
