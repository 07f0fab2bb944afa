"""``daebus config``: the configuration in effect and where each value came from.

Examples::

    daebus config                   # every key: origin, then section.key = value
    daebus config service           # one section
    daebus config redis.url --json  # one key, as JSON with its origin

Origins read as ``git config --show-origin`` does: ``path:line`` for a
file, ``environment NAME`` or ``default``. Sections that another program
on the device declares (the gateway's ``[gateway]``) are shown as their
files set them, marked ``(not declared here)``.
"""

from __future__ import annotations

import argparse

from daebus.ops import config, configspec
from daebus.bus.transport import redact
from daebus.cli.common import CommandError, Exit, dumps, table

HIDDEN = "(hidden)"


def effective(match: str | None = None) -> list[dict]:
    """One row per key: ``section``, ``key``, ``value``, ``origin``,
    ``declared``; secrets hidden, passwords in URLs masked."""
    resolved = config.resolve(tuple(configspec.REGISTRY.values()))
    rows = []
    for name, values in resolved.items():
        section = configspec.REGISTRY[name]
        for key, value in values.items():
            shown = value.value
            if section.keys[key].secret and shown:
                shown = HIDDEN
            row = {"section": name, "key": key, "value": _masked(shown), "origin": value.origin,
                   "declared": True}
            if shown is None:
                row["computed"] = section.keys[key].shown_default or "unset"
            rows.append(row)
    for doc in config.documents():
        for name, table_ in doc.data.items():
            if name in configspec.REGISTRY or not isinstance(table_, dict):
                continue
            for key, raw in table_.items():
                rows.append({"section": name, "key": key, "value": _masked(raw),
                             "origin": doc.where(name, key), "declared": False})
    if match:
        rows = [row for row in rows if match in (row["section"], f"{row['section']}.{row['key']}")]
        if not rows:
            raise CommandError(f"no configuration key or section {match!r}", Exit.USAGE)
    return rows


def _masked(value):
    return redact(value) if isinstance(value, str) else value


def _shown(row: dict) -> str:
    if "computed" in row:
        return f"({row['computed']})"
    text = configspec.toml_value(row["value"])
    return text if row["declared"] else f"{text}  (not declared here)"


def cmd_config(args: argparse.Namespace) -> int:
    rows = effective(args.name)
    if args.json:
        print(dumps(rows))
        return Exit.OK
    lines = [(row["origin"], f"{row['section']}.{row['key']} = {_shown(row)}") for row in rows]
    print(table(lines))
    return Exit.OK


def register(commands) -> None:
    parser = commands.add_parser(
        "config", help="show the configuration in effect, with the file and line of each value",
        description="Print every configuration value in effect and where it came from: "
                    "path:line of a file in /etc/daebus (or $DAEBUS_CONFIG), an environment "
                    "variable, or the default in code.")
    parser.add_argument("name", nargs="?", metavar="SECTION[.KEY]", help="show only this section or key")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=cmd_config)
