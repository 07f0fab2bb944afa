import os

import pytest

from support import RedisServer, Service

# Tests must not read the machine's /etc/daebus.
os.environ["DAEBUS_CONFIG"] = "/nonexistent/daebus.toml"
os.environ.pop("DAEBUS_REDIS_URL", None)


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server):
    return redis_server.url


@pytest.fixture
def fresh_redis():
    """A private server a test may stop, kill and restart."""
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def service(redis_url):
    """Start ``tests/services/<script>`` and wait for its READY=1."""
    started = []

    def start(script, *args, url=None, **kwargs):
        svc = Service(script, url or redis_url, *args, **kwargs)
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.close()
