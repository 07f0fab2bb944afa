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
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_WORKERS_DIR = "/etc/daebus/workers"

# systemd instance names may hold more, but a worker name is also a file name
# and a service name: keep it to what is safe and readable in both.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_KEYS = ("app", "service", "python_path", "env")


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    """One parsed worker file."""

    name: str
    path: Path
    app: str
    service: str
    python_path: tuple[str, ...] = ()
    env: dict[str, str] = dataclasses.field(default_factory=dict)


def workers_dir() -> Path:
    return Path(os.environ.get("DAEBUS_WORKERS_DIR") or DEFAULT_WORKERS_DIR)


def check_name(name: str) -> str:
    if not _NAME.match(name or "") or name.endswith(".toml"):
        raise ConfigError(f"invalid worker name {name!r}: use letters, digits and _ . @ - "
                          "(the name of a file in the workers folder, without .toml)")
    return name


def _line(text: str, key: str, section: str | None = None) -> int:
    """The line defining ``key`` (top level or in ``[section]``), 0 if not found."""
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1).strip().strip('"')
            if section is None and current == key:
                return number
        elif current == section and re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return number
    return 0


def parse_worker(text: str, path: Path, name: str) -> WorkerConfig:
    """Validate a worker file's text; errors name the file and line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None

    def fail(key: str, message: str, section: str | None = None) -> ConfigError:
        return ConfigError(f"{path}:{_line(text, key, section)}: {message}")

    for key in data:
        if key not in _KEYS:
            raise fail(key, f"unknown key '{key}' (known: {', '.join(_KEYS)})")
    app = data.get("app")
    if app is None:
        raise ConfigError(f"{path}: missing 'app' (a file such as \"/usr/lib/vendor/worker.py\" "
                          "or a module such as \"vendor.worker:app\")")
    if not isinstance(app, str) or not app.strip():
        raise fail("app", "app: expected a non-empty string")
    try:
        kind, target, _attr = split_spec(app.strip())
    except ConfigError as exc:
        raise fail("app", f"app: {exc}") from None
    if kind == "file" and not os.path.isabs(target):
        raise fail("app", f"app: {target!r} must be an absolute path")

    service = data.get("service", name)
    if not isinstance(service, str) or not service.strip():
        raise fail("service", "service: expected a non-empty string")

    python_path = data.get("python_path", [])
    if isinstance(python_path, str):
        python_path = [python_path]
    if not isinstance(python_path, list) or not all(isinstance(p, str) and p for p in python_path):
        raise fail("python_path", "python_path: expected a folder or a list of folders")
    for folder in python_path:
        if not os.path.isabs(folder):
            raise fail("python_path", f"python_path: {folder!r} must be an absolute path")

    env = data.get("env", {})
    if not isinstance(env, dict):
        raise fail("env", "env: expected a table, e.g. [env] then NAME = \"value\" lines")
    values: dict[str, str] = {}
    for key, value in env.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise fail(key, f"env: {key!r} is not a valid environment variable name", "env")
        if isinstance(value, bool):
            value = "1" if value else "0"
        elif isinstance(value, int | float):
            value = str(value)
        elif not isinstance(value, str):
            raise fail(key, f"env.{key}: expected a string, got {type(value).__name__}", "env")
        values[key] = value
    return WorkerConfig(name=name, path=path, app=app.strip(), service=service.strip(),
                        python_path=tuple(python_path), env=values)


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
    from .app import Daebus

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
