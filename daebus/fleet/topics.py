"""Every fleet topic, built and parsed in this one place.

Layout (``P`` is ``daebus/<fleet>``)::

    P/<device>/state                      retained; the last will too
    P/<device>/events/<channel>           QoS 1, {"id", "channel", "data", "ts"}
    P/<device>/call/<service>/<action>    a request; the reply to its Response Topic
    P/<device>/metrics                    every metrics_interval
    P/all/broadcast/<channel>             into every box
    P/group/<group>/broadcast/<channel>   into the boxes of a group
    P/<device>/broadcast/<channel>        into one box

A name that must be one topic level (fleet, device, group, channel,
service, action) may not be empty nor hold ``/``, ``+``, ``#`` or NUL;
``all`` and ``group`` are not device ids, since they begin other topics.
"""

from __future__ import annotations

import dataclasses

ROOT = "daebus"
RESERVED_DEVICES = frozenset({"all", "group", "reply"})
_FORBIDDEN = frozenset("/+#\x00")
MAX_LEVEL = 200  # bytes; far above any sane name, far below MQTT's 65535-byte topic


def level_problem(name: object) -> str | None:
    """Why ``name`` cannot be one topic level, or None."""
    if not isinstance(name, str) or not name:
        return "is empty"
    bad = sorted(set(name) & _FORBIDDEN)
    if bad:
        shown = ", ".join("NUL" if ch == "\x00" else repr(ch) for ch in bad)
        return f"holds {shown}, which MQTT topic levels cannot"
    if len(name.encode("utf-8")) > MAX_LEVEL:
        return f"is longer than {MAX_LEVEL} bytes"
    return None


def check_level(what: str, name: object) -> str:
    """``name``, or ValueError saying which ``what`` is unusable and why."""
    problem = level_problem(name)
    if problem:
        raise ValueError(f"{what} {name!r} {problem}")
    return name


def check_device(device: object) -> str:
    check_level("device", device)
    if device in RESERVED_DEVICES:
        raise ValueError(f"device {device!r} is reserved (it begins other topics)")
    return device


def check_pattern(what: str, pattern: object) -> str:
    """A glob of names that are one topic level each (send_channels...):
    a glob holding ``/``, ``+`` or ``#`` could only name unusable channels."""
    problem = level_problem(pattern)
    if problem:
        raise ValueError(f"{what} {pattern!r} {problem}")
    return pattern


def check_action_pattern(pattern: object) -> str:
    """A ``service/action`` glob of call_actions: two levels."""
    parts = pattern.split("/") if isinstance(pattern, str) else []
    if len(parts) != 2:
        raise ValueError(f"call_actions {pattern!r} must be SERVICE/ACTION (globs allowed)")
    for part in parts:
        problem = level_problem(part)
        if problem:
            raise ValueError(f"call_actions {pattern!r}: {part!r} {problem}")
    return pattern


@dataclasses.dataclass(frozen=True)
class Topics:
    """The topics of one fleet; ``device`` methods take the device id."""

    fleet: str

    def __post_init__(self):
        check_level("fleet", self.fleet)

    @property
    def prefix(self) -> str:
        return f"{ROOT}/{self.fleet}"

    def state(self, device: str) -> str:
        return f"{self.prefix}/{device}/state"

    def events(self, device: str, channel: str) -> str:
        return f"{self.prefix}/{device}/events/{channel}"

    def metrics(self, device: str) -> str:
        return f"{self.prefix}/{device}/metrics"

    def call(self, device: str, service: str, action: str) -> str:
        return f"{self.prefix}/{device}/call/{service}/{action}"

    def broadcast(self, target: str, channel: str) -> str:
        """``target``: a device, ``all`` or ``group:NAME``."""
        return f"{self.prefix}/{self.target_level(target)}/broadcast/{channel}"

    def target_level(self, target: str) -> str:
        if target == "all":
            return "all"
        if target.startswith("group:"):
            return f"group/{check_level('group', target[len('group:'):])}"
        return check_device(target)

    # -- what a bridge subscribes to ------------------------------------------------
    def call_filter(self, device: str) -> str:
        return f"{self.prefix}/{device}/call/+/+"

    def broadcast_filters(self, device: str, groups) -> list[str]:
        return [f"{self.prefix}/all/broadcast/+", f"{self.prefix}/{device}/broadcast/+",
                *(f"{self.prefix}/group/{group}/broadcast/+" for group in groups)]

    def state_filter(self) -> str:
        return f"{self.prefix}/+/state"

    def reply_topic(self, client_id: str) -> str:
        """Where a fleet caller hears replies: under ``daebus/<fleet>/reply/``,
        which no device publishes under (the ACL gives it to the backend)."""
        return f"{self.prefix}/reply/{client_id}"

    # -- parsing -------------------------------------------------------------------
    def levels(self, topic: str) -> list[str] | None:
        """The levels after ``daebus/<fleet>/``, None for another fleet's topic."""
        head = self.prefix + "/"
        return topic[len(head):].split("/") if topic.startswith(head) else None

    def parse_call(self, topic: str) -> tuple[str, str, str] | None:
        """``(device, service, action)`` of a call topic, else None."""
        levels = self.levels(topic)
        if levels and len(levels) == 4 and levels[1] == "call" and all(levels):
            return levels[0], levels[2], levels[3]
        return None

    def parse_broadcast(self, topic: str) -> str | None:
        """The channel of any of the three broadcast topics, else None."""
        levels = self.levels(topic)
        if not levels or levels[-2:-1] != ["broadcast"] or not levels[-1]:
            return None
        if len(levels) == 3 or (len(levels) == 4 and levels[0] == "group"):
            return levels[-1]
        return None

    def parse_state(self, topic: str) -> str | None:
        """The device of a state topic, else None."""
        levels = self.levels(topic)
        return levels[0] if levels and len(levels) == 2 and levels[1] == "state" else None
