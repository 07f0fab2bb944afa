"""Cross-Origin Resource Sharing for :class:`DaebusHttp`.

Configured with the options Daebus has always documented; every option
takes a list or ``'*'``::

    http.configure_cors({
        'allowed_origins': ['http://localhost:3000'],
        'allowed_methods': ['GET', 'POST'],
        'allowed_headers': ['Content-Type', 'Authorization'],
        'expose_headers': ['X-Custom-Header'],
        'allow_credentials': True,
        'max_age': 3600,
    })

Without a configuration no CORS header is ever sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daebus.web import parse_origin
from daebus.http.messages import HttpRequest, HttpResponse
from daebus.http.wire import Headers, HttpError

ANY = "*"
DEFAULT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
OPTIONS = ("allowed_origins", "allowed_methods", "allowed_headers", "expose_headers",
           "allow_credentials", "max_age")


class CorsPolicy:
    """Which cross-origin requests browsers may make, and what they may read.

    Unset options default to any origin, the common methods, any request
    header, nothing exposed, no credentials and no preflight caching.

    Example::

        policy = CorsPolicy.from_config({"allowed_origins": ["https://example.com"]})
        policy.allows_origin("https://example.com")   # True
    """

    def __init__(self, allowed_origins: Any = ANY, allowed_methods: Any = DEFAULT_METHODS,
                 allowed_headers: Any = ANY, expose_headers: Any = None,
                 allow_credentials: bool = False, max_age: int | float | None = None):
        self.origins = _names("allowed_origins", allowed_origins, _origin)
        self.methods = _names("allowed_methods", allowed_methods, str.upper)
        self.headers = _names("allowed_headers", allowed_headers, str.lower)
        self.expose = _names("expose_headers", expose_headers or (), str)
        if not isinstance(allow_credentials, bool):
            raise ValueError(f"CORS allow_credentials must be True or False, got {allow_credentials!r}")
        self.credentials = allow_credentials
        if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int | float)
                                    or max_age < 0):
            raise ValueError(f"CORS max_age must be a number of seconds, got {max_age!r}")
        self.max_age = None if max_age is None else int(max_age)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None, **options: Any) -> CorsPolicy:
        """Build a policy from the documented dict, keyword arguments, or both."""
        merged = {**(config or {}), **options}
        unknown = set(merged) - set(OPTIONS)
        if unknown:
            raise ValueError(f"unknown CORS option(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(OPTIONS)}")
        return cls(**merged)

    def allows_origin(self, origin: str) -> bool:
        return self.origins == ANY or parse_origin(origin) in self.origins

    @staticmethod
    def is_preflight(req: HttpRequest) -> bool:
        """An OPTIONS request a browser sends before a non-simple cross-origin one."""
        return (req.method == "OPTIONS" and "origin" in req.headers
                and "access-control-request-method" in req.headers)

    def preflight(self, req: HttpRequest) -> HttpResponse:
        """Answer a preflight: 204 with the grants, or 403 saying what is refused."""
        origin = req.headers["Origin"]
        if not self.allows_origin(origin):
            raise HttpError(403, f"CORS: origin {origin} is not allowed", code="cors_forbidden")
        method = req.headers["Access-Control-Request-Method"].strip().upper()
        if self.methods != ANY and method not in self.methods:
            raise HttpError(403, f"CORS: method {method} is not allowed", code="cors_forbidden")
        asked = req.headers.tokens("Access-Control-Request-Headers")
        if self.headers != ANY:
            refused = [h for h in asked if h not in self.headers]
            if refused:
                raise HttpError(403, f"CORS: header(s) {', '.join(refused)} not allowed",
                                code="cors_forbidden")
        resp = HttpResponse(req, 204)
        h = resp.headers
        self._grant_origin(origin, h)
        # '*' is not honoured by browsers for credentialed requests, so a
        # wildcard is answered by echoing what was asked.
        h["Access-Control-Allow-Methods"] = method if self.methods == ANY else ", ".join(self.methods)
        if self.headers != ANY:
            h["Access-Control-Allow-Headers"] = ", ".join(_display(self.headers))
        elif asked:
            h["Access-Control-Allow-Headers"] = ", ".join(asked)
        if self.max_age is not None:
            h["Access-Control-Max-Age"] = str(self.max_age)
        _vary(h, "Access-Control-Request-Method", "Access-Control-Request-Headers")
        resp.sent = True
        return resp

    def apply(self, request_headers: Headers, response_headers: Headers) -> None:
        """Add the CORS headers for an actual (non-preflight) response."""
        origin = request_headers.get("Origin")
        if origin is None or not self.allows_origin(origin):
            if self.origins != ANY or self.credentials:
                _vary(response_headers)
            return
        self._grant_origin(origin, response_headers)
        if self.expose:
            response_headers["Access-Control-Expose-Headers"] = \
                ANY if self.expose == ANY else ", ".join(self.expose)

    def _grant_origin(self, origin: str, h: Headers) -> None:
        if self.origins == ANY and not self.credentials:
            h["Access-Control-Allow-Origin"] = ANY
        else:
            h["Access-Control-Allow-Origin"] = origin
            _vary(h)
        if self.credentials:
            h["Access-Control-Allow-Credentials"] = "true"

    def __repr__(self) -> str:
        return (f"CorsPolicy(origins={self.origins!r}, methods={self.methods!r}, headers={self.headers!r}, "
                f"expose={self.expose!r}, credentials={self.credentials}, max_age={self.max_age})")


def _origin(value: str) -> str:
    origin = parse_origin(value)
    if origin is None:
        raise ValueError(f"CORS allowed_origins: {value!r} is not an origin such as 'https://example.com'")
    return origin


def _names(option: str, value: Any, normalise) -> Any:
    """'*' or a tuple of normalised names; a single string is a list of one."""
    if value == ANY:
        return ANY
    if isinstance(value, str):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"CORS {option} must be a list or '*', got {value!r}") from None
    if not all(isinstance(v, str) and v for v in items):
        raise ValueError(f"CORS {option} must contain non-empty strings, got {value!r}")
    if ANY in items:
        return ANY
    return tuple(dict.fromkeys(normalise(v.strip()) for v in items))


def _display(names: tuple[str, ...]) -> list[str]:
    return ["-".join(part.capitalize() for part in name.split("-")) for name in names]


def _vary(h: Headers, *extra: str) -> None:
    present = h.tokens("Vary")
    wanted = [name for name in ("Origin", *extra) if name.lower() not in present]
    if wanted:
        h["Vary"] = ", ".join([*(v for v in h.get_all("Vary")), *wanted])
