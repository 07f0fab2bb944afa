"""The services table: one row per owner, one per member of a group."""

from __future__ import annotations

from daebus.cli.services import render


def test_a_group_has_a_row_per_member():
    services = [
        {"name": "clock", "mode": "owner", "pid": 7, "host": "box", "uptime": 65.0, "status": "running",
         "actions": ["now"], "channels": [], "instances": [{"pid": 7, "host": "box", "uptime": 65.0,
                                                            "status": "running"}]},
        {"name": "ocr", "mode": "group", "pid": 10, "host": "a", "uptime": 5.0, "status": "running",
         "actions": ["read"], "channels": ["ocr.jobs"],
         "instances": [{"pid": 10, "host": "a", "uptime": 5.0, "status": "running"},
                       {"pid": 11, "host": "b", "uptime": 3.0, "status": "starting"}]},
    ]
    lines = render(services).splitlines()
    assert [line.split()[:6] for line in lines[1:]] == [
        ["clock", "7", "box", "1m05s", "running", "now"],
        ["ocr", "(group)", "10", "a", "5s", "running"],
        ["ocr", "(group)", "11", "b", "3s", "starting"],
    ]
    assert lines[2].split()[-2:] == ["read", "ocr.jobs"]


def test_nothing_running():
    assert render([]) == "no services running"
