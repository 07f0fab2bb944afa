"""The runtime's bus components (each sees the runtime as a
:class:`~daebus.service.host.Host`): the reader of the service's channels and
the heartbeat that keeps the registry entry and systemd's watchdog fed.

Both follow :mod:`daebus.service.lifecycle`.
"""

from __future__ import annotations

import logging
import threading
import time

from daebus.ops import logs
from daebus.errors import AccessDenied, NameTaken
from daebus.bus.subscriber import Subscriber
from daebus.bus.transport import REDIS_ERRORS

log = logging.getLogger("daebus.runtime")


class BusReader:
    """Subscribes to the liveness channels and claims the service name; its
    :attr:`intake` then subscribes to the service's own channel and its
    listeners' channels, once everything that serves them has started."""

    name = "message reader"

    def __init__(self, host):
        self.host = host
        settings, notifier = host.settings, host.notifier
        # The reader beats at least every second while healthy; silence for
        # twice the watchdog period (or 10 s without one) means it is wedged.
        self.silence_limit = 2 * (notifier.watchdog_interval or 5.0)
        # Only the liveness channels at first: an instance that loses the
        # claim must never have received a request or an event.
        self.subscriber = Subscriber(
            settings.redis_url, host.membership.channels, host.on_message, name=host.service,
            socket_timeout=settings.socket_timeout, health_interval=settings.health_check_interval,
            beat_interval=min(1.0, (notifier.watchdog_interval or 2.0) / 2),
            on_restored=host.on_restored, on_state=notifier.status, on_refused=host.refused,
            readers=2)
        self._started = False
        self.intake = _Intake(self)

    def start(self, app) -> bool:
        host, stopping = self.host, self.host.stopping
        self.subscriber.start()
        self._started = True
        while not self.subscriber.wait_ready(0.5):
            if stopping.is_set():
                return False
        while True:
            try:
                host.claim("starting")
                break
            except NameTaken as exc:
                host.taken(exc)
                return False
            except AccessDenied as exc:
                host.refused(exc)
                return False
            except REDIS_ERRORS as exc:
                log.debug("registry claim failed: %s", exc)
                if stopping.wait(0.5):
                    return False
        return True

    def stop(self) -> None:
        self.subscriber.stop()

    def health(self) -> str | None:
        if not self._started:
            return None
        silent = time.monotonic() - self.subscriber.last_beat
        if not self.subscriber.alive:
            return "not running"
        if silent >= self.silence_limit:
            return f"silent for {silent:.0f} s"
        return None


class _Intake:
    """Requests and events: subscribed once the attached components have
    started, and dropped before they stop, so that neither the bus nor
    HTTP feeds a service that can no longer answer."""

    name = "message intake"

    def __init__(self, reader: BusReader):
        self.reader = reader

    def start(self, app) -> bool:
        host = self.reader.host
        # A group's requests come from its stream; one member bridges the channel.
        # Every instance with actions hears their callers' cancels.
        channels = [*([] if host.grouped else [host.service]), *([host.cancel_channel] if app.actions else []),
                    *app.listeners]
        while channels and not self.reader.subscriber.add(*channels, timeout=0.5):
            if host.stopping.is_set():
                return False
        return True

    def stop(self) -> None:
        self.reader.subscriber.stop()


class Heartbeat:
    """Pings systemd's watchdog while every component is healthy, and
    refreshes the registry entry while the service is ready. A group member
    also beats sooner while it holds requests or another member's could
    become claimable (see :meth:`daebus.service.group.GroupServer.beat`)."""

    name = "heartbeat"

    def __init__(self, host):
        self.host = host
        watchdog = host.notifier.watchdog_interval
        self.interval = min(watchdog or 3600.0, host.settings.registry_ttl / 3)
        self._stopping = threading.Event()
        self._wakeup = threading.Event()   # stop(), or news from the group
        self._thread: threading.Thread | None = None
        # Healthy until shown otherwise: only a change is worth a log line.
        self._state = logs.StateLog(log, "ok")

    def start(self, app) -> None:
        self._thread = threading.Thread(target=self._beat, name="daebus-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    def wake(self) -> None:
        """Beat now (another group member took requests)."""
        self._wakeup.set()

    def join(self, timeout: float) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def _beat(self) -> None:
        host = self.host
        watchdog = host.notifier.watchdog_interval
        wait, due = self.interval, time.monotonic() + self.interval
        while True:
            self._wakeup.wait(wait)
            self._wakeup.clear()
            if self._stopping.is_set():
                return
            soon = host.group_beat() or self.interval
            now = time.monotonic()
            if now < due:
                wait = max(0.05, min(due - now, soon))
                continue
            due, wait = now + self.interval, max(0.05, min(self.interval, soon))
            if watchdog is not None:
                problems = host.health()
                if problems:
                    self._state.set("unhealthy", logging.ERROR, "%s: withholding the watchdog ping",
                                    "; ".join(problems))
                else:
                    self._state.set("ok", logging.INFO, "healthy again")
                    host.notifier.watchdog()
            if host.serving and host.subscriber.connected:
                host.register("running")
