"""The one seam to Redis: client construction, publishing, reconnect pacing.

Commands (PUBLISH, HSET, ``cache``) go through :func:`connect`'s client, which
retries a dropped pooled connection once. Subscriptions live in
:class:`daebus.bus.subscriber.Subscriber`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from daebus.bus import auth, failover, sentinel
from daebus.bus.pacing import Backoff, Liveness  # noqa: F401 - re-exported: where every reader takes them
from daebus.errors import ConfigError

log = logging.getLogger("daebus.transport")

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
# A publish with a deadline waits at least this long for Redis, so a request
# that reached Redis late (its process was busy) is not mistaken for a stalled
# Redis. It is the most a call can overrun its timeout by.
PUBLISH_GRACE = 0.25
_NONE = object()


def redact(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _kwargs(url: str, socket_timeout: float) -> dict:
    kwargs = {"socket_timeout": socket_timeout}
    if urlsplit(url).scheme in ("redis", "rediss", sentinel.SCHEME):
        # redis-py 4.3's unix socket connection accepts neither option.
        kwargs.update(socket_connect_timeout=min(socket_timeout, 3.0), socket_keepalive=True)
    return kwargs


def connect(url: str, *, socket_timeout: float = 5.0, decode: bool = True) -> redis.Redis:
    """A Redis client for commands; strings decoded unless ``decode=False``."""
    return _from_url(
        url, decode_responses=decode, health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        **_kwargs(url, socket_timeout))


def subscriber_client(url: str, socket_timeout: float = 5.0) -> redis.Redis:
    # No retries and no redis-py health checks: a failure must reach the
    # subscriber loop so it can log it, fail waiters and resubscribe itself.
    return _from_url(url, decode_responses=False, retry=Retry(NoBackoff(), 0),
                     health_check_interval=0, **_kwargs(url, socket_timeout))


def _from_url(url: str, **kwargs) -> redis.Redis:
    kwargs.update(auth.credentials(url))
    # A sentinel URL gives a client that finds the master at each connection.
    try:
        if sentinel.is_sentinel(url):
            client = sentinel.master(url, **kwargs)
        else:
            client = redis.Redis.from_url(url, **kwargs)
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL {redact(url)!r}: {exc}") from None
    pool = client.connection_pool
    pool.connection_class = auth.refusing(pool.connection_class)
    if sentinel.is_sentinel(url):
        pool.connection_class = failover.following(pool.connection_class, failover.watch_for(sentinel.parse(url)))
    return client


def on_master_move(url: str, method) -> None:
    """With a sentinel URL, call the bound ``method`` whenever Sentinel
    promotes another master (see :mod:`daebus.bus.failover`); else nothing."""
    if sentinel.is_sentinel(url):
        failover.watch_for(sentinel.parse(url)).on_move(method)


class Publisher:
    """PUBLISH on a connection owned by the calling thread.

    Skips the client's pool checkout and retry wrapper, which cost more CPU
    than the command itself; on any connection error it falls back to the
    client's retrying path, so a Redis restart costs one slow publish.

    With a ``deadline`` (a ``time.monotonic()`` value) the publish, connecting
    included, ends by then (or :data:`PUBLISH_GRACE` after it, for a publish
    started just before it) whatever Redis does: a stalled server raises
    ``redis.TimeoutError`` and nothing is retried, except a connection found
    dead before anything was sent (a restarted Redis).

    Example::

        publish = Publisher(connect(url))
        receivers = publish("sensors", '{"t": 21.5}')
        receivers = publish("sensors", '{"t": 21.5}', deadline=time.monotonic() + 1)
    """

    def __init__(self, client: redis.Redis):
        self.client = client
        self._local = threading.local()

    def _own(self):
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            # A forked child must not write on its parent's socket. Built
            # outside the pool: the pool counts what it makes against its limit
            # and these connections never return to it. Failures are handled
            # here, so redis-py's own retries and health checks are off.
            pool = self.client.connection_pool
            conn = local.conn = pool.connection_class(**{
                **pool.connection_kwargs, "retry": Retry(NoBackoff(), 0), "health_check_interval": 0})
            local.pid = os.getpid()
        return conn

    def __call__(self, channel: str, message: str | bytes, deadline: float | None = None) -> int:
        conn = self._own()
        if deadline is not None:
            return self.command(deadline, "PUBLISH", channel, message)
        try:
            _connected(conn).send_command("PUBLISH", channel, message)
            return conn.read_response()
        except REDIS_ERRORS:
            conn.disconnect()
            return self.client.publish(channel, message)

    def commands(self, *commands: tuple, deadline: float | None = None) -> list:
        """Several commands in one write on this thread's connection; their
        replies in order (an error reply as its exception), raw. With a
        ``deadline`` as :meth:`command`; without, a connection error sends
        them again through the client's retrying pipeline."""
        conn = self._own()
        if deadline is not None:
            return self._within(conn, deadline, commands)
        try:
            return _exchange(_connected(conn), commands)
        except REDIS_ERRORS:
            conn.disconnect()
            pipe = self.client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return pipe.execute(raise_on_error=False)

    def command(self, deadline: float, *args):
        """Run one command on this thread's connection, ending by ``deadline``
        (``redis.TimeoutError`` after it); the reply is not post-processed."""
        reply = self._within(self._own(), deadline, [args])[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def _within(self, conn, deadline: float, commands) -> list:
        reused = getattr(conn, "_sock", None) is not None
        while True:
            remaining = max(deadline - time.monotonic(), PUBLISH_GRACE)
            # redis-py 4.3's unix socket connection has no connect timeout of its own.
            saved = conn.socket_timeout, getattr(conn, "socket_connect_timeout", _NONE)
            conn.socket_timeout = remaining
            if saved[1] is not _NONE:
                conn.socket_connect_timeout = min(remaining, saved[1] or remaining)
            _set_sock_timeout(conn, remaining)
            try:
                return _exchange(_connected(conn), commands)
            except redis.ConnectionError:
                conn.disconnect()
                # A socket a restarted Redis closed fails at once, before the
                # command reached anyone: one fresh attempt is safe.
                if not reused:
                    raise
                reused = False
            except REDIS_ERRORS:
                conn.disconnect()
                raise
            finally:
                conn.socket_timeout = saved[0]
                if saved[1] is not _NONE:
                    conn.socket_connect_timeout = saved[1]
                _set_sock_timeout(conn, saved[0])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.disconnect()


def _exchange(conn, commands) -> list:
    """Send ``commands`` in one write and read their replies."""
    if len(commands) == 1:
        conn.send_command(*commands[0])
    else:
        conn.send_packed_command(conn.pack_commands(commands))
    replies = []
    for _ in commands:
        try:
            replies.append(conn.read_response())
        except redis.ResponseError as exc:
            replies.append(exc)
    return replies


def _connected(conn):
    # Connecting through connect() first: with a sentinel URL that is where
    # the master's address is looked up (redis-py's send path may skip it).
    if getattr(conn, "_sock", None) is None:
        conn.connect()
    return conn


def _set_sock_timeout(conn, timeout: float | None) -> None:
    sock = getattr(conn, "_sock", None)
    if sock is not None:
        try:
            sock.settimeout(timeout)
        except OSError:
            pass
