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
from typing import NamedTuple
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    import redis
    from redis.sentinel import Sentinel

SCHEME = "redis+sentinel"
DEFAULT_PORT = 26379

_lock = threading.Lock()
_sentinels: dict[tuple, "Sentinel"] = {}


class Target(NamedTuple):
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None


def is_sentinel(url: str) -> bool:
    return url.startswith(SCHEME + "://")


def parse(url: str) -> Target:
    """Split a sentinel URL; ``ValueError`` says what is wrong with it."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = []
    for item in filter(None, hosts.split(",")):
        host, _, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
        try:
            sentinels.append((host or item, int(port) if port else DEFAULT_PORT))
        except ValueError:
            raise ValueError(f"bad sentinel address {item!r} in {SCHEME} URL") from None
    path = [p for p in parts.path.split("/") if p]
    if not sentinels or not path or len(path) > 2:
        raise ValueError(f"expected {SCHEME}://host:port[,host:port...]/master[/db], got {url!r}")
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise ValueError(f"bad database number {path[1]!r} in {SCHEME} URL") from None
    query = parse_qs(parts.query)
    return Target(tuple(sentinels), unquote(path[0]), db, unquote(username) or None,
                  unquote(password) or None, (query.get("sentinel_password") or [None])[0])


def problem(url: str) -> str | None:
    """What is wrong with ``url`` if it is a sentinel URL (a config check)."""
    if not is_sentinel(url):
        return None
    try:
        parse(url)
    except ValueError as exc:
        return str(exc)
    return None


def master(url: str, **kwargs) -> redis.Redis:
    """A client of the current master behind ``url``'s sentinels; ``kwargs``
    are the connection options (timeouts, decoding, retries)."""
    # Imported here: daebus.config checks these URLs in processes (the
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
