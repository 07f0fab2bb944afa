"""The ``daebus`` command.

Examples::

    daebus run sensors.py                    # the module's Daebus app
    daebus run vendor.sensors:app --service sensors
    daebus worker sensors                    # /etc/daebus/workers/sensors.toml
    daebus services                          # what is running, from the registry

Exit status: 0 after a clean stop, 1 when the app fails, 2 for a usage or
configuration error (reported as one line naming the file and line, so
systemd's ``RestartPreventExitStatus=2`` can stop retrying it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from . import __version__, logs
from .errors import ConfigError

log = logging.getLogger("daebus.cli")

EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _say_error(message: str) -> None:
    # Under journald a "<3>" prefix makes the line an error entry, so
    # `journalctl -p err` finds a worker that refuses to start.
    prefix = "<3>" if logs.under_journal(sys.stderr) else ""
    print(f"{prefix}daebus: {message}", file=sys.stderr, flush=True)


def _serve(spec: str, service: str | None, *, redis_url: str | None = None, debug: bool = False) -> int:
    from .workers import load_app

    try:
        app = load_app(spec)
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - the vendor's module failed to import
        logs.setup(debug=debug)
        log.error("loading %s failed", spec, exc_info=True)
        return EXIT_FAILURE
    try:
        app.run(service=service, debug=debug, redis_url=redis_url)
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - report through logging, with priority
        logs.setup(debug=debug)
        log.critical("service %r stopped on an error", app.service, exc_info=True)
        return EXIT_FAILURE
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    # As `python -m` and gunicorn do: modules in the current folder are importable.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return _serve(args.app, args.service, redis_url=args.redis_url, debug=args.debug)


def cmd_worker(args: argparse.Namespace) -> int:
    from .workers import read_worker

    config = read_worker(args.name)
    os.environ.update(config.env)
    for folder in reversed(config.python_path):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    return _serve(config.app, args.service or config.service, debug=args.debug)


def _age(seconds) -> str:
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


def _connect(url: str):
    from .transport import connect

    return connect(url, socket_timeout=3.0)


def cmd_services(args: argparse.Namespace) -> int:
    from . import config
    from .registry import list_services
    from .transport import REDIS_ERRORS, redact

    url = args.redis_url or config.load().redis_url
    client = _connect(url)
    try:
        services = list_services(client)
    except REDIS_ERRORS as exc:
        _say_error(f"cannot reach Redis at {redact(url)}: {exc}")
        return EXIT_FAILURE
    finally:
        client.close()
    if args.json:
        print(json.dumps(services, indent=2, sort_keys=True))
        return 0
    if not services:
        print("no services running")
        return 0
    rows = [("SERVICE", "PID", "HOST", "UP", "STATUS", "ACTIONS")]
    for info in services:
        rows.append((info["name"], str(info.get("pid") or "-"), info.get("host") or "-",
                     _age(info.get("uptime")), info.get("status") or "-",
                     ", ".join(info.get("actions") or []) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daebus", description="Run and inspect Daebus services.")
    parser.add_argument("--version", action="version", version=f"daebus {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run an app: FILE.py[:attr] or module[:attr]",
                              description="Run a Daebus app until SIGTERM or Ctrl-C.")
    run.add_argument("app", help="path/to/file.py, path/to/file.py:app, package.module or package.module:app")
    run.add_argument("--service", help="service name (default: the app's name)")
    run.add_argument("--redis-url", help="Redis URL (default: DAEBUS_REDIS_URL or /etc/daebus/daebus.toml)")
    run.add_argument("--debug", action="store_true", help="log at debug level")
    run.set_defaults(handler=cmd_run)

    worker = commands.add_parser(
        "worker", help="run the worker defined by /etc/daebus/workers/NAME.toml",
        description="Run the worker defined by NAME.toml in /etc/daebus/workers "
                    "(or $DAEBUS_WORKERS_DIR); this is what daebus-worker@NAME.service runs.")
    worker.add_argument("name")
    worker.add_argument("--service", help="override the file's service name")
    worker.add_argument("--debug", action="store_true", help="log at debug level")
    worker.set_defaults(handler=cmd_worker)

    services = commands.add_parser("services", help="list running services (from the registry)")
    services.add_argument("--json", action="store_true", help="print JSON")
    services.add_argument("--redis-url", help="Redis URL (default: as configured)")
    services.set_defaults(handler=cmd_services)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as exc:
        _say_error(str(exc))
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
