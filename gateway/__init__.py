"""The Daebus gateway: HTTP and live updates for kiosk browsers.

A Flask application served by gunicorn: browsers call service actions
(``POST /api/services/<service>/<action>``) and receive broadcasts as
Server-Sent Events (``GET /api/events?channel=...``). Start it with::

    gunicorn -c python:gateway.gunicorn_conf gateway.wsgi:app

or build the app yourself::

    from gateway import create_app
    app = create_app({"expose_actions": ["clock/*"]})
"""

from .app import Gateway, create_app, get_gateway
from .settings import Settings

__all__ = ["Gateway", "Settings", "create_app", "get_gateway"]
