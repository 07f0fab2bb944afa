"""Each HTTP request's id, its figures and, for action calls, its log line.

The gateway takes the client's ``X-Request-ID`` when it is a sane id (at
most 128 letters, digits and ``._:@+=/-``) and makes one otherwise; the
answer carries it back, the bus request carries it to the worker as its
``trace_id``, and every log record made while serving the request has it as
``DAEBUS_REQUEST_ID``, so one id finds a call's whole path::

    curl -si -H 'X-Request-ID: kiosk-42' -X POST -H 'Content-Type: application/json' \\
         -d '{}' http://127.0.0.1:8080/api/services/sensors/read
    journalctl DAEBUS_REQUEST_ID=kiosk-42

Each action call is logged once (``gateway.access``, info) with its status
and duration, since the gateway keeps no access log otherwise.
"""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, Response, g, request

from daebus.bus import protocol
from daebus.app.context import bind_log_fields, reset_log_fields

HEADER = "X-Request-ID"
ACTION_ENDPOINT = "api.call_action"
UNMATCHED = "(unmatched)"

access_log = logging.getLogger("gateway.access")


def request_id() -> str | None:
    """The id of the HTTP request being served."""
    return g.get("request_id")


def install(app: Flask, gateway) -> None:
    """Register the hooks; call before any other ``before_request`` hook so
    that refusals are counted and carry an id too."""

    @app.before_request
    def begin():
        g.started = time.perf_counter()
        g.request_id = protocol.valid_trace_id(request.headers.get(HEADER)) or uuid.uuid4().hex
        g.log_token = bind_log_fields(request_id=g.request_id)

    @app.after_request
    def finish(response: Response) -> Response:
        rid = g.get("request_id")
        if rid is None:  # a hook before ours failed; still answer with an id
            rid = g.request_id = uuid.uuid4().hex
        response.headers[HEADER] = rid
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        rule = request.url_rule
        gateway.metrics.request(rule.rule if rule is not None else UNMATCHED, request.method,
                                response.status_code, seconds)
        if request.endpoint == ACTION_ENDPOINT and request.view_args:
            service, action = request.view_args.get("service"), request.view_args.get("action")
            code = g.get("error_code")
            access_log.info("%s %s/%s: %d%s in %.1f ms", request.method, service, action, response.status_code,
                            f" {code}" if code else "", seconds * 1000,
                            extra={"daebus_service": service, "daebus_action": action})
        return response

    @app.teardown_request
    def end(exc):
        token = g.pop("log_token", None)
        if token is not None:
            try:
                reset_log_fields(token)
            except ValueError:
                pass  # a server that moved the request to another context
