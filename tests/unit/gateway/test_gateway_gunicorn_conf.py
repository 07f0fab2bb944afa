"""The gunicorn config module: settings it hands to gunicorn and its hooks."""

import io
import logging
import os
import sys

import pytest

from gateway import gunicorn_conf


def test_gunicorn_settings():
    assert gunicorn_conf.worker_class == "gateway.worker.GatewayWorker"
    assert gunicorn_conf.workers == 1
    assert gunicorn_conf.threads >= 16
    # Only the worker loads the app: nothing held twice, a small master.
    assert gunicorn_conf.preload_app is False
    assert gunicorn_conf.accesslog is None
    assert gunicorn_conf.graceful_timeout <= 5
    assert gunicorn_conf.bind == ["127.0.0.1:8080"]


def test_open_listeners():
    assert gunicorn_conf.open_listeners([("127.0.0.1", 8080), "/run/gw.sock"]) == []
    assert gunicorn_conf.open_listeners([("127.0.0.1", 1), ("0.0.0.0", 2)]) == [("0.0.0.0", 2)]


class FakeListener:
    def __init__(self, address):
        self.address = address

    def getsockname(self):
        return self.address

    def __str__(self):
        return f"http://{self.address[0]}:{self.address[1]}"


class FakeArbiter:
    def __init__(self, *addresses):
        self.LISTENERS = [FakeListener(a) for a in addresses]
        self.stopped = []

    def stop(self, graceful=True):
        self.stopped.append(graceful)


def test_on_starting_takes_notify_socket_from_gunicorn(monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setattr(gunicorn_conf, "_notifier", None)
    from gunicorn.arbiter import Arbiter
    gunicorn_conf.on_starting(Arbiter)  # what on_starting reads of the arbiter: its SIGNALS
    assert "NOTIFY_SOCKET" not in os.environ  # gunicorn's own READY=1 is a no-op now
    assert gunicorn_conf._notifier.address == "/run/systemd/notify"


class Recorder:
    watchdog_interval = None   # no WatchdogSec

    def __init__(self):
        self.sent = []

    def ready(self, status=None):
        self.sent.append(("READY", status))

    def stopping(self, status=None):
        self.sent.append(("STOPPING", status))


    def status(self, text):
        self.sent.append(("STATUS", text))


class FakeWorker:
    def __init__(self, wsgi, *addresses):
        self.wsgi = wsgi
        self.sockets = [FakeListener(a) for a in addresses]


def test_ready_comes_from_the_worker_once_the_app_is_loaded(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(gunicorn_conf, "_notifier", recorder)
    arbiter = FakeArbiter(("127.0.0.1", 8080))
    gunicorn_conf.when_ready(arbiter)
    assert [kind for kind, _ in recorder.sent] == ["STATUS"]  # listening, the app not loaded yet
    gunicorn_conf.post_worker_init(FakeWorker(object(), ("127.0.0.1", 8080)))
    assert recorder.sent[-1] == ("READY", "serving on http://127.0.0.1:8080")
    arbiter.stop(False)
    assert recorder.sent[-1][0] == "STOPPING"


def test_the_master_does_not_load_flask():
    import subprocess

    code = ("import sys, gateway.gunicorn_conf, gateway.worker; "
            "print(sorted(m for m in ('flask', 'werkzeug', 'redis', 'gateway.app') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DAEBUS_CONFIG": "/nonexistent/daebus.toml"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_when_ready_refuses_an_open_listener_without_token(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(gunicorn_conf, "_notifier", recorder)
    with pytest.raises(RuntimeError, match="beyond loopback"):
        gunicorn_conf.when_ready(FakeArbiter(("0.0.0.0", 8080)))
    assert recorder.sent == []


def test_logger_uses_priority_prefixes_under_journald(monkeypatch):
    from gunicorn.config import Config

    try:  # as systemd does: the device and inode of our stderr
        st = os.fstat(sys.stderr.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        monkeypatch.setenv("JOURNAL_STREAM", "1:1")  # a wrapped stderr trusts the variable
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [logging.NullHandler()])  # keeps logs.setup() out
    logger = gunicorn_conf.GatewayLogger(Config())
    stream = io.StringIO()
    for handler in logger.error_log.handlers:
        handler.setStream(stream)
    logger.error_log.warning("worker timeout")
    assert stream.getvalue() == "<4>gunicorn.error: worker timeout\n"


def test_python_m_gateway_defers_pkg_resources():
    import subprocess

    code = ("import sys; from gateway.__main__ import import_lazily; import_lazily('pkg_resources'); "
            "import gunicorn.app.wsgiapp, gunicorn.workers.gthread, gateway.gunicorn_conf; "
            "print(any(m.startswith('pkg_resources.') for m in sys.modules)); "
            "import gunicorn.util; deferred = getattr(gunicorn.util, 'pkg_resources', None); "
            "print(deferred is None or callable(deferred.load_entry_point))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DAEBUS_CONFIG": "/nonexistent/daebus.toml"})
    assert out.returncode == 0, out.stderr
    # Not loaded by gunicorn's start; loaded when really used.
    assert out.stdout.split() == ["False", "True"], out.stdout
