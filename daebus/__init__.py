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

__version__ = "0.2.0"

import importlib
import importlib.util

# Each public name and the module that defines it, imported on first use: a
# program that needs one part (gunicorn's arbiter reading daebus.ops.config, a
# service that never serves HTTP or asyncio) doesn't load the rest.
_HOMES = {
    "Daebus": "app.application", "Blueprint": "app.blueprint", "DaebusCaller": "call.caller",
    "AsyncCaller": "call.aiocaller", "Cancellation": "app.cancellation",
    **dict.fromkeys(["OutsideContextError", "broadcast", "cache", "direct_logger", "get_daemon", "logger",
                     "request", "response"], "app.context"),
    **dict.fromkeys(["ActionNotFound", "BadRequest", "Cancelled", "ConfigError", "ConnectionLost", "DaebusError",
                     "MalformedReply", "NameTaken", "RemoteError", "RequestTimeout", "RetryExhausted",
                     "ServiceBusy", "ServiceStopped", "ServiceUnavailable"], "errors"),
    **dict.fromkeys(["Retry", "RetryPolicy"], "app.retry"),
    **dict.fromkeys(["Broadcaster", "PubSubRequest", "PubSubResponse"], "app.pubsub"),
    "list_services": "bus.registry",
    **dict.fromkeys(["DaebusHttp", "HttpRequest", "HttpResponse"], "http"),
}


def __getattr__(name):
    if name in _HOMES:
        value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        # A submodule (daebus.ops.config...), as the eager imports used to provide.
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'daebus' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_HOMES])


__all__ = sorted(_HOMES)
