import pytest

from daebus import (ActionNotFound, ConnectionLost, DaebusError, RemoteError, RequestTimeout,
                    ServiceBusy, ServiceUnavailable)
from daebus.errors import remote_error


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
