"""Redis Sentinel URLs: ``redis+sentinel://[:password@]host:port,host:port/master[/db]``.

A client made from such a URL asks the sentinels where the master is each
time it opens a connection. When Sentinel fails over, the connections to
the old master break, and daebus's own reconnection (services, the reply
subscription, the gateway) reaches the new master and resubscribes, with no
restart. The password is the master's; ``?sentinel_password=...`` gives the
sentinels' own when they require one. Port 26379 is assumed when omitted.

What a process keeps per sentinel URL (:class:`Sentinels`) lives in that
URL's :class:`~daebus.bus.bus.Bus`, which a forked child does not inherit.

Example (what :func:`daebus.bus.transport.connect` does with such a URL)::

    sentinels = Bus.of("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/bus/0").sentinels
    client = sentinels.master(decode_responses=True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daebus.ops.redis_url import SENTINEL_PORT as DEFAULT_PORT, SENTINEL_SCHEME as SCHEME  # noqa: F401
from daebus.ops.redis_url import SentinelTarget as Target, is_sentinel, parse_sentinel as parse  # noqa: F401
from daebus.ops.redis_url import sentinel_problem as problem  # noqa: F401

if TYPE_CHECKING:
    import redis

    from daebus.bus.failover import MasterWatch

# Asking a sentinel where the master is: quick or hopeless, so never as long
# as a command may wait (the next sentinel is asked instead).
ASK_TIMEOUT = 2.0


class Sentinels:
    """One sentinel URL as one process uses it: the client that asks the
    sentinels where the master is, and the watch of their promotions
    (:class:`~daebus.bus.failover.MasterWatch`). ``ValueError`` says what is
    wrong with a malformed URL."""

    def __init__(self, url: str):
        # Imported here: daebus.ops.config checks these URLs in processes (the
        # gateway's gunicorn master) that never open a connection.
        from redis.sentinel import Sentinel

        from daebus.bus.failover import MasterWatch

        self.target = target = parse(url)
        self._sentinel = Sentinel(
            list(target.sentinels), socket_timeout=ASK_TIMEOUT,
            sentinel_kwargs={"socket_timeout": ASK_TIMEOUT, "socket_connect_timeout": 1.0,
                             "password": target.sentinel_password})
        # Its thread starts now, with the first client: it must know the
        # master before a promotion, to tell a move from the first news.
        self.watch: MasterWatch = MasterWatch(target)

    def master(self, **kwargs) -> redis.Redis:
        """A client of the current master; ``kwargs`` are the connection
        options (timeouts, decoding, retries)."""
        import redis

        # The URL's own user and password, unless the caller brings the configured ones.
        kwargs = {"username": self.target.username, "password": self.target.password, **kwargs}
        return self._sentinel.master_for(self.target.master, redis_class=redis.Redis, db=self.target.db,
                                         **kwargs)
