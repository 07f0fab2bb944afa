"""Settings: explicit arguments, then ``DAEBUS_*`` variables, then TOML files,
then defaults in code.

Files are ``/etc/daebus/daebus.toml`` then ``/etc/daebus/conf.d/*.toml`` in
name order (``DAEBUS_CONFIG`` names another main file; its ``conf.d`` is the
folder beside it). A file only needs the keys it changes::

    [redis]
    url = "unix:///run/redis/redis-server.sock"

    [service]
    shutdown_timeout = 5

Adding a key: one ``Key(...)`` line in its section below (name, kind,
default, meaning, optional ``env=``/``check=``); :class:`Settings` gains the
attribute, ``daebus config`` shows it, and ``tests/unit/test_config_docs.py``
asks for its row in the README table. A program with a section of its own declares
it with :func:`daebus.ops.configspec.register` and resolves it with
:func:`documents` (see ``gateway/settings.py``); daebus itself knows none of
them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from daebus.ops import configspec
from daebus.ops import redis_url as urls
from daebus.ops.configspec import BOOL, FLOAT, INT, STR, Key, Section, Value, at_least, more_than

DEFAULT_CONFIG_PATH = "/etc/daebus/daebus.toml"

REDIS = configspec.register(Section("redis", "the Redis server of the bus", [
    Key("url", STR, urls.DEFAULT_URL, "`rediss://`, `unix:///path?db=N`, "
        "`redis://:password@host` work too, and Sentinel: "
        "`redis+sentinel://host:port,host:port/master[/db]`", env="DAEBUS_REDIS_URL", field="redis_url",
        check=urls.sentinel_problem),
    Key("username", STR, "", "the Redis ACL user to be (with `password_file`); a URL's own "
        "`user:password@` wins", env="DAEBUS_REDIS_USERNAME", field="redis_username"),
    Key("password_file", STR, "", "a file holding the password (never shown); a bare name such as "
        "`redis-password` is a systemd credential, read from `$CREDENTIALS_DIRECTORY`",
        env="DAEBUS_REDIS_PASSWORD_FILE", field="redis_password_file"),
    Key("socket_timeout", FLOAT, 5.0, "seconds a Redis command may take", check=more_than(0)),
    Key("health_check_interval", FLOAT, 5.0, "seconds of silence before the subscriber pings",
        check=more_than(0)),
]))
SERVICE = configspec.register(Section("service", "every service run by daebus", [
    Key("queue_size", INT, 100, "requests waiting beyond `max_workers`", env="DAEBUS_QUEUE_SIZE",
        check=at_least(0)),
    Key("shutdown_timeout", FLOAT, 10.0, "seconds handlers in flight get to finish on stop",
        env="DAEBUS_SHUTDOWN_TIMEOUT", check=at_least(0)),
    Key("max_message_bytes", INT, 1024 * 1024, "larger messages are dropped and logged", check=at_least(1)),
    Key("registry_ttl", FLOAT, 15.0, "seconds a service's registry entry outlives its last beat",
        check=more_than(0)),
    Key("metrics", BOOL, True, "count calls, errors and latencies, published with the registry beat "
        "(`false` turns the counters off)"),
    Key("mode", STR, "owner", "`owner`: one live instance serves the name; `group`: instances share "
        "its requests through a Redis stream (`Daebus(mode=...)` wins)", env="DAEBUS_SERVICE_MODE",
        choices=("owner", "group")),
    Key("claim_idle", FLOAT, 10.0, "group mode: seconds a request may sit unacknowledged with an "
        "instance that stopped beating before another instance claims it", check=more_than(0)),
    Key("max_deliveries", INT, 3, "group mode: deliveries of one request before it goes to the "
        "dead-letter stream", check=at_least(1)),
    Key("stream_max_length", INT, 10000, "group mode: requests kept in the stream at most",
        check=at_least(100)),
]))
LOG = configspec.register(Section("log", "logging of daebus programs", [
    Key("level", STR, "info", "`critical`, `error`, `warning`, `info` or `debug`", env="DAEBUS_LOG_LEVEL",
        field="log_level", choices=("critical", "error", "warning", "info", "debug")),
]))
CORE = (REDIS, SERVICE, LOG)

Settings = REDIS.settings_class(
    "Settings", "Resolved settings of one service or caller; ``origins`` maps "
    "``section.key`` to where each value came from.",
    ("origins", dict, None), sections=(SERVICE, LOG))


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


_cache: dict[tuple, list[configspec.Document]] = {}


def documents(main: Path | None = None) -> list[configspec.Document]:
    """Every config file parsed, in the order they apply.

    Cached per set of files and their modification times, so creating many
    callers doesn't re-read the disk each time. Sections registered so far
    are checked for stray keys and near-miss names.
    """
    files = config_files(main)
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in files)
    docs = _cache.get(stamp)
    if docs is None:
        docs = [configspec.read(path) for path in files]
        _cache.clear()
        _cache[stamp] = docs
    configspec.check_sections(docs)
    return docs


def resolve(sections=CORE, overrides: dict[str, Any] | None = None,
            override_origin: str = "argument") -> dict[str, dict[str, Value]]:
    """``{section: {key: Value}}`` for ``sections`` from files, environment,
    ``overrides`` (by attribute name) and defaults."""
    docs = documents()
    return {section.name: section.resolve(docs, overrides, os.environ, override_origin) for section in sections}


def load(**overrides: Any) -> Settings:
    """Resolve settings; ``overrides`` whose value is None are ignored.

    Example::

        settings = load(redis_url="redis://10.0.0.2:6379/1")
    """
    attrs = {key.attr for section in CORE for key in section.keys.values()}
    unknown = set(overrides) - attrs
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    resolved = resolve(CORE, overrides)
    for section in CORE:
        for name, value in resolved[section.name].items():
            values[section.keys[name].attr] = value.value
            origins[section.label(name)] = value.origin
    return Settings(origins=origins, **values)


def redis_url_from(redis_url: str | None, redis_host: str | None, redis_port: int | None) -> str | None:
    """The explicit Redis URL given as arguments, if any."""
    if redis_url:
        return redis_url
    if redis_host or redis_port:
        return urls.from_host_port(redis_host, redis_port)
    return None
