"""From a parsed request to a response: routing, CORS, the handler call, errors.

Independent of sockets, so the whole request path short of the wire can be
exercised in a unit test::

    dispatcher = Dispatcher(app, Router(app.routes))
    resp = dispatcher.dispatch(HttpRequest("GET", "/status"))
    assert resp.status == 200
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from daebus.app.context import handler_context
from daebus.bus.protocol import HANDLER_ERROR
from daebus.errors import DaebusError
from daebus.web import answer
from daebus.http.cors import CorsPolicy
from daebus.http.messages import BodyNotEncodable, HttpRequest, HttpResponse, check_status
from daebus.http.routing import Router, allow_header
from daebus.http.wire import Headers, HttpError

log = logging.getLogger("daebus.http")


class Dispatcher:
    """Answers :class:`HttpRequest` objects for one app.

    ``cors`` may be replaced at any time (``DaebusHttp.configure_cors``);
    each request reads it once.
    """

    def __init__(self, app, router: Router, cors: CorsPolicy | None = None):
        self.app = app
        self.router = router
        self.cors = cors

    def dispatch(self, req: HttpRequest) -> HttpResponse:
        """The response to ``req``; never raises for a handler's mistakes."""
        cors = self.cors
        try:
            if cors is not None and cors.is_preflight(req):
                if not self.router.allowed_methods(req.path):
                    raise HttpError(404, f"no route for {req.path}")
                return cors.preflight(req)
            match = self.router.match(req.method, req.path)
            if match is None:
                # OPTIONS on a path no rule answers it for: say what is allowed, as Flask does.
                resp = HttpResponse(req, 204, headers={"Allow": allow_header(
                    self.router.allowed_methods(req.path))})
                resp.sent = True
            else:
                resp = self._call(match, req)
        except HttpError as exc:
            resp = error_response(exc, req)
        if cors is not None:
            cors.apply(req.headers, resp.headers)
        return resp

    def error(self, exc: HttpError, request_headers: Headers) -> HttpResponse:
        """The response for a request refused before it could be parsed."""
        resp = error_response(exc)
        cors = self.cors
        if cors is not None:
            cors.apply(request_headers, resp.headers)
        return resp

    def _call(self, match, req: HttpRequest) -> HttpResponse:
        rule, params = match
        req.set_path_params(params, rule.path)
        resp = HttpResponse(req)
        with handler_context(self.app, req, resp):
            try:
                return make_response(rule.fn(req, **params), resp)
            except HttpError:
                raise
            except DaebusError as exc:
                # A handler's BadRequest, or a call to another service that failed.
                status, body, headers = answer(exc)
                if status >= 500:
                    log.warning("%s %s: %s: %s", req.method, req.path, exc.code, exc)
                if resp.sent:
                    return resp
                raise HttpError(status, body["error"]["message"], code=exc.code, headers=headers,
                                details=exc.details) from None
            except BodyNotEncodable as exc:
                # As an action's reply that cannot be encoded: one line, and
                # the client is told why, since nothing it sent caused it.
                log.error("%s %s: the answer of %s cannot be sent: %s", req.method, req.path,
                          getattr(rule.fn, "__qualname__", rule.fn), exc)
                raise HttpError(500, f"response not serialisable: {exc}", code=HANDLER_ERROR) from None
            except Exception:  # noqa: BLE001 - a handler bug answers 500, it never kills the server
                log.exception("%s %s: handler %s failed", req.method, req.path,
                              getattr(rule.fn, "__qualname__", rule.fn))
                if resp.sent:
                    return resp
                raise HttpError(500, "internal server error") from None


def error_response(exc: HttpError, req: HttpRequest | None = None) -> HttpResponse:
    """The JSON error response for ``exc`` (the body of :func:`daebus.web.error_body`)."""
    resp = HttpResponse(req)
    resp.send(exc.payload, exc.status)
    resp.headers.merge(exc.headers)
    return resp


def make_response(result: Any, bound: HttpResponse) -> HttpResponse:
    """Turn what a handler did into the response to write.

    A returned :class:`HttpResponse` wins, then one sent through the
    ``response`` proxy; otherwise the return value is converted: ``None`` →
    204, a dict/list/str/bytes → 200 with that body, ``(body, status)`` or
    ``(body, status, headers)`` (or ``(body, headers)``) tuples as Flask.
    """
    if isinstance(result, HttpResponse):
        return result
    if bound.sent:
        return bound
    if result is None:
        return bound.send(None, 204)
    if isinstance(result, tuple):
        if not 2 <= len(result) <= 3:
            raise TypeError(f"a handler may return (body, status) or (body, status, headers), "
                            f"not a {len(result)}-tuple")
        body, rest = result[0], result[1:]
        status, headers = 200, None
        if isinstance(rest[0], Mapping | list):
            headers = rest[0]
            if len(rest) > 1:
                raise TypeError("a handler's (body, headers) tuple takes no third item")
        else:
            status = rest[0]
            headers = rest[1] if len(rest) > 1 else None
        if isinstance(body, HttpResponse):
            body.status = check_status(status)
            body.headers.merge(Headers(headers))
            return body
        return bound.send(body, status, headers)
    return bound.send(result, 200)
