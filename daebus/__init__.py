"""Daebus: Flask-like background services that talk over Redis pub/sub.

Example::

    from daebus import Daebus, request, response

    app = Daebus(__name__)

    @app.action("hello")
    def hello():
        return response.success({"message": f"Hello, {request.payload.get('name', 'World')}!"})

    if __name__ == "__main__":
        app.run(service="hello-service")
"""

__version__ = "0.1.0"

from .app import Daebus
from .blueprint import Blueprint
from .caller import DaebusCaller
from .context import (
    OutsideContextError,
    broadcast,
    cache,
    direct_logger,
    get_daemon,
    logger,
    request,
    response,
)
from .errors import (
    ActionNotFound,
    BadRequest,
    ConfigError,
    ConnectionLost,
    DaebusError,
    MalformedReply,
    NameTaken,
    RemoteError,
    RequestTimeout,
    ServiceBusy,
    ServiceStopped,
    ServiceUnavailable,
)
from .pubsub import Broadcaster, PubSubRequest, PubSubResponse
from .registry import list_services

_LAZY = {"DaebusHttp", "HttpRequest", "HttpResponse"}


def __getattr__(name):
    # The HTTP server and asyncio are imported on first use: most services
    # and the gateway never need them.
    if name in _LAZY:
        from . import http
        return getattr(http, name)
    if name == "AsyncCaller":
        from .aiocaller import AsyncCaller
        return AsyncCaller
    raise AttributeError(f"module 'daebus' has no attribute {name!r}")


__all__ = [
    "ActionNotFound", "AsyncCaller", "BadRequest", "Blueprint", "Broadcaster", "ConfigError", "ConnectionLost",
    "Daebus", "DaebusCaller", "DaebusError", "DaebusHttp", "HttpRequest", "HttpResponse",
    "MalformedReply", "NameTaken", "OutsideContextError", "PubSubRequest",
    "PubSubResponse", "RemoteError", "RequestTimeout", "ServiceBusy", "ServiceStopped",
    "ServiceUnavailable",
    "broadcast", "cache", "direct_logger", "get_daemon", "list_services", "logger", "request",
    "response",
]
