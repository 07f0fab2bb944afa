"""The gateway's settings: the ``[gateway]`` section of the daebus config.

daebus reads ``/etc/daebus/daebus.toml`` and ``conf.d/*.toml`` but leaves
``[gateway]`` to us, so this module validates it and names the file and line
of a bad value, as daebus does for its own sections. Example::

    [gateway]
    bind = "127.0.0.1:8080"
    expose_actions = ["clock/*", "my_service/get_status"]
    expose_channels = ["system_status", "sensors.*"]

and in code::

    settings = load()                        # files, then defaults
    settings = load({"threads": 16})         # the same with overrides
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Mapping

from daebus import config as daebus_config
from daebus.errors import ConfigError

from .security import bind_is_loopback, parse_origin

SECTION = "gateway"
MIN_TOKEN_LENGTH = 16

_STR, _INT, _FLOAT, _BOOL, _LIST = "a string", "an integer", "a number", "true or false", "a list of strings"

# key: (kind, default). Defaults live here, in code, so the shipped config
# file can stay fully commented and upgrades never hit a conffile prompt.
SCHEMA: dict[str, tuple[str, Any]] = {
    "bind": (_LIST, ("127.0.0.1:8080",)),
    "threads": (_INT, 32),
    "max_streams": (_INT, None),  # None: what threads leaves after a reserve for calls
    "graceful_timeout": (_INT, 3),
    "allowed_hosts": (_LIST, ("localhost", "127.0.0.1", "::1")),
    "token": (_STR, ""),
    "token_file": (_STR, ""),
    "trust_loopback": (_BOOL, True),
    "expose_actions": (_LIST, ()),
    "expose_channels": (_LIST, ()),
    "cors_origins": (_LIST, ()),
    "max_body_bytes": (_INT, 64 * 1024),
    "default_timeout": (_FLOAT, 5.0),
    "max_timeout": (_FLOAT, 30.0),
    "heartbeat": (_FLOAT, 15.0),
    "stream_queue": (_INT, 64),
    "send_timeout": (_FLOAT, 10.0),
    "static_dir": (_STR, ""),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated gateway settings (see ``docs/gateway.md`` for each key)."""

    bind: tuple[str, ...] = ("127.0.0.1:8080",)
    threads: int = 32
    max_streams: int = 24
    graceful_timeout: int = 3
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    token: str = ""
    token_file: str = ""
    trust_loopback: bool = True
    expose_actions: tuple[str, ...] = ()
    expose_channels: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 64 * 1024
    default_timeout: float = 5.0
    max_timeout: float = 30.0
    heartbeat: float = 15.0
    stream_queue: int = 64
    send_timeout: float = 10.0
    static_dir: str = ""
    # From daebus's own sections ([redis] url, [log] level) and environment.
    redis_url: str = daebus_config.DEFAULT_REDIS_URL
    log_level: str = "info"
    max_message_bytes: int = 1024 * 1024
    # Where the operator changes things, for error and 403 messages.
    config_file: str = daebus_config.DEFAULT_CONFIG_PATH


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return "[" + ", ".join(_toml(item) for item in value) + "]"


def render(redis_url: str, gateway: Mapping[str, Any], comment: str | None = None) -> str:
    """The text of a config file with ``[redis] url`` and these ``[gateway]``
    keys, for launchers and tests that start a gateway of their own.

    Example::

        path.write_text(render("redis://127.0.0.1:6380/0", {"bind": "127.0.0.1:9000"}))
    """
    lines = [f"# {comment}"] if comment else []
    lines += ["[redis]", f"url = {_toml(redis_url)}", "", f"[{SECTION}]"]
    lines += [f"{key} = {_toml(value)}" for key, value in gateway.items()]
    return "\n".join(lines) + "\n"


