"""Exceptions raised by daebus, and the one table of error codes.

Each code is declared once, with its HTTP status and, when there is one, its
exception class. The codes are the ones carried in error replies on the wire,
so a caller turns a reply back into the matching exception, and the gateway
and :class:`~daebus.DaebusHttp` answer a code with the same status.

Adding a code: decorate its exception class with ``@error_code(code, status,
meaning)``, or call :func:`error_code` with no class for a code that only
HTTP answers carry (the gateway declares its own that way); the README's
table is checked against :data:`CODES`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class ErrorCode:
    """One row of the table. ``http_default``: the code DaebusHttp gives an
    error raised with only this status; ``retry_after``: seconds a client
    should wait before retrying."""

    code: str
    status: int
    meaning: str
    exception: type | None = None
    http_default: bool = False
    retry_after: int | None = None


CODES: dict[str, ErrorCode] = {}


def error_code(code: str, status: int, meaning: str, *, http_default: bool = False,
               retry_after: int | None = None) -> Callable[[type], type]:
    """Declare ``code``; used on a class, it becomes the class's ``code``.

    Example::

        @error_code("busy", 503, "the service's work queue was full", retry_after=1)
        class ServiceBusy(RemoteError): ...
    """
    entry = ErrorCode(code, status, meaning, None, http_default, retry_after)
    known = CODES.get(code)
    # The same declaration again (a module imported twice) is harmless.
    if known is not None and dataclasses.replace(known, exception=None) != entry:
        raise ValueError(f"error code {code!r} is declared twice")
    CODES[code] = known or entry

    def decorator(cls: type) -> type:
        cls.code = code
        CODES[code] = dataclasses.replace(CODES[code], exception=cls)
        return cls
    return decorator


@error_code("error", 500, "an error of daebus itself")
class DaebusError(Exception):
    """Base class of every daebus error.

    Example::

        try:
            caller.send_request("get_status", {})
        except DaebusError as exc:
            print(exc.code, exc)
    """

    code: str
    #: What exactly was wrong, as ``[{"path": "$.a", "message": "..."}]``
    #: (a payload that does not match an action's schema), else None.
    details: list | None = None

    def __init__(self, message: str = "", *, code: str | None = None, details: list | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        if details is not None:
            self.details = details

    @property
    def message(self) -> str:
        return str(self)


@error_code("bad_request", 400, "the payload or request is invalid", http_default=True)
class BadRequest(DaebusError):
    """Raise from a handler to answer ``bad_request`` (invalid payload).

    Example::

        raise BadRequest("invalid payload", details=[{"path": "$.level", "message": "too high"}])
    """


@error_code("handler_error", 500, "the handler raised an exception", http_default=True)
class RemoteError(DaebusError):
    """The service answered with an error reply.

    ``code`` is the code from the reply (``handler_error``, ``bad_request``,
    ``action_not_found``, ``busy`` or one chosen by the handler) and
    ``payload`` the reply's whole error payload.
    """

    def __init__(self, message: str, *, code: str | None = None, payload=None, service: str | None = None):
        details = payload.get("details") if isinstance(payload, dict) else None
        super().__init__(message, code=code, details=details if isinstance(details, list) else None)
        self.payload = payload if payload is not None else {"error": message, "code": self.code}
        self.service = service


@error_code("action_not_found", 404, "the service has no such action")
class ActionNotFound(RemoteError):
    """The service has no handler for the requested action."""


@error_code("busy", 503, "the service's work queue, or the action's own queue, is full; try again later",
            retry_after=1)
class ServiceBusy(RemoteError):
    """The service's work queue was full; try again later."""


@error_code("service_unavailable", 503, "nobody serves that service")
class ServiceUnavailable(DaebusError):
    """Nobody is subscribed to the service's channel (raised at once)."""


@error_code("timeout", 504, "no reply within the timeout")
class RequestTimeout(DaebusError, TimeoutError):
    """No final reply arrived within the request's timeout."""


@error_code("connection_lost", 503, "Redis could not be reached")
class ConnectionLost(DaebusError, ConnectionError):
    """Redis could not be reached, or went away while a reply was awaited."""


