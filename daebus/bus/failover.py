"""Following a Sentinel failover at once: :class:`MasterWatch`.

A connection to a master that froze (SIGSTOP, ``DEBUG SLEEP``, a wedged
host) gets no socket error: it just hangs until someone's timeout. The
sentinels, though, announce a promotion on their ``+switch-master`` channel.
One thread per process and sentinel URL listens there (to one sentinel at a
time, moving to the next when it fails), and every connection made from a
sentinel URL remembers which master it reached: once the sentinels name
another, the connection refuses to be used (a ``ConnectionError`` at its next
command or poll), so its owner reconnects to the new master within about a
second of the promotion instead of at its next timeout. The watch is held by
the URL's :class:`~daebus.bus.sentinel.Sentinels`, part of its bus.

Example (what :func:`daebus.bus.transport.connect` does for a sentinel URL)::

    watch = Bus.of(url).sentinels.watch
    pool.connection_class = following(pool.connection_class, watch)
"""

from __future__ import annotations

import logging
import threading
import time
import weakref

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from daebus.bus.pacing import Backoff, Liveness

log = logging.getLogger("daebus.transport")

SWITCH_CHANNEL = "+switch-master"
# How often the watch's own connection to a sentinel is checked for silence.
WATCH_HEALTH_INTERVAL = 2.0


class MasterWatch:
    """Where the sentinels say the master is; ``address`` is None until known."""

    def __init__(self, target):
        self.target = target
        self.address: tuple[str, int] | None = None
        self._changed = threading.Condition()
        self._listeners: list[weakref.WeakMethod] = []
        # following()'s subclasses, one per connection class: they test this watch.
        self._classes: dict[type, type] = {}
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"daebus-sentinel-{target.master}")
        self._thread.start()

    def moved_from(self, address) -> bool:
        """The sentinels now name a master other than ``address``."""
        current = self.address
        return current is not None and address is not None and tuple(address) != current

    def on_move(self, method) -> None:
        """Call the bound ``method`` (held weakly) each time the master moves:
        for a reader blocked in a command, which no poll would wake."""
        with self._changed:
            self._listeners.append(weakref.WeakMethod(method))

    def wait_for_change(self, old, timeout: float) -> bool:
        """For tests and tools: block until the master is other than ``old``."""
        with self._changed:
            return self._changed.wait_for(lambda: self.address not in (None, old), timeout)

    def _set(self, host, port) -> None:
        address = (_text(host), int(port))
        if address != self.address:
            if self.address is not None:
                log.warning("sentinel: master %s moved from %s:%d to %s:%d", self.target.master,
                            *self.address, *address)
            moved = self.address is not None
            with self._changed:
                self.address = address
                self._changed.notify_all()
                self._listeners = [ref for ref in self._listeners if ref() is not None]
                listeners = [ref() for ref in self._listeners] if moved else []
            for method in listeners:
                if method is None:
                    continue
                try:
                    method()
                except Exception as exc:  # noqa: BLE001 - one listener's failure must not stop the watch
                    log.warning("sentinel: %r failed on a master move: %s", method, exc)

    def _run(self) -> None:
        backoff = Backoff(cap=2.0)
        sentinels = list(self.target.sentinels)
        turn = 0
        while True:
            host, port = sentinels[turn % len(sentinels)]
            try:
                self._follow(host, port, backoff)
            except Exception as exc:  # noqa: BLE001 - whatever a sentinel sends, the watch goes on
                log.debug("sentinel %s:%d: %s", host, port, exc)
            turn += 1
            time.sleep(backoff.next() if turn % len(sentinels) == 0 else 0)

    def _follow(self, host: str, port: int, backoff: Backoff) -> None:
        # No retries of redis-py's own (newer releases retry with backoff by default):
        # a sentinel that fails makes way for the next one at once.
        client = redis.Redis(host=host, port=port, password=self.target.sentinel_password,
                             socket_timeout=WATCH_HEALTH_INTERVAL, socket_connect_timeout=1.0,
                             retry=Retry(NoBackoff(), 0))
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(SWITCH_CHANNEL)
            # A switch while no sentinel was heard from: asked once subscribed, so none is missed.
            try:
                address = client.sentinel_get_master_addr_by_name(self.target.master)
            except redis.ResponseError as exc:
                # Not a sentinel, or one that does not monitor this master: announcements may still come.
                log.debug("sentinel %s:%d cannot name master %s: %s", host, port, self.target.master, exc)
                address = None
            if address:
                self._set(*address)
            backoff.reset()
            liveness = Liveness(WATCH_HEALTH_INTERVAL)
            while True:
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    liveness.idle(pubsub)
                    continue
                liveness.heard()
                if message.get("type") in ("message", b"message"):
                    self._switched(_text(message["data"]))
        finally:
            pubsub.close()
            client.close()

    def _switched(self, data: str) -> None:
        # "<master name> <old ip> <old port> <new ip> <new port>"
        fields = data.split()
        if len(fields) == 5 and fields[0] == self.target.master and fields[4].isdigit():
            self._set(fields[3], fields[4])
        else:
            log.debug("sentinel: ignored a %s of %r", SWITCH_CHANNEL, data[:200])


def following(connection_class: type, watch: MasterWatch) -> type:
    """A subclass of a sentinel connection class that fails, rather than
    hangs, once ``watch`` says the master it reached is no longer the master.
    One class per connection class and watch, however many clients use it."""
    with watch._changed:
        cls = watch._classes.get(connection_class)
        if cls is None:
            cls = watch._classes[connection_class] = _following(connection_class, watch)
    return cls


def _following(connection_class: type, watch: MasterWatch) -> type:
    def stale(self) -> bool:
        # host and port are the master's this connection reached (SentinelManagedConnection sets them).
        return getattr(self, "_sock", None) is not None and watch.moved_from((self.host, self.port))

    def send_packed_command(self, *args, **kwargs):
        # This thread owns the connection: dropping a stale one here reconnects to the new master.
        if stale(self):
            self.disconnect()
        return connection_class.send_packed_command(self, *args, **kwargs)

    def can_read(self, *args, **kwargs):
        # A subscription polls here: a reader stuck on a frozen master learns at its next poll.
        if stale(self):
            reached = f"{self.host}:{self.port}"
            self.disconnect()
            raise redis.ConnectionError(f"the sentinels moved the master away from {reached}")
        return connection_class.can_read(self, *args, **kwargs)

    return type(connection_class.__name__, (connection_class,), {
        "send_packed_command": send_packed_command, "can_read": can_read})


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
