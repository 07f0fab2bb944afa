"""The gateway under a supervisor: READY/STOPPING, SIGTERM with open streams, journald logs."""

import re
import time


def test_ready_is_sent_once_after_listening(start_gateway):
    gw = start_gateway()
    assert gw.get("/api/health").status_code == 200  # READY meant it was serving
    assert gw.notify.messages.count("READY=1") == 1
    assert any(line.startswith("STATUS=serving on http://127.0.0.1:") for line in gw.notify.messages)


def test_sigterm_with_open_streams_exits_within_five_seconds(start_gateway):
    gw = start_gateway({"graceful_timeout": 30})  # the streams must end by themselves
    streams = [gw.events("news.a") for _ in range(3)]
    for stream in streams:
        stream.wait_status("up")
    started = time.monotonic()
    assert gw.terminate(timeout=10) == 0
    assert time.monotonic() - started < 5
    assert "STOPPING=1" in gw.notify.messages
    for stream in streams:  # the server ended every stream
        assert [stream.next_event(timeout=5) for _ in range(3)][-1] is None


def test_error_log_has_journald_priority_prefixes(start_gateway):
    gw = start_gateway(env={"JOURNAL_STREAM": "auto"})
    gw.terminate()
    lines = [line for line in gw.log.splitlines() if line]
    assert lines
    assert all(re.match(r"<\d>", line) for line in lines), gw.log
    assert any(line.startswith("<6>gunicorn.error: Listening at") for line in lines)
    assert any(line.startswith("<6>gateway: gateway serving") for line in lines)
    assert not re.search(r"\d{4}-\d\d-\d\d", gw.log)  # the journal has its own timestamps


def test_without_journal_the_log_is_timestamped(start_gateway):
    gw = start_gateway()
    gw.terminate()
    assert re.search(r"\d{4}-\d\d-\d\d", gw.log)
    assert "Listening at" in gw.log
