"""Declared configuration: sections of typed keys read from TOML files, with
the file and line of every value.

A section is one declaration holding each key's type, default and meaning::

    GATEWAY = configspec.register(Section("gateway", "the HTTP gateway", [
        Key("threads", INT, 32, "gunicorn threads of the one worker", check=at_least(2)),
        Key("token", STR, "", "bearer token", secret=True),
    ]))

Adding a key is one ``Key(...)`` line: parsing, type errors with ``file:line``,
the settings object (:meth:`Section.settings_class`), ``daebus config`` and
the documentation tables follow from it. A program registers the sections it
reads; sections nobody registered in this process are left to the program
that owns them, unless their name is a near miss of a registered one.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from daebus.errors import ConfigError


class Kind:
    """A value type: what the files may hold and how it reads from a string."""

    def __init__(self, phrase: str, python: type):
        self.phrase, self.python = phrase, python

    def coerce(self, value: Any) -> Any:
        """The value as this kind; ValueError naming what was expected."""
        if self.python is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, self.python) and isinstance(value, bool) == (self.python is bool):
            return value
        raise ValueError(f"expected {self.phrase}, got {type(value).__name__} {value!r}")

    def from_text(self, text: str) -> Any:
        """Parse an environment variable's text."""
        try:
            return self.coerce(self.python(text) if self.python in (int, float) else text)
        except ValueError:
            raise ValueError(f"expected {self.phrase}, got {text!r}") from None


class NonEmptyText(Kind):
    def coerce(self, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"expected {self.phrase}")
        return value.strip()


class TextList(Kind):
    """A list of non-empty strings; one string reads as a list of one."""

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"expected {self.phrase} (non-empty), got {value!r}")
        return tuple(value)


class Table(Kind):
    def coerce(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"expected {self.phrase}")
        return dict(value)


STR, INT, FLOAT, BOOL = Kind("a string", str), Kind("an integer", int), Kind("a number", float), \
    Kind("true or false", bool)
TEXT = NonEmptyText("a non-empty string", str)
LIST = TextList("a list of strings", tuple)
TABLE = Table("a table", dict)


def at_least(low: float) -> Callable[[Any], str | None]:
    """A check for :class:`Key`: the value is ``low`` or more."""
    return lambda value: None if value is None or value >= low else f"must be at least {low}, got {value!r}"


def more_than(low: float) -> Callable[[Any], str | None]:
    return lambda value: None if value > low else f"must be more than {low}, got {value!r}"


