"""The application factory and the per-process gateway state.

Example::

    from gateway import create_app

    app = create_app({"expose_actions": ["clock/*"], "redis_url": "redis://localhost"})
    app.run()   # development only; production runs gunicorn (see gunicorn_conf)

gunicorn loads the app in its arbiter (``preload_app``) and forks the
worker, so nothing here starts a thread or opens a Redis connection before
:meth:`Gateway.start` runs in the process that serves requests.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Mapping

from flask import Flask, abort, send_from_directory
from werkzeug.routing import PathConverter
from werkzeug.security import safe_join

from daebus import DaebusCaller
from daebus.bus import registry
from daebus.bus.bus import Bus
from daebus.errors import BadRequest, ConnectionLost, DaebusError
from daebus.app.schemas import describe
from daebus.bus.transport import REDIS_ERRORS, connect, redact

from . import api, errors, observe, security
from . import settings as settings_module
from .contracts import Contracts
from .events import EventHub
from .expose import Exposure
from .replay import READ_ERRORS, History
from .metrics import GatewayMetrics
from .settings import Settings

log = logging.getLogger("gateway")

EXTENSION = "daebus_gateway"
MAX_CACHED_CALLERS = 256
# The page client, served at /daebus.js (and its types beside it) whatever static_dir is.
CLIENT_DIR = Path(__file__).resolve().parent / "client"
CLIENT_FILES = {"daebus.js": "text/javascript", "daebus.d.ts": "application/typescript"}

# Served at / until a kiosk page is installed (static_dir).
BUILTIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Daebus gateway</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; margin: 2em">
<h1>Daebus gateway</h1>
<p>The gateway is running, but no kiosk page is installed.</p>
<p>To install one, either</p>
<ul>
<li>install the demo: <code>sudo apt install daebus-kiosk-demo</code>, or</li>
<li>put your page's files (with an <code>index.html</code>) in a folder and name it in a
drop-in such as <code>/etc/daebus/conf.d/50-kiosk.toml</code>:<br>
<code>[gateway]</code><br><code>static_dir = "/usr/share/acme-kiosk"</code><br>
then <code>sudo systemctl restart daebus-gateway</code>.</li>
</ul>
<p>See <code>/usr/share/doc/daebus/appliance.md</code>.</p>
<ul><li><a href="api/health">api/health</a></li><li><a href="api/services">api/services</a></li></ul>
</body></html>
"""


class Gateway:
    """Everything one gateway process shares between requests."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.exposure = Exposure(settings.expose_actions, settings.expose_channels,
                                 source=settings.config_file)
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._hub: EventHub | None = None
        self._health_client = None
        self._callers: dict[str, DaebusCaller] = {}
        self.contracts = Contracts(self.client)
        self.metrics = GatewayMetrics(self)

    def start(self) -> None:
        """Subscribe to broadcasts and replies in this process (idempotent;
        a forked child starts its own)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            url = self.settings.redis_url
            history = History(connect(url, socket_timeout=2.0), self.exposure.channels,
                              count=self.settings.keep_events, age=self.settings.keep_seconds)
            try:
                # Before the first stream opens, so that publishers keep from now on.
                history.declare()
            except READ_ERRORS as exc:
                log.warning("cannot declare the kept channels yet (%s); retrying", exc)
            self._hub = EventHub(url, self.exposure, queue_size=self.settings.stream_queue,
                                 max_streams=self.settings.max_streams,
                                 max_message_bytes=self.settings.max_message_bytes,
                                 socket_timeout=self.settings.socket_timeout,
                                 health_interval=self.settings.health_check_interval,
                                 history=history.start()).start()
            # A short timeout: a health probe must answer fast when Redis hangs.
            self._health_client = connect(url, socket_timeout=1.0)
            self._pid = os.getpid()
            log.info("gateway serving (Redis %s, %d action pattern(s), %d channel pattern(s))",
                     redact(url), len(self.exposure.actions), len(self.exposure.channels))

    @property
    def hub(self) -> EventHub:
        self.start()
        return self._hub

    def close_streams(self) -> None:
        """End every open event stream now (the worker is stopping)."""
        if self._hub is not None and self._pid == os.getpid():
            self._hub.close_streams()

    def call(self, service: str, action: str, payload: dict, timeout: float,
             on_progress=None, trace_id: str | None = None, cancel=None) -> Any:
        """Send one request through daebus and return the reply's payload;
        ``on_progress(payload)`` gets each progress reply; ``cancel`` (a
        :class:`~daebus.Cancellation`) gives the call up, on the service
        too. Counted by outcome (``ok`` or the error code) once it goes to
        the bus."""
        # Checked here so that a payload breaking the action's schema never
        # reaches the bus; the service would refuse it the same way.
        problems = self.contracts.problems(service, action, payload)
        if problems:
            raise BadRequest(f"invalid payload for {service}/{action}: {describe(problems)}", details=problems)
        try:
            result = self._call(service, action, payload, timeout, on_progress, trace_id, cancel)
        except DaebusError as exc:
            self.metrics.bus_call(service, exc.code)
            raise
        self.metrics.bus_call(service, "ok")
        return result

    def _call(self, service: str, action: str, payload: dict, timeout: float, on_progress,
              trace_id: str | None, cancel) -> Any:
        if self.hub.redis_down:
            # The caller would wait for its reply subscription until the
            # timeout; the event hub already knows Redis is gone.
            raise ConnectionLost(f"Redis at {redact(self.settings.redis_url)} is unavailable")
        # One caller per service, reused by every thread: it caches its route
        # to the process's reply subscription and publisher.
        caller = self._callers.get(service)
        if caller is None:
            if len(self._callers) >= MAX_CACHED_CALLERS:
                self._callers.clear()  # bounded, whatever names "*" lets through
            caller = self._callers[service] = DaebusCaller(service, redis_url=self.settings.redis_url,
                                                           timeout=self.settings.default_timeout)
        return caller.send_request(action, payload, timeout=timeout, on_progress=on_progress,
                                   trace_id=trace_id, cancel=cancel)

    def client(self):
        """The command client of this process's bus (shared with its callers)."""
        return Bus.of(self.settings.redis_url).client

    def services(self) -> list[dict]:
        self.start()
        try:
            return registry.list_services(self.client())
        except REDIS_ERRORS as exc:
            raise ConnectionLost(f"cannot reach Redis: {exc}") from exc

    def ping(self) -> str | None:
        """None when Redis answers, else why not."""
        self.start()
        try:
            self._health_client.ping()
            return None
        except REDIS_ERRORS as exc:
            return str(exc) or type(exc).__name__


