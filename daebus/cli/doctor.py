"""``daebus doctor``: what is wrong on this device, and how to fix it.

Example::

    $ daebus doctor
    ✔ configuration: /etc/daebus/daebus.toml and 1 drop-in are valid
    ✔ worker files: sensors
    ✔ redis: redis://localhost:6379/0 answers (Redis 7.0.15)
    ✘ units: daebus-worker@sensors.service is failed; fix: journalctl -u daebus-worker@sensors.service -b ...

One line per check, ✔ or ✘ (– when it does not apply here); exit status 1
when any check fails. ``--json`` prints the same as a list.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from daebus.ops import paths
from daebus.service import loadretry
from daebus.errors import ConfigError
from daebus.cli.common import Exit, add_redis_url, connect

APPLIANCE_DIR = paths.SHARE_DIR
# The entry point group under which parts register their own checks.
CHECKS_GROUP = "daebus.doctor"
MARKS = {True: "✔", False: "✘", None: "–"}
RESTART = "then: sudo systemctl restart daebus.target"
# The appliance's own Redis (the daebus package's unit), not any other on the box.
BUS_UNIT = "daebus-redis.service"


@dataclasses.dataclass
class Check:
    """One line of the report; ``ok`` None means "does not apply here"."""

    check: str
    ok: bool | None
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{MARKS[self.ok]} {self.check}: {self.detail}"
        return f"{text}; fix: {self.fix}" if self.fix and self.ok is False else text


class Doctor:
    """Runs the checks in order; later ones use what earlier ones found."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.checks: list[Check] = []
        self.settings = None
        self.steps: list = []  # the checks other parts add (see add_checks)
        self.client = None
        self.services: list[dict] | None = None

    def add(self, check: str, ok: bool | None, detail: str, fix: str = "") -> None:
        self.checks.append(Check(check, ok, detail, fix))

    def run(self) -> list[Check]:
        self.configuration()
        self.worker_files()
        self.redis()
        self.units()
        for step in self.steps:
            step(self)
        self.instances()
        if self.client is not None:
            self.client.close()
        return self.checks

    # -- files -------------------------------------------------------------------

    def configuration(self) -> None:
        from daebus.ops import config

        files = config.config_files()
        try:
            self.settings = config.load()
            self.add_checks()
        except ConfigError as exc:
            self.add("configuration", False, str(exc), f"correct that line; {RESTART}")
            return
        if not files:
            self.add("configuration", True, f"no files ({config.config_path()} absent): defaults in effect")
            return
        drop_ins = [f for f in files if f != config.config_path()]
        main = "" if drop_ins == files else f"{config.config_path()} and "
        self.add("configuration", True, f"{main}{len(drop_ins)} drop-in{'s' if len(drop_ins) != 1 else ''} valid")

    def add_checks(self) -> None:
        """Load the checks that other parts of the box register (the gateway
        its own): entry points of group ``daebus.doctor``, each a function
        ``checks(doctor)`` that reads its part's settings (a ConfigError is
        reported as the configuration's) and returns the steps to run after
        the units, each ``step(doctor)``. A part that is not installed here
        does not import, and adds nothing."""
        if Path(APPLIANCE_DIR).is_dir() and APPLIANCE_DIR not in sys.path:
            sys.path.append(APPLIANCE_DIR)  # where the appliance's parts live
        for entry in sorted(entry_points(group=CHECKS_GROUP), key=lambda e: e.name):
            try:
                provider = entry.load()
            except ImportError:  # not installed here, or without its dependencies
                continue
            self.steps.extend(provider(self))

    def worker_files(self) -> None:
        from daebus.service.workers import read_worker, split_spec, workers_dir

        folder = workers_dir()
        names = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
        if not names:
            self.add("worker files", None, f"none in {folder}")
            return
        good = []
        for name in names:
            try:
                worker = read_worker(name, folder)
            except ConfigError as exc:
                self.add(f"worker {name}", False, str(exc),
                         f"correct it, then: sudo systemctl restart daebus-worker@{name}")
                continue
            kind, target, _ = split_spec(worker.app)
            if kind == "file" and not Path(target).is_file():
                self.add(f"worker {name}", False, f"{worker.path}: app {target} does not exist",
                         "install the worker's code there, or correct app in the worker file")
                continue
            good.append(name)
        if good:
            self.add("worker files", True, ", ".join(good))

    # -- Redis and the registry ------------------------------------------------------

    def redis(self) -> None:
        from daebus.bus.transport import REDIS_ERRORS, redact

        url = self.args.redis_url or (self.settings.redis_url if self.settings else None)
        if url is None:
            self.add("redis", None, "not checked: the configuration is invalid")
            return
        origin = "--redis-url" if self.args.redis_url else self.settings.origins.get("redis.url", "default")
        client = connect(url)
        try:
            version = client.info("server").get("redis_version", "?")
            from daebus.bus.registry import list_services

            self.services = list_services(client)
        except REDIS_ERRORS as exc:
            client.close()
            self.add("redis", False, f"cannot reach {redact(url)} (from {origin}): {exc}",
                     f"start the bus (sudo systemctl start {BUS_UNIT}) or set [redis] url")
            return
        self.client = client
        self.add("redis", True, f"{redact(url)} answers (Redis {version}), "
                                f"{len(self.services)} service{'s' if len(self.services) != 1 else ''} registered")

    def instances(self) -> None:
        from daebus.bus.registry import GROUP, MODE

        if self.services is None:
            self.add("instances", None, "not checked: Redis unreachable")
            return
        duplicated = 0
        for info in self.services:
            if info.get(MODE) == GROUP:
                continue  # members of a group share the name by design
            [(_, count)] = self.client.pubsub_numsub(info["name"])
            if count > 1:
                duplicated += 1
                self.add(f"service {info['name']}", False,
                         f"{count} processes subscribe to its channel, so each request is handled "
                         f"{count} times (registered: pid {info.get('pid')} on {info.get('host')})",
                         f"stop the extra process serving {info['name']!r}: one started by hand, or a "
                         "second worker file with the same service name")
        if not duplicated:
            self.add("instances", True, f"one per service ({len(self.services)} checked)")

    # -- systemd ---------------------------------------------------------------------

    def units(self) -> None:
        if not Path("/run/systemd/system").is_dir() or shutil.which("systemctl") is None:
            self.add("units", None, "systemd is not running here")
            return
        listed = _systemctl("list-units", "--all", "--plain", "--no-legend", "--no-pager", "daebus-worker@*")
        workers = [line.split()[0] for line in listed.splitlines() if line.strip()]
        units = [BUS_UNIT, "daebus-gateway.service", "daebus.target", *workers]
        shown = _systemctl("show", "--property=Id,LoadState,ActiveState,SubState,StatusText", *units)
        active, bad = [], 0
        for block in shown.strip().split("\n\n"):
            props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            unit = props.get("Id", "?")
            if props.get("LoadState") != "loaded":
                continue  # not installed here (Redis on another machine, no gateway)
            status = props.get("StatusText", "")
            if status.startswith(loadretry.STATUS_PREFIX):
                # Up, but waiting to load its code again (daebus/loadretry.py).
                bad += 1
                self.add(f"unit {unit}", False, status,
                         f"journalctl -u {unit} -b -n 50, fix the worker's code, then: "
                         f"sudo systemctl restart {unit}")
                continue
            if props.get("ActiveState") == "active":
                active.append(unit)
                continue
            bad += 1
            self.add(f"unit {unit}", False, f"{props.get('ActiveState')} ({props.get('SubState')})",
                     f"journalctl -u {unit} -b -n 50, then: sudo systemctl restart {unit}")
        if not bad:
            self.add("units", True, f"{', '.join(active) or 'none installed'} active")

def _systemctl(*args: str) -> str:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=30).stdout


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = Doctor(args).run()
    if args.json:
        print(json.dumps([dataclasses.asdict(c) for c in checks], indent=2, ensure_ascii=False))
    else:
        for check in checks:
            print(check.line())
    return Exit.FAILURE if any(c.ok is False for c in checks) else Exit.OK


def register(commands) -> None:
    doctor = commands.add_parser(
        "doctor", help="check configuration, Redis, units, the gateway and the services",
        description="Check the config files, Redis, the systemd units (when systemd runs), the "
                    "gateway's health, exposed actions that match no live action, and services "
                    "served twice. One line per check with the fix; exit status 1 if any fails.")
    doctor.add_argument("--json", action="store_true",
                        help='print a JSON list of {"check", "ok", "detail", "fix"}')
    doctor.add_argument("--gateway", metavar="URL",
                        help="the gateway's base URL (default: from [gateway] bind)")
    add_redis_url(doctor)
    doctor.set_defaults(handler=cmd_doctor)
