"""Which actions and channels the gateway lets browsers reach.

Nothing is reachable until the config lists it, as glob patterns with
Redis's syntax (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes), so the
same patterns can be handed to ``PSUBSCRIBE`` unchanged::

    exposure = Exposure(actions=["clock/*"], channels=["sensors.*"])
    exposure.action_allowed("clock", "now")      # True
    exposure.channel_allowed("system_status")    # False
"""

from __future__ import annotations

from daebus.bus.globs import glob_match, glob_regex, is_glob

__all__ = ["Exposure", "glob_match", "glob_regex", "is_glob"]


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
