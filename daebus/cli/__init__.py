"""The ``daebus`` command: one module per command group.

Each module has a ``register(commands)`` that adds its subcommands to the
argparse subparsers; each subcommand sets ``handler``, a function
``fn(args) -> int``. Failures are raised as :class:`CommandError` or
:class:`~daebus.DaebusError` and reported here as one ``daebus: ...`` line
with the exit status from :class:`Exit`.
"""

from __future__ import annotations

import argparse
import os
import sys

from daebus import __version__
from daebus.errors import DaebusError
from daebus.ops.signals import STOP_SIGNALS, unblock
from daebus.cli import acl, asyncapi, bridge, bus, config, doctor, fleet, new, serve, services, top
from daebus.cli.common import MEANINGS, CommandError, Exit, exit_for, say_error

__all__ = ["Exit", "CommandError", "build_parser", "main"]

# In the order `daebus --help` lists them.
COMMAND_GROUPS = (serve, bus, services, top, asyncapi, new, doctor, config, acl, bridge, fleet)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daebus", description="Run, call and inspect Daebus services.",
        epilog="Exit status: " + "; ".join(f"{int(code)} {text}" for code, text in MEANINGS.items())
               + ". See daebus(1).")
    parser.add_argument("--version", action="version", version=f"daebus {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Ctrl-C and kill stop every command, even one started with them
    # blocked (its handlers, if any, are the runtime's, installed later).
    unblock(STOP_SIGNALS)
    try:
        return int(args.handler(args))
    except CommandError as exc:
        say_error(str(exc))
        return exc.status
    except DaebusError as exc:
        say_error(str(exc))
        return exit_for(exc)
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    except BrokenPipeError:
        # `daebus listen ... | head -3`: the reader left; not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK
