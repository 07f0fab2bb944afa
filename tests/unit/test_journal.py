"""Structured journald entries over the native protocol, against a socket
the test binds in journald's place."""

import logging
import struct
import sys
import time

import pytest

from daebus import Daebus
from daebus.ops import logs
from daebus.bus import protocol
from daebus.app.context import app_context, bind_log_fields, handler_context, reset_log_fields
from daebus.ops.journal import SEND_BUFFER, JournalHandler, encode_field
from daebus.app.pubsub import PubSubRequest
from support import JournalSink


class Collected(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def sink():
    sink = JournalSink()
    yield sink
    sink.close()


@pytest.fixture
def journal_logger():
    """``journal_logger(path, **kwargs)``: a logger sending to ``path``, with its fallback."""
    made = []

    def make(path, **kwargs):
        fallback = Collected()
        handler = JournalHandler("daebus-test", path=path, fallback=fallback, **kwargs)
        log = logging.getLogger(f"journal-test-{len(made)}")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
        made.append((log, handler))
        return log, fallback

    yield make
    for log, handler in made:
        log.removeHandler(handler)
        handler.close()


def test_fields_with_newlines_use_the_length_prefixed_form():
    assert encode_field("PRIORITY", 3) == b"PRIORITY=3\n"
    assert encode_field("MESSAGE", "a\nb") == b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\n"


def _request(action="explode", request_id="r-1", trace_id=None):
    envelope = protocol.request_envelope(action, {}, "caller:x", request_id, "observed", 1000, trace_id=trace_id)
    return PubSubRequest(protocol.parse_request(envelope))


def test_an_exception_in_a_handler_is_one_entry_with_its_traceback_and_request_id(sink, journal_logger):
    log, fallback = journal_logger(sink.path)
    app = Daebus("observed")
    app.service = "observed"
    with handler_context(app, _request(trace_id="kiosk-42"), None):
        try:
            1 / 0
        except ZeroDivisionError:
            log.exception("could not divide %d", 1)
    entry = sink.wait_for(DAEBUS_REQUEST_ID="kiosk-42")
    assert entry["MESSAGE"].startswith(f"{log.name}: could not divide 1\nTraceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in entry["MESSAGE"]
    assert entry["PRIORITY"] == "3"
    assert entry["SYSLOG_IDENTIFIER"] == "daebus-test"
    assert entry["DAEBUS_SERVICE"] == "observed"
    assert entry["DAEBUS_ACTION"] == "explode"
    assert entry["CODE_FILE"] == __file__
    assert entry["CODE_FUNC"] == "test_an_exception_in_a_handler_is_one_entry_with_its_traceback_and_request_id"
    assert int(entry["CODE_LINE"]) > 0
    assert len(sink.entries) == 1 and not fallback.records


def test_without_a_trace_id_the_wire_request_id_is_used(sink, journal_logger):
    log, _ = journal_logger(sink.path)
    with handler_context(Daebus("x"), _request(request_id="wire-7"), None):
        log.warning("hello")
    entry = sink.wait_for(MESSAGE=f"{log.name}: hello")
    assert entry["DAEBUS_REQUEST_ID"] == "wire-7"
    assert entry["PRIORITY"] == "4"


def test_bound_fields_and_extra_arguments(sink, journal_logger):
    log, _ = journal_logger(sink.path)
    token = bind_log_fields(request_id="gw-1")
    try:
        log.info("call", extra={"daebus_service": "sensors", "daebus_action": "read"})
    finally:
        reset_log_fields(token)
    log.info("outside")
    entry = sink.wait_for(MESSAGE=f"{log.name}: call")
    assert (entry["DAEBUS_REQUEST_ID"], entry["DAEBUS_SERVICE"], entry["DAEBUS_ACTION"]) == ("gw-1", "sensors", "read")
    outside = sink.wait_for(MESSAGE=f"{log.name}: outside")
    assert "DAEBUS_REQUEST_ID" not in outside and "DAEBUS_ACTION" not in outside


def test_a_record_too_large_for_a_datagram_travels_as_a_memfd(sink, journal_logger):
    log, fallback = journal_logger(sink.path)
    big = "x" * (SEND_BUFFER + 1024 * 1024)  # beyond the largest datagram the kernel lets us send
    log.error("%s", big)
    entry = sink.wait_for(PRIORITY="3")
    assert entry["MESSAGE"] == f"{log.name}: {big}"
    assert sink.memfd_entries == 1 and not fallback.records


def test_a_missing_socket_falls_back_to_stderr_lines(tmp_path, journal_logger):
    log, fallback = journal_logger(str(tmp_path / "no-journal"))
    log.error("still logged")
    assert [r.getMessage() for r in fallback.records] == ["still logged"]


def test_a_full_socket_costs_one_wait_then_falls_back_until_it_drains(journal_logger):
    stalled = JournalSink(read=False)
    try:
        log, fallback = journal_logger(stalled.path, send_timeout=0.2)
        started = time.monotonic()
        for i in range(2000):
            log.info("line %d", i)
        elapsed = time.monotonic() - started
        assert fallback.records, "the queue never filled up"
        assert elapsed < 5, f"logging took {elapsed:.1f} s against a stalled journald"
        # Every record went one way or the other: none is lost.
        queued = 0
        stalled.sock.setblocking(False)
        try:
            while stalled.sock.recv(65536):
                queued += 1
        except BlockingIOError:
            pass
        assert queued + len(fallback.records) == 2000
        log.info("after the drain")
        stalled.sock.setblocking(True)
        stalled.sock.settimeout(5)
        assert b"after the drain" in stalled.sock.recv(65536)
    finally:
        stalled.close()


def test_journald_restarting_is_followed(tmp_path, journal_logger):
    path = str(tmp_path / "socket")
    first = JournalSink(path)
    log, fallback = journal_logger(path)
    log.info("one")
    first.wait_for(MESSAGE=f"{log.name}: one")
    first.close()
    second = JournalSink(path)
    try:
        log.info("two")
        second.wait_for(MESSAGE=f"{log.name}: two")
        assert not fallback.records
    finally:
        second.close()


def test_setup_picks_the_journal_only_when_there_is_one(sink, monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv(logs.JOURNAL_SOCKET_ENV, raising=False)
    assert isinstance(logs.handler(), logging.StreamHandler)
    monkeypatch.setenv(logs.JOURNAL_SOCKET_ENV, sink.path + ".absent")
    assert isinstance(logs.handler(), logging.StreamHandler), "no socket at start: today's stderr lines"
    monkeypatch.setenv(logs.JOURNAL_SOCKET_ENV, sink.path)
    monkeypatch.setenv(logs.IDENTIFIER_ENV, "daebus-worker-sensors")
    handler = logs.handler()
    try:
        assert isinstance(handler, JournalHandler)
        assert handler.identifier == "daebus-worker-sensors"
    finally:
        handler.close()


def test_records_outside_any_request_carry_the_running_service(sink, journal_logger):
    log, _ = journal_logger(sink.path)
    app = Daebus("svc")
    app.service = "svc"
    with app_context(app):
        log.info("tick")
    entry = sink.wait_for(MESSAGE=f"{log.name}: tick")
    assert entry["DAEBUS_SERVICE"] == "svc" and "DAEBUS_ACTION" not in entry
    assert sys.platform == "linux"
