"""``[bridge]`` (a box's bridge) and ``[fleet]`` (the vendor's side): declared
once here, read from the daebus configuration files like every section.

Example::

    [bridge]
    broker = ["mqtts://fleet-1.example.com:8883", "mqtts://fleet-2.example.com:8883"]
    fleet = "kiosks"
    username = "kiosk-0042"
    password_file = "mqtt-password"          # a systemd credential
    send_channels = ["sensors.*"]
    call_actions = ["display/*"]
"""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import Any

from daebus.ops import config, configspec
from daebus.ops.configspec import FLOAT, INT, LIST, STR, TEXT, Key, Section, at_least
from daebus.errors import ConfigError
from daebus.fleet import topics
from daebus.fleet.mqtt import Credentials, Endpoint, read_secret

DEFAULT_BROKER = "mqtt://localhost:1883"
DEFAULT_FLEET = "default"


def _names(what: str, check=topics.check_pattern):
    """A Key check: every name of a list (or the one name) usable as a topic
    level, so a bad one is refused with its file and line, not mangled."""
    def problem(value):
        for name in (value,) if isinstance(value, str) else value:
            if isinstance(value, str) and not value:
                continue  # an empty device: the default
            try:
                check(what, name) if check is not topics.check_action_pattern else check(name)
            except ValueError as exc:
                return str(exc)
        return None
    return problem


def _brokers(urls) -> str | None:
    if not urls:
        return "name at least one broker"
    for url in urls:
        try:
            Endpoint.parse(url)
        except ConfigError as exc:
            return str(exc).removeprefix("broker: ")
    return None


def _connection_keys(who: str) -> list[Key]:
    return [
        Key("broker", LIST, (DEFAULT_BROKER,), "`mqtt://host:port` or `mqtts://host:port`; a list is "
            "tried in turn", check=_brokers),
        Key("fleet", TEXT, DEFAULT_FLEET, "the fleet's name: topics begin `daebus/<fleet>/`",
            check=_names("fleet", topics.check_level)),
        Key("username", STR, "", f"the {who}'s broker user name"),
        Key("password_file", STR, "", "a file holding the broker password (never shown); a bare name "
            "is a systemd credential, read from `$CREDENTIALS_DIRECTORY`"),
        Key("ca_file", STR, "", "`mqtts://`: the CA certificates the broker's is checked against "
            "(default: the system's)"),
        Key("cert_file", STR, "", "`mqtts://`: a client certificate, for brokers that ask for one"),
        Key("key_file", STR, "", "`mqtts://`: the client certificate's key (a path or a systemd credential)"),
        Key("keepalive", INT, 30, "seconds between MQTT pings; the broker declares a silent client gone "
            "after 1.5 times this", check=at_least(5)),
    ]


BRIDGE = configspec.register(Section("bridge", "the box's fleet bridge (`daebus bridge`)", [
    *_connection_keys("device"),
    Key("device", STR, "", "this box's id in the fleet", shown_default="the host name",
        check=_names("device", lambda _what, name: topics.check_device(name))),
    Key("groups", LIST, (), "the groups this box belongs to (`group:NAME` targets)",
        check=_names("group", topics.check_level)),
    Key("send_channels", LIST, (), "globs of local broadcast channels sent to the fleet as events",
        check=_names("send_channels glob")),
    Key("call_actions", LIST, (), "globs of `service/action` the fleet may call",
        check=_names("call_actions", topics.check_action_pattern)),
    Key("receive_channels", LIST, (), "globs of channels the fleet may broadcast into the box",
        check=_names("receive_channels glob")),
    Key("outbox_events", INT, 10000, "events kept per sent channel while the broker is out of reach",
        check=at_least(1)),
    Key("outbox_seconds", FLOAT, 86400.0, "seconds an unsent event is kept", check=at_least(1)),
    Key("metrics_interval", FLOAT, 60.0, "seconds between metrics messages (0: none)", check=at_least(0)),
    Key("max_calls", INT, 8, "fleet calls run at once; more answer `busy`", check=at_least(1)),
    Key("call_timeout", FLOAT, 30.0, "the deadline of a fleet call without a message expiry interval",
        check=at_least(1)),
    Key("max_message_bytes", INT, 256 * 1024, "larger fleet messages are dropped", check=at_least(1024)),
]))

FLEET = configspec.register(Section("fleet", "the fleet tools (`daebus fleet`, `FleetCaller`)", [
    *_connection_keys("backend"),
    Key("timeout", FLOAT, 10.0, "seconds `daebus fleet call` waits for replies", check=at_least(0.1)),
]))


@dataclasses.dataclass(frozen=True)
class Connection:
    endpoints: tuple[Endpoint, ...]
    fleet: str
    credentials: Credentials
    keepalive: int


def _connection(section: Section, values: dict[str, Any]) -> Connection:
    name = section.name
    endpoints = tuple(Endpoint.parse(url, f"[{name}] broker") for url in values["broker"])
    if not endpoints:
        raise ConfigError(f"[{name}] broker: name at least one broker")
    try:
        topics.check_level("fleet", values["fleet"])
    except ValueError as exc:
        raise ConfigError(f"[{name}] fleet: {exc}") from None
    creds = Credentials(values["username"], read_secret(values["password_file"], f"[{name}] password_file"),
                        values["ca_file"], values["cert_file"], _key_path(values["key_file"]))
    return Connection(endpoints, values["fleet"], creds, values["keepalive"])


def _key_path(spec: str) -> str:
    # A bare name is a systemd credential, as for password files.
    if spec and "/" not in spec and os.environ.get("CREDENTIALS_DIRECTORY"):
        return os.path.join(os.environ["CREDENTIALS_DIRECTORY"], spec)
    return spec


@dataclasses.dataclass(frozen=True)
class BridgeSettings:
    connection: Connection
    device: str
    groups: tuple[str, ...]
    send_channels: tuple[str, ...]
    call_actions: tuple[str, ...]
    receive_channels: tuple[str, ...]
    outbox_events: int
    outbox_seconds: float
    metrics_interval: float
    max_calls: int
    call_timeout: float
    max_message_bytes: int


def default_device() -> str:
    """The host name up to its first dot: what an operator calls the box."""
    return socket.gethostname().split(".")[0] or "localhost"


def _resolve(section: Section, overrides: dict[str, Any] | None) -> dict[str, Any]:
    resolved = section.resolve(config.documents(), overrides, os.environ, "command line")
    return {name: value.value for name, value in resolved.items()}


def bridge(**overrides: Any) -> BridgeSettings:
    """The bridge's settings; ConfigError naming the key for anything unusable."""
    values = _resolve(BRIDGE, overrides)
    device = values["device"] or default_device()
    try:
        topics.check_device(device)
        for group in values["groups"]:
            topics.check_level("group", group)
        for key in ("send_channels", "receive_channels"):
            for pattern in values[key]:
                topics.check_pattern(f"{key} glob", pattern)
        for pattern in values["call_actions"]:
            topics.check_action_pattern(pattern)
    except ValueError as exc:
        raise ConfigError(f"[bridge] {exc}") from None
    return BridgeSettings(
        _connection(BRIDGE, values), device, values["groups"], values["send_channels"],
        values["call_actions"], values["receive_channels"], values["outbox_events"],
        values["outbox_seconds"], values["metrics_interval"], values["max_calls"], values["call_timeout"],
        values["max_message_bytes"])


def fleet(**overrides: Any) -> tuple[Connection, float]:
    """The fleet side's connection and call timeout."""
    values = _resolve(FLEET, overrides)
    return _connection(FLEET, values), values["timeout"]
