"""Gateway apps with no Redis: a fake subscriber for the event hub and
fakeredis for the registry and the health probe."""

import os

import fakeredis
import pytest

from gateway import create_app, get_gateway
from gateway.events import EventHub
from gateway.settings import load


class FakeSubscriber:
    """Stands in for daebus.bus.subscriber.Subscriber; the test calls its callbacks."""

    def __init__(self, url, channels, on_message, *, name, patterns, on_lost, on_restored, on_state,
                 on_ready, socket_timeout, health_interval):
        self.patterns = patterns
        self.on_message, self.on_lost, self.on_restored, self.on_state = on_message, on_lost, on_restored, on_state
        self.on_ready = on_ready
        self.stopped = False

    def start(self):
        return self

    def wait_ready(self, timeout=None):
        return False  # the tests announce readiness through the hub themselves

    def stop(self):
        self.stopped = True


@pytest.fixture
def make_hub():
    def make(channels=("news.*",), **kwargs):
        from gateway.expose import Exposure

        return EventHub("redis://fake", Exposure(channels=channels), subscriber_factory=FakeSubscriber,
                        **kwargs).start()

    return make


@pytest.fixture
def make_app():
    """``make_app(**gateway_keys)`` -> (app, gateway), wired to fakes."""

    def make(**overrides):
        settings = load({"expose_actions": ["echo/*"], "expose_channels": ["news.*"], **overrides})
        app = create_app(settings)
        gateway = get_gateway(app)
        gateway._hub = EventHub(settings.redis_url, gateway.exposure, queue_size=settings.stream_queue,
                                max_streams=settings.max_streams, subscriber_factory=FakeSubscriber).start()
        gateway._health_client = fakeredis.FakeRedis()
        gateway._pid = os.getpid()  # start() has nothing left to do
        return app, gateway

    return make
