"""What a route handler sees and answers: :class:`HttpRequest`, :class:`HttpResponse`.

A handler gets the parsed request and answers either through the
``response`` proxy (``response.send(data, status)``) or by returning a value
(see :func:`daebus.http.handling.make_response`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from daebus.bus import protocol
from daebus.http.wire import Headers, HttpError

JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"
BINARY_TYPE = "application/octet-stream"


class HttpRequest:
    """One HTTP request, passed to a route handler as ``fn(req, **params)``.

    ``params`` holds the query string values overlaid with the route's path
    parameters; ``query`` only the query string (first value of each name);
    ``json`` the decoded body when it is JSON, ``form`` the fields of a
    urlencoded form; ``payload`` is the JSON body, else the form, else the
    query. A body labelled JSON that does not parse raises :class:`HttpError`
    (400) here, before any handler runs.

    Example::

        @app.route("/devices/<int:device_id>", methods=["PATCH"])
        def patch_device(req, device_id):
            return {"id": device_id, "changes": req.json, "by": req.headers.get("X-User")}
    """

    def __init__(self, method: str, path: str, headers: Headers | Mapping | Iterable | None = None,
                 body: bytes = b"", query_string: str = "", params: Mapping[str, Any] | None = None,
                 remote_addr: str | None = None, remote_port: int | None = None,
                 http_version: str = "HTTP/1.1"):
        self.method = method.upper()
        self.path = path
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = bytes(body)
        self.query_string = query_string
        self.query = _first_values(query_string)
        self.params: dict[str, Any] = {**self.query, **(params or {})}
        self.remote_addr = remote_addr
        self.remote_port = remote_port
        self.http_version = http_version
        self.route: str | None = None
        self.json: Any = None
        self.form: dict[str, str] = {}
        media_type = self.content_type
        if self.body and (media_type == JSON_TYPE or media_type.endswith("+json")):
            try:
                self.json = protocol.loads(self.body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise HttpError(400, f"malformed JSON body: {exc}") from None
        elif media_type == "application/x-www-form-urlencoded":
            try:
                self.form = _first_values(self.body.decode("utf-8"))
            except UnicodeDecodeError:
                raise HttpError(400, "form body is not UTF-8") from None

    @property
    def content_type(self) -> str:
        """The media type of the body, lower case and without parameters."""
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    @property
    def payload(self) -> Any:
        """The JSON body, else the form fields, else the query values."""
        if self.json is not None:
            return self.json
        if self.form:
            return self.form
        return self.query

    def set_path_params(self, params: Mapping[str, Any], route: str | None = None) -> None:
        """Record the matched route's parameters (they win over query values)."""
        self.params.update(params)
        self.route = route

    def __repr__(self) -> str:
        return f"HttpRequest({self.method} {self.path!r})"


class HttpResponse:
    """The answer to one :class:`HttpRequest`: status, headers and body bytes.

    ``send`` encodes dicts, lists and other JSON values with the same encoder
    as pub/sub replies, ``str`` as HTML/text, ``bytes`` as-is; it returns the
    response, so a handler may ``return response.send(...)``.

    Example::

        @app.route("/status")
        def status(req):
            return response.send({"status": "running"}, 200)
    """

    def __init__(self, request: HttpRequest | None = None, status: int = 200, body: bytes = b"",
                 headers: Mapping | Iterable | None = None):
        self.request = request
        self.status = check_status(status)
        self.headers = Headers(headers)
        self.body = bytes(body)
        self.sent = False

    def send(self, data: Any = None, status: int = 200, headers: Mapping | Iterable | None = None
             ) -> HttpResponse:
        """Set the body from ``data``, the status and extra headers; once only."""
        if self.sent:
            raise RuntimeError("this response was already sent; send() may be called once per request")
        # Encode before changing anything, so a failed send leaves the
        # response unsent and the handler can still answer with an error.
        body, content_type = encode_body(data)
        status = check_status(status)
        extra = Headers(headers)
        self.status = status
        self.body = body
        if content_type is not None and "Content-Type" not in extra:
            self.headers["Content-Type"] = content_type
        self.headers.merge(extra)
        self.sent = True
        return self

    def json(self) -> Any:
        """The body decoded as JSON (handy in tests)."""
        return json.loads(self.body) if self.body else None

    def __repr__(self) -> str:
        return f"HttpResponse({self.status}, {len(self.body)} bytes)"


class BodyNotEncodable(TypeError, ValueError):
    """A handler's data that cannot be sent: not JSON the bus carries
    (``NaN``, a lone surrogate, an object of no JSON type). Both a
    ``TypeError`` and a ``ValueError``, as the encoder raised before."""


def encode_body(data: Any) -> tuple[bytes, str | None]:
    """Bytes and content type for a handler's data; None → empty body;
    :class:`BodyNotEncodable` for data no client could read."""
    if data is None:
        return b"", None
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), BINARY_TYPE
    try:
        if isinstance(data, str):
            return data.encode("utf-8"), HTML_TYPE
        return protocol.dumps(data).encode("utf-8"), JSON_TYPE
    except UnicodeEncodeError:
        raise BodyNotEncodable("a string holds a lone UTF-16 surrogate, which UTF-8 cannot carry") from None
    except (TypeError, ValueError) as exc:
        raise BodyNotEncodable(str(exc)) from None


def check_status(status: Any) -> int:
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"HTTP status must be an int from 100 to 599, got {status!r}")
    return status


def _first_values(text: str) -> dict[str, str]:
    # Flask's request.args.get() answers the first of repeated names.
    values: dict[str, str] = {}
    for name, items in parse_qs(text, keep_blank_values=True).items():
        values[name] = items[0]
    return values
