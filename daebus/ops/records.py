"""What a daebus log record carries besides its message: the syslog
priority of its level, and the journal fields of the code that logged it.

The fields (``service``, ``action``, ``request_id``; journald's
``DAEBUS_SERVICE``, ``DAEBUS_ACTION``, ``DAEBUS_REQUEST_ID``) come from the
context: the handler running now (:mod:`daebus.app.context` adds itself as
a source when it is loaded) and whatever code serving a request bound with
:func:`bind_log_fields` (the gateway binds the HTTP request's id).
"""

from __future__ import annotations

import contextvars
import logging
from typing import Callable

_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
             (logging.INFO, 6))

_bound: contextvars.ContextVar[dict | None] = contextvars.ContextVar("daebus_log_fields", default=None)
_sources: list[Callable[[], dict]] = []


def syslog_priority(levelno: int) -> int:
    for threshold, priority in _PRIORITY:
        if levelno >= threshold:
            return priority
    return 7


def add_source(source: Callable[[], dict]) -> None:
    """Have ``source()`` give fields of the code running now (once per source)."""
    if source not in _sources:
        _sources.append(source)


def bind_log_fields(**fields: str | None) -> contextvars.Token:
    """Add ``service``, ``action`` or ``request_id`` to the log records made
    in this context until :func:`reset_log_fields`."""
    return _bound.set({**(_bound.get() or {}), **fields})


def reset_log_fields(token: contextvars.Token) -> None:
    _bound.reset(token)


def bound_field(name: str) -> str | None:
    """One field bound with :func:`bind_log_fields` in this context, if any."""
    extra = _bound.get()
    return extra.get(name) if extra else None


def log_fields() -> dict:
    """The fields of the code running now: its sources', overridden by the
    fields bound explicitly."""
    fields: dict = {}
    for source in _sources:
        fields.update(source())
    extra = _bound.get()
    if extra:
        fields.update((k, v) for k, v in extra.items() if v)
    return fields
