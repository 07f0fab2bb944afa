"""Worker files and app specs: what ``daebus worker`` and ``daebus run`` start.

A worker file is ``/etc/daebus/workers/<name>.toml`` (``DAEBUS_WORKERS_DIR``
names another folder); systemd runs it as ``daebus-worker@<name>.service``::

    # /etc/daebus/workers/sensors.toml
    app = "/usr/lib/acme-sensors/sensors.py"   # or "acme_sensors.main:app"
    service = "sensors"                        # default: the file's name
    python_path = ["/usr/lib/acme-sensors"]    # optional, string or list

    [env]                                      # optional, set before the app loads
    ACME_PORT = "/dev/ttyUSB0"

An app spec names a :class:`~daebus.Daebus` object: ``path/to/file.py``,
``path/to/file.py:attr``, ``package.module`` or ``package.module:attr``.
Without ``attr`` the module's ``app`` is used, or its only Daebus object.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

from daebus.ops import paths
from daebus.ops import configspec
from daebus.ops.configspec import TEXT, Key, Section, Table, TextList
from daebus.errors import ConfigError

DEFAULT_WORKERS_DIR = paths.WORKERS_DIR

# systemd instance names may hold more, but a worker name is also a file name
# and a service name: keep it to what is safe and readable in both.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

# A worker file's keys; the file's name stands in for ``service``.
WORKER_FILE = Section("worker", "a worker file, /etc/daebus/workers/<name>.toml", [
    Key("app", TEXT, None, "the app: a file such as `/usr/lib/vendor/worker.py` or a module such "
        "as `vendor.worker:app`"),
    Key("service", TEXT, None, "the service name", shown_default="the file's name"),
    Key("python_path", TextList("a folder or a list of folders", tuple), (),
        "absolute folders put first on the import path"),
    Key("listen", TextList("a channel pattern or a list of them", tuple), (),
        "broadcast channel patterns the worker's Redis user may subscribe to on a locked bus "
        "(see docs/security.md)"),
    Key("env", Table('a table, e.g. [env] then NAME = "value" lines', dict), {}, "environment variables set before the app loads"),
], top_level=True)


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    """One parsed worker file."""

    name: str
    path: Path
    app: str
    service: str
    python_path: tuple[str, ...] = ()
    listen: tuple[str, ...] = ()
    env: dict[str, str] = dataclasses.field(default_factory=dict)


def workers_dir() -> Path:
    return paths.workers_dir()


def check_name(name: str) -> str:
    if not _NAME.match(name or "") or name.endswith(".toml"):
        raise ConfigError(f"invalid worker name {name!r}: use letters, digits and _ . @ - "
                          "(the name of a file in the workers folder, without .toml)")
    return name


def parse_worker(text: str, path: Path, name: str) -> WorkerConfig:
    """Validate a worker file's text; errors name the file and line."""
    doc = configspec.read(path, text)
    if "app" not in doc.data:
        raise ConfigError(f"{path}: missing 'app' (a file such as \"/usr/lib/vendor/worker.py\" "
                          "or a module such as \"vendor.worker:app\")")
    values = {key: value.value for key, value in WORKER_FILE.resolve([doc]).items()}
    try:
        kind, target, _attr = split_spec(values["app"])
    except ConfigError as exc:
        raise ConfigError(f"{doc.where(None, 'app')}: app: {exc}") from None
    if kind == "file" and not os.path.isabs(target):
        raise ConfigError(f"{doc.where(None, 'app')}: app: {target!r} must be an absolute path")
    for folder in values["python_path"]:
        if not os.path.isabs(folder):
            raise ConfigError(f"{doc.where(None, 'python_path')}: python_path: {folder!r} must be an absolute path")
    env: dict[str, str] = {}
    for key, value in values["env"].items():
        where = doc.where("env", key)
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ConfigError(f"{where}: env: {key!r} is not a valid environment variable name")
        if isinstance(value, bool):
            value = "1" if value else "0"
        elif isinstance(value, int | float):
            value = str(value)
        elif not isinstance(value, str):
            raise ConfigError(f"{where}: env.{key}: expected a string, got {type(value).__name__}")
        env[key] = value
    return WorkerConfig(name=name, path=path, app=values["app"], service=values["service"] or name,
                        python_path=values["python_path"], listen=values["listen"], env=env)


def read_worker(name: str, folder: Path | None = None) -> WorkerConfig:
    """Read ``<folder>/<name>.toml``.

    Example::

        config = read_worker("sensors")   # /etc/daebus/workers/sensors.toml
    """
    check_name(name)
    path = (folder or workers_dir()) / f"{name}.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such worker file (create it to define worker {name!r})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc.reason}") from None
    return parse_worker(text, path, name)


# -- app specs ---------------------------------------------------------------

def split_spec(spec: str) -> tuple[str, str, str | None]:
    """``(kind, target, attr)`` with kind ``"file"`` or ``"module"``.

    Example::

        split_spec("/opt/x/worker.py:app") == ("file", "/opt/x/worker.py", "app")
        split_spec("vendor.worker") == ("module", "vendor.worker", None)
    """
    target, attr = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and _IDENTIFIER.match(tail):
        target, attr = head, tail
    if not target:
        raise ConfigError(f"{spec!r} names no file or module")
    if target.endswith(".py") or "/" in target or os.sep in target:
        return "file", target, attr
    if _MODULE.match(target):
        return "module", target, attr
    raise ConfigError(f"{spec!r} is neither a .py file nor a module name such as vendor.worker:app")


def _module_name_for(path: Path) -> str:
    name = re.sub(r"\W", "_", path.stem) or "app"
    if name[0].isdigit():
        name = "_" + name
    # Never replace an already imported module (a worker called redis.py).
    return name if name not in sys.modules else f"daebus_app_{name}"


def _import_file(path: Path):
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    name = _module_name_for(path)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    # Like `python3 file.py`: the file's folder comes first on the path, so
    # the worker can import its sibling modules.
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _import_module(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only a missing *target* is a configuration error; a missing import
        # inside the vendor's module is its own bug and keeps its traceback.
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigError(f"no module named {exc.name!r} (is python_path or PYTHONPATH set?)") from None
        raise


def load_app(spec: str):
    """Import what ``spec`` names and return its :class:`~daebus.Daebus` object.

    Errors about the spec itself are :class:`ConfigError`; exceptions raised
    while the module body runs propagate unchanged.
    """
    from daebus.app.application import Daebus

    kind, target, attr = split_spec(spec)
    module = _import_file(Path(target)) if kind == "file" else _import_module(target)
    where = target
    if attr is not None:
        if not hasattr(module, attr):
            raise ConfigError(f"{where}: has no attribute {attr!r}")
        app = getattr(module, attr)
        if not isinstance(app, Daebus):
            raise ConfigError(f"{where}:{attr} is a {type(app).__name__}, not a Daebus app")
        return app
    candidates: dict[str, Any] = {k: v for k, v in vars(module).items() if isinstance(v, Daebus)}
    if isinstance(candidates.get("app"), Daebus):
        return candidates["app"]
    unique = {id(v): v for v in candidates.values()}
    if len(unique) == 1:
        return next(iter(unique.values()))
    if not unique:
        raise ConfigError(f"{where}: defines no Daebus app (expected e.g. app = Daebus(__name__))")
    raise ConfigError(f"{where}: defines several Daebus apps ({', '.join(sorted(candidates))}); "
                      f"name one as {target}:<name>")
