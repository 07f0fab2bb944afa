"""Exceptions raised by daebus, each with a machine-readable ``code``.

The codes are the ones carried in error replies on the wire, so a caller can
turn a reply back into the matching exception and a gateway can map a code to
an HTTP status without parsing messages.
"""

from __future__ import annotations


class DaebusError(Exception):
    """Base class of every daebus error.

    Example::

        try:
            caller.send_request("get_status", {})
        except DaebusError as exc:
            print(exc.code, exc)
    """

    code = "error"
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


class BadRequest(DaebusError):
    """Raise from a handler to answer ``bad_request`` (invalid payload).

    Example::

        raise BadRequest("invalid payload", details=[{"path": "$.level", "message": "too high"}])
    """

    code = "bad_request"


class RemoteError(DaebusError):
    """The service answered with an error reply.

    ``code`` is the code from the reply (``handler_error``, ``bad_request``,
    ``action_not_found``, ``busy`` or one chosen by the handler) and
    ``payload`` the reply's whole error payload.
    """

    code = "handler_error"

    def __init__(self, message: str, *, code: str | None = None, payload=None, service: str | None = None):
        details = payload.get("details") if isinstance(payload, dict) else None
        super().__init__(message, code=code, details=details if isinstance(details, list) else None)
        self.payload = payload if payload is not None else {"error": message, "code": self.code}
        self.service = service


class ActionNotFound(RemoteError):
    """The service has no handler for the requested action."""

    code = "action_not_found"


class ServiceBusy(RemoteError):
    """The service's work queue was full; try again later."""

    code = "busy"


class ServiceUnavailable(DaebusError):
    """Nobody is subscribed to the service's channel (raised at once)."""

    code = "service_unavailable"


class RequestTimeout(DaebusError, TimeoutError):
    """No final reply arrived within the request's timeout."""

    code = "timeout"


class ConnectionLost(DaebusError, ConnectionError):
    """Redis could not be reached, or went away while a reply was awaited."""

    code = "connection_lost"


class ConfigError(DaebusError):
    """A configuration file or value is invalid; the message names where."""

    code = "config_error"


class NameTaken(DaebusError):
    """Another live instance already serves this service name.

    A service that meets it stops with exit status ``exit_status`` (150),
    which the worker unit lists in ``RestartPreventExitStatus=``; ``holder``
    is that instance's registry record.
    """

    code = "name_taken"
    exit_status = 150

    def __init__(self, message: str, holder: dict | None = None):
        super().__init__(message)
        self.holder = holder or {}


_REMOTE_BY_CODE = {cls.code: cls for cls in (ActionNotFound, ServiceBusy)}


def remote_error(payload, service: str | None = None) -> RemoteError:
    """Build the exception for an error reply's payload."""
    if isinstance(payload, dict):
        message = str(payload.get("error", "unknown error"))
        code = payload.get("code") or RemoteError.code
    else:
        message, code = str(payload), RemoteError.code
    cls = _REMOTE_BY_CODE.get(code, RemoteError)
    return cls(message, code=str(code), payload=payload, service=service)
