import io
import logging

from daebus.ops import logs


def _record(level, msg, exc_info=None):
    return logging.LogRecord("sensors", level, __file__, 1, msg, (), exc_info)


def test_journal_lines_carry_the_syslog_priority_and_no_timestamp():
    formatter = logs.JournalFormatter("%(message)s")
    assert formatter.format(_record(logging.ERROR, "boom")) == "<3>sensors: boom"
    assert formatter.format(_record(logging.WARNING, "hmm")) == "<4>sensors: hmm"
    assert formatter.format(_record(logging.INFO, "ok")) == "<6>sensors: ok"
    assert formatter.format(_record(logging.DEBUG, "dbg")) == "<7>sensors: dbg"
    assert formatter.format(_record(logging.CRITICAL, "dead")) == "<2>sensors: dead"


def test_every_traceback_line_keeps_the_prefix():
    try:
        raise ValueError("bad")
    except ValueError:
        import sys
        text = logs.JournalFormatter("%(message)s").format(_record(logging.ERROR, "failed", sys.exc_info()))
    lines = text.splitlines()
    assert len(lines) > 3 and all(line.startswith("<3>sensors: ") for line in lines)


def test_setup_leaves_a_configured_app_alone(monkeypatch):
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(root, "handlers", [handler])
    assert logs.setup("debug") is False
    assert root.handlers == [handler]


def test_setup_picks_the_journal_format_when_stderr_is_the_journal(monkeypatch, tmp_path):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    import os
    import sys
    st = os.fstat(sys.stderr.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    assert logs.setup("info")
    try:
        assert isinstance(root.handlers[0].formatter, logs.JournalFormatter)
        assert root.level == logging.INFO
    finally:
        root.handlers.clear()


def test_journal_stream_of_another_file_is_not_ours(monkeypatch, tmp_path):
    import io
    other = tmp_path / "other"
    other.touch()
    with open(tmp_path / "mine", "w") as mine:
        st = other.stat()
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert not logs.under_journal(mine)
        monkeypatch.setenv("JOURNAL_STREAM", "garbage")
        assert not logs.under_journal(mine)
        assert logs.under_journal(io.StringIO()) is False


def test_parse_level():
    assert logs.parse_level("WARNING") == logging.WARNING
    try:
        logs.parse_level("loud")
    except ValueError as exc:
        assert "loud" in str(exc)
    else:
        raise AssertionError("accepted an unknown level")


def test_state_log_reports_changes_only(caplog):
    state = logs.StateLog(logging.getLogger("daebus.test"))
    with caplog.at_level(logging.INFO, logger="daebus.test"):
        assert state.set("down", logging.ERROR, "down")
        assert not state.set("down", logging.ERROR, "down")
        assert state.set("up", logging.INFO, "up")
    assert [r.getMessage() for r in caplog.records] == ["down", "up"]
