"""Settings: explicit arguments, then ``DAEBUS_*`` variables, then TOML files,
then defaults in code.

Files are ``/etc/daebus/daebus.toml`` then ``/etc/daebus/conf.d/*.toml`` in
name order (``DAEBUS_CONFIG`` names another main file; its ``conf.d`` is the
folder beside it). A file only needs the keys it changes::

    [redis]
    url = "unix:///run/redis/redis-server.sock"

    [service]
    shutdown_timeout = 5
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_CONFIG_PATH = "/etc/daebus/daebus.toml"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"


@dataclasses.dataclass(frozen=True)
class _Key:
    type: type
    default: Any
    env: str | None = None
    choices: tuple[str, ...] = ()


# Sections read by daebus itself. Sections owned by other programs that share
# the file (the gateway) are listed in FOREIGN_SECTIONS and validated there.
SCHEMA: dict[str, dict[str, _Key]] = {
    "redis": {
        "url": _Key(str, DEFAULT_REDIS_URL, "DAEBUS_REDIS_URL"),
        "socket_timeout": _Key(float, 5.0, None),
        "health_check_interval": _Key(float, 5.0, None),
    },
    "service": {
        "queue_size": _Key(int, 100, "DAEBUS_QUEUE_SIZE"),
        "shutdown_timeout": _Key(float, 10.0, "DAEBUS_SHUTDOWN_TIMEOUT"),
        "max_message_bytes": _Key(int, 1024 * 1024, None),
        "registry_ttl": _Key(float, 15.0, None),
    },
    "log": {
        "level": _Key(str, "info", "DAEBUS_LOG_LEVEL",
                      choices=("critical", "error", "warning", "info", "debug")),
    },
}
FOREIGN_SECTIONS = {"gateway"}


def config_path() -> Path:
    return Path(os.environ.get("DAEBUS_CONFIG") or DEFAULT_CONFIG_PATH)


def config_files(main: Path | None = None) -> list[Path]:
    """The files that exist, in the order they apply."""
    main = main or config_path()
    files = [main] if main.is_file() else []
    confd = main.parent / "conf.d"
    if confd.is_dir():
        files += sorted(p for p in confd.glob("*.toml") if p.is_file())
    return files


def _line_of(text: str, section: str | None, key: str) -> int:
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1)
        elif re.match(rf"\s*\"?{re.escape(key)}\"?\s*=", line) and current == section:
            return number
        elif section is None and header is None and current is None and re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return 0


def _coerce(value: Any, spec: _Key, where: str) -> Any:
    if spec.type is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if spec.type is int and isinstance(value, str):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if not isinstance(value, spec.type) or isinstance(value, bool) != (spec.type is bool):
        raise ConfigError(f"{where}: expected {spec.type.__name__}, got {type(value).__name__} {value!r}")
    if spec.choices and value.lower() not in spec.choices:
        raise ConfigError(f"{where}: expected one of {', '.join(spec.choices)}, got {value!r}")
    return value


def read_file(path: Path) -> dict[str, dict[str, Any]]:
    """Parse and validate one TOML file; errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc.reason}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    result: dict[str, dict[str, Any]] = {}
    for section, table in data.items():
        if section in FOREIGN_SECTIONS:
            result[section] = table
            continue
        keys = SCHEMA.get(section)
        if keys is None or not isinstance(table, dict):
            line = _line_of(text, None, section) or _find_header(text, section)
            known = ", ".join(f"[{name}]" for name in [*SCHEMA, *sorted(FOREIGN_SECTIONS)])
            raise ConfigError(f"{path}:{line}: unknown section [{section}] (known: {known})")
        for key, value in table.items():
            line = _line_of(text, section, key)
            if key not in keys:
                raise ConfigError(f"{path}:{line}: unknown key '{key}' in [{section}] "
                                  f"(known: {', '.join(keys)})")
            result.setdefault(section, {})[key] = _coerce(value, keys[key], f"{path}:{line}: {section}.{key}")
    return result


def _find_header(text: str, section: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*\[\s*{re.escape(section)}\s*\]", line):
            return number
    return 0


_file_cache: dict[tuple, dict] = {}


def load_files(main: Path | None = None) -> dict[str, dict[str, Any]]:
    """Merge every config file, later files overriding earlier keys.

    The result is cached per set of files and their modification times, so
    creating many callers doesn't re-read the disk each time.
    """
    files = config_files(main)
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in files)
    if stamp in _file_cache:
        return _file_cache[stamp]
    merged: dict[str, dict[str, Any]] = {}
    for path in files:
        for section, table in read_file(path).items():
            merged.setdefault(section, {}).update(table)
    _file_cache.clear()
    _file_cache[stamp] = merged
    return merged


def _from_env(spec: _Key, name: str) -> Any:
    raw = os.environ[name]
    if spec.choices and raw.lower() not in spec.choices:
        raise ConfigError(f"environment variable {name}: expected one of {', '.join(spec.choices)}, "
                          f"got {raw!r}")
    try:
        if spec.type is float:
            return float(raw)
        if spec.type is int:
            return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}: expected {spec.type.__name__}, got {raw!r}") from None
    return raw


@dataclasses.dataclass(frozen=True)
class Settings:
    """Resolved settings of one service or caller."""

    redis_url: str = DEFAULT_REDIS_URL
    socket_timeout: float = 5.0
    health_check_interval: float = 5.0
    queue_size: int = 100
    shutdown_timeout: float = 10.0
    max_message_bytes: int = 1024 * 1024
    registry_ttl: float = 15.0
    log_level: str = "info"
    sections: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)


_FIELD_OF = {("redis", "url"): "redis_url", ("log", "level"): "log_level"}


def load(**overrides: Any) -> Settings:
    """Resolve settings; ``overrides`` whose value is None are ignored.

    Example::

        settings = load(redis_url="redis://10.0.0.2:6379/1")
    """
    files = load_files()
    values: dict[str, Any] = {}
    for section, keys in SCHEMA.items():
        for key, spec in keys.items():
            field = _FIELD_OF.get((section, key), key)
            if spec.env and os.environ.get(spec.env):
                values[field] = _from_env(spec, spec.env)
            elif key in files.get(section, {}):
                values[field] = files[section][key]
            else:
                values[field] = spec.default
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values["queue_size"] < 0:
        raise ConfigError("service.queue_size must be 0 or more")
    return Settings(sections=files, **values)


def redis_url_from(redis_url: str | None, redis_host: str | None, redis_port: int | None) -> str | None:
    """The explicit Redis URL given as arguments, if any."""
    if redis_url:
        return redis_url
    if redis_host or redis_port:
        return f"redis://{redis_host or 'localhost'}:{int(redis_port or 6379)}/0"
    return None
