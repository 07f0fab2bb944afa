"""Logging set-up for services: journald-aware, and only when the app hasn't.

Importing daebus configures nothing. ``Daebus.run()`` calls :func:`setup`,
which leaves logging alone if the root logger already has handlers. Under
systemd (``JOURNAL_STREAM`` names our stderr) records go to journald's
native socket as structured entries (:mod:`daebus.ops.journal`); when that socket
is missing, each stderr line carries a syslog priority prefix,
``<3>sensors: Redis connection lost``, that journald turns into the entry's
PRIORITY, and no timestamp since the journal has its own.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from daebus.ops.records import syslog_priority


HUMAN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING,
           "warn": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``, with the prefix on every line so that
    a traceback stays one priority and one unit in the journal."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{syslog_priority(record.levelno)}>{record.name}: "
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def under_journal(stream=None) -> bool:
    """True when ``stream`` (stderr) is connected to journald."""
    value = os.environ.get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        device, inode = (int(part) for part in value.split(":", 1))
    except ValueError:
        return False
    stream = stream or sys.stderr
    try:
        st = os.fstat(stream.fileno())
    except (OSError, AttributeError, ValueError):
        # A wrapped stderr can't be checked; trust the variable.
        return True
    return (st.st_dev, st.st_ino) == (device, inode)


def parse_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    try:
        return _LEVELS[str(level).strip().lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}") from None


# Names the journald socket to send entries to, whether or not stderr is
# the journal (a test's stand-in for journald, or a container's bind mount).
JOURNAL_SOCKET_ENV = "DAEBUS_JOURNAL_SOCKET"
IDENTIFIER_ENV = "DAEBUS_SYSLOG_IDENTIFIER"


def stderr_handler() -> logging.Handler:
    """Today's stderr lines: priority-prefixed under journald, else timestamped."""
    handler = logging.StreamHandler(sys.stderr)
    if under_journal(sys.stderr):
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter(HUMAN_FORMAT))
    return handler


def default_identifier() -> str:
    """``SYSLOG_IDENTIFIER`` of this process's entries: ``$DAEBUS_SYSLOG_IDENTIFIER``
    (``daebus worker NAME`` sets ``daebus-worker-NAME``, as its unit does), else
    the program's name."""
    return os.environ.get(IDENTIFIER_ENV) or Path(sys.argv[0] or "python3").name or "python3"


def handler(identifier: str | None = None) -> logging.Handler:
    """The handler a daebus process logs through: journald's native socket
    under systemd (or where ``$DAEBUS_JOURNAL_SOCKET`` points), falling back
    to :func:`stderr_handler` for what the socket can't take; stderr alone
    when there is no such socket."""
    path = os.environ.get(JOURNAL_SOCKET_ENV)
    if not path and not under_journal(sys.stderr):
        return stderr_handler()
    from daebus.ops import journal  # only where there may be a journal to talk to

    path = path or journal.SOCKET_PATH
    if not journal.available(path):
        return stderr_handler()
    return journal.JournalHandler(identifier or default_identifier(), path=path, fallback=stderr_handler())


def setup(level: str | int = "info", debug: bool = False, identifier: str | None = None) -> bool:
    """Configure the root logger for a service unless the app already did.

    Returns True when a handler was installed.
    """
    root = logging.getLogger()
    if root.handlers:
        return False
    root.addHandler(handler(identifier))
    root.setLevel(logging.DEBUG if debug else parse_level(level))
    # APScheduler logs every run at INFO; that is noise on a device's journal.
    if not debug:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return True


class StateLog:
    """Logs a condition when it changes, not on every retry.

    Example::

        state = StateLog(log)
        state.set("down", logging.ERROR, "Redis unreachable: %s", err)  # logged
        state.set("down", logging.ERROR, "Redis unreachable: %s", err)  # silent
    """

    def __init__(self, log: logging.Logger, state: str | None = None):
        self.log = log
        self.state = state  # the starting condition, not logged

    def set(self, state: str, level: int, msg: str, *args) -> bool:
        if state == self.state:
            return False
        self.state = state
        self.log.log(level, msg, *args)
        return True


def exit_on_config_error(program: str, exc: Exception) -> NoReturn:
    """How every daebus daemon ends on a bad configuration: one line (an
    error entry under journald, not a traceback) and a configuration
    error's exit status."""
    from daebus.errors import ConfigError

    prefix = f"<{syslog_priority(logging.ERROR)}>" if under_journal(sys.stderr) else ""
    print(f"{prefix}{program}: configuration error: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(ConfigError.exit_status)
