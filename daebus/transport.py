"""The one seam to Redis: client construction and a reconnecting subscriber.

Commands (PUBLISH, HSET, ``cache``) go through :func:`connect`'s client, which
retries a dropped pooled connection once. Subscriptions live in
:class:`Subscriber`, which owns a reader thread, notices a dead or silent
connection within seconds, reconnects with capped exponential backoff,
resubscribes everything and reports the loss and the restoration once each.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from . import auth, sentinel
from .errors import AccessDenied
from .logs import StateLog

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
    if sentinel.is_sentinel(url):
        client = sentinel.master(url, **kwargs)
    else:
        client = redis.Redis.from_url(url, **kwargs)
    pool = client.connection_pool
    pool.connection_class = auth.refusing(pool.connection_class)
    return client


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


class Backoff:
    """Capped exponential delays: 0.1, 0.2, 0.4 ... ``cap`` seconds."""

    def __init__(self, first: float = 0.1, cap: float = 5.0):
        self.first, self.cap, self.delay = first, cap, first

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.delay = self.first


class Liveness:
    """Notices a subscription that went silent: after ``interval`` without a
    message it sends a PING, and if that gets no answer within another
    ``interval`` the connection is declared dead, even though no socket
    error ever came (a half-open connection).

    Example::

        liveness = Liveness(5.0)
        message = pubsub.get_message(timeout=1.0)
        if message is None:
            liveness.idle(pubsub)        # may ping, or raise redis.TimeoutError
        else:
            liveness.heard()
    """

    def __init__(self, interval: float):
        self.interval = interval
        self.last_rx = time.monotonic()
        self.ping_sent: float | None = None

    def heard(self) -> None:
        self.last_rx, self.ping_sent = time.monotonic(), None

    def idle(self, pubsub) -> None:
        now = time.monotonic()
        if self.ping_sent is not None and now - self.ping_sent > self.interval:
            raise redis.TimeoutError(f"no answer from Redis for {now - self.last_rx:.0f} s")
        if self.ping_sent is None and now - self.last_rx >= self.interval:
            pubsub.ping()
            self.ping_sent = now


MessageHandler = Callable[[str, bytes], None]


class Subscriber:
    """Subscribes to channels in a reader thread and survives Redis restarts.

    Example::

        sub = Subscriber("redis://localhost", ["sensors"], lambda ch, data: print(ch, data))
        sub.start()
        sub.wait_ready(5)
    """

    def __init__(self, url: str, channels, on_message: MessageHandler, *, name: str = "subscriber",
                 patterns=(), socket_timeout: float = 5.0, health_interval: float = 5.0,
                 beat_interval: float = 1.0,
                 on_lost: Callable[[Exception], None] | None = None,
                 on_restored: Callable[[float], None] | None = None,
                 on_ready: Callable[[], None] | None = None,
                 on_state: Callable[[str], None] | None = None,
                 on_refused: Callable[[Exception], None] | None = None):
        self.url = url
        self.channels = list(dict.fromkeys(channels))
        self.patterns = list(dict.fromkeys(patterns))
        self.on_message = on_message
        self.name = name
        self.health_interval = health_interval
        # The reader wakes at least this often, so ``last_beat`` proves it is not stuck.
        self.beat_interval = beat_interval
        self.on_lost, self.on_restored, self.on_state = on_lost, on_restored, on_state
        self.on_ready = on_ready
        # Redis refused the identity or a subscription: set once, never retried.
        self.on_refused = on_refused
        self.refused: AccessDenied | None = None
        self._client = subscriber_client(url, socket_timeout)
        self._commands = connect(url, socket_timeout=socket_timeout)
        self._wake_channel = f"daebus:wake:{uuid.uuid4()}"
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._changes = threading.Lock()
        self._pending: list[tuple[str, str]] = []     # (SUBSCRIBE|UNSUBSCRIBE, channel)
        self._confirmations: dict[str, threading.Event] = {}
        self._thread: threading.Thread | None = None
        self._state = StateLog(log)
        self.connected = False
        self._lost_at: float | None = None
        self.last_beat = time.monotonic()

    # -- lifecycle -----------------------------------------------------
    def start(self) -> Subscriber:
        self._thread = threading.Thread(target=self._run, name=f"daebus-{self.name}", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until every subscription is confirmed by Redis."""
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def add(self, *channels: str, timeout: float | None = None) -> bool:
        """Subscribe to more channels, now and after every reconnection;
        True once Redis confirmed them all within ``timeout``."""
        with self._changes:
            events = [self._confirmations.setdefault(ch, threading.Event()) for ch in channels]
            for channel in channels:
                if channel not in self.channels:
                    self.channels.append(channel)
                    self._pending.append(("subscribe", channel))
        self._wake()
        deadline = None if timeout is None else time.monotonic() + timeout
        confirmed = all(e.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
                        for e in events)
        return confirmed and self.refused is None

    def remove(self, channel: str) -> None:
        """Stop receiving ``channel`` (now and after reconnections)."""
        with self._changes:
            if channel in self.channels:
                self.channels.remove(channel)
                self._confirmations.pop(channel, None)
                self._pending.append(("unsubscribe", channel))
        self._wake()

    def _wake(self) -> None:
        # The reader thread alone talks on the subscription: a message on its
        # private channel makes it look at what changed, at once.
        try:
            self._commands.publish(self._wake_channel, b"")
        except (*REDIS_ERRORS, AccessDenied):
            pass

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._commands.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- reader --------------------------------------------------------
    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            self.last_beat = time.monotonic()
            pubsub = self._client.pubsub()
            try:
                self._read(pubsub, self._subscribe(pubsub), backoff)
            except AccessDenied as exc:
                # Reconnecting cannot change Redis's mind: report once and stop.
                self._refuse(exc)
                break
            except REDIS_ERRORS as exc:
                if self._stop.is_set():
                    break
                self._failed(exc)
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001 - closing a broken socket may fail any way
                    pass
            delay = backoff.next()
            # A planned pause is not a wedge: vouch for liveness until it ends.
            self.last_beat = time.monotonic() + delay
            self._stop.wait(delay)
        self._ready.clear()
        self.connected = False

    def _refuse(self, exc: AccessDenied) -> None:
        self.refused = exc
        self._ready.clear()
        self.connected = False
        if self.on_refused:
            self._call(self.on_refused, exc)
        else:
            log.error("%s: %s", self.name, exc)
        # Whoever waits for a confirmation learns now rather than at its timeout.
        for event in list(self._confirmations.values()):
            event.set()

    def _failed(self, exc: Exception) -> None:
        self._ready.clear()
        reason = str(exc) or type(exc).__name__
        if self.connected:
            self.connected = False
            self._lost_at = time.monotonic()
            self._state.set("lost", logging.ERROR, "%s: lost connection to Redis at %s: %s",
                            self.name, redact(self.url), reason)
            self._emit_state("redis connection lost, reconnecting")
            if self.on_lost:
                self._call(self.on_lost, exc)
        elif self._lost_at is None:
            self._state.set("waiting", logging.WARNING, "%s: waiting for Redis at %s: %s",
                            self.name, redact(self.url), reason)
            self._emit_state("waiting for redis")

    def _subscribe(self, pubsub) -> int:
        with self._changes:
            channels = list(self.channels)
            self._pending.clear()  # a fresh subscription covers them
        pubsub.subscribe(self._wake_channel, *channels)
        if self.patterns:
            pubsub.psubscribe(*self.patterns)
        return 1 + len(channels) + len(self.patterns)

    def _apply_changes(self, pubsub) -> None:
        with self._changes:
            changes, self._pending = self._pending, []
        for command, channel in changes:
            getattr(pubsub, command)(channel)

    def _read(self, pubsub, expected: int, backoff: Backoff) -> None:
        confirmed = 0
        liveness = Liveness(self.health_interval)
        while not self._stop.is_set():
            self.last_beat = time.monotonic()
            message = pubsub.get_message(timeout=self.beat_interval)
            if message is None:
                liveness.idle(pubsub)
                continue
            liveness.heard()
            kind = message["type"]
            if isinstance(kind, bytes):
                kind = kind.decode()
            if kind in ("message", "pmessage"):
                channel = message["channel"]
                channel = channel.decode("utf-8", "replace") if isinstance(channel, bytes) else channel
                if channel != self._wake_channel:
                    self._call(self.on_message, channel, message["data"])
                elif self._pending:
                    self._apply_changes(pubsub)
            elif kind in ("subscribe", "psubscribe"):
                self._confirm(message["channel"])
                confirmed += 1
                if confirmed == expected:
                    backoff.reset()
                    self._confirmed()

    def _confirm(self, channel) -> None:
        channel = channel.decode("utf-8", "replace") if isinstance(channel, bytes) else channel
        event = self._confirmations.get(channel)
        if event is not None:
            event.set()

    def _confirmed(self) -> None:
        self.connected = True
        if self._lost_at is not None:
            outage = time.monotonic() - self._lost_at
            self._lost_at = None
            self._state.set("up", logging.WARNING, "%s: Redis connection restored after %.1f s, "
                            "%d channel(s) resubscribed", self.name, outage,
                            len(self.channels) + len(self.patterns))
            if self.on_restored:
                self._call(self.on_restored, outage)
        else:
            level = logging.INFO if self._state.state == "waiting" else logging.DEBUG
            self._state.set("up", level, "%s: connected to Redis at %s", self.name, redact(self.url))
        self._ready.set()
        if self.on_ready:
            self._call(self.on_ready)

    def _emit_state(self, text: str) -> None:
        if self.on_state:
            self._call(self.on_state, text)

    def _call(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a callback must never kill the reader
            log.exception("%s: callback %r failed", self.name, fn)
