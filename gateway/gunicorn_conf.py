"""gunicorn settings for the gateway, read from the daebus config.

Start the gateway with::

    gunicorn -c python:gateway.gunicorn_conf gateway.wsgi:app

One ``gthread`` worker: the process keeps one Redis subscription for every
browser, and each open event stream holds one of its threads. Only the
worker loads the app (Flask, the bus client): the arbiter stays small, and
nothing is held twice. The worker sends ``READY=1`` once the app is loaded
and its Redis threads run (the unit has ``NotifyAccess=all``), so a broken
install still fails the start: a worker that cannot load the app makes
gunicorn exit before systemd hears ``READY=1``. A bad ``[gateway]`` value
stops the start with ``file:line``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from gunicorn import glogging

from daebus.ops import logs, signals
from daebus.errors import ConfigError
from daebus.ops.journal import JournalHandler
from daebus.ops.systemd import Notifier
from gateway.addresses import address_is_loopback
from gateway.settings import load
from gateway.watchdog import MasterWatchdog


def _load_settings():
    try:
        return load()
    except ConfigError as exc:
        # One line in the journal, as daebus services do, instead of gunicorn's traceback.
        logs.exit_on_config_error("daebus-gateway", exc)


settings = _load_settings()

bind = list(settings.bind)
workers = 1
# gthread, except that a thread only gets a connection once its request has
# arrived: slow clients wait on the worker's main loop (gateway.worker).
worker_class = "gateway.worker.GatewayWorker"
threads = settings.threads
graceful_timeout = settings.graceful_timeout
timeout = 30
keepalive = 5
preload_app = False
accesslog = None
errorlog = "-"
loglevel = logging.getLevelName(logs.parse_level(settings.log_level)).lower()
proc_name = "daebus-gateway"
# Newer gunicorn opens a control socket under $HOME; nothing here uses it.
control_socket_disable = True
if os.path.isdir("/dev/shm"):
    # The worker's heartbeat file: on tmpfs, a slow SD card can't stall it.
    worker_tmp_dir = "/dev/shm"


class GatewayLogger(glogging.Logger):
    """gunicorn's error log and the app's own loggers (``gateway``,
    ``daebus``) as structured journald entries under systemd (stderr lines
    with ``<N>`` priority prefixes when journald's socket is missing)."""

    def setup(self, cfg):
        super().setup(cfg)
        handler = logs.handler(proc_name)
        if isinstance(handler, JournalHandler):
            self.error_log.handlers = [handler]
        elif logs.under_journal(sys.stderr):
            for existing in self.error_log.handlers:
                existing.setFormatter(logs.JournalFormatter("%(message)s"))
        logs.setup(cfg.loglevel, identifier=proc_name)


logger_class = GatewayLogger

_notifier = Notifier(None)


def open_listeners(addresses) -> list:
    """The listening addresses that machines other than this one can reach."""
    return [a for a in addresses if not address_is_loopback(a)]


def on_starting(server):
    global _notifier
    # gunicorn installs its handlers right after this hook; a mask inherited
    # from whoever started us would keep them from ever running (and
    # SIGCHLD blocked would leave dead workers unnoticed).
    signals.unblock((*server.SIGNALS, signal.SIGCHLD))
    _notifier = Notifier.from_env()
    # gunicorn sends its own READY=1 as soon as it listens; ours comes from
    # the worker once the app is loaded (it inherits _notifier, not the
    # variable, so nothing it starts can notify).
    os.environ.pop("NOTIFY_SOCKET", None)


def when_ready(server):
    # The bind may come from the command line or systemd sockets rather than
    # the config, so check what is really listening.
    addresses = [listener.getsockname() for listener in server.LISTENERS]
    exposed = open_listeners(addresses)
    if exposed and not settings.token:
        raise RuntimeError(f"the gateway listens beyond loopback ({exposed}) without a token: set "
                           f"gateway.token or gateway.token_file in {settings.config_file}")
    _notifier.status("loading the app in the worker")
    MasterWatchdog(_notifier).attach(server)
    stop = server.stop

    def stop_and_tell(graceful=True):
        # gunicorn has no hook where stopping begins (on_exit runs after the
        # workers are gone), so STOPPING=1 is sent from the arbiter's stop.
        _notifier.stopping("stopping")
        stop(graceful)

    server.stop = stop_and_tell


def post_worker_init(worker):
    from gateway.app import get_gateway

    gateway = get_gateway(worker.wsgi)
    if gateway is not None:
        gateway.start()
    # The app loaded (gunicorn loads it before this hook): the gateway serves.
    _notifier.ready("serving on " + ", ".join(str(listener) for listener in worker.sockets))
    if gateway is None:
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        # gunicorn waits graceful_timeout for open requests, and an event
        # stream never ends by itself: end them now. Safe in a handler: the
        # main thread never holds the locks close_streams() takes.
        gateway.close_streams()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
    signal.siginterrupt(signal.SIGTERM, False)


def worker_int(worker):
    from gateway.app import get_gateway

    gateway = get_gateway(getattr(worker, "wsgi", None))
    if gateway is not None:
        gateway.close_streams()


def on_exit(server):
    _notifier.close()
