"""The gateway's codes live in daebus's one table, and its docs agree with it."""

import re
from pathlib import Path

import pytest

from daebus.errors import CODES, RemoteError, http_status
from gateway.errors import api_error, from_daebus

DOCS = Path(__file__).resolve().parents[3] / "docs" / "gateway.md"


def documented() -> list[tuple[int, str]]:
    rows = re.findall(r"^\| (\d{3}) \| ([^|]*) \|", DOCS.read_text(encoding="utf-8"), re.M)
    return [(int(status), code) for status, cell in rows for code in re.findall(r"`([a-z_]+)`", cell)]


def test_every_documented_status_is_the_tables():
    rows = documented()
    assert len(rows) > 20
    for status, code in rows:
        entry = CODES[code]  # a code the docs name is declared
        expected = http_status(RemoteError("x", code=code)) if entry.exception and \
            issubclass(entry.exception, RemoteError) else entry.status
        assert status == expected, code


@pytest.mark.parametrize("code, status", [("not_exposed", 403), ("bad_json", 400), ("too_many_streams", 503)])
def test_api_error_takes_the_status_from_the_table(code, status):
    assert api_error(code, "nope").status == status


def test_a_busy_service_is_told_to_retry():
    exc = from_daebus(RemoteError("full", code="busy"))
    assert (exc.status, exc.headers) == (503, {"Retry-After": "1"})
