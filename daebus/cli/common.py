"""What every ``daebus`` command shares: exit codes, messages, Redis, output.

A command is a function ``fn(args) -> int``; it reports a failure by raising
:class:`CommandError` (or letting a :class:`~daebus.DaebusError` through) and
:func:`daebus.cli.main` turns that into one ``daebus: ...`` line on stderr
and the exit code from :class:`Exit`.
"""

from __future__ import annotations

import enum
import json
import re
import sys
import threading
from typing import Any

from daebus.ops import logs
from daebus.errors import (AccessDenied, BadRequest, ConfigError, ConnectionLost, DaebusError, NameTaken, RemoteError,
                      RequestTimeout, ServiceUnavailable)


class Exit(enum.IntEnum):
    """The exit statuses of every ``daebus`` command (documented in daebus(1))."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    REMOTE_ERROR = 3
    UNAVAILABLE = 4
    TIMEOUT = 5
    REDIS = 6
    INTERRUPTED = 130
    NAME_TAKEN = NameTaken.exit_status


MEANINGS = {
    Exit.OK: "ok",
    Exit.FAILURE: "failure (the app failed, or doctor found a problem)",
    Exit.USAGE: "usage or configuration error (bad arguments, bad JSON)",
    Exit.REMOTE_ERROR: "the service answered with an error",
    Exit.UNAVAILABLE: "service unavailable",
    Exit.TIMEOUT: "timeout",
    Exit.REDIS: "Redis unreachable",
    Exit.INTERRUPTED: "interrupted by Ctrl-C",
    Exit.NAME_TAKEN: "run, worker: another live instance serves the name",
}


# BadRequest here is a caller's refusal before sending (a service's bad_request is a RemoteError).
_EXIT_FOR_ERROR = ((ConfigError, Exit.USAGE), (BadRequest, Exit.USAGE), (AccessDenied, Exit.USAGE),
                   (RemoteError, Exit.REMOTE_ERROR), (ServiceUnavailable, Exit.UNAVAILABLE),
                   (RequestTimeout, Exit.TIMEOUT), (ConnectionLost, Exit.REDIS))


def exit_for(exc: DaebusError) -> Exit:
    for cls, status in _EXIT_FOR_ERROR:
        if isinstance(exc, cls):
            return status
    return Exit.FAILURE


class CommandError(Exception):
    """A command failed in a way the user can fix; the message says how."""

    def __init__(self, message: str, status: Exit = Exit.FAILURE):
        super().__init__(message)
        self.status = status


def say_error(message: str) -> None:
    """One ``daebus: message`` line on stderr."""
    # Under journald a "<3>" prefix makes the line an error entry, so
    # `journalctl -p err` finds a worker that refuses to start.
    prefix = "<3>" if logs.under_journal(sys.stderr) else ""
    print(f"{prefix}daebus: {message}", file=sys.stderr, flush=True)


def add_redis_url(parser) -> None:
    parser.add_argument("--redis-url", metavar="URL",
                        help="Redis URL (default: DAEBUS_REDIS_URL or /etc/daebus/daebus.toml)")


def redis_url(args) -> str:
    """The URL given on the command line, or the configured one."""
    if getattr(args, "redis_url", None):
        return args.redis_url
    from daebus.ops import config

    return config.load().redis_url


def connect(url: str):
    """A client that fails within seconds, not minutes, when Redis is away."""
    from daebus.bus.transport import connect as transport_connect

    return transport_connect(url, socket_timeout=3.0)


def unreachable(url: str, exc: Exception) -> CommandError:
    from daebus.bus.transport import redact

    return CommandError(f"cannot reach Redis at {redact(url)}: {exc}", Exit.REDIS)


def parse_json(text: str, what: str = "payload") -> Any:
    """Parse a JSON argument; ``-`` reads it from stdin."""
    from daebus.bus import wirejson

    data = sys.stdin.buffer.read() if text == "-" else text
    try:
        return wirejson.loads(data)
    except ValueError as exc:
        raise CommandError(f"invalid JSON {what}: {exc}", Exit.USAGE) from None


def dumps(value: Any, pretty: bool | None = None) -> str:
    """Indented JSON for a terminal, one compact line for a pipe or file."""
    if pretty is None:
        pretty = sys.stdout.isatty()
    if pretty:
        return json_escaped(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))
    return json_escaped(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


# C0 and C1 controls, DEL, and the bidirectional overrides: printed raw
# they move the cursor, retitle the terminal or reorder what is shown.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters shown as ``\\x1b``-style escapes."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                         else f"\\u{ord(m.group()):04x}", text)


# What json.dumps leaves raw in a string (it escapes C0 itself; outside
# strings JSON text holds no other characters).
_JSON_RAW = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def json_escaped(text: str) -> str:
    """JSON text with the control characters JSON leaves as they are escaped."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def positive_float(text: str) -> float:
    """argparse type: a number of seconds above zero."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= threading.TIMEOUT_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds, "
                                         f"at most {threading.TIMEOUT_MAX:g}")
    return value


def positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def age(seconds) -> str:
    """``42s``, ``5m07s``, ``3h12m``, ``4d``."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"


def table(rows: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell; the last one runs free."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(("  ".join(cell.ljust(width) for cell, width in zip(row, widths))
                      + "  " + row[-1]).rstrip() for row in rows)


CLEAR_SCREEN = "\x1b[H\x1b[2J"  # what a --watch redraw starts with


def fetch(url: str) -> list[dict]:
    """The registry's live services; :class:`CommandError` when Redis is away."""
    from daebus.bus.registry import list_services
    from daebus.bus.transport import REDIS_ERRORS

    client = connect(url)
    try:
        return list_services(client)
    except REDIS_ERRORS as exc:
        raise unreachable(url, exc) from None
    finally:
        client.close()
