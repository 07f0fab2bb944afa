"""PUBLISH, and a few commands, on a connection the calling thread owns.

Commands through a client's pool and retry wrapper cost more CPU than a
PUBLISH itself; a service's replies and a caller's requests take this
shorter path (:class:`Publisher`), falling back to the client's retrying
path on a connection error. :data:`REDIS_ERRORS` is what every reader and
writer of the bus treats as "Redis is not there".
"""

from __future__ import annotations

import os
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
# A publish with a deadline waits at least this long for Redis, so a request
# that reached Redis late (its process was busy) is not mistaken for a stalled
# Redis. It is the most a call can overrun its timeout by.
PUBLISH_GRACE = 0.25
_NONE = object()


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
