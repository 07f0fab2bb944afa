"""The process's bus: one object per Redis URL that every caller, broadcast
and gateway request in the process shares.

A :class:`Bus` holds the command client and the thread-owned publisher for
its URL, the broadcast publisher that keeps what pages replay
(:mod:`daebus.bus.kept`), for a ``redis+sentinel://`` URL the sentinels'
client and the watch of their promotions (:mod:`daebus.bus.sentinel`), and
the parts other layers attach to it once each (the reply subscription and
the request sender of :mod:`daebus.call`) through :meth:`Bus.part`, so that
this layer knows nothing of them. Every client daebus makes for the URL is
made here (:meth:`Bus.connect`, :meth:`Bus.subscriber_client`), so that they
all share what the bus holds.

Example::

    bus = Bus.of("redis://localhost:6379/0")
    bus.publisher("sensors", '{"t": 21.5}')
    bus.keeper("door.events", '{"open": true}')
    hub = bus.part(ReplyHub)      # ReplyHub(bus), made once per bus
    reader = bus.subscriber_client(socket_timeout=2.0)

``Bus.of`` gives a forked child buses of its own: a connection, a
subscription, a lock or a watch thread (threads do not survive fork) shared
with the parent across fork would mix the two processes' traffic or stop.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Callable, TypeVar
from urllib.parse import urlsplit

from daebus.bus import clients
from daebus.bus.kept import KeepingPublisher
from daebus.bus.publisher import Publisher
from daebus.bus.sentinel import Sentinels, is_sentinel
from daebus.errors import ConfigError
from daebus.ops.redis_url import redact

if TYPE_CHECKING:
    import redis

T = TypeVar("T")


class Bus:
    """One Redis URL as this process uses it; made by :meth:`Bus.of`."""

    _directory: dict[str, Bus] = {}
    _directory_lock = threading.Lock()

    def __init__(self, url: str):
        try:
            # Every part splits the URL (for its user, its host); one that
            # urllib cannot split is refused here, once, in the words of a
            # bad setting rather than as a traceback from whichever part ran first.
            urlsplit(url)
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL {redact(url)!r}: {exc}") from None
        self.url = url
        # Reentrant: a part made under it may use the publisher.
        self._lock = threading.RLock()
        self._publisher: Publisher | None = None
        self._keeper: KeepingPublisher | None = None
        self._sentinels: Sentinels | None = None
        self._parts: dict[Callable, object] = {}

    @classmethod
    def of(cls, url: str) -> Bus:
        """This process's bus for ``url``."""
        with cls._directory_lock:
            bus = cls._directory.get(url)
            if bus is None:
                bus = cls._directory[url] = cls(url)
            return bus

    @classmethod
    def _forget_all(cls) -> None:
        # In a forked child: the parent's buses (and their locks) are not ours.
        cls._directory = {}
        cls._directory_lock = threading.Lock()

    @property
    def publisher(self) -> Publisher:
        """PUBLISH on a connection the calling thread owns (see :class:`Publisher`)."""
        publisher = self._publisher
        if publisher is None:
            with self._lock:
                if self._publisher is None:
                    self._publisher = Publisher(self.connect())
                publisher = self._publisher
        return publisher

    @property
    def client(self):
        """The command client (its connection pool is thread-safe)."""
        return self.publisher.client

    @property
    def keeper(self) -> KeepingPublisher:
        """Publishes broadcasts, keeping those on channels a gateway declared."""
        keeper = self._keeper
        if keeper is None:
            publisher = self.publisher
            with self._lock:
                if self._keeper is None:
                    self._keeper = KeepingPublisher(publisher.client, publisher)
                keeper = self._keeper
        return keeper

    @property
    def sentinels(self) -> Sentinels | None:
        """What a sentinel URL's clients share; None for any other URL.
        ``ValueError`` for a malformed sentinel URL."""
        if not is_sentinel(self.url):
            return None
        sentinels = self._sentinels
        if sentinels is None:
            with self._lock:
                if self._sentinels is None:
                    self._sentinels = Sentinels(self.url)
                sentinels = self._sentinels
        return sentinels

    def connect(self, *, socket_timeout: float = 5.0, decode: bool = True, retry: bool = True) -> redis.Redis:
        """A new client for commands (see :func:`daebus.bus.clients.for_commands`)."""
        return clients.for_commands(self, socket_timeout=socket_timeout, decode=decode, retry=retry)

    def subscriber_client(self, socket_timeout: float = 5.0) -> redis.Redis:
        """A new client for a subscription (see :func:`daebus.bus.clients.for_subscriptions`)."""
        return clients.for_subscriptions(self, socket_timeout)

    def on_master_move(self, method) -> None:
        """With a sentinel URL, call the bound ``method`` (held weakly)
        whenever Sentinel promotes another master; else nothing."""
        sentinels = self.sentinels
        if sentinels is not None:
            sentinels.watch.on_move(method)

    def part(self, factory: Callable[[Bus], T]) -> T:
        """The one ``factory(self)`` of this bus, made on first use."""
        made = self._parts.get(factory)
        if made is None:
            with self._lock:
                made = self._parts.get(factory)
                if made is None:
                    made = self._parts[factory] = factory(self)
        return made


os.register_at_fork(after_in_child=Bus._forget_all)
