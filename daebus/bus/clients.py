"""How daebus's Redis clients are made: one kind for commands, one for
subscriptions, from any URL daebus accepts.

Every client turns Redis refusing its identity into
:class:`~daebus.errors.AccessDenied` (:func:`daebus.bus.auth.refusing`);
a client of a ``redis+sentinel://`` URL finds the master through the
sentinels its bus keeps, and drops a connection the sentinels moved the
master away from (:func:`daebus.bus.failover.following`). The bus
(:class:`daebus.bus.bus.Bus`) is what calls these: it holds what a URL's
clients share in one process.

Example::

    client = for_commands(Bus.of(url), socket_timeout=2.0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from daebus.bus import auth, failover, sentinel
from daebus.errors import ConfigError
from daebus.ops.redis_url import redact

if TYPE_CHECKING:
    from daebus.bus.bus import Bus


def for_commands(bus: Bus, *, socket_timeout: float = 5.0, decode: bool = True, retry: bool = True) -> redis.Redis:
    """A client for commands, which retries a dropped pooled connection once
    (never with ``retry=False``: a blocked read that its owner ends by
    closing the socket must end, not reconnect and block again); strings
    decoded unless ``decode=False``."""
    retries = dict(retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
                   retry_on_error=[redis.ConnectionError, redis.TimeoutError]) if retry else \
        dict(retry=Retry(NoBackoff(), 0))
    return _build(bus, decode_responses=decode, health_check_interval=30, **retries,
                  **_timeouts(bus.url, socket_timeout))


def for_subscriptions(bus: Bus, socket_timeout: float = 5.0) -> redis.Redis:
    """A client for a subscription, which never retries on its own."""
    # No retries and no redis-py health checks: a failure must reach the
    # subscriber loop so it can log it, fail waiters and resubscribe itself.
    return _build(bus, decode_responses=False, retry=Retry(NoBackoff(), 0),
                  health_check_interval=0, **_timeouts(bus.url, socket_timeout))


def _timeouts(url: str, socket_timeout: float) -> dict:
    kwargs = {"socket_timeout": socket_timeout}
    if urlsplit(url).scheme in ("redis", "rediss", sentinel.SCHEME):
        # redis-py 4.3's unix socket connection accepts neither option.
        kwargs.update(socket_connect_timeout=min(socket_timeout, 3.0), socket_keepalive=True)
    return kwargs


def _build(bus: Bus, **kwargs) -> redis.Redis:
    url = bus.url
    kwargs.update(auth.credentials(url))
    try:
        # A sentinel URL gives a client that finds the master at each connection.
        sentinels = bus.sentinels
        client = sentinels.master(**kwargs) if sentinels else redis.Redis.from_url(url, **kwargs)
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL {redact(url)!r}: {exc}") from None
    pool = client.connection_pool
    pool.connection_class = auth.refusing(pool.connection_class)
    if sentinels:
        pool.connection_class = failover.following(pool.connection_class, sentinels.watch)
    return client
