"""Long-running ``@app.thread`` loops that can be stopped one by one."""

from __future__ import annotations

import logging
import threading
import time

from daebus.app.blueprint import ThreadSpec
from daebus.app.context import app_context

log = logging.getLogger("daebus.threads")


class Running:
    """The ``running`` argument of a thread function: call it to ask whether
    to go on; ``running.wait(seconds)`` sleeps but wakes at once on stop.

    Example::

        @app.thread("poller")
        def poll(running):
            while running():
                read_sensor()
                running.wait(5)
    """

    def __init__(self):
        self._stopped = threading.Event()
        self._stopped.set()

    def __call__(self) -> bool:
        return not self._stopped.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout``; True when the thread should stop."""
        return self._stopped.wait(timeout)


class ManagedThread:
    """Runs ``spec.fn(running)``; :meth:`stop` makes ``running()`` False."""

    def __init__(self, app, spec: ThreadSpec):
        self.app = app
        self.spec = spec
        self.running = Running()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        if self.alive:
            return False
        self.running._stopped.clear()
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
                self.running._stopped.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the loop to end; True when it ended within ``timeout``."""
        self.running._stopped.set()
        return self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()


class AppThreads:
    """The app's ``@app.thread`` loops as one :mod:`daebus.service.lifecycle`
    component: started with the service (those with ``auto_start``),
    asked to stop together, joined within the shutdown deadline."""

    name = "threads"

    def __init__(self, app):
        self.threads = {name: ManagedThread(app, spec) for name, spec in app.threads.items()}

    def get(self, name: str) -> ManagedThread:
        try:
            return self.threads[name]
        except KeyError:
            raise KeyError(f"no thread named {name!r}; known: {', '.join(self.threads) or 'none'}") from None

    def start(self, app) -> None:
        for thread in self.threads.values():
            if thread.spec.auto_start:
                thread.start()

    def stop(self) -> None:
        for thread in self.threads.values():
            thread.stop(0)

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        late = [name for name, thread in self.threads.items()
                if not thread.join(max(0.0, deadline - time.monotonic()))]
        for name in late:
            log.warning("thread %r ignored the stop request; exiting without it", name)
        return not late
