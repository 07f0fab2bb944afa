"""systemd's watchdog for the gateway, as the workers have one.

gunicorn's master is the process systemd watches. A thread of its own pings
``WATCHDOG=1`` only while the master's loop keeps turning (it manages its
worker about once a second) and the worker's heartbeat, which its main loop
renews every second, is fresh. A wedged master or a frozen worker stops the
pings, and systemd restarts the gateway after ``WatchdogSec``.

Example (what ``gateway.gunicorn_conf`` does in ``when_ready``)::

    MasterWatchdog(Notifier.from_env()).attach(server)
"""

from __future__ import annotations

import logging
import threading
import time

from daebus.ops.logs import StateLog

log = logging.getLogger("gateway")


class MasterWatchdog:
    """Pings systemd from the gunicorn master while master and worker live."""

    def __init__(self, notifier):
        self.notifier = notifier
        self.interval = notifier.watchdog_interval
        # Silence longer than WatchdogSec (twice the ping interval) is a wedge.
        self.limit = 2 * (self.interval or 0)
        self.loop_at = time.monotonic()
        self._stop = threading.Event()
        self._state = StateLog(log, "ok")
        self._server = None

    def attach(self, server) -> MasterWatchdog:
        """Watch ``server`` (the arbiter); nothing happens without WatchdogSec."""
        if not self.interval:
            return self
        self._server = server
        manage = server.manage_workers

        def manage_and_stamp():
            self.loop_at = time.monotonic()
            return manage()

        server.manage_workers = manage_and_stamp
        threading.Thread(target=self._run, name="gateway-watchdog", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def problem(self) -> str | None:
        """None while healthy, else what is wedged."""
        silent = time.monotonic() - self.loop_at
        if silent > self.limit:
            return f"the gunicorn master's loop has not turned for {silent:.0f} s"
        for pid, worker in list(getattr(self._server, "WORKERS", {}).items()):
            try:
                stamp = worker.tmp.last_update()
            except (OSError, ValueError):
                continue  # the worker is being replaced; the master's loop says more
            # gunicorn 20 stamps the heartbeat with the wall clock, later
            # versions with the monotonic one: the nearer clock is the one used.
            quiet = min(abs(time.time() - stamp), abs(time.monotonic() - stamp))
            if quiet > self.limit:
                return f"worker {pid} has not shown a heartbeat for {quiet:.0f} s"
        return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            problem = self.problem()
            if problem:
                self._state.set("wedged", logging.ERROR, "%s: withholding the watchdog ping", problem)
            else:
                self._state.set("ok", logging.INFO, "healthy again")
                self.notifier.watchdog()
