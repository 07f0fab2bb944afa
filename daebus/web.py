"""What daebus answers over HTTP, whichever server answers: a service's own
endpoints (:class:`~daebus.http.DaebusHttp`) or the appliance's gateway.

- One error body, ``{"error": {"code": ..., "message": ...}}`` (plus
  ``"details"`` when a payload broke a schema: ``[{"path", "message"}]``),
  built by :func:`error_body`;
- one answer to a daebus error (:func:`answer`): its status from the error
  table (:mod:`daebus.errors`), its body, and ``Retry-After`` where the code
  has one;
- one rule for origins (:func:`parse_origin`): ``scheme://host[:port]``
  with an ``http`` or ``https`` scheme, lower-cased, nothing else.

Example::

    error_body("not_found", "no device 7")
    # {"error": {"code": "not_found", "message": "no device 7"}}
    status, body, headers = answer(ServiceBusy("sensors is busy"))   # 503, ..., {"Retry-After": "1"}
    parse_origin("HTTP://Kiosk.local:8080/")                          # "http://kiosk.local:8080"
"""

from __future__ import annotations

from urllib.parse import urlsplit

from daebus.errors import DaebusError, http_status, retry_after


def error_body(code: str, message: str, details: list | None = None) -> dict:
    """The JSON body of an HTTP error answer."""
    error = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def answer(exc: DaebusError) -> tuple[int, dict, dict]:
    """``(status, body, headers)`` answering ``exc``."""
    wait = retry_after(exc.code)
    headers = {"Retry-After": str(wait)} if wait is not None else {}
    return http_status(exc), error_body(exc.code, str(exc) or exc.code, exc.details), headers


def parse_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` normalised, or None when ``origin`` is not one."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc.lower()}"
