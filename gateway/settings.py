"""The gateway's settings: the ``[gateway]`` section of the daebus config.

The section is declared once below (:data:`GATEWAY`) and registered with
daebus's configuration, which parses ``/etc/daebus/daebus.toml`` and
``conf.d/*.toml`` once and names the file and line of a bad value; this
module adds the rules that span several keys. Adding a key is one ``Key``
line in :data:`GATEWAY` and its row in ``docs/gateway.md``. Example::

    [gateway]
    bind = "127.0.0.1:8080"
    expose_actions = ["clock/*", "my_service/get_status"]
    expose_channels = ["system_status", "sensors.*"]

and in code::

    settings = load()                        # files, then defaults
    settings = load({"threads": 16})         # the same with overrides
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from daebus.ops import ports
from daebus.ops import config as daebus_config
from daebus.ops import configspec
from daebus.ops.configspec import BOOL, FLOAT, INT, LIST, STR, Key, Section, at_least, more_than
from daebus.errors import ConfigError

from .addresses import bind_is_loopback, parse_origin

MIN_TOKEN_LENGTH = 16


def auto_max_streams(threads: int) -> int:
    """Streams allowed when ``max_streams`` is not set: ``threads`` less a
    reserve for action calls (a quarter, between 2 and 8 threads)."""
    return max(0, threads - max(2, min(8, threads // 4)))


# Where the gateway listens unless [gateway] bind says otherwise.
DEFAULT_BIND = f"127.0.0.1:{ports.GATEWAY_PORT}"

# Defaults live here, in code, so the shipped config file can stay fully
# commented and upgrades never hit a conffile prompt. docs/gateway.md's table
# is checked against these rows (tests/unit/gateway/test_gateway_settings.py).
GATEWAY = configspec.register(Section("gateway", "the HTTP gateway between browsers and the bus", [
    Key("bind", LIST, (DEFAULT_BIND,), "addresses gunicorn listens on (a string or a list; "
        "`unix:/path` works). Anything beyond loopback needs a token."),
    Key("allowed_hosts", LIST, ("localhost", "127.0.0.1", "::1"), "`Host` header values accepted "
        "(globs; `\"*\"` accepts any). Add the device's name or address when browsers on the network use it."),
    Key("token", STR, "", "bearer token (16 characters or more). Required when bound beyond loopback.",
        secret=True),
    Key("token_file", STR, "", "a file holding the token (read at start; keeps the secret out of a "
        "world-readable config). The gateway runs as the `daebus` user: the file must be readable by it "
        "and by nobody else, e.g. mode 0640, owner root, group daebus."),
    Key("trust_loopback", BOOL, True, "clients connecting from 127.0.0.1/::1 (the kiosk on the device) "
        "need no token. Set to `false` when a reverse proxy on the device forwards other machines' requests."),
    Key("expose_actions", LIST, (), "`service/action` glob patterns browsers may call. Nothing is exposed "
        "by default. The lists of every file add up (a vendor's drop-in and the admin's own both count).",
        additive=True),
    Key("expose_channels", LIST, (), "broadcast channel glob patterns browsers may subscribe to; add up "
        "across files like `expose_actions`.", additive=True),
    Key("cors_origins", LIST, (), "origins (`http://host:port`, or `\"*\"`) allowed to call the API "
        "from another origin."),
    Key("max_body_bytes", INT, 64 * 1024, "largest request body.", check=at_least(2)),
    Key("default_timeout", FLOAT, 5.0, "seconds an action call waits for its reply.", check=more_than(0)),
    Key("max_timeout", FLOAT, 30.0, "cap for the `?timeout=` parameter.", check=more_than(0)),
    Key("threads", INT, 32, "gunicorn threads of the one worker.", check=at_least(2)),
    Key("max_streams", INT, None, "open event streams allowed; more get 503, so action calls always "
        "find a thread.", check=at_least(0),
        shown_default=f"threads less a reserve ({auto_max_streams(32)} for 32 threads)"),
    Key("stream_queue", INT, 64, "events buffered per stream; a browser that falls this far behind is "
        "dropped.", check=at_least(1)),
    Key("send_timeout", FLOAT, 10.0, "seconds a write to a browser may block before that stream is "
        "closed.", check=more_than(0)),
    Key("head_timeout", FLOAT, 10.0, "seconds a client has, from its first byte, to send a request's "
        "head (and a body with `Content-Length`); a slower one gets 408 and never holds a thread.",
        check=more_than(0)),
    Key("heartbeat", FLOAT, 15.0, "seconds between keep-alive comments on an idle stream.",
        check=more_than(0)),
    Key("graceful_timeout", INT, 3, "seconds gunicorn waits for requests in flight when stopping.",
        check=at_least(1)),
    Key("keep_events", INT, 100, "recent broadcasts kept in Redis per exposed channel, for pages that "
        "reconnect (see [Missed events](#missed-events)). `0`: nothing is kept.", check=at_least(0)),
    Key("keep_seconds", FLOAT, 300.0, "how long a kept broadcast stays replayable; also how long "
        "publishers go on keeping while no gateway runs.", check=more_than(0)),
    Key("replay_rate", FLOAT, 50.0, "event streams resuming after a `Last-Event-ID` admitted per second; "
        "the rest are told when to come back (see [Reconnect storms](#reconnect-storms)).", check=more_than(0)),
    Key("replay_burst", INT, 20, "resuming streams admitted at once before `replay_rate` applies.",
        check=at_least(1)),
    Key("static_dir", STR, "", "folder served at `/` (its `index.html`) and below. Empty: a small "
        "built-in page that says how to install a kiosk page (the `daebus-kiosk-demo` package sets this "
        "to its own page)."),
]))
SECTION = GATEWAY.name


def _auto_streams(settings) -> None:
    if settings.max_streams is None:
        object.__setattr__(settings, "max_streams", auto_max_streams(settings.threads))


_CORE_KEYS = (daebus_config.REDIS.keys["url"], daebus_config.REDIS.keys["socket_timeout"],
              daebus_config.REDIS.keys["health_check_interval"], daebus_config.LOG.keys["level"],
              daebus_config.SERVICE.keys["max_message_bytes"])

Settings = GATEWAY.settings_class(
    "Settings", "Validated gateway settings (see ``docs/gateway.md`` for each key), with daebus's "
    "``[redis] url``, ``socket_timeout`` and ``health_check_interval``, ``[log] level`` and "
    "``[service] max_message_bytes``.",
    *((key.attr, Any, key.default) for key in _CORE_KEYS),
    # Where the operator changes things, for error and 403 messages.
    ("config_file", str, daebus_config.DEFAULT_CONFIG_PATH),
    post_init=_auto_streams)


def render(redis_url: str, gateway: Mapping[str, Any], comment: str | None = None) -> str:
    """The text of a config file with ``[redis] url`` and these ``[gateway]``
    keys, for launchers and tests that start a gateway of their own.

    Example::

        path.write_text(render("redis://127.0.0.1:6380/0", {"bind": "127.0.0.1:9000"}))
    """
    lines = [f"# {comment}"] if comment else []
    lines += ["[redis]", f"url = {configspec.toml_value(redis_url)}", "", f"[{SECTION}]"]
    lines += [f"{key} = {configspec.toml_value(value)}" for key, value in gateway.items()]
    return "\n".join(lines) + "\n"


def _check(settings: Settings, where: dict[str, str]) -> None:
    """Rules across keys; each error names the key that must change."""

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{where[key]}: {SECTION}.{key}: {message}")

    if settings.max_streams >= settings.threads:
        fail("max_streams", f"must be less than threads ({settings.threads}): each event stream "
                            "holds a thread, and action calls need some left")
    if settings.max_timeout < settings.default_timeout:
        fail("max_timeout", f"must be at least default_timeout ({settings.default_timeout:g})")
    for pattern in settings.expose_actions:
        if "/" not in pattern and pattern != "*":
            fail("expose_actions", f"{pattern!r} is not a 'service/action' pattern "
                                   "(for example 'clock/*' or 'my_service/get_status')")
    for origin in settings.cors_origins:
        if origin != "*" and parse_origin(origin) is None:
            fail("cors_origins", f"{origin!r} is not an origin such as 'http://kiosk.local:8080'")
    if settings.token and len(settings.token) < MIN_TOKEN_LENGTH:
        fail("token", f"must be at least {MIN_TOKEN_LENGTH} characters")
    if settings.static_dir and not Path(settings.static_dir).is_dir():
        fail("static_dir", f"{settings.static_dir!r} is not a directory")
    open_binds = [b for b in settings.bind if not bind_is_loopback(b)]
    if open_binds and not settings.token:
        fail("bind", f"{', '.join(open_binds)} listens beyond loopback: set {SECTION}.token "
                     f"(or {SECTION}.token_file) so that other machines must present it")



def load(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read the config files, apply ``overrides`` and validate.

    ``overrides`` takes the ``[gateway]`` keys plus ``redis_url``; errors in
    it are reported as coming from ``config``. Raises
    :class:`daebus.errors.ConfigError` with ``file:line`` for bad files.
    """
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(GATEWAY.keys) - {"redis_url"}
    if unknown:
        raise ConfigError(f"config: unknown key '{sorted(unknown)[0]}' in [{SECTION}] "
                          f"(known: {', '.join(GATEWAY.keys)})")
    base = daebus_config.load(redis_url=overrides.pop("redis_url", None))  # checks [redis], [log] too
    resolved = daebus_config.resolve((GATEWAY,), overrides, override_origin="config")[SECTION]
    main = str(daebus_config.config_path())
    # A rule broken by a default is fixed in the main file.
    where = {key: value.origin if value.origin != "default" else main for key, value in resolved.items()}
    values = {key: value.value for key, value in resolved.items()}
    if values["token_file"] and not values["token"]:
        # Imported here: daebus.bus.auth loads redis, which gunicorn's master
        # (reading these settings) never needs.
        from daebus.bus.auth import read_private

        values["token"] = read_private(values["token_file"], f"{where['token_file']}: {SECTION}.token_file")
    settings = Settings(**values, **{key.attr: getattr(base, key.attr) for key in _CORE_KEYS},
                        config_file=f"{main} or a drop-in in {Path(main).parent / 'conf.d'}")
    _check(settings, where)
    return settings
