"""The lifecycle every part of a running service follows.

A component is an object with any of four methods; the runtime calls the
ones it has:

``start(app)``
    Begin work. Raise to abort the service's start; return ``False`` when
    the service was asked to stop before this component got ready.
``stop()``
    Stop taking new work and return at once (or soon): close intake, set
    a flag, wake loops.
``join(timeout)``
    Wait up to ``timeout`` seconds for work in flight; ``True`` when done.
``health()``
    ``None`` while healthy, else one line saying what is wrong. The
    systemd watchdog is only pinged while every component is healthy.

The runtime runs, in this order: the handlers (worker pool and event
loop), the heartbeat (registry and watchdog), the bus reader (name claim),
whatever ``app.attach()`` added (:class:`~daebus.DaebusHttp`), the
message intake (the service's channels), the ``on_start`` hooks, the
scheduler and the ``@app.thread`` loops. On shutdown every ``stop()`` runs
first, latest component first, then every ``join()`` against one deadline:
intake ends everywhere before the service waits for work in flight, and the
handlers are drained last.

Example, a component that flushes a buffer on shutdown::

    class Flusher:
        def start(self, app):
            self.thread = threading.Thread(target=self.loop, daemon=True)
            self.stopping = threading.Event()
            self.thread.start()

        def stop(self):
            self.stopping.set()

        def join(self, timeout):
            self.thread.join(timeout)
            return not self.thread.is_alive()

    app.attach(Flusher())
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from daebus.service.stopping import JOIN_GRACE, bounded

log = logging.getLogger("daebus.lifecycle")


def name_of(component: Any) -> str:
    return getattr(component, "name", None) or type(component).__name__


class Lifecycle:
    """Runs a list of components through start, stop and join."""

    def __init__(self, components: list[Any]):
        self.components = list(components)
        self._started: list[Any] = []
        self._starting: Any = None
        self._lock = threading.Lock()

    def start(self, app: Any, stopping: threading.Event) -> bool:
        """Start each component in order; False if ``stopping`` was set or a
        component returned False before all were started."""
        for component in self.components:
            if stopping.is_set():
                return False
            start = getattr(component, "start", None)
            self._starting = component
            try:
                result = start(app) if start is not None else None
            except Exception as exc:
                # A refusal by Redis is reported by whoever stops the service for it.
                if getattr(exc, "code", None) != "access_denied":
                    log.error("could not start %s: %s", name_of(component), exc)
                raise
            finally:
                self._starting = None
            with self._lock:
                self._started.append(component)
            if result is False:
                return False
        return True

    def stop(self, timeout: float, deadline: float | None = None) -> list[Any]:
        """Stop every started component, then wait for them within
        ``timeout`` seconds (or until ``deadline``, a ``time.monotonic()``
        value); those still busy. No call outlasts the deadline, even one
        blocked on a frozen Redis (see :mod:`daebus.service.stopping`)."""
        deadline = time.monotonic() + timeout if deadline is None else deadline
        with self._lock:
            started, self._started = self._started[::-1], []
        bound = deadline + JOIN_GRACE
        busy = []
        for component in started:
            if not self._bounded(component, "stop", bound):
                busy.append(component)
        for component in started:
            if component in busy:
                continue
            if self._bounded(component, "join", bound, max(0.0, deadline - time.monotonic())) is not True:
                busy.append(component)
        return busy

    def _bounded(self, component: Any, method: str, deadline: float, *args):
        if getattr(component, method, None) is None:
            return True
        finished, result = bounded(f"{method} of {name_of(component)}", self._call, deadline,
                                   component, method, *args)
        if not finished:
            return False
        return result is not False

    def health(self) -> list[str]:
        """What is wrong, one line per unhealthy component (started or starting)."""
        with self._lock:
            current = [*self._started, *([self._starting] if self._starting is not None else [])]
        problems = []
        for component in current:
            check = getattr(component, "health", None)
            problem = check() if check is not None else None
            if problem:
                problems.append(f"{name_of(component)}: {problem}")
        return problems

    @staticmethod
    def _call(component: Any, method: str, *args):
        fn = getattr(component, method, None)
        if fn is None:
            return None
        try:
            return fn(*args)
        except Exception:  # noqa: BLE001 - keep shutting the rest down
            log.exception("%s of %s failed", method, name_of(component))
            return None
