"""Per-invocation context and the ``request``/``response``/``broadcast``/
``cache``/``logger`` proxies.

``request`` and ``response`` are bound for one handler call in a
:mod:`contextvars` variable, so concurrent handlers never see each other's.
``broadcast``, ``cache`` and ``logger`` follow the app: the one whose handler,
task, thread or on_start is running, else the app that is running in this
process.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import TYPE_CHECKING, Any, Callable

from daebus.ops import records
from daebus.ops.records import bind_log_fields, log_fields, reset_log_fields  # noqa: F401 - public here too

if TYPE_CHECKING:
    from daebus.app.application import Daebus

_handler: contextvars.ContextVar[tuple[Any, Any] | None] = contextvars.ContextVar("daebus_handler", default=None)
_app: contextvars.ContextVar[Daebus | None] = contextvars.ContextVar("daebus_app", default=None)
_running_app: list[Daebus | None] = [None]

_base_logger = logging.getLogger("daebus")


class OutsideContextError(RuntimeError):
    """A context-bound proxy was used where it has no meaning."""


def get_daemon() -> Daebus | None:
    """The app of the current handler or thread, else the running app."""
    return _app.get() or _running_app[0]


def set_running_app(app: Daebus | None) -> None:
    _running_app[0] = app


@contextlib.contextmanager
def app_context(app: Daebus):
    token = _app.set(app)
    try:
        yield
    finally:
        _app.reset(token)


@contextlib.contextmanager
def handler_context(app: Daebus, request: Any, response: Any):
    """Bind ``request``/``response`` (and the app) for one handler call."""
    app_token = _app.set(app)
    token = _handler.set((request, response))
    try:
        yield
    finally:
        _handler.reset(token)
        _app.reset(app_token)


def _handler_fields() -> dict:
    """``service``/``action``/``request_id`` of the handler running now."""
    fields: dict = {}
    app = get_daemon()
    if app is not None and app.service:
        fields["service"] = app.service
    bound = _handler.get()
    if bound is not None:
        req = bound[0]
        action = getattr(req, "action", None)
        if action:
            fields["action"] = action
        log_id = getattr(req, "log_id", None)
        if log_id:
            fields["request_id"] = log_id
    return fields


records.add_source(_handler_fields)


def current_trace_id() -> str | None:
    """The trace id a call made now should carry on: the one of the request
    being handled, or one bound by the code serving an HTTP request."""
    bound = _handler.get()
    if bound is not None:
        log_id = getattr(bound[0], "log_id", None)
        if log_id:
            return log_id
    return records.bound_field("request_id")


def current_cancellation():
    """The cancellation of the request being handled (a call made now is
    cancelled with it), or None outside a handler."""
    bound = _handler.get()
    return getattr(bound[0], "cancelled", None) if bound is not None else None


def _current(index: int, name: str):
    bound = _handler.get()
    if bound is None:
        raise OutsideContextError(
            f"Working outside of a handler context: `{name}` is only available while an "
            f"@app.action or @app.route handler runs. Pass data to helpers explicitly, or use "
            f"daebus.testing to call a handler in a test.")
    return bound[index]


def _require_app(name: str) -> Daebus:
    app = get_daemon()
    if app is None:
        raise OutsideContextError(f"`{name}` needs a running Daebus app: call app.run() first, "
                                  f"or use it inside a handler, task, thread or on_start.")
    return app


def _broadcast():
    return _require_app("broadcast").broadcaster


def _cache():
    return _require_app("cache").cache


def _logger():
    app = get_daemon()
    return app.logger if app is not None else _base_logger


class LocalProxy:
    """Forwards attribute access to the object ``lookup()`` returns now."""

    __slots__ = ("_lookup", "_name")

    def __init__(self, lookup: Callable[[], Any], name: str):
        object.__setattr__(self, "_lookup", lookup)
        object.__setattr__(self, "_name", name)

    def _get_current_object(self) -> Any:
        return self._lookup()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lookup(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._lookup(), name, value)

    def __repr__(self) -> str:
        try:
            return repr(self._lookup())
        except OutsideContextError:
            return f"<unbound daebus.{self._name}>"

    def __bool__(self) -> bool:
        try:
            return bool(self._lookup())
        except OutsideContextError:
            return False


request = LocalProxy(lambda: _current(0, "request"), "request")
response = LocalProxy(lambda: _current(1, "response"), "response")
broadcast = LocalProxy(_broadcast, "broadcast")
cache = LocalProxy(_cache, "cache")
logger = LocalProxy(_logger, "logger")
direct_logger = LocalProxy(_logger, "direct_logger")
