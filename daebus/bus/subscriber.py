"""A reconnecting subscription: :class:`Subscriber`.

Its reader thread notices a dead or silent connection within seconds,
reconnects with capped exponential backoff, resubscribes everything and
reports the loss and the restoration once each. With ``readers=2`` two
threads take turns reading (:mod:`daebus.bus.turns`), so a message's callback
may keep its thread (:meth:`Subscriber.hand_over`) while the other reads on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from daebus.bus import keys
from daebus.errors import AccessDenied
from daebus.ops.logs import StateLog
from daebus.bus.transport import REDIS_ERRORS, Backoff, Liveness, connect, redact, subscriber_client
from daebus.bus.turns import Turns, wait_for_reader

log = logging.getLogger("daebus.transport")


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
                 on_refused: Callable[[Exception], None] | None = None, readers: int = 1):
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
        self._wake_channel = keys.wake_channel()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._changes = threading.Lock()
        self._pending: list[tuple[str, str]] = []     # (SUBSCRIBE|UNSUBSCRIBE, channel)
        self._confirmations: dict[str, threading.Event] = {}
        self._readers = readers
        self._threads: list[threading.Thread] = []
        self._turns = Turns()
        # The subscription whoever holds the turn reads (None: to be made).
        self._pubsub = None
        self._liveness: Liveness | None = None
        self._expected = self._acknowledged = 0   # subscriptions asked for / confirmed
        self._backoff = Backoff()
        self._state = StateLog(log)
        self.connected = False
        self._lost_at: float | None = None
        self.last_beat = time.monotonic()

    # -- lifecycle -----------------------------------------------------
    def start(self) -> Subscriber:
        self._threads = [threading.Thread(target=self._run, daemon=True,
                                          name=f"daebus-{self.name}" + (f"-reader{n + 1}" if self._readers > 1 else ""))
                         for n in range(self._readers)]
        for thread in self._threads:
            thread.start()
        return self

    def hand_over(self) -> bool:
        """Let another reader read on, should this one's work on the message
        take long (see :mod:`daebus.bus.turns`).

        Only from ``on_message``, on the reader thread: True when another
        reader is free to (the caller then does the work itself), False when
        none is (the caller passes the work on).
        """
        return not self._more_to_read() and self._turns.lend()

    def _more_to_read(self) -> bool:
        # Messages already waiting: reading on beats running this one here.
        connection = getattr(self._pubsub, "connection", None)
        try:
            return connection is not None and connection.can_read(timeout=0)
        except Exception:  # noqa: BLE001 - a broken socket shows up on the next read
            return False

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
        self._turns.close()
        self._wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                wait_for_reader(thread, self._turns.lending, deadline)
        self._commands.close()

    @property
    def alive(self) -> bool:
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    # -- reader --------------------------------------------------------
    def _run(self) -> None:
        me = threading.current_thread()
        while not self._stop.is_set() and self._turns.take():
            try:
                self._serve(me)
            finally:
                self._turns.leave()

    def _serve(self, me: threading.Thread) -> None:
        """Read while this thread holds the turn: until stopped, refused, or taken over."""
        while True:
            try:
                if self._pubsub is None:
                    if self._stop.is_set():
                        break
                    self.last_beat = time.monotonic()
                    self._pubsub = self._client.pubsub()
                    self._liveness = Liveness(self.health_interval)
                    self._acknowledged = 0
                    self._expected = self._subscribe(self._pubsub)
                if self._read(me):
                    return
                break   # stopped
            except AccessDenied as exc:
                # Reconnecting cannot change Redis's mind: report once and stop.
                self._close()
                self._stop.set()
                self._turns.close()
                self._refuse(exc)
                break
            except REDIS_ERRORS as exc:
                self._close()
                if self._stop.is_set():
                    break
                self._failed(exc)
                delay = self._backoff.next()
                # A planned pause is not a wedge: vouch for liveness until it ends.
                self.last_beat = time.monotonic() + delay
                self._stop.wait(delay)
        self._close()
        self._ready.clear()
        self.connected = False

    def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001 - closing a broken socket may fail any way
                pass

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

    def _read(self, me: threading.Thread) -> bool:
        """Read messages: True once another reader took the turn, False once
        stopped (after what arrived before :meth:`stop`'s wake-up)."""
        pubsub, liveness = self._pubsub, self._liveness
        while True:
            self.last_beat = time.monotonic()
            message = pubsub.get_message(timeout=self.beat_interval)
            if message is None:
                if self._stop.is_set():
                    return False
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
                    if self._turns.lent():
                        if not self._turns.reclaim():
                            return True   # another reader read on meanwhile
                elif self._stop.is_set():
                    return False
                elif self._pending:
                    self._apply_changes(pubsub)
            elif kind in ("subscribe", "psubscribe"):
                self._confirm(message["channel"])
                self._acknowledged += 1
                if self._acknowledged == self._expected:
                    self._backoff.reset()
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