# 499: the status proxies log for a client that closed the request before
# its answer; the one who gave up rarely reads it.
@error_code("cancelled", 499, "the caller gave up on the call before its reply (it was cancelled on the service)")
class Cancelled(DaebusError):
    """The call was cancelled through its :class:`~daebus.Cancellation`
    before its reply came; the service was told to cancel it too."""


@error_code("malformed_reply", 502, "the reply could not be read (not strict JSON, nested too deeply)")
class MalformedReply(DaebusError):
    """The reply arrived but could not be read (not strict JSON, nested too
    deeply, too large)."""


@error_code("shutting_down", 503, "the service stopped before answering", retry_after=1)
class ServiceStopped(RemoteError):
    """The service stopped (its ``shutdown_timeout`` ran out) before answering."""


@error_code("config_error", 500, "a configuration file or value is invalid")
class ConfigError(DaebusError):
    """A configuration file or value is invalid; the message names where.

    A daemon that meets one at start exits with ``exit_status``, after one
    line (see :func:`daebus.ops.logs.exit_on_config_error`)."""

    exit_status = 2


@error_code("access_denied", 403, "Redis refused the bus identity: a wrong password, an unknown or "
            "disabled user, or a command, key or channel its ACL does not allow")
class AccessDenied(DaebusError):
    """Redis refused this process's identity (``WRONGPASS``, ``NOAUTH``) or
    one of its commands (``NOPERM``).

    Retrying cannot fix it: a service that meets it stops with exit status
    ``exit_status`` (a configuration error's), and a call raises it at once.
    """

    exit_status = ConfigError.exit_status


@error_code("name_taken", 409, "another live instance serves that service name")
class NameTaken(DaebusError):
    """Another live instance already serves this service name.

    A service that meets it stops with exit status ``exit_status`` (150),
    which the worker unit lists in ``RestartPreventExitStatus=``; ``holder``
    is that instance's registry record.
    """

    exit_status = 150

    def __init__(self, message: str, holder: dict | None = None):
        super().__init__(message)
        self.holder = holder or {}


@error_code("dead_letter", 502, "a group's request was delivered max_deliveries times without "
            "an answer and was moved to the dead-letter stream")
class DeadLetter(RemoteError):
    """The request reached ``max_deliveries`` instances of a group, none of
    which answered (each crashed or was killed); it is in the service's
    dead-letter stream, ``daebus:dead:<service>``."""


@error_code("retry_exhausted", 503, "the handler asked to be run again later, and no attempt or no time "
            "before the caller's deadline was left for it", retry_after=1)
class RetryExhausted(RemoteError):
    """The handler raised :class:`~daebus.Retry` and no retry was left: its
    policy's attempts were used up, or the wait would have passed the
    caller's deadline."""


# Codes only HTTP answers carry (DaebusHttp's HttpError).
error_code("not_found", 404, "no route matches the path", http_default=True)
error_code("method_not_allowed", 405, "the route takes other methods", http_default=True)
error_code("request_timeout", 408, "the request did not arrive in time", http_default=True)
error_code("payload_too_large", 413, "the body exceeds the limit", http_default=True)
error_code("cors_forbidden", 403, "CORS refuses the origin, method or header")

CODE_FOR_STATUS = {entry.status: entry.code for entry in CODES.values() if entry.http_default}


def http_status(exc: DaebusError) -> int:
    """The HTTP status answering ``exc``.

    A failure reported by another service (a :class:`RemoteError` whose code
    means 500, or a code its handler made up) is 502, as a proxy says of a
    failing upstream.
    """
    entry = CODES.get(exc.code)
    status = entry.status if entry is not None else 500
    if status == 500 and isinstance(exc, RemoteError):
        return 502
    return status


def retry_after(code: str) -> int | None:
    entry = CODES.get(code)
    return entry.retry_after if entry is not None else None


def remote_error(payload, service: str | None = None) -> RemoteError:
    """Build the exception for an error reply's payload."""
    if isinstance(payload, dict):
        message = str(payload.get("error", "unknown error"))
        code = payload.get("code") or RemoteError.code
    else:
        message, code = str(payload), RemoteError.code
    entry = CODES.get(code)
    cls = entry.exception if entry is not None and entry.exception is not None else RemoteError
    if not issubclass(cls, RemoteError):
        cls = RemoteError
    return cls(message, code=str(code), payload=payload, service=service)
