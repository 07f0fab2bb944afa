"""The Daebus gateway: HTTP and live updates for kiosk browsers.

A Flask application served by gunicorn: browsers call service actions
(``POST /api/services/<service>/<action>``) and receive broadcasts as
Server-Sent Events (``GET /api/events?channel=...``). Start it with::

    gunicorn -c python:gateway.gunicorn_conf gateway.wsgi:app

or build the app yourself::

    from gateway import create_app
    app = create_app({"expose_actions": ["clock/*"]})
"""

from __future__ import annotations

import importlib

__all__ = ["Gateway", "Settings", "create_app", "get_gateway"]
_HOMES = {"Gateway": "app", "create_app": "app", "get_gateway": "app", "Settings": "settings"}


def __getattr__(name: str):
    # Imported on first use: gunicorn's arbiter reads gateway.settings
    # without loading Flask, which only its worker needs.
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
