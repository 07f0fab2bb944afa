"""Long-running ``@app.thread`` loops that can be stopped one by one."""

from __future__ import annotations

import logging
import threading

from .blueprint import ThreadSpec
from .context import app_context

log = logging.getLogger("daebus.threads")


class ManagedThread:
    """Runs ``spec.fn(running)``; :meth:`stop` makes ``running()`` False."""

    def __init__(self, app, spec: ThreadSpec):
        self.app = app
        self.spec = spec
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    def running(self) -> bool:
        return self._running.is_set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        if self.alive:
            return False
        self._running.set()
        self._thread = threading.Thread(target=self._run, name=f"daebus-thread-{self.spec.name}", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        with app_context(self.app):
            try:
                self.spec.fn(self.running)
            except Exception:  # noqa: BLE001 - report, don't take the service down
                log.exception("thread %r failed", self.spec.name)
            finally:
                self._running.clear()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the loop to end; True when it ended within ``timeout``."""
        self._running.clear()
        return self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()
