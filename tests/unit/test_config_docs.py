"""The documentation tables match the declarations they describe."""

import subprocess
import sys
from pathlib import Path

from daebus.ops import config, configspec

ROOT = Path(__file__).resolve().parents[2]


def missing_rows(document: str, rows: list[str]) -> list[str]:
    text = (ROOT / document).read_text(encoding="utf-8")
    return [row for row in rows if row not in text.splitlines()]


def test_readme_config_table_lists_every_declared_key():
    rows = [row for section in config.CORE for row in configspec.markdown_rows(section)]
    assert missing_rows("README.md", rows) == []


def test_gateway_docs_table_lists_every_declared_key():
    from gateway.settings import GATEWAY

    assert missing_rows("docs/gateway.md", configspec.markdown_rows(GATEWAY, with_env=False)) == []


def test_readme_error_table_lists_every_code_of_daebus():
    # In a fresh interpreter: the codes daebus itself declares, not those a
    # program using it (the gateway) adds to the table.
    script = ("from daebus.errors import CODES\n"
              "for e in CODES.values():\n"
              "    name = f'`{e.exception.__name__}`' if e.exception else ''\n"
              "    print(f'| `{e.code}` | {e.status} | {name} | {e.meaning} |')\n")
    rows = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.splitlines()
    assert len(rows) > 10
    assert missing_rows("README.md", rows) == []


def test_fleet_docs_tables_list_every_declared_key():
    from daebus.fleet.settings import BRIDGE, FLEET

    rows = [*configspec.markdown_rows(BRIDGE, with_env=False), *configspec.markdown_rows(FLEET, with_env=False)]
    assert missing_rows("docs/fleet.md", rows) == []
