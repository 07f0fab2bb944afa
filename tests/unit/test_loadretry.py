"""The spacing of a worker's tries to load code that fails to import."""

from daebus.service import loadretry
from daebus.ops.systemd import Notifier


def test_the_wait_doubles_from_5_s_up_to_5_min():
    assert [loadretry.delay(n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]


def test_the_count_so_far_comes_from_the_environment_and_garbage_counts_as_none():
    assert loadretry.failures_so_far({loadretry.FAILURES_ENV: "3"}) == 3
    assert loadretry.failures_so_far({loadretry.FAILURES_ENV: "many"}) == 0
    assert loadretry.failures_so_far({loadretry.FAILURES_ENV: "-2"}) == 0
    assert loadretry.failures_so_far({}) == 0


def test_a_failure_is_described_by_its_type_message_and_innermost_line():
    try:
        compile("x = (", "/opt/w/app.py", "exec")
    except SyntaxError as exc:
        text = loadretry.describe(exc)
    assert text.startswith("SyntaxError: ") and "(at " in text


def test_outside_systemd_nothing_is_retried():
    assert loadretry.retry_later("app.py", ImportError("x"), Notifier(None)) is False
