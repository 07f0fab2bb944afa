import pytest

from fleet_harness import BridgeProcess, Mosquitto, mosquitto_binary, wait_online
from support import RedisServer


@pytest.fixture(autouse=True)
def _mosquitto_installed():
    if mosquitto_binary() is None:
        pytest.fail("the fleet tests need mosquitto (./dev test installs it)")


@pytest.fixture
def broker():
    server = Mosquitto().start()
    yield server
    server.close()


@pytest.fixture
def box_redis():
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def bridge(box_redis, broker):
    """Start ``daebus bridge`` against the box's Redis and the broker."""
    started = []

    def start(online=True, **settings):
        settings.setdefault("keepalive", 5)
        process = BridgeProcess(box_redis.url, broker.url, **settings)
        started.append(process)
        if online:
            wait_online(broker, process.fleet, process.device)
        return process

    yield start
    for process in started:
        process.close()
