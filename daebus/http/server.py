"""DaebusHttp: the HTTP server a service attaches to serve its ``@app.route`` handlers."""

from __future__ import annotations

import errno
import logging
import socket

from daebus.ops import ports
from daebus.http.connection import Limits
from daebus.http.cors import CorsPolicy
from daebus.http.handling import Dispatcher
from daebus.http.loop import ServeLoop
from daebus.http.routing import Router

log = logging.getLogger("daebus.http")


# Not the gateway's: a service's own endpoints run beside it on the same box.
DEFAULT_PORT = ports.HTTP_PORT

class DaebusHttp:
    """Serve the app's routes over HTTP/1.1 from inside the service.

    Attach it and declare routes; it starts listening once ``app.run()`` has
    connected to Redis (before the service reports ready) and stops with
    the app. A port that can't be bound makes ``run()`` raise.

    Example::

        app = Daebus(__name__)
        http = DaebusHttp(port=8081)
        app.attach(http)

        @app.route("/status")
        def status(req):
            return response.send({"status": "running"}, 200)

    Keyword-only tuning: ``threads`` bounds concurrent handlers;
    ``timeout`` bounds reading one request and writing its response;
    idle keep-alive connections close after ``keepalive_timeout``; a body
    over ``max_body_size`` bytes gets 413; ``backlog`` is the kernel's
    queue of not-yet-accepted connections; past ``max_connections`` open
    connections new ones wait in that queue.
    """

    def __init__(self, port: int = DEFAULT_PORT, host: str = "127.0.0.1", cors_config: dict | None = None, *,
                 max_body_size: int = 1024 * 1024, threads: int = 16, timeout: float = 10.0,
                 keepalive_timeout: float = 15.0, backlog: int = 1024, max_connections: int = 512):
        if threads < 1 or max_connections < 1 or backlog < 1 or max_body_size < 0:
            raise ValueError("threads, backlog and max_connections must be at least 1, "
                             "max_body_size at least 0")
        if timeout <= 0 or keepalive_timeout <= 0:
            raise ValueError("timeout and keepalive_timeout must be positive")
        self.host = host
        self.port = port
        self.threads = threads
        self.timeout = timeout
        self.keepalive_timeout = keepalive_timeout
        self.backlog = backlog
        self.max_connections = max_connections
        self.limits = Limits(max_body=max_body_size)
        self.cors = CorsPolicy.from_config(cors_config) if cors_config is not None else None
        self.app = None
        self._dispatcher: Dispatcher | None = None
        self._loop: ServeLoop | None = None

    def configure_cors(self, config: dict | None = None, **options) -> CorsPolicy:
        """Turn on CORS, or change it, even while serving.

        Takes the documented dict and/or the same options as keywords
        (see :mod:`daebus.http.cors`).

        Example::

            http.configure_cors({"allowed_origins": "*", "allowed_methods": ["GET", "POST"]})
        """
        self.cors = CorsPolicy.from_config(config, **options)
        if self._dispatcher is not None:
            self._dispatcher.cors = self.cors
        return self.cors

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.alive

    @property
    def url(self) -> str:
        host = self.host or "0.0.0.0"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    # -- component protocol: the app's runtime calls these -----------------------
    def bind(self, app) -> None:
        """Remember the app whose routes to serve (``app.attach`` calls this)."""
        if self.app is not None and self.app is not app:
            raise ValueError("this DaebusHttp is already attached to another app")
        self.app = app

    def start(self, app=None) -> None:
        """Listen and serve in background threads; raises OSError if the port can't be bound."""
        if app is not None:
            self.bind(app)
        if self.app is None:
            raise RuntimeError("attach DaebusHttp to an app (app.attach(http)) before starting it")
        if self.running:
            raise RuntimeError(f"DaebusHttp is already serving on {self.url}")
        router = Router(self.app.routes)  # read now, so routes declared after attach count
        if not len(router):
            log.warning("DaebusHttp on port %s has no routes: declare them with @app.route", self.port)
        self._dispatcher = Dispatcher(self.app, router, self.cors)
        listener = self._listen()
        self.port = listener.getsockname()[1]
        self._loop = ServeLoop(listener, self._dispatcher, threads=self.threads, timeout=self.timeout,
                               keepalive_timeout=self.keepalive_timeout,
                               max_connections=self.max_connections, limits=self.limits,
                               name=f"daebus-http-{self.port}")
        self._loop.start()
        log.info("HTTP server listening on %s (%d route(s))", self.url, len(router))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish (up to ``timeout`` s), close everything."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.stop(timeout)
        log.info("HTTP server on port %s stopped", self.port)

    def _listen(self) -> socket.socket:
        try:
            family, _, _, _, address = socket.getaddrinfo(
                self.host or None, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
            # The backlog absorbs bursts of connections while the loop is busy;
            # a backlog of 5 makes the kernel drop SYNs, costing clients a 1 s retry.
            return socket.create_server(address, family=family, backlog=self.backlog)
        except OSError as exc:
            hint = {errno.EADDRINUSE: " (another process is using the port)",
                    errno.EACCES: " (ports below 1024 need privileges)"}.get(exc.errno, "")
            raise OSError(exc.errno, f"DaebusHttp cannot listen on {self.host}:{self.port}: "
                                     f"{exc.strerror or exc}{hint}") from exc

    def __repr__(self) -> str:
        return f"<DaebusHttp {self.url}{' running' if self.running else ''}>"
