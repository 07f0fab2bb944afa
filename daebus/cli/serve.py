"""``daebus run`` and ``daebus worker``: serve an app until SIGTERM or Ctrl-C.

Examples::

    daebus run sensors.py                    # the module's Daebus app
    daebus run vendor.sensors:app --service sensors
    daebus worker sensors                    # /etc/daebus/workers/sensors.toml

A configuration error is one line naming the file and line, exit status 2, so
systemd's ``RestartPreventExitStatus=2`` can stop retrying it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from daebus.ops import logs
from daebus.errors import ConfigError
from daebus.cli.common import Exit, add_redis_url

log = logging.getLogger("daebus.cli")


def _serve(spec: str, service: str | None, *, redis_url: str | None = None, debug: bool = False,
           retry: bool = False) -> int:
    from daebus.service import loadretry
    from daebus.service.workers import load_app

    try:
        app = load_app(spec)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the vendor's module failed to import
        logs.setup(debug=debug)
        # A worker under systemd waits and tries again (never returns);
        # anything else says why and exits.
        if not (retry and loadretry.retry_later(spec, exc)):
            log.error("loading %s failed", spec, exc_info=True)
        return Exit.FAILURE
    loadretry.loaded()
    try:
        app.run(service=service, debug=debug, redis_url=redis_url)
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - report through logging, with priority
        logs.setup(debug=debug)
        log.critical("service %r stopped on an error", app.service, exc_info=True)
        return Exit.FAILURE
    return Exit.OK


def cmd_run(args: argparse.Namespace) -> int:
    # As `python -m` and gunicorn do: modules in the current folder are importable.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return _serve(args.app, args.service, redis_url=args.redis_url, debug=args.debug)


def cmd_worker(args: argparse.Namespace) -> int:
    from daebus.service.workers import read_worker

    config = read_worker(args.name)
    # The unit's SyslogIdentifier only reaches stderr lines; structured
    # journal entries name themselves the same way.
    os.environ.setdefault(logs.IDENTIFIER_ENV, f"daebus-worker-{args.name}")
    os.environ.update(config.env)
    for folder in reversed(config.python_path):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    return _serve(config.app, args.service or config.service, debug=args.debug, retry=True)


def register(commands) -> None:
    run = commands.add_parser("run", help="run an app: FILE.py[:attr] or module[:attr]",
                              description="Run a Daebus app until SIGTERM or Ctrl-C.")
    run.add_argument("app", help="path/to/file.py, path/to/file.py:app, package.module or package.module:app")
    run.add_argument("--service", help="service name (default: the app's name)")
    add_redis_url(run)
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
