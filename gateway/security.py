"""Who may talk to the gateway: Host, Origin, bearer token and CORS checks.

The gateway usually serves a kiosk browser on the same device, so the
defaults assume a loopback listener and close everything else:

* the ``Host`` header must name an allowed host, so a page that resolves its
  own domain to 127.0.0.1 (DNS rebinding) cannot read the API;
* an API request carrying a foreign ``Origin`` is refused unless that
  origin is in ``cors_origins`` (and ``POST`` must be JSON anyway, which an
  HTML form cannot send);
* with a ``token`` set, API requests must carry ``Authorization: Bearer``
  (or ``?access_token=`` on ``GET /api/events`` alone, for ``EventSource``,
  which cannot set headers: a token in any other URL is ignored).

Example::

    install(app, settings)      # registers the checks as request hooks
"""

from __future__ import annotations

import fnmatch
import hmac
from urllib.parse import urlsplit

from flask import Flask, Response, request

from .addresses import address_is_loopback, bind_is_loopback, host_is_loopback, parse_origin, split_host
from .errors import api_error
from .metrics import PATH as METRICS_PATH

__all__ = ["address_is_loopback", "bind_is_loopback", "host_allowed", "install", "origin_allowed",
           "parse_origin", "split_host", "token_matches"]

API_PREFIX = "/api/"
# Open without a token: a monitor can watch the box without holding secrets.
TOKEN_FREE_PATHS = frozenset({"/api/health"})
# The one request that may carry its token as ?access_token= (see presented_token).
URL_TOKEN_PATH = "/api/events"


def host_allowed(header: str | None, allowed) -> bool:
    """Whether a ``Host`` header names one of ``allowed`` (globs allowed,
    ``"*"`` allows any; ports are ignored)."""
    if not header:
        return False
    host = split_host(header)
    # "localhost." is another origin to a browser (its own cookies and
    # storage): it matches only a pattern written with the dot.
    return any(pattern.strip() == "*" or (fnmatch.fnmatchcase(host, split_host(pattern))
                                          and _dotted(header) == _dotted(pattern))
               for pattern in allowed)


def _dotted(host: str) -> bool:
    """Whether a host (with or without its port) ends in the root's dot."""
    value = host.strip()
    if value.startswith("["):
        return False
    return (value.rsplit(":", 1)[0] if value.count(":") == 1 else value).endswith(".")


def origin_allowed(origin: str, host_header: str | None, cors_origins) -> bool:
    """A same-origin request, or one from an origin listed in ``cors_origins``."""
    normal = parse_origin(origin)
    if normal is None:
        return False
    if host_header and urlsplit(normal).netloc == host_header.strip().lower():
        return True
    return "*" in cors_origins or normal in {parse_origin(o) for o in cors_origins if o != "*"}


def token_matches(presented: str | None, token: str) -> bool:
    # compare_digest: the time taken must not reveal how much of a guess was right.
    return bool(presented) and hmac.compare_digest(presented.encode(), token.encode())


def presented_token() -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    # Only where a browser cannot send a header: EventSource opens the event
    # stream with a bare GET. Elsewhere a token in the URL would only end up
    # in access logs and browser history, so it is not looked at.
    if request.method == "GET" and request.path == URL_TOKEN_PATH:
        return request.args.get("access_token")
    return None


def guarded(path: str) -> bool:
    """Paths under the API's rules (Origin, token): the API and ``/metrics``."""
    return path.startswith(API_PREFIX) or path == METRICS_PATH


def install(app: Flask, settings) -> None:
    """Register the checks on ``app`` (before any view runs)."""

    @app.before_request
    def check_request():
        # The raw header: Werkzeug would fill a missing one in from the socket.
        host = request.headers.get("Host")
        if not host_allowed(host, settings.allowed_hosts):
            raise api_error("bad_host", f"host {host!r} is not allowed; add it to "
                           f"gateway.allowed_hosts in {settings.config_file}")
        if not guarded(request.path):
            return None
        origin = request.headers.get("Origin")
        if origin is not None:
            # Browsers send Origin on cross-site requests; nothing a foreign
            # page could want from the API is allowed unless listed.
            if not origin_allowed(origin, request.host, settings.cors_origins):
                raise api_error("origin_not_allowed", f"requests from {origin} are not allowed; "
                               f"add it to gateway.cors_origins in {settings.config_file}")
            if request.method == "OPTIONS":
                return _preflight()
        if settings.token and request.path not in TOKEN_FREE_PATHS and request.method != "OPTIONS":
            local = settings.trust_loopback and (not request.remote_addr
                                                 or host_is_loopback(request.remote_addr))
            if not local and not token_matches(presented_token(), settings.token):
                raise api_error("unauthorized", "a valid bearer token is required",
                               {"WWW-Authenticate": 'Bearer realm="daebus"'})
        return None

    @app.after_request
    def add_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if guarded(request.path):
            response.headers.setdefault("Cache-Control", "no-store")
            origin = request.headers.get("Origin")
            if (origin and settings.cors_origins and not origin_allowed(origin, request.host, ())
                    and origin_allowed(origin, request.host, settings.cors_origins)):
                # A listed foreign origin (refusals pass here too, and get nothing).
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers.add("Vary", "Origin")
        return response


def _preflight() -> Response:
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Last-Event-ID"
    response.headers["Access-Control-Max-Age"] = "600"
    return response