def get_gateway(app: Flask) -> Gateway | None:
    """The :class:`Gateway` of an app made by :func:`create_app`, else None."""
    return app.extensions.get(EXTENSION) if isinstance(app, Flask) else None


def _static_dir(settings: Settings) -> Path | None:
    return Path(settings.static_dir) if settings.static_dir else None


class _PagePath(PathConverter):
    # Never matches under api/, so a GET on a POST-only API URL is a 405,
    # not a missing file.
    regex = r"(?!api/)[^/].*?"


def _register_ui(app: Flask, static_dir: Path | None) -> None:
    app.url_map.converters["page"] = _PagePath

    @app.get("/")
    def index():
        if static_dir is not None and (static_dir / "index.html").is_file():
            return send_from_directory(static_dir, "index.html")
        return BUILTIN_PAGE

    def client_file(name: str):
        response = send_from_directory(CLIENT_DIR, name, mimetype=CLIENT_FILES[name])
        # Public code, no secret in it: a page on another origin may import it
        # (module scripts are fetched with CORS); the API keeps its own rules.
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    for name in CLIENT_FILES:
        app.add_url_rule(f"/{name}", f"client:{name}", client_file, defaults={"name": name},
                         methods=["GET"])

    @app.get("/<page:filename>")
    def static_file(filename: str):
        # safe_join refuses "..", absolute paths and the like.
        if static_dir is None or not _inside(static_dir, filename):
            abort(404)
        return send_from_directory(static_dir, filename)


def _inside(static_dir: Path, filename: str) -> bool:
    # safe_join refuses "..", absolute paths and the like; a symlink inside
    # the folder that points out of it is refused here, where it resolves.
    joined = safe_join(str(static_dir), filename)
    if joined is None:
        return False
    root = static_dir.resolve()
    return Path(joined).resolve().is_relative_to(root)


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """Build the gateway's Flask app.

    ``config`` is a :class:`~gateway.settings.Settings`, a mapping of
    ``[gateway]`` keys (plus ``redis_url``) applied over the config files,
    or None for the config files alone.
    """
    settings = config if isinstance(config, Settings) else settings_module.load(config)
    app = Flask(__name__, static_folder=None)
    gateway = app.extensions[EXTENSION] = Gateway(settings)
    observe.install(app, gateway)  # first: refusals are counted and carry an id too
    errors.install(app)
    security.install(app, settings)
    app.register_blueprint(api.bp)
    _register_ui(app, _static_dir(settings))
    return app