@dataclasses.dataclass(frozen=True)
class Key:
    """One configuration key.

    ``env`` names an environment variable that overrides the files,
    ``field`` the settings attribute when it differs from ``name``,
    ``additive`` lists add up across files instead of replacing, ``check``
    returns a complaint or None, ``shown_default`` documents a computed
    default, ``secret`` values are never printed.
    """

    name: str
    kind: Kind
    default: Any
    doc: str
    env: str | None = None
    field: str | None = None
    choices: tuple[str, ...] = ()
    additive: bool = False
    check: Callable[[Any], str | None] | None = None
    shown_default: str | None = None
    secret: bool = False

    @property
    def attr(self) -> str:
        return self.field or self.name

    def coerce(self, value: Any, where: str, label: str) -> Any:
        try:
            value = self.kind.coerce(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {label}: {exc}") from None
        return self.validate(value, where, label)

    def validate(self, value: Any, where: str, label: str) -> Any:
        if self.choices and value.lower() not in self.choices:
            raise ConfigError(f"{where}: {label}: expected one of {', '.join(self.choices)}, got {value!r}")
        complaint = self.check(value) if self.check is not None else None
        if complaint:
            raise ConfigError(f"{where}: {label}: {complaint}")
        return value


@dataclasses.dataclass(frozen=True)
class Value:
    """A resolved value and where it came from: ``path:line``,
    ``environment NAME``, ``default`` or the label of an override."""

    value: Any
    origin: str


class Section:
    """A table of keys (``top_level``: the keys of a whole file)."""

    def __init__(self, name: str, doc: str, keys: Iterable[Key], *, top_level: bool = False):
        self.name, self.doc, self.top_level = name, doc, top_level
        self.keys = {key.name: key for key in keys}

    def label(self, key: str) -> str:
        return key if self.top_level else f"{self.name}.{key}"

    def resolve(self, documents: Iterable[Document], overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None, override_origin: str = "argument") -> dict[str, Value]:
        """Every key's value: overrides (by attribute name; None is ignored),
        then ``environ``, then the documents in order, then defaults."""
        values = {name: Value(key.default, "default") for name, key in self.keys.items()}
        for doc in documents:
            table = doc.data if self.top_level else doc.data.get(self.name)
            if table is None:
                continue
            for name, raw in table.items():
                where = doc.where(None if self.top_level else self.name, name)
                key = self.keys.get(name)
                if key is None:
                    known = ", ".join(self.keys)
                    scope = "" if self.top_level else f" in [{self.name}]"
                    raise ConfigError(f"{where}: unknown key '{name}'{scope} (known: {known})")
                value = key.coerce(raw, where, self.label(name))
                if key.additive and values[name].origin != "default":
                    values[name] = Value(values[name].value + value, f"{values[name].origin}, {where}")
                else:
                    values[name] = Value(value, where)
        for name, key in self.keys.items():
            text = (environ or {}).get(key.env) if key.env else None
            if text:
                where = f"environment {key.env}"
                try:
                    values[name] = Value(key.validate(key.kind.from_text(text), where, self.label(name)), where)
                except ValueError as exc:
                    raise ConfigError(f"{where}: {self.label(name)}: {exc}") from None
        by_attr = {key.attr: key for key in self.keys.values()}
        for attr, value in (overrides or {}).items():
            if value is not None and attr in by_attr:
                key = by_attr[attr]
                values[key.name] = Value(key.coerce(value, override_origin, self.label(key.name)), override_origin)
        return values

    def settings_class(self, name: str, doc: str, *extra: tuple[str, type, Any], sections: Iterable[Section] = (),
                       post_init: Callable | None = None) -> type:
        """A frozen dataclass with one field per key of this section (and of
        ``sections``), defaults from the declarations, plus ``extra``
        ``(name, type, default)`` fields."""
        fields = []
        for section in (self, *sections):
            for key in section.keys.values():
                default = dataclasses.field(default_factory=dict) if isinstance(key.default, dict) \
                    else dataclasses.field(default=key.default)
                fields.append((key.attr, Any, default))
        for attr, kind, default in extra:
            fields.append((attr, kind, dataclasses.field(default=default, compare=False, repr=False)))
        namespace = {"__doc__": doc}
        if post_init is not None:
            namespace["__post_init__"] = post_init
        return dataclasses.make_dataclass(name, fields, frozen=True, namespace=namespace)


# Sections registered by the programs running in this process.
REGISTRY: dict[str, Section] = {}


def register(section: Section) -> Section:
    """Declare that this program reads ``section``; returns it."""
    REGISTRY[section.name] = section
    return section


@dataclasses.dataclass(frozen=True)
class Document:
    """One parsed TOML file."""

    path: Path
    text: str
    data: dict

    def where(self, section: str | None, key: str | None = None) -> str:
        return f"{self.path}:{line_of(self.text, section, key)}"


_HEADER = re.compile(r"\s*\[\s*([^\]]+?)\s*\]")


def line_of(text: str, section: str | None, key: str | None = None) -> int:
    """The line defining ``key`` in ``[section]`` (``section`` None: at the
    top, where a ``[key]`` header also counts), or the ``[section]`` header
    when ``key`` is None; 0 if not found."""
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            current = header.group(1).strip().strip("\"'")
            if (key is None and current == section) or (section is None and current == key):
                return number
        elif key is not None and current == section and re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return number
    return 0


def read(path: Path, text: str | None = None) -> Document:
    """Parse one file (or ``text`` said to come from it); errors name the file."""
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text: {exc.reason}") from None
    try:
        return Document(path, text, tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def check_sections(documents: Iterable[Document]) -> None:
    """Refuse what is outside any table and near misses of registered sections."""
    for doc in documents:
        for name, table in doc.data.items():
            if name in REGISTRY:
                if not isinstance(table, dict):
                    raise ConfigError(f"{doc.where(None, name)}: {name} must be a [{name}] table")
                continue
            known = ", ".join(f"[{s}]" for s in REGISTRY)
            if not isinstance(table, dict):
                raise ConfigError(f"{doc.where(None, name)}: '{name}' is outside any section (known: {known})")
            close = difflib.get_close_matches(name, REGISTRY, n=1, cutoff=0.7)
            if close:
                raise ConfigError(f"{doc.where(name)}: unknown section [{name}] (known: {known}; "
                                  f"did you mean [{close[0]}]?)")


def toml_value(value: Any) -> str:
    """``value`` written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(toml_value(item) for item in value) + "]"


def markdown_rows(section: Section, *, with_env: bool = True) -> list[str]:
    """The documentation table rows of a section: ``[section] key``, variable,
    default, meaning; or without ``with_env``: key, default, meaning."""
    rows = []
    for key in section.keys.values():
        default = key.shown_default or f"`{toml_value(key.default)}`"
        name = f"`[{section.name}] {key.name}`" if with_env else f"`{key.name}`"
        cells = [name, f"`{key.env}`" if with_env and key.env else "", default, key.doc]
        if not with_env:
            del cells[1]
        rows.append("| " + " | ".join(cells) + " |")
    return rows
