"""The JSON the bus accepts, in one place.

Every peer reads and writes the same subset of JSON, so a message one of
them accepts never breaks another one later (Redis, a browser's
``JSON.parse``, a UTF-8 encoder). A document is refused, with a
:class:`WireJSONError` (a ``ValueError``) naming the problem, when it holds

- ``NaN``, ``Infinity`` or ``-Infinity`` (not JSON at all),
- a number that only fits a float as infinity (``1e400``),
- a string with a lone UTF-16 surrogate (``"\\ud800"``): valid JSON text,
  but no UTF-8 encoder can write it back,
- arrays and objects nested deeper than :data:`MAX_DEPTH`.

:func:`loads` and :func:`dumps` apply these rules; the size limit of a
message (``[service] max_message_bytes``) is checked by whoever reads or
sends it, with :func:`check_size`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable

# Arrays and objects, the request envelope included (a payload may nest one
# level less). Deep enough for any real document; far from the interpreter's
# recursion limit, so neither a decoder nor a validator meets it.
MAX_DEPTH = 64

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Strings and brackets only: the text between them cannot change the depth.
_DEPTH_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class WireJSONError(ValueError):
    """A document the bus does not accept; the message says why."""


class NotCarried(WireJSONError):
    """Valid JSON that the bus still does not carry: a number too large for a
    float, nesting past :data:`MAX_DEPTH`, a lone surrogate. A request
    carrying one is a bad request (``bad_request``), not bad JSON."""


def _constant(name: str):
    raise WireJSONError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise NotCarried(f"the number {text[:40]} is too large for a 64-bit float")
    return value


def _depth(raw: bytes) -> int:
    depth = deepest = 0
    for token in _DEPTH_TOKENS.finditer(raw):
        char = token.group()[:1]
        if char in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


def _check_depth(raw: bytes) -> None:
    # Counting brackets runs at C speed; only a document with more openers
    # than the limit needs its real depth measured.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth(raw) > MAX_DEPTH:
        raise NotCarried(f"nested too deeply (more than {MAX_DEPTH} levels)")


def _strings(value: Any):
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_surrogates(value: Any) -> None:
    for text in _strings(value):
        if not text.isascii() and _LONE_SURROGATE.search(text):
            raise NotCarried("a string holds a lone UTF-16 surrogate, which UTF-8 cannot carry")


def loads(data: str | bytes | bytearray) -> Any:
    """Decode one document under the rules above (UTF-8 when bytes)."""
    if isinstance(data, str):
        raw, text = data.encode("utf-8", "surrogatepass"), data
    else:
        raw = bytes(data)
        try:
            # Explicitly: json.loads would guess UTF-16 or UTF-32 from the first bytes.
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireJSONError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    _check_depth(raw)
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_finite)
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise NotCarried(f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    except WireJSONError:
        raise
    except ValueError as exc:
        raise WireJSONError(str(exc)) from None
    # Only an escape can put a surrogate in a string that came as UTF-8.
    if b"\\u" in raw or b"\\U" in raw or isinstance(data, str):
        _check_surrogates(value)
    return value


def dumps(obj: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Encode compact JSON that :func:`loads` accepts back; ``default``
    converts other types as in :func:`json.dumps`."""
    try:
        text = json.dumps(obj, default=default, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except RecursionError:
        raise NotCarried(f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    except ValueError as exc:
        if "Out of range float" in str(exc):
            raise WireJSONError("NaN and infinities are not valid JSON") from None
        raise
    if not text.isascii() and _LONE_SURROGATE.search(text):
        raise NotCarried("a string holds a lone UTF-16 surrogate, which UTF-8 cannot carry")
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(text.encode("utf-8"))
    return text


def check_size(text: str | bytes, max_bytes: int, what: str = "message") -> None:
    """Refuse ``text`` when its UTF-8 form exceeds ``max_bytes``."""
    size = len(text.encode("utf-8")) if isinstance(text, str) else len(text)
    if size > max_bytes:
        raise WireJSONError(f"{what} of {size} bytes exceeds the {max_bytes} byte limit")
