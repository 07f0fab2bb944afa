"""Redis Sentinel URLs: ``redis+sentinel://[:password@]host:port,host:port/master[/db]``.

A client made from such a URL asks the sentinels where the master is each
time it opens a connection. When Sentinel fails over, the connections to
the old master break, and daebus's own reconnection (services, the reply
subscription, the gateway) reaches the new master and resubscribes, with no
restart. The password is the master's; ``?sentinel_password=...`` gives the
sentinels' own when they require one. Port 26379 is assumed when omitted.

Example::

    client = master("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/bus/0", decode_responses=True)
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from daebus.ops.redis_url import SENTINEL_PORT as DEFAULT_PORT, SENTINEL_SCHEME as SCHEME  # noqa: F401
from daebus.ops.redis_url import SentinelTarget as Target, is_sentinel, parse_sentinel as parse  # noqa: F401
from daebus.ops.redis_url import sentinel_problem as problem  # noqa: F401

if TYPE_CHECKING:
    import redis
    from redis.sentinel import Sentinel

_lock = threading.Lock()
_sentinels: dict[tuple, "Sentinel"] = {}


def master(url: str, **kwargs) -> redis.Redis:
    """A client of the current master behind ``url``'s sentinels; ``kwargs``
    are the connection options (timeouts, decoding, retries)."""
    # Imported here: daebus.ops.config checks these URLs in processes (the
    # gateway's gunicorn master) that never open a connection.
    import redis
    from redis.sentinel import Sentinel

    target = parse(url)
    timeout = kwargs.get("socket_timeout") or 5.0
    key = (target.sentinels, target.sentinel_password, os.getpid())
    with _lock:
        sentinel = _sentinels.get(key)
        if sentinel is None:
            sentinel = _sentinels[key] = Sentinel(
                list(target.sentinels), socket_timeout=min(timeout, 2.0),
                sentinel_kwargs={"socket_timeout": min(timeout, 2.0), "socket_connect_timeout": 1.0,
                                 "password": target.sentinel_password})
    # The URL's own user and password, unless the caller brings the configured ones.
    kwargs = {"username": target.username, "password": target.password, **kwargs}
    return sentinel.master_for(target.master, redis_class=redis.Redis, db=target.db, **kwargs)
