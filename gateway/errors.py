"""HTTP errors of the API: ``{"error": {"code", "message"}}`` with a status
that says what happened.

A daebus exception carries a wire ``code``; :func:`from_daebus` answers it
with the status of daebus's error table (``daebus.errors.CODES``), so a
browser can tell its own mistakes (4xx) from a failing worker (502), a
missing or saturated one (503) and a slow one (504)::

    try:
        result = caller.send_request(action, payload)
    except DaebusError as exc:
        raise from_daebus(exc) from exc
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from daebus.bus import protocol
from daebus.errors import CODES, DaebusError, error_code
from daebus.web import answer, error_body

log = logging.getLogger("gateway")


# The gateway's own codes, in daebus's table beside the bus's: one status each.
for _code, _status, _meaning in (
        ("bad_json", 400, "the body is not a JSON object"),
        ("bad_content_type", 400, "the body is not `application/json`"),
        ("bad_timeout", 400, "`?timeout=` is not a positive number"),
        ("bad_host", 400, "the `Host` header is not in `allowed_hosts`"),
        ("no_channel", 400, "an event stream names no channel"),
        ("too_many_channels", 400, "an event stream names too many channels"),
        ("unauthorized", 401, "a token is required and the request has none or a wrong one"),
        ("not_exposed", 403, "the action or channel is not exposed"),
        ("origin_not_allowed", 403, "the origin is not in `cors_origins`"),
        ("internal_error", 500, "a bug in the gateway"),
        ("too_many_streams", 503, "every event stream the gateway allows is open")):
    error_code(_code, _status, _meaning)


def api_error(code: str, message: str, headers: dict | None = None, details: list | None = None) -> ApiError:
    """The :class:`ApiError` for ``code``, with the status the table gives it.

    Example::

        raise api_error("not_exposed", "action clock/reset is not exposed")
    """
    return ApiError(CODES[code].status, code, message, headers, details)


class ApiError(Exception):
    """An error answer; raise it from a view or a request hook (usually
    made by :func:`api_error`)."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None,
                 details: list | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.details = details

    def response(self) -> Response:
        return json_response(error_body(self.code, self.message, self.details), self.status, self.headers)


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    """``body`` as JSON, with daebus's encoder (dates, decimals, bytes...)
    so replies look the same whichever Flask version serves them."""
    return Response(protocol.dumps(body), status=status, headers=headers,
                    mimetype="application/json")


def from_daebus(exc: DaebusError) -> ApiError:
    """The answer to a daebus exception: its code, with the status of
    daebus's error table."""
    status, body, headers = answer(exc)
    return ApiError(status, exc.code, body["error"]["message"], headers or None, exc.details)


def install(app: Flask) -> None:
    """Answer errors under ``/api/`` as JSON; pages keep Flask's HTML."""

    @app.errorhandler(ApiError)
    def on_api_error(exc: ApiError):
        g.error_code = exc.code  # for the access log line
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
        return api_error("internal_error", "the gateway failed; see its log").response()
