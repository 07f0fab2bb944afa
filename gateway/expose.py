"""Which actions and channels the gateway lets browsers reach.

Nothing is reachable until the config lists it, as glob patterns with
Redis's syntax (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes), so the
same patterns can be handed to ``PSUBSCRIBE`` unchanged::

    exposure = Exposure(actions=["clock/*"], channels=["sensors.*"])
    exposure.action_allowed("clock", "now")      # True
    exposure.channel_allowed("system_status")    # False
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


class Exposure:
    """The exposed action and channel patterns, and the messages that tell
    an operator how to expose more.

    ``source`` names the file to edit in those messages.
    """

    def __init__(self, actions=(), channels=(), source: str = "the daebus config"):
        self.actions = tuple(dict.fromkeys(actions))
        self.channels = tuple(dict.fromkeys(channels))
        self.source = source

    def action_allowed(self, service: str, action: str) -> bool:
        name = f"{service}/{action}"
        return any(glob_match(p, name) for p in self.actions)

    def channel_allowed(self, channel: str) -> bool:
        return any(glob_match(p, channel) for p in self.channels)

    def action_denied(self, service: str, action: str) -> str:
        return (f"action {service}/{action} is not exposed; add \"{service}/{action}\" (or a "
                f"pattern such as \"{service}/*\") to gateway.expose_actions in {self.source}")

    def channel_denied(self, channel: str) -> str:
        return (f"channel {channel} is not exposed; add \"{channel}\" (or a pattern matching it) "
                f"to gateway.expose_channels in {self.source}")

    def subscription_patterns(self) -> list[str]:
        """Patterns for ``PSUBSCRIBE``: the channel patterns without the plain
        names that another pattern already covers (each would make Redis
        deliver the same message twice)."""
        globs = [p for p in self.channels if is_glob(p)]
        plain = [p for p in self.channels if not is_glob(p) and not any(glob_match(g, p) for g in globs)]
        return globs + plain

    def copies(self, channel: str, patterns) -> int:
        """How many times Redis delivers one message on ``channel`` to a
        connection subscribed to ``patterns`` (one per matching pattern)."""
        return sum(1 for p in patterns if glob_match(p, channel))
