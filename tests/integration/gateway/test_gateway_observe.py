"""One request, one id: from the HTTP client through the gateway and the bus
to the worker's journal entries (a socket bound by the test stands in for
journald's)."""

import re

import pytest

from daebus import DaebusCaller
from support import JournalSink


@pytest.fixture
def journal():
    sink = JournalSink()
    yield sink
    sink.close()


@pytest.fixture
def traced(service, start_gateway, journal):
    env = {"DAEBUS_JOURNAL_SOCKET": journal.path}
    worker = service("observed.py", "observed", env=env)
    gw = start_gateway({"expose_actions": ["observed/*"]}, env=env)
    return worker, gw


def test_a_logged_exception_is_one_entry_with_the_request_id(traced, journal):
    worker, gw = traced
    response = gw.post("/api/services/observed/explode", {"n": 5}, headers={"X-Request-ID": "kiosk-7.trace"})
    assert response.status_code == 200 and response.json() == {"result": {"logged": True}}
    assert response.headers["X-Request-ID"] == "kiosk-7.trace"

    failure = journal.wait_for(DAEBUS_REQUEST_ID="kiosk-7.trace", PRIORITY="3")
    message = failure["MESSAGE"]
    assert message.startswith("observed: could not divide 5\nTraceback (most recent call last):")
    assert message.rstrip().endswith("ZeroDivisionError: division by zero")
    assert (failure["DAEBUS_SERVICE"], failure["DAEBUS_ACTION"], failure["CODE_FUNC"]) == \
        ("observed", "explode", "explode")
    assert failure["CODE_FILE"].endswith("observed.py")
    assert [e for e in journal.entries if "ZeroDivisionError" in e.get("MESSAGE", "")] == [failure], \
        "the traceback is one entry"
    info = journal.wait_for(DAEBUS_REQUEST_ID="kiosk-7.trace", MESSAGE="observed: dividing 5")
    assert info["PRIORITY"] == "6"
    # The gateway's own line about the call carries the same id.
    access = journal.wait_for(DAEBUS_REQUEST_ID="kiosk-7.trace", LOGGER="gateway.access")
    assert access["SYSLOG_IDENTIFIER"] == "daebus-gateway"
    assert (access["DAEBUS_SERVICE"], access["DAEBUS_ACTION"]) == ("observed", "explode")
    assert re.search(r"POST observed/explode: 200 in [0-9.]+ ms", access["MESSAGE"])
    assert failure["SYSLOG_IDENTIFIER"] != access["SYSLOG_IDENTIFIER"]
    # gunicorn's own log goes the same way.
    booted = journal.wait_for(LOGGER="gunicorn.error", SYSLOG_IDENTIFIER="daebus-gateway")
    assert booted["PRIORITY"] == "6" and "DAEBUS_REQUEST_ID" not in booted


@pytest.mark.parametrize("garbage", ["two words", "x" * 500, "\u00e9t\u00e9", "a'b"])
def test_a_garbage_request_id_is_replaced_end_to_end(traced, journal, garbage):
    _, gw = traced
    response = gw.post("/api/services/observed/explode", {"n": 1},
                       headers={"X-Request-ID": garbage.encode("utf-8")})
    assert response.status_code == 200
    made = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    journal.wait_for(DAEBUS_REQUEST_ID=made, PRIORITY="3")
    assert not [e for e in journal.entries if garbage in e.get("DAEBUS_REQUEST_ID", "")]


def test_an_error_answer_is_logged_with_its_code(traced, journal):
    _, gw = traced
    assert gw.post("/api/services/observed/fail", {}, headers={"X-Request-ID": "f-1"}).status_code == 502
    worker_line = journal.wait_for(DAEBUS_REQUEST_ID="f-1", LOGGER="daebus.runtime")
    assert "Traceback" in worker_line["MESSAGE"] and worker_line["PRIORITY"] == "3"
    access = journal.wait_for(DAEBUS_REQUEST_ID="f-1", LOGGER="gateway.access")
    assert ": 502 handler_error in " in access["MESSAGE"]


@pytest.mark.parametrize("relay", ["relay", "arelay"])
def test_a_call_made_by_a_handler_carries_the_id_on(traced, service, journal, relay):
    service("observed.py", "backend", env={"DAEBUS_JOURNAL_SOCKET": journal.path})
    _, gw = traced
    trace = f"chain-{relay}"
    response = gw.post(f"/api/services/observed/{relay}", {"to": "backend", "n": 9}, headers={"X-Request-ID": trace})
    assert response.status_code == 200 and response.json() == {"result": {"logged": True}}
    failure = journal.wait_for(DAEBUS_REQUEST_ID=trace, DAEBUS_SERVICE="backend", PRIORITY="3")
    assert failure["MESSAGE"].startswith("backend: could not divide 9\nTraceback")
    journal.wait_for(DAEBUS_REQUEST_ID=trace, LOGGER="gateway.access", DAEBUS_ACTION=relay)


def test_without_journald_the_lines_go_to_stderr(service, redis_url, tmp_path):
    worker = service("observed.py", "nojournal", env={"DAEBUS_JOURNAL_SOCKET": str(tmp_path / "absent")})
    with DaebusCaller("nojournal", redis_url=redis_url) as caller:
        assert caller.send_request("explode", {"n": 3}, trace_id="t-3") == {"logged": True}
    log = worker.log
    assert "could not divide 3" in log and "ZeroDivisionError: division by zero" in log
