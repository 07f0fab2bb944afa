"""Log format and level as a service writes them to its stderr."""

import re


def test_lines_have_priority_prefixes_and_no_timestamps_under_journald(service):
    svc = service("logging_app.py", journal=True)
    svc.stop()
    lines = svc.log.splitlines()
    assert "<6>logs: info line" in lines and "<3>logs: error line" in lines
    assert "<7>logs: debug line" not in lines
    assert all(re.match(r"<\d>[\w.]+: ", line) for line in lines), lines


def test_human_format_with_timestamps_otherwise(service):
    svc = service("logging_app.py")
    svc.stop()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ERROR +logs: error line$", svc.log, re.M)


def test_debug_flag_and_environment_set_the_level(service):
    svc = service("logging_app.py", "--debug")
    svc.stop()
    assert "logs: debug line" in svc.log
    svc = service("logging_app.py", env={"DAEBUS_LOG_LEVEL": "error"})
    svc.stop()
    assert "logs: error line" in svc.log and "info line" not in svc.log


def test_app_that_configured_logging_is_left_alone(service):
    svc = service("logging_app.py", "own")
    svc.stop()
    assert "OWN ERROR error line" in svc.log
    assert "info line" not in svc.log
