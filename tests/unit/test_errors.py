import pytest

from daebus import ActionNotFound, ConnectionLost, DaebusError, RemoteError, RequestTimeout, ServiceBusy, ServiceUnavailable
from daebus.errors import CODES, error_code, http_status, remote_error, retry_after
from daebus.http import HttpError


@pytest.mark.parametrize("code, cls", [
    ("action_not_found", ActionNotFound), ("busy", ServiceBusy),
    ("handler_error", RemoteError), ("custom_code", RemoteError)])
def test_remote_error_picks_the_class_for_the_code(code, cls):
    exc = remote_error({"error": "nope", "code": code}, "svc")
    assert type(exc) is cls and exc.code == code and str(exc) == "nope" and exc.service == "svc"


def test_old_error_payload_without_code_is_a_handler_error():
    exc = remote_error({"error": "old style"})
    assert exc.code == "handler_error" and str(exc) == "old style"


def test_error_family_fits_standard_exceptions():
    assert issubclass(RequestTimeout, TimeoutError) and issubclass(ConnectionLost, ConnectionError)
    for cls in (RemoteError, ServiceUnavailable, RequestTimeout, ConnectionLost):
        assert issubclass(cls, DaebusError)


@pytest.mark.parametrize("exc, status", [
    (RemoteError("boom"), 502),                                  # a failing service, seen from outside
    (RemoteError("odd", code="made_up_by_handler"), 502),
    (RemoteError("bad", code="bad_request"), 400),
    (ActionNotFound("no"), 404), (ServiceBusy("full"), 503), (ServiceUnavailable(""), 503),
    (RequestTimeout(""), 504), (ConnectionLost(""), 503), (DaebusError("x", code="unheard_of"), 500),
])
def test_one_status_per_code(exc, status):
    assert http_status(exc) == status


def test_the_table_names_each_class_once_and_codes_are_unique():
    classes = [entry.exception for entry in CODES.values() if entry.exception is not None]
    assert len(classes) == len(set(classes))
    assert all(CODES[cls.code].exception is cls for cls in classes)
    with pytest.raises(ValueError, match="declared twice"):
        error_code("busy", 503, "again")
    assert retry_after("busy") == 1 and retry_after("timeout") is None


def test_http_errors_take_their_default_code_from_the_table():
    assert HttpError(404).code == "not_found" and HttpError(500).code == "handler_error"
    assert HttpError(503).code == "service_unavailable"  # from the reason phrase
