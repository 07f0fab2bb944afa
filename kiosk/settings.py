"""The ``[kiosk]`` section: what the screen shows and how."""

from __future__ import annotations

import re

from daebus.ops import config as daebus_config
from daebus.ops import configspec, ports
from daebus.ops.configspec import BOOL, FLOAT, INT, LIST, STR, Key, Section, at_least, more_than


def _clock(value):
    """A check for ``HH:MM`` times; empty means unset."""
    if value == "" or re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        return None
    return f"expected a time as HH:MM (24 h) or \"\", got {value!r}"


KIOSK = configspec.register(Section("kiosk", "the kiosk browser on the device's screen", [
    Key("url", STR, f"http://127.0.0.1:{ports.GATEWAY_PORT}/", "the page shown (the gateway's, normally)."),
    Key("rotation", INT, 0, "screen rotation in degrees, clockwise: 0, 90, 180 or 270.",
        check=lambda v: None if v in (0, 90, 180, 270) else f"must be 0, 90, 180 or 270, got {v!r}"),
    Key("hide_cursor", BOOL, True, "hide the mouse pointer over the page (touch screens)."),
    Key("pinch_zoom", BOOL, False, "let touch users zoom the page with two fingers."),
    Key("blank_from", STR, "", "time of day (HH:MM) the screen goes black; empty: never.", check=_clock),
    Key("blank_until", STR, "", "time of day (HH:MM) the screen comes back; a touch wakes it for a "
        "minute in between.", check=_clock),
    Key("heartbeat_timeout", FLOAT, 30.0, "seconds without a heartbeat from the page before the "
        "browser counts as hung and is restarted.", check=more_than(2)),
    Key("retry_seconds", FLOAT, 2.0, "seconds between tries to reach the page while it is offline.",
        check=more_than(0)),
    Key("port", INT, 8099, "loopback port of the kiosk's own frame page and heartbeat.",
        check=at_least(1)),
    Key("chromium_flags", LIST, (), "extra Chromium command-line flags."),
]))

Settings = KIOSK.settings_class("Settings", "Resolved ``[kiosk]`` settings.")


def load() -> Settings:
    """The ``[kiosk]`` settings from the daebus config files; ConfigError
    names the file and line of a bad value."""
    resolved = daebus_config.resolve((KIOSK,))[KIOSK.name]
    return Settings(**{KIOSK.keys[name].attr: value.value for name, value in resolved.items()})
