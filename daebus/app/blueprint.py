"""Registration: the decorators shared by :class:`Daebus` and :class:`Blueprint`.

Decorators only record what they are given and return the function
unchanged, so handlers stay plain functions that tests can call directly.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

from daebus.app.limits import Limit, limit_of
from daebus.app.retry import RetryPolicy
from daebus.app.schemas import Contract

F = Callable


@dataclasses.dataclass(frozen=True)
class BackgroundTask:
    name: str
    fn: Callable[[], object]
    interval: float | None
    cron: str | None
    run_at_start: bool


@dataclasses.dataclass(frozen=True)
class ThreadSpec:
    name: str
    fn: Callable[[Callable[[], bool]], object]
    auto_start: bool


@dataclasses.dataclass(frozen=True)
class Route:
    path: str
    methods: tuple[str, ...]
    fn: Callable


def _check_name(kind: str, name) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{kind} name must be a non-empty string, got {name!r}")


def is_async(fn: Callable) -> bool:
    """True for ``async def`` functions (also behind functools.partial)."""
    return inspect.iscoroutinefunction(fn)


def uses_async(app) -> bool:
    """Whether ``app`` declares a handler that needs an event loop."""
    handlers = [*app.actions.values(), *(fn for fns in app.listeners.values() for fn in fns),
                *(task.fn for task in app.tasks.values()), *app.start_hooks]
    return any(is_async(fn) for fn in handlers)


def _not_async(fn, what: str, hint: str) -> None:
    if is_async(fn):
        raise TypeError(f"{what} needs a plain function, not an async def: {hint}")


def _policy(what: str, retry: Any) -> RetryPolicy | None:
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise TypeError(f"{what}: retry= takes a RetryPolicy, got {retry!r}")
    return retry


def _contract(what: str, schema: Any, reply_schema: Any) -> Contract | None:
    if schema is None and reply_schema is None:
        return None
    return Contract.compile(schema, what, reply_schema)


class Scaffold:
    """What an app or a blueprint can declare."""

    def __init__(self, name: str):
        self.name = name
        self.actions: dict[str, Callable] = {}
        self.listeners: dict[str, list[Callable]] = {}
        # Payload contracts: by action name, and by (channel, handler).
        self.contracts: dict[str, Contract] = {}
        self.listen_contracts: dict[tuple[str, Callable], Contract] = {}
        # Concurrency limits and retry policies: by action, and by (channel, handler).
        self.limits: dict[str, Limit] = {}
        self.listen_limits: dict[tuple[str, Callable], Limit] = {}
        self.retries: dict[str, RetryPolicy] = {}
        self.listen_retries: dict[tuple[str, Callable], RetryPolicy] = {}
        self.tasks: dict[str, BackgroundTask] = {}
        self.threads: dict[str, ThreadSpec] = {}
        self.start_hooks: list[Callable] = []
        self.routes: list[Route] = []

    # Every decorator registers through here: ``register(target, prefix, fn)``
    # records ``fn`` on an app or blueprint, so a blueprint can replay it on
    # the apps it is (or later gets) registered on.
    def _decorator(self, kind: str, register: Callable[[Scaffold, str, F], None]) -> Callable[[F], F]:
        def decorator(fn: F) -> F:
            self._apply(kind, lambda target, prefix: register(target, prefix, fn), "")
            return fn
        return decorator

    def _apply(self, kind: str, registration: Callable[[Scaffold, str], None], prefix: str) -> None:
        self._check_setup_finished(kind)
        registration(self, prefix)

    def _check_setup_finished(self, kind: str) -> None:
        """Raise if something declared now could no longer take effect."""

    def action(self, name: str, schema: dict | None = None, reply_schema: dict | None = None, *,
               concurrency: int | None = None, queue: int | None = None,
               retry: RetryPolicy | None = None) -> Callable[[F], F]:
        """Handle requests for ``name`` on the service channel.

        With ``schema`` (a JSON Schema), a payload that does not match is
        answered ``bad_request`` naming every problem, and the handler is
        not called. ``reply_schema`` documents the success reply (registry,
        OpenAPI) and is checked by :class:`daebus.testing.TestClient`.
        The handler may be ``async def``: it then runs on the service's
        event loop. With ``concurrency``, at most that many of its calls run
        at once and up to ``queue`` more wait (holding no worker); beyond
        them a request is answered ``busy`` (:mod:`daebus.app.limits`).
        ``retry`` is a :class:`~daebus.RetryPolicy`: how a ``raise Retry()``
        (or an exception of its ``retry_on``) is run again (:mod:`daebus.app.retry`).

        Example::

            @app.action("get_status", schema={"type": "object",
                        "properties": {"detail_level": {"enum": ["brief", "full"]}}})
            def get_status():
                return {"uptime": 3600}          # sent as the success reply

            @app.action("print", concurrency=1, queue=20)
            def print_label():
                printer.print(request.payload["text"])    # one at a time
        """
        _check_name("action", name)
        contract = _contract(f"action {name!r}", schema, reply_schema)
        limit = limit_of(f"action {name!r}", concurrency, queue)
        policy = _policy(f"action {name!r}", retry)

        def register(target: Scaffold, prefix: str, fn: F) -> None:
            existing = target.actions.get(name)
            if existing is not None and existing is not fn:
                raise ValueError(f"action {name!r} is already handled by {existing.__qualname__}")
            target.actions[name] = fn
            for table, value in ((target.contracts, contract), (target.limits, limit), (target.retries, policy)):
                if value is not None:
                    table[name] = value
        return self._decorator("action", register)

    def listen(self, channel: str, schema: dict | None = None, *, concurrency: int | None = None,
               queue: int | None = None, retry: RetryPolicy | None = None) -> Callable[[F], F]:
        """Call the function with each JSON object broadcast on ``channel``.

        With ``schema``, a payload that does not match is logged and dropped
        before the function sees it. ``concurrency``, ``queue`` and
        ``retry`` work as for :meth:`action`; a broadcast beyond a full
        queue is dropped and logged.

        Example::

            @app.listen("notifications")
            def on_notification(payload):
                logger.info("got %s", payload)
        """
        _check_name("channel", channel)
        what = f"listener on {channel!r}"
        contract = _contract(what, schema, None)
        limit, policy = limit_of(what, concurrency, queue), _policy(what, retry)

        def register(target: Scaffold, prefix: str, fn: F) -> None:
            handlers = target.listeners.setdefault(channel, [])
            if fn not in handlers:
                handlers.append(fn)
            for table, value in ((target.listen_contracts, contract), (target.listen_limits, limit),
                                 (target.listen_retries, policy)):
                if value is not None:
                    table[(channel, fn)] = value
        return self._decorator("listen", register)

    def background(self, name: str, interval: float | None = None, *, cron: str | None = None,
                   run_at_start: bool = False) -> Callable[[F], F]:
        """Run the function every ``interval`` seconds, or on a ``cron``
        schedule ("*/5 * * * *"); a run never overlaps the previous one.

        Example::

            @app.background("health_check", 30, run_at_start=True)
            def health_check():
                broadcast.send("system_status", {"status": "healthy"})
        """
        _check_name("background task", name)
        if (interval is None) == (cron is None):
            raise ValueError(f"background task {name!r}: give either an interval or cron=, not both")
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int | float)
                                     or interval <= 0):
            raise ValueError(f"background task {name!r}: interval must be a positive number of seconds")
        if cron is not None and (not isinstance(cron, str) or len(cron.split()) != 5):
            raise ValueError(f"background task {name!r}: cron must have five fields, got {cron!r}")

        def register(target: Scaffold, prefix: str, fn: F) -> None:
            existing = target.tasks.get(name)
            if existing is not None and existing.fn is not fn:
                raise ValueError(f"background task {name!r} is already registered")
            target.tasks[name] = BackgroundTask(name, fn, interval, cron, run_at_start)
        return self._decorator("background", register)

    def thread(self, name: str, auto_start: bool = True) -> Callable[[F], F]:
        """Run ``fn(running)`` in its own thread; loop while ``running()``.

        Example::

            @app.thread("poller")
            def poll(running):
                while running():
                    read_sensor()
        """
        _check_name("thread", name)

        def register(target: Scaffold, prefix: str, fn: F) -> None:
            _not_async(fn, f"@thread({name!r})", "for async code use @background or an async @on_start")
            existing = target.threads.get(name)
            if existing is not None and existing.fn is not fn:
                raise ValueError(f"thread {name!r} is already registered")
            target.threads[name] = ThreadSpec(name, fn, auto_start)
        return self._decorator("thread", register)

    def on_start(self) -> Callable[[F], F]:
        """Run the function once Redis is connected, before the service is
        reported ready. An exception stops the service."""
        def register(target: Scaffold, prefix: str, fn: F) -> None:
            if fn not in target.start_hooks:
                target.start_hooks.append(fn)
        return self._decorator("on_start", register)

    def route(self, path: str, methods=None) -> Callable[[F], F]:
        """Serve ``path`` on the attached :class:`DaebusHttp`; the handler is
        called as ``fn(req, **params)``.

        Example::

            @app.route("/devices/<int:device_id>", methods=["GET"])
            def get_device(req, device_id):
                return {"id": device_id}
        """
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"route path must start with '/', got {path!r}")
        verbs = tuple(m.upper() for m in (methods or ["GET"]))

        def register(target: Scaffold, prefix: str, fn: F) -> None:
            _not_async(fn, f"@route({path!r})", "DaebusHttp serves routes from its own threads")
            target.routes.append(Route(prefix + path, verbs, fn))
        return self._decorator("route", register)


class Blueprint(Scaffold):
    """A group of handlers to register on an app, possibly under a URL prefix.

    Example::

        bp = Blueprint("display")

        @bp.action("set_brightness")
        def set_brightness():
            ...

        app.register_blueprint(bp)
    """

    def __init__(self, name: str, url_prefix: str | None = None):
        super().__init__(name)
        self.url_prefix = url_prefix
        self._registrations: list[tuple[str, Callable[[Scaffold, str], None]]] = []
        self._apps: list[tuple[Scaffold, str]] = []

    def _apply(self, kind: str, registration: Callable[[Scaffold, str], None], prefix: str) -> None:
        # Declared after register_blueprint: it still counts on those apps
        # (or raises there, when one is already running).
        for app, app_prefix in self._apps:
            app._apply(kind, registration, app_prefix)
        super()._apply(kind, registration, prefix)
        self._registrations.append((kind, registration))

    def register_on(self, app: Scaffold, prefix: str) -> None:
        """Replay every declaration on ``app`` with ``prefix`` before route
        paths, and every later one too (what ``app.register_blueprint`` does)."""
        for kind, registration in self._registrations:
            app._apply(kind, registration, prefix)
        self._apps.append((app, prefix))
