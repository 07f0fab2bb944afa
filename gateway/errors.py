"""HTTP errors of the API: ``{"error": {"code", "message"}}`` with a status
that says what happened.

A daebus exception carries a wire ``code``; :func:`from_daebus` maps it to a
status so a browser can tell its own mistakes (4xx) from a failing worker
(502), a missing or saturated one (503) and a slow one (504)::

    try:
        result = caller.send_request(action, payload)
    except DaebusError as exc:
        raise from_daebus(exc) from exc
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from daebus import protocol
from daebus.errors import DaebusError, RemoteError

log = logging.getLogger("gateway")

# Wire codes (daebus.protocol and daebus.errors) to HTTP statuses. A code a
# handler invented is the handler's failure: 502, like handler_error.
STATUS_BY_CODE = {
    protocol.ACTION_NOT_FOUND: 404,
    protocol.BAD_REQUEST: 400,
    protocol.BUSY: 503,
    protocol.HANDLER_ERROR: 502,
    "service_unavailable": 503,
    "connection_lost": 503,
    "timeout": 504,
}


class ApiError(Exception):
    """An error answer; raise it from a view or a request hook.

    Example::

        raise ApiError(403, "not_exposed", "action clock/reset is not exposed")
    """

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None,
                 details: list | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.details = details

    def response(self) -> Response:
        error = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details  # [{"path", "message"}]: what broke the schema
        return json_response({"error": error}, self.status, self.headers)


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    """``body`` as JSON, with daebus's encoder (dates, decimals, bytes...)
    so replies look the same whichever Flask version serves them."""
    return Response(protocol.dumps(body), status=status, headers=headers,
                    mimetype="application/json")


def from_daebus(exc: DaebusError) -> ApiError:
    status = STATUS_BY_CODE.get(exc.code)
    if status is None:
        status = 502 if isinstance(exc, RemoteError) else 500
    headers = {"Retry-After": "1"} if exc.code == protocol.BUSY else None
    return ApiError(status, exc.code, str(exc) or exc.code, headers, exc.details)


def install(app: Flask) -> None:
    """Answer errors under ``/api/`` as JSON; pages keep Flask's HTML."""

    @app.errorhandler(ApiError)
    def on_api_error(exc: ApiError):
        return exc.response()

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException):
        if not request.path.startswith("/api/"):
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        response = ApiError(exc.code or 500, code, exc.description or exc.name).response()
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def on_unexpected(exc: Exception):
        if isinstance(exc, HTTPException):  # Flask 2.2 may route these here too
            return on_http_error(exc)
        log.exception("unhandled error in %s %s", request.method, request.path)
        return ApiError(500, "internal_error", "the gateway failed; see its log").response()
