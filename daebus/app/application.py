"""The :class:`Daebus` app: what a service declares, and ``run()``."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import threading
from typing import Any, Iterator

from daebus.app.blueprint import Blueprint, Scaffold
from daebus.errors import ConfigError
from daebus.ops import logs


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

    def __init__(self, name: str, max_workers: int = 10, mode: str | None = None):
        super().__init__(name)
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError("max_workers must be a positive integer")
        if mode not in (None, "owner", "group"):
            raise ValueError(f"mode must be 'owner' (one live instance) or 'group' "
                             f"(instances share the requests), got {mode!r}")
        self.max_workers = max_workers
        # None: the [service] mode key decides.
        self.mode = mode
        self.components: list[Any] = []
        self.blueprints: dict[str, Blueprint] = {}
        self.service: str | None = None
        self.logger = logging.getLogger(name)
        self._runtime = None
        # Set while the service serves (ready as systemd is told); the runtime sets it.
        self.serving = threading.Event()
        self._setup_finished = False
        self._bus: _Bus | None = None

    # -- composition -----------------------------------------------------
    def attach(self, component: Any) -> Any:
        """Attach a component such as :class:`DaebusHttp`; it starts and
        stops with the app (see :mod:`daebus.service.lifecycle`). Returns the component."""
        self._check_setup_finished("attach")
        if component not in self.components:
            self.components.append(component)
            bind = getattr(component, "bind", None)
            if bind is not None:
                bind(self)
        return component

    def register_blueprint(self, blueprint: Blueprint, url_prefix: str | None = None) -> None:
        """Add a blueprint's handlers to the app (before ``run()``); what the
        blueprint declares later is added too."""
        self._check_setup_finished("register_blueprint")
        if blueprint.name in self.blueprints:
            what = "it" if self.blueprints[blueprint.name] is blueprint else "a different blueprint"
            raise ValueError(f"{what} named {blueprint.name!r} is already registered")
        self.blueprints[blueprint.name] = blueprint
        prefix = (url_prefix if url_prefix is not None else blueprint.url_prefix or "").rstrip("/")
        blueprint.register_on(self, prefix)

    def _check_setup_finished(self, kind: str) -> None:
        if self._setup_finished:
            raise RuntimeError(
                f"app.{kind}() was called after run() started: the running service would never "
                f"use it. Declare actions, listeners, routes, tasks, threads and components "
                f"before run(), or on a blueprint registered before it.")

    # -- running ---------------------------------------------------------
    def run(self, service: str | None = None, debug: bool = False, redis_host: str | None = None,
            redis_port: int | None = None, redis_url: str | None = None, **settings: Any) -> None:
        """Serve until SIGTERM/SIGINT or :meth:`stop`, then shut down cleanly.

        ``settings`` override configured values (``queue_size``,
        ``shutdown_timeout``, ``log_level`` ...). Exits with status 150
        (:class:`NameTaken`) when another live instance serves the name.
        """
        if self._setup_finished:
            raise RuntimeError("this app is already running")
        self._setup_finished = True
        try:
            self._run(service, debug, redis_host, redis_port, redis_url, settings)
        finally:
            self._setup_finished = False

    def _run(self, service, debug, redis_host, redis_port, redis_url, settings) -> None:
        from daebus.service.runtime import Runtime

        self.service = service or self.service or _default_service_name(self.name)
        self.logger = logging.getLogger(self.service)
        try:
            self._runtime = Runtime(self, debug=debug, redis_host=redis_host, redis_port=redis_port,
                                    redis_url=redis_url, **settings)
        except ConfigError as exc:
            logs.exit_on_config_error(self.service, exc)
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
        return self.serving.wait(timeout)

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
    @contextlib.contextmanager
    def bound_to(self, client, broadcaster, redis_url: str | None = None) -> Iterator[None]:
        """Give handlers ``cache``, ``broadcast`` and the Redis URL from these
        until the block ends. ``run()`` binds its own connection this way; a
        harness that calls handlers in-process (:class:`~daebus.testing.TestClient`)
        binds stand-ins.

        Example::

            with app.bound_to(fakeredis.FakeRedis(decode_responses=True), Broadcaster(publish)):
                app.actions["get_status"]()
        """
        previous = self._bus
        self._bus = _Bus(client, broadcaster, redis_url)
        try:
            yield
        finally:
            self._bus = previous

    def _require_bus(self) -> _Bus:
        if self._bus is None:
            raise RuntimeError("the app is not running (or not connected to Redis yet)")
        return self._bus

    @property
    def redis_url(self) -> str | None:
        if self._bus is not None:
            return self._bus.redis_url
        return self._runtime.settings.redis_url if self._runtime is not None else None

    @property
    def cache(self):
        """The app's Redis client (strings decoded)."""
        return self._require_bus().client

    @property
    def broadcaster(self):
        return self._require_bus().broadcaster


@dataclasses.dataclass(frozen=True)
class _Bus:
    client: Any
    broadcaster: Any
    redis_url: str | None


def _default_service_name(name: str) -> str:
    if name == "__main__":
        main = getattr(sys.modules.get("__main__"), "__file__", None)
        if main:
            return os.path.splitext(os.path.basename(main))[0]
    return name.rsplit(".", 1)[-1]