def auto_max_streams(threads: int) -> int:
    """Streams allowed when ``max_streams`` is not set: ``threads`` less a
    reserve for action calls (a quarter, between 2 and 8 threads)."""
    return max(0, threads - max(2, min(8, threads // 4)))


def _line(text: str, key: str) -> int:
    """Line of ``key = ...`` inside the ``[gateway]`` table, 0 if not found."""
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\s*([^\]]+?)\s*\]", line)
        if header:
            inside = header.group(1) == SECTION
        elif inside and re.match(rf"\s*\"?{re.escape(key)}\"?\s*=", line):
            return number
    return 0


# Lists that add up across files, so that a vendor's conf.d drop-in and the
# admin's own can each expose what they need without overwriting the other.
ADDITIVE = ("expose_actions", "expose_channels")


def _read_tables(files: list[Path]) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged ``[gateway]`` table and ``key -> "file:line"`` of the file
    that set each key last; ADDITIVE lists are checked file by file and
    joined."""
    table: dict[str, Any] = {}
    where: dict[str, str] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        section = tomllib.loads(text).get(SECTION)
        if not isinstance(section, dict):
            continue
        for key, value in section.items():
            where[key] = f"{path}:{_line(text, key)}"
            if key in ADDITIVE:
                value = table.get(key, ()) + _coerce(key, value, where[key])
            table[key] = value
    return table, where


def _coerce(key: str, value: Any, where: str) -> Any:
    kind, _ = SCHEMA[key]
    prefix = f"{where}: {SECTION}.{key}"
    if kind == _LIST:
        if isinstance(value, str):
            value = [value]  # bind = "127.0.0.1:8080" reads better than a list of one
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{prefix}: expected {kind} (non-empty), got {value!r}")
        return tuple(value)
    if kind == _BOOL:
        if not isinstance(value, bool):
            raise ConfigError(f"{prefix}: expected {kind}, got {value!r}")
        return value
    if isinstance(value, bool):
        raise ConfigError(f"{prefix}: expected {kind}, got {value!r}")
    if kind == _INT and isinstance(value, int):
        return value
    if kind == _FLOAT and isinstance(value, int | float):
        return float(value)
    if kind == _STR and isinstance(value, str):
        return value
    raise ConfigError(f"{prefix}: expected {kind}, got {type(value).__name__} {value!r}")


def _check(values: dict[str, Any], where: dict[str, str], default_where: str) -> None:
    """Cross-field rules; each error names the key that must change."""

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{where.get(key, default_where)}: {SECTION}.{key}: {message}")

    for key in ("default_timeout", "max_timeout", "heartbeat", "send_timeout"):
        if values[key] <= 0:
            fail(key, f"must be more than 0, got {values[key]!r}")
    for key, low in (("graceful_timeout", 1), ("threads", 2), ("stream_queue", 1),
                     ("max_body_bytes", 2), ("max_streams", 0)):
        if values[key] < low:
            fail(key, f"must be at least {low}, got {values[key]!r}")
    if values["max_streams"] >= values["threads"]:
        fail("max_streams", f"must be less than threads ({values['threads']}): each event stream "
                            "holds a thread, and action calls need some left")
    if values["max_timeout"] < values["default_timeout"]:
        fail("max_timeout", f"must be at least default_timeout ({values['default_timeout']:g})")
    for pattern in values["expose_actions"]:
        if "/" not in pattern and pattern != "*":
            fail("expose_actions", f"{pattern!r} is not a 'service/action' pattern "
                                   "(for example 'clock/*' or 'my_service/get_status')")
    for origin in values["cors_origins"]:
        if origin != "*" and parse_origin(origin) is None:
            fail("cors_origins", f"{origin!r} is not an origin such as 'http://kiosk.local:8080'")
    if values["token"] and len(values["token"]) < MIN_TOKEN_LENGTH:
        fail("token", f"must be at least {MIN_TOKEN_LENGTH} characters")
    if values["static_dir"] and not Path(values["static_dir"]).is_dir():
        fail("static_dir", f"{values['static_dir']!r} is not a directory")
    open_binds = [b for b in values["bind"] if not bind_is_loopback(b)]
    if open_binds and not values["token"]:
        fail("bind", f"{', '.join(open_binds)} listens beyond loopback: set {SECTION}.token "
                     f"(or {SECTION}.token_file) so that other machines must present it")


def _read_token_file(path: str, where: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: {SECTION}.token_file: cannot read {path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    if not token:
        raise ConfigError(f"{where}: {SECTION}.token_file: {path} is empty")
    return token


def load(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read the config files, apply ``overrides`` and validate.

    ``overrides`` takes the ``[gateway]`` keys plus ``redis_url``; errors in
    it are reported as coming from ``config``. Raises
    :class:`daebus.errors.ConfigError` with ``file:line`` for bad files.
    """
    files = daebus_config.config_files()
    base = daebus_config.load()  # validates [redis], [log], ... too
    table, where = _read_tables(files)
    overrides = dict(overrides or {})
    redis_url = overrides.pop("redis_url", None) or base.redis_url
    for key in overrides:
        where[key] = "config"
    table.update(overrides)
    default_where = str(daebus_config.config_path())
    values = {key: default for key, (_, default) in SCHEMA.items()}
    for key, value in table.items():
        if key not in SCHEMA:
            raise ConfigError(f"{where.get(key, default_where)}: unknown key '{key}' in [{SECTION}] "
                              f"(known: {', '.join(SCHEMA)})")
        values[key] = value if key in ADDITIVE and key not in overrides else \
            _coerce(key, value, where.get(key, default_where))
    if values["token_file"] and not values["token"]:
        values["token"] = _read_token_file(values["token_file"], where.get("token_file", default_where))
    if values["max_streams"] is None:
        values["max_streams"] = auto_max_streams(values["threads"])
    _check(values, where, default_where)
    return Settings(**values, redis_url=redis_url, log_level=base.log_level,
                    max_message_bytes=base.max_message_bytes,
                    config_file=f"{default_where} or a drop-in in {Path(default_where).parent / 'conf.d'}")
