"""Where the bus is: the forms a Redis URL may take, the default, and how a
URL is shown without its password.

``redis://`` and ``rediss://`` (TCP, TLS), ``unix:///path?db=N`` (the
appliance's socket), and ``redis+sentinel://host:port,host:port/master[/db]``
(a master found through Sentinel; :mod:`daebus.bus.sentinel` connects to
it). Parsing only: nothing here opens a connection, so configuration checks
these URLs in processes that never talk to Redis.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 6379
DEFAULT_URL = f"redis://{DEFAULT_HOST}:{DEFAULT_PORT}/0"

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379


def redact(url: str) -> str:
    """``url`` without its password, for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        # Not a URL urllib can split (``redis://[::1``): it is still named in
        # the error that refuses it, so hide what could be a password.
        return re.sub(r"(//[^/@:]*):[^/]*@", r"\1:***@", url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def from_host_port(host: str | None, port: int | None) -> str:
    """The URL for the 0.0.x ``redis_host``/``redis_port`` arguments."""
    return f"redis://{host or DEFAULT_HOST}:{int(port or DEFAULT_PORT)}/0"


class SentinelTarget(NamedTuple):
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None


def is_sentinel(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME + "://")


def parse_sentinel(url: str) -> SentinelTarget:
    """Split a sentinel URL; ``ValueError`` says what is wrong with it."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = []
    for item in filter(None, hosts.split(",")):
        host, _, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
        try:
            sentinels.append((host or item, int(port) if port else SENTINEL_PORT))
        except ValueError:
            raise ValueError(f"bad sentinel address {item!r} in {SENTINEL_SCHEME} URL") from None
    path = [p for p in parts.path.split("/") if p]
    if not sentinels or not path or len(path) > 2:
        raise ValueError(f"expected {SENTINEL_SCHEME}://host:port[,host:port...]/master[/db], got {url!r}")
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise ValueError(f"bad database number {path[1]!r} in {SENTINEL_SCHEME} URL") from None
    query = parse_qs(parts.query)
    return SentinelTarget(tuple(sentinels), unquote(path[0]), db, unquote(username) or None,
                  unquote(password) or None, (query.get("sentinel_password") or [None])[0])


def sentinel_problem(url: str) -> str | None:
    """What is wrong with ``url`` if it is a sentinel URL (a config check)."""
    if not is_sentinel(url):
        return None
    try:
        parse_sentinel(url)
    except ValueError as exc:
        return str(exc)
    return None


