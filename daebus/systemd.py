"""sd_notify without a dependency: one datagram to ``$NOTIFY_SOCKET``.

Example::

    notifier = Notifier.from_env()
    notifier.notify("READY=1", "STATUS=serving")
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("daebus.systemd")


class Notifier:
    """Sends state lines to systemd; does nothing when not started by it."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None):
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, environ=None) -> Notifier:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        watchdog = None
        try:
            usec = int(env.get("WATCHDOG_USEC", "0"))
            pid = env.get("WATCHDOG_PID")
            # WATCHDOG_PID guards against a child process inheriting the variables.
            if usec > 0 and (not pid or int(pid) == os.getpid()):
                watchdog = usec
        except ValueError:
            log.warning("ignoring invalid WATCHDOG_USEC/WATCHDOG_PID")
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between keep-alive pings: half of ``WatchdogSec``."""
        return self.watchdog_usec / 2_000_000 if self.watchdog_usec else None

    def notify(self, *lines: str) -> bool:
        if not self.address:
            return False
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode("utf-8"), address)
            return True
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
