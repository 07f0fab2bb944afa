"""The documentation tables match the declarations they describe."""

from pathlib import Path

from daebus import config, configspec
from daebus.errors import CODES

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


def test_readme_error_table_lists_every_code():
    rows = [f"| `{entry.code}` | {entry.status} | "
            f"{'`' + entry.exception.__name__ + '`' if entry.exception else ''} | {entry.meaning} |"
            for entry in CODES.values()]
    assert missing_rows("README.md", rows) == []
