"""HTTP/1.1 vocabulary and framing: headers, errors, request heads, response bytes.

Pure functions over bytes, no sockets, so every rule about what a request
may look like is testable on its own (:mod:`daebus.http.connection` does the
reading and writing).
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import unquote

from daebus.errors import CODE_FOR_STATUS
from daebus.web import error_body

REASONS = {status.value: status.phrase for status in HTTPStatus}
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\0]")


class HttpError(Exception):
    """Answer the request with ``status`` and the JSON error body of :func:`daebus.web.error_body`.

    Raise it from a handler, or let the server raise it for a bad request.

    Example::

        @app.route("/devices/<int:device_id>")
        def get_device(req, device_id):
            if device_id not in DEVICES:
                raise HttpError(404, f"no device {device_id}")
            return DEVICES[device_id]
    """

    def __init__(self, status: int, message: str | None = None, *, code: str | None = None,
                 headers: Mapping | Iterable | None = None, details: list | None = None):
        reason = REASONS.get(status, "Error")
        super().__init__(message or reason)
        self.status = status
        self.code = code or CODE_FOR_STATUS.get(status) or re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")
        self.headers = Headers(headers)
        self.details = details

    @property
    def payload(self) -> dict:
        """The body every daebus HTTP error has (see :mod:`daebus.web`)."""
        return error_body(self.code, str(self), self.details)


class Headers(MutableMapping):
    """Case-insensitive header fields that keep their order and repeats.

    ``h[name]`` is the first value, ``h[name] = v`` replaces every value,
    ``add`` appends one more (``Set-Cookie``), ``items()`` lists each field.

    Example::

        h = Headers({"Content-Type": "application/json"})
        assert h["content-type"] == "application/json"
        h.add("Set-Cookie", "a=1"); h.add("Set-Cookie", "b=2")
        assert h.get_all("set-cookie") == ["a=1", "b=2"]
    """

    __slots__ = ("_items",)

    def __init__(self, data: Mapping | Iterable | None = None):
        self._items: list[tuple[str, str]] = []
        if data is None:
            return
        pairs = data.items() if isinstance(data, Mapping | Headers) else data
        for name, value in pairs:
            self.add(name, value)

    def __getitem__(self, name: str) -> str:
        key = name.lower()
        for field, value in self._items:
            if field.lower() == key:
                return value
        raise KeyError(name)

    def __setitem__(self, name: str, value: Any) -> None:
        key = name.lower()
        self._items = [item for item in self._items if item[0].lower() != key]
        self.add(name, value)

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        kept = [item for item in self._items if item[0].lower() != key]
        if len(kept) == len(self._items):
            raise KeyError(name)
        self._items = kept

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(field.lower() == key for field, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        seen = set()
        for field, _ in self._items:
            if field.lower() not in seen:
                seen.add(field.lower())
                yield field

    def __len__(self) -> int:
        return len({field.lower() for field, _ in self._items})

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        """Every field, repeats included, in order."""
        return list(self._items)

    def add(self, name: str, value: Any) -> None:
        """Append a field, keeping any others of that name."""
        value = str(value)
        # A CR or LF in a header would let a value inject fields or a body.
        if (not isinstance(name, str) or not _TOKEN.fullmatch(name.encode("latin-1", "replace"))
                or _BAD_VALUE.search(value) or not _latin1(value)):
            raise ValueError(f"invalid header field {name!r}: {value!r}")
        self._items.append((name, value))

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [value for field, value in self._items if field.lower() == key]

    def merge(self, other: Headers) -> None:
        """Replace the fields that ``other`` has with its values."""
        for name in set(field.lower() for field, _ in other._items):
            self.pop(name, None)
        self._items.extend(other._items)

    def tokens(self, name: str) -> list[str]:
        """The comma-separated tokens of every ``name`` field, lower case."""
        return [t.strip().lower() for v in self.get_all(name) for t in v.split(",") if t.strip()]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def _latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


class RequestHead(NamedTuple):
    method: str
    target: str
    version: str
    headers: Headers


def parse_head(data: bytes) -> RequestHead:
    """Parse a request line and header fields (the bytes before CRLF CRLF)."""
    lines = data.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise HttpError(400, "malformed request line")
    method, target, version = (p.decode("latin-1") for p in parts)
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if re.fullmatch(r"HTTP/\d\.\d", version):
            raise HttpError(505, f"{version} is not supported; use HTTP/1.1")
        raise HttpError(400, "malformed request line")
    headers = Headers()
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        # Whitespace before the colon or a folded line are smuggling vectors (RFC 9112 5.1, 5.2).
        if not sep or not _TOKEN.fullmatch(name):
            raise HttpError(400, "malformed header field")
        value = value.strip(b" \t")
        if b"\r" in value or b"\n" in value or b"\0" in value:
            raise HttpError(400, "malformed header field")
        headers._items.append((name.decode("latin-1"), value.decode("latin-1")))
    if version == "HTTP/1.1" and "host" not in headers:
        raise HttpError(400, "HTTP/1.1 requests need a Host header")
    return RequestHead(method, target, version, headers)


def split_target(target: str) -> tuple[str, str]:
    """The decoded path and the raw query string of a request target."""
    if not target.startswith("/"):
        # Absolute form ("http://host/path"), which proxies send.
        match = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*", target)
        if match is None:
            raise HttpError(400, f"unsupported request target {target[:100]!r}")
        target = target[match.end():] or "/"
        if not target.startswith("/"):
            target = "/" + target
    path, _, query = target.partition("?")
    path = path.partition("#")[0]
    try:
        return unquote(path, errors="strict"), query
    except UnicodeDecodeError:
        raise HttpError(400, "request path is not valid UTF-8") from None


def body_length(head: RequestHead, max_body: int) -> int | None:
    """Bytes of body to read: a length, 0, or None for a chunked body.

    Ambiguous framing is refused rather than guessed, because a proxy in
    front might guess differently.
    """
    headers = head.headers
    if "transfer-encoding" in headers:
        if "content-length" in headers or head.version == "HTTP/1.0":
            raise HttpError(400, "Transfer-Encoding with Content-Length or HTTP/1.0")
        if headers.tokens("transfer-encoding") != ["chunked"]:
            raise HttpError(501, "only the chunked transfer coding is supported")
        return None
    values = [v.strip() for field in headers.get_all("content-length") for v in field.split(",")]
    if not values:
        return 0
    if len(set(values)) != 1 or not values[0].isdigit() or not values[0].isascii():
        raise HttpError(400, "invalid Content-Length")
    length = int(values[0])
    if length > max_body:
        raise HttpError(413, f"request body of {length} bytes exceeds the {max_body} byte limit")
    return length


def wants_keep_alive(head: RequestHead) -> bool:
    tokens = head.headers.tokens("connection")
    if head.version == "HTTP/1.1":
        return "close" not in tokens
    return "keep-alive" in tokens


_date_cache: list = [0, ""]
# Set by the server from the body and the connection's fate, whatever a handler put there.
_FRAMING_FIELDS = frozenset({"content-length", "transfer-encoding", "connection", "date"})


def http_date() -> str:
    # Formatting a date costs more than the rest of a small response; once a second is enough.
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[:] = [now, email.utils.formatdate(now, usegmt=True)]
    return _date_cache[1]


def serialize_response(status: int, headers: Headers, body: bytes, *, head_only: bool = False,
                       close: bool = False, http10: bool = False) -> bytes:
    """The bytes of a response; ``head_only`` (HEAD) keeps Content-Length but drops the body."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}", f"Date: {http_date()}"]
    lines.extend(f"{name}: {value}" for name, value in headers._items
                 if name.lower() not in _FRAMING_FIELDS)
    if status < 200 or status in (204, 304):
        body = b""
    else:
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    elif http10:
        lines.append("Connection: keep-alive")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only or not body else head + body
