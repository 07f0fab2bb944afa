"""The one seam to Redis: the names every part takes to reach it.

Clients are made by the process's bus for their URL (:mod:`daebus.bus.bus`,
:mod:`daebus.bus.clients`), so that every client of one URL shares what the
bus holds for it (the sentinels and their watch); these functions are that,
for code that has a URL. Commands go through :func:`connect`'s client, which
retries a dropped pooled connection once; subscriptions live in
:class:`daebus.bus.subscriber.Subscriber`, over :func:`subscriber_client`;
PUBLISH on a thread-owned connection is :class:`Publisher`.

Example::

    client = connect(url, socket_timeout=2.0)
    publish = Publisher(client)
    on_master_move(url, reader.end_blocked_read)    # a sentinel URL only
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daebus.bus.bus import Bus
from daebus.bus.pacing import Backoff, Liveness  # noqa: F401 - re-exported: where every reader takes them
from daebus.bus.publisher import PUBLISH_GRACE, REDIS_ERRORS, Publisher  # noqa: F401 - re-exported
from daebus.ops.redis_url import redact  # noqa: F401 - re-exported

if TYPE_CHECKING:
    import redis


def connect(url: str, *, socket_timeout: float = 5.0, decode: bool = True, retry: bool = True) -> redis.Redis:
    """A Redis client for commands; strings decoded unless ``decode=False``;
    ``retry=False`` for a reader that must see a dropped connection itself."""
    return Bus.of(url).connect(socket_timeout=socket_timeout, decode=decode, retry=retry)


def subscriber_client(url: str, socket_timeout: float = 5.0) -> redis.Redis:
    """A Redis client for one subscription: it never retries on its own."""
    return Bus.of(url).subscriber_client(socket_timeout)


def on_master_move(url: str, method) -> None:
    """With a sentinel URL, call the bound ``method`` whenever Sentinel
    promotes another master (see :mod:`daebus.bus.failover`); else nothing."""
    Bus.of(url).on_master_move(method)
