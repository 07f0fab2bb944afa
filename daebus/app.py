"""The :class:`Daebus` app: what a service declares, and ``run()``."""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from .blueprint import Blueprint, Route, Scaffold
from .errors import ConfigError


class Daebus(Scaffold):
    """A service: actions, listeners, background tasks, threads and routes.

    Example::

        app = Daebus(__name__)

        @app.action("get_status")
        def get_status():
            return response.success({"status": "healthy"})

        if __name__ == "__main__":
            app.run(service="my_service")
    """

    def __init__(self, name: str, max_workers: int = 10):
        super().__init__(name)
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError("max_workers must be a positive integer")
        self.max_workers = max_workers
        self.components: list[Any] = []
        self.blueprints: dict[str, Blueprint] = {}
        self.service: str | None = None
        self.logger = logging.getLogger(name)
        self._runtime = None
        self._ready = threading.Event()

    # -- composition -----------------------------------------------------
    def attach(self, component: Any) -> Any:
        """Attach a component such as :class:`DaebusHttp`; it starts and
        stops with the app. Returns the component."""
        if component not in self.components:
            self.components.append(component)
            bind = getattr(component, "bind", None)
            if bind is not None:
                bind(self)
        return component

    def register_blueprint(self, blueprint: Blueprint, url_prefix: str | None = None) -> None:
        """Add a blueprint's handlers to the app (before ``run()``)."""
        if blueprint.name in self.blueprints and self.blueprints[blueprint.name] is not blueprint:
            raise ValueError(f"a different blueprint named {blueprint.name!r} is already registered")
        self.blueprints[blueprint.name] = blueprint
        for name, fn in blueprint.actions.items():
            self.action(name)(fn)
        for channel, handlers in blueprint.listeners.items():
            for fn in handlers:
                self.listen(channel)(fn)
        # Compiled once, where the blueprint declared them.
        self.contracts.update(blueprint.contracts)
        self.listen_contracts.update(blueprint.listen_contracts)
        for task in blueprint.tasks.values():
            self.background(task.name, task.interval, cron=task.cron, run_at_start=task.run_at_start)(task.fn)
        for spec in blueprint.threads.values():
            self.thread(spec.name, spec.auto_start)(spec.fn)
        self.start_hooks.extend(blueprint.start_hooks)
        prefix = (url_prefix if url_prefix is not None else blueprint.url_prefix or "").rstrip("/")
        self.routes.extend(Route(prefix + r.path, r.methods, r.fn) for r in blueprint.routes)

    # -- running ---------------------------------------------------------
    def run(self, service: str | None = None, debug: bool = False, redis_host: str | None = None,
            redis_port: int | None = None, redis_url: str | None = None, **settings: Any) -> None:
        """Serve until SIGTERM/SIGINT or :meth:`stop`, then shut down cleanly.

        ``settings`` override configured values (``queue_size``,
        ``shutdown_timeout``, ``log_level`` ...). Exits with status 150
        (:class:`NameTaken`) when another live instance serves the name.
        """
        from .runtime import Runtime

        if self._runtime is not None and self._runtime.running:
            raise RuntimeError("this app is already running")
        self.service = service or self.service or _default_service_name(self.name)
        self.logger = logging.getLogger(self.service)
        try:
            self._runtime = Runtime(self, debug=debug, redis_host=redis_host, redis_port=redis_port,
                                    redis_url=redis_url, **settings)
        except ConfigError as exc:
            # A daemon's bad config is one line in the journal and exit 2, not a traceback.
            print(f"{self.service}: configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        self._runtime.run()
        if self._runtime.exit_status:
            raise SystemExit(self._runtime.exit_status)

    def stop(self) -> None:
        """Ask a running app to shut down; ``run()`` then returns."""
        if self._runtime is not None:
            self._runtime.stop()

    def is_running(self) -> bool:
        return self._runtime is not None and self._runtime.running

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until a ``run()`` in another thread is serving (ready as
        systemd would be told); False on timeout."""
        return self._ready.wait(timeout)

    def start_thread(self, name: str) -> bool:
        """Start (or restart) the ``@app.thread`` called ``name``."""
        return self._require_runtime().thread(name).start()

    def stop_thread(self, name: str, timeout: float | None = 5.0) -> bool:
        """Make that thread's ``running()`` False and wait for it to end."""
        return self._require_runtime().thread(name).stop(timeout)

    def _require_runtime(self):
        if self._runtime is None or not self._runtime.running:
            raise RuntimeError("the app is not running")
        return self._runtime

    # -- what handlers use -------------------------------------------------
    @property
    def redis_url(self) -> str | None:
        return self._runtime.settings.redis_url if self._runtime is not None else None

    @property
    def cache(self):
        """The app's Redis client (strings decoded)."""
        return self._require_runtime().client

    @property
    def broadcaster(self):
        return self._require_runtime().broadcaster


def _default_service_name(name: str) -> str:
    if name == "__main__":
        main = getattr(sys.modules.get("__main__"), "__file__", None)
        if main:
            return os.path.splitext(os.path.basename(main))[0]
    return name.rsplit(".", 1)[-1]
