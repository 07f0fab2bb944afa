"""sd_notify without a dependency: one datagram to ``$NOTIFY_SOCKET``, and
the receiving end for launchers and tests that start services as systemd does.

Example::

    notifier = Notifier.from_env()
    notifier.notify("READY=1", "STATUS=serving")

    listener = NotifySocket()                # give a child NOTIFY_SOCKET=listener.path
    listener.wait_for("READY=1", timeout=30)
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading

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


class NotifySocket:
    """A datagram socket to give a child as ``NOTIFY_SOCKET``; collects the
    lines it sends, as systemd does for a ``Type=notify`` service."""

    def __init__(self):
        self._dir = tempfile.mkdtemp(prefix="daebus-notify-")
        self.path = os.path.join(self._dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, name="notify-socket", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            with self._cond:
                self.messages.extend(data.decode(errors="replace").splitlines())
                self._cond.notify_all()

    def wait_for(self, line: str, timeout: float = 10, prefix: bool = False, count: int = 1) -> bool:
        """Wait until ``line`` (or a line starting with it) has arrived ``count`` times."""
        def seen():
            return sum(m.startswith(line) if prefix else m == line for m in self.messages) >= count
        with self._cond:
            return self._cond.wait_for(seen, timeout)

    def last(self, prefix: str) -> str | None:
        """The latest line starting with ``prefix``, without it (``STATUS=``)."""
        with self._cond:
            found = [m[len(prefix):] for m in self.messages if m.startswith(prefix)]
        return found[-1] if found else None

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)
