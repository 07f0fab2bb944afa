"""``daebus new worker NAME``: a worker project that runs, tests and packages.

Example::

    daebus new worker acme-sensors        # ./acme-sensors/
    cd acme-sensors && python3 -m pytest && dpkg-buildpackage -us -uc -b

The project holds the worker module, its tests (``daebus.testing``), its
worker file and a ``debian/`` folder whose package installs both and has
``daebus.target`` run ``daebus-worker@NAME.service``. NAME names all of
them, so it must suit a Debian package, a file and a Python module.
"""

from __future__ import annotations

import argparse
import email.utils
import keyword
import os
import re
import sys
from pathlib import Path

from daebus import __version__
from daebus.cli.common import CommandError, Exit

TEMPLATES = Path(__file__).resolve().parent / "templates"
SUFFIX = ".tmpl"
# A Debian package name that is also a systemd instance, a file and (with
# "_" for "-") a Python module name.
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_EXECUTABLE = {"debian/rules"}
DEFAULT_MAINTAINER = "Vendor <vendor@example.com>"
FIRST_VERSION = "0.1.0"


def check_name(name: str) -> str:
    """The module name for ``name``; :class:`CommandError` when unusable."""
    hint = ("use lowercase letters, digits and single hyphens, starting with a letter, e.g. "
            "acme-sensors (it names the Debian package, the worker file, the service and the module)")
    if not _NAME.match(name) or len(name) < 2 or len(name) > 60:
        raise CommandError(f"invalid worker name {name!r}: {hint}", Exit.USAGE)
    module = name.replace("-", "_")
    taken = set(sys.stdlib_module_names) | {"daebus", "redis", "apscheduler", "flask", "gunicorn",
                                            "pytest", "test", "tests", "conftest", "gateway"}
    if module in taken or keyword.iskeyword(module):
        raise CommandError(f"invalid worker name {name!r}: its module {module} would hide the Python "
                           "module of that name; choose another, e.g. acme-" + name, Exit.USAGE)
    return module


def _maintainer(given: str | None) -> str:
    if given:
        if not re.match(r"^[^<>]+ <[^<>@\s]+@[^<>\s]+>$", given):
            raise CommandError(f"invalid maintainer {given!r}: expected 'Full Name <email@example.org>'",
                               Exit.USAGE)
        return given
    name, mail = os.environ.get("DEBFULLNAME"), os.environ.get("DEBEMAIL")
    return f"{name} <{mail}>" if name and mail else DEFAULT_MAINTAINER


def render(kind: str, values: dict[str, str]) -> dict[str, str]:
    """``{relative path: text}`` of the project, placeholders filled."""
    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        return text

    root = TEMPLATES / kind
    return {fill(str(path.relative_to(root)))[:-len(SUFFIX)]: fill(path.read_text(encoding="utf-8"))
            for path in sorted(root.rglob("*" + SUFFIX))}


def create_worker(name: str, folder: Path, maintainer: str | None = None) -> list[str]:
    """Write the project of worker ``name`` into ``folder`` (new or empty)."""
    module = check_name(name)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise CommandError(f"{folder} already exists and is not empty: choose another folder with --dir")
    # "#!" is written as @SHEBANG@: a template starting with it would be a script that
    # isn't executable in the package that ships the templates.
    values = {"SHEBANG": "#!", "NAME": name, "MODULE": module, "MAINTAINER": _maintainer(maintainer),
              "VERSION": FIRST_VERSION, "DAEBUS_VERSION": __version__,
              "DATE": email.utils.formatdate(localtime=True), "YEAR": email.utils.localtime().strftime("%Y")}
    files = render("worker", values)
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if relative in _EXECUTABLE:
            path.chmod(0o755)
    return sorted(files)


def cmd_new_worker(args: argparse.Namespace) -> int:
    folder = Path(args.dir or args.name)
    try:
        files = create_worker(args.name, folder, args.maintainer)
    except OSError as exc:
        raise CommandError(f"cannot write {folder}: {exc.strerror or exc}") from None
    module = args.name.replace("-", "_")
    print(f"created {folder}/ with {len(files)} files:")
    for relative in files:
        print(f"  {relative}")
    python, missing = _test_runner()
    print(f"""
next:
  cd {folder}
  {python + " -m pytest":<35} # its tests{missing}
  daebus run {module}.py              # serve it against the local Redis
  dpkg-buildpackage -us -uc -b        # ../{args.name}_{FIRST_VERSION}_all.deb for the appliance""")
    return Exit.OK


def _test_runner() -> tuple[str, str]:
    """The interpreter that has daebus (this one), and a note when it lacks pytest."""
    import importlib.util
    import shutil
    import sys

    python = sys.executable or "python3"
    # The short name when it is the interpreter the shell would find. A venv's
    # python resolves to its base's binary, so the same binary is not enough:
    # the one found must be in the same environment (sys.prefix).
    found = shutil.which("python3")
    same_environment = found and (sys.prefix == sys.base_prefix
                                  or os.path.dirname(os.path.abspath(found)) == os.path.join(sys.prefix, "bin"))
    if same_environment and os.path.realpath(found) == os.path.realpath(python):
        python = "python3"
    if importlib.util.find_spec("pytest") is not None:
        return python, ""
    hint = ("apt install python3-pytest" if python == "python3" or python.startswith("/usr/bin/")
            else f"{python} -m pip install pytest")
    return python, f"\n  {'':35} # (needs pytest: {hint})"


def register(commands) -> None:
    new = commands.add_parser("new", help="create a project: daebus new worker NAME",
                              description="Create a new project from a template.")
    kinds = new.add_subparsers(dest="kind", metavar="KIND", required=True)
    worker = kinds.add_parser(
        "worker", help="a worker: module, tests, worker file and Debian package",
        description="Create NAME/ with a runnable worker module, tests that pass, its worker "
                    "file and a debian/ folder that builds a lintian-clean package running it "
                    "as daebus-worker@NAME.service.")
    worker.add_argument("name", metavar="NAME", help="lowercase letters, digits and hyphens, e.g. acme-sensors")
    worker.add_argument("--dir", metavar="PATH", help="the project's folder (default: ./NAME)")
    worker.add_argument("--maintainer", metavar="'NAME <EMAIL>'",
                        help="for debian/ (default: $DEBFULLNAME <$DEBEMAIL>, or a placeholder)")
    worker.set_defaults(handler=cmd_new_worker)
