"""Glob patterns with Redis's rules, as ``PSUBSCRIBE`` and ``KEYS`` read them.

``*``, ``?``, ``[abc]``, ``[a-z]``, ``[^x]`` and ``\\`` escapes, so that a
pattern matched here and one handed to Redis select the same names::

    glob_match("sensors.*", "sensors.temp")   # True
    glob_match("[^a]*", "abc")                # False
"""

from __future__ import annotations

import functools
import re

_SPECIAL = frozenset("*?[\\")


@functools.lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern:
    """Compile a Redis-style glob (the rules of Redis's ``stringmatchlen``)."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            i, klass = _bracket(pattern, i + 1)
            out.append(klass)
            continue
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _bracket(pattern: str, i: int) -> tuple[int, str]:
    # Redis reads a class up to "]" (or the end of the pattern), with "^"
    # negating, "a-z" ranges in either order and "\x" a literal x.
    negate = i < len(pattern) and pattern[i] == "^"
    i += negate
    items = []
    while i < len(pattern) and pattern[i] != "]":
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            items.append(re.escape(pattern[i]))
        elif i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            low, high = sorted((ch, pattern[i + 2]))
            items.append(f"{re.escape(low)}-{re.escape(high)}")
            i += 2
        else:
            items.append(re.escape(ch))
        i += 1
    body = "".join(items)
    if not body:
        return i + 1, "[^\\s\\S]" if not negate else "[\\s\\S]"
    return i + 1, f"[{'^' if negate else ''}{body}]"


def glob_match(pattern: str, name: str) -> bool:
    return glob_regex(pattern).fullmatch(name) is not None


def is_glob(pattern: str) -> bool:
    return any(ch in _SPECIAL for ch in pattern)
