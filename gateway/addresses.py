"""Listening addresses, Host headers and origins, without Flask.

gunicorn's arbiter reads the settings (and checks what it listens on) with
these; only the worker process loads Flask and the app.

Example::

    bind_is_loopback("0.0.0.0:8080")          # False
"""

from __future__ import annotations

import ipaddress

from daebus.web import parse_origin  # noqa: F401 - the one origin rule, used by the gateway from here


def host_is_loopback(host: str) -> bool:
    """True for "localhost" and loopback IP addresses (brackets allowed)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_is_loopback(bind: str) -> bool:
    """True when a gunicorn ``bind`` value only listens on this machine.

    Example::

        bind_is_loopback("127.0.0.1:8080")     # True
        bind_is_loopback("unix:/run/gw.sock")  # True
        bind_is_loopback("0.0.0.0:8080")       # False
    """
    if bind.startswith("unix:"):
        return True
    if bind.startswith("fd://"):
        return False  # an inherited socket could listen anywhere
    host = bind.rsplit(":", 1)[0] if bind.count(":") == 1 or bind.startswith("[") else bind
    return host_is_loopback(host)


def address_is_loopback(address) -> bool:
    """True for a listening socket's address that only this machine reaches
    (a ``(host, port)`` tuple, or a path for a Unix socket)."""
    if isinstance(address, str | bytes):
        return True
    return host_is_loopback(str(address[0]))


def split_host(value: str) -> str:
    """The host part of a ``Host`` header, lower-cased, IPv6 brackets removed."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return host.rstrip(".")
