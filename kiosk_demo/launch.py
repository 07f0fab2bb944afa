"""Start the whole kiosk demo on this machine, and stop it on Ctrl-C.

Example::

    python -m kiosk_demo                  # http://127.0.0.1:8080/
    python -m kiosk_demo --port 9000
    python -m kiosk_demo --redis-url redis://127.0.0.1:6379/0

Redis is a private ``redis-server`` on a free port, or fakeredis's embedded
TCP server where none is installed. The gateway is gunicorn, started exactly
as ``daebus-gateway.service`` starts it but with a generated config file;
each worker is ``python kiosk_demo/<name>.py``. Every child reports
``READY=1`` over ``$NOTIFY_SOCKET`` as it would to systemd, which is how this
script knows it is up. The helpers here (:func:`start_redis`,
:class:`Child`, :func:`gateway_config`) are also used by ``examples/run.py``;
the private redis-server and the ``NOTIFY_SOCKET`` listener are daebus's own
(:mod:`daebus.bus.localredis`, :class:`daebus.ops.systemd.NotifySocket`), which the
tests use too.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

from daebus.ops import signals
from daebus.bus.localredis import RedisServer, free_port, redis_server_binary
from daebus.ops.systemd import Notifier, NotifySocket
from daebus.ops import ports
from gateway.settings import render

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STATIC_DIR = HERE / "static"
DEVICE_GATEWAY_CONFIG = HERE / "device" / "gateway.toml"
WORKERS = ("sensors", "display", "system")
# Stopped in this order, each stage once the one before has exited: callers
# before the workers they call (system's diagnostics call sensors and
# display), the gateway last, so the answers of what they drain still reach
# the browsers.
STOP_STAGES = (("system",), ("sensors", "display"), ("gateway",))
DEFAULT_PORT = ports.GATEWAY_PORT


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


# -- Redis ----------------------------------------------------------------------

def start_redis(*, embedded: bool = False, say: Callable[[str], None] = print):
    """A private Redis on a free loopback port: ``(url, stop)``.

    Redis's server program when installed (and ``embedded`` is false), else the
    fakeredis TCP server in a thread of this process.
    """
    if not embedded and redis_server_binary():
        server = RedisServer(new_session=True, preexec_fn=_die_with_parent).start()
        say(f"redis-server on 127.0.0.1:{server.port} (private, nothing saved)")
        return server.url, server.close

    port = free_port()

    from fakeredis import TcpFakeServer

    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="embedded-redis", daemon=True).start()
    reason = "as asked" if embedded else "no Redis server is installed"
    say(f"embedded Redis (fakeredis) on 127.0.0.1:{port} ({reason})")

    def stop_embedded() -> None:
        server.shutdown()
        server.server_close()
    return f"redis://127.0.0.1:{port}/0", stop_embedded


# -- child processes -----------------------------------------------------------------

def _load_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


# Looked up here, once: between fork and exec the child should do as little
# as possible (no library loading while another thread may hold its lock).
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # The children live in their own session so that Ctrl-C reaches only this
    # script, which stops them in order; if this script is killed outright,
    # the kernel sends them SIGTERM instead of leaving them behind.
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """A process started with its own ``NOTIFY_SOCKET``, like a systemd
    ``Type=notify`` service.

    Example::

        child = Child("sensors", [sys.executable, "kiosk_demo/sensors.py"], env)
        child.wait_ready(30)
        child.stop()
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], *, cwd: Path = ROOT,
                 stdout=None, stderr=None):
        self.name = name
        self.notify = NotifySocket()
        self._terminated = False
        self.process = subprocess.Popen(argv, cwd=cwd, env={**env, "NOTIFY_SOCKET": self.notify.path},
                                        stdout=stdout, stderr=stderr, start_new_session=True,
                                        preexec_fn=_die_with_parent)

    @property
    def status(self) -> str:
        return self.notify.last("STATUS=") or ""

    def wait_ready(self, timeout: float = 30) -> None:
        """Return once the child sent ``READY=1``; raise if it exits first."""
        deadline = time.monotonic() + timeout
        # READY=1 wakes us at once; the short slices only notice a child
        # that died before it could say anything.
        while not self.notify.wait_for("READY=1", 0.5):
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"{self.name} exited with status {code} before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} was not ready after {timeout:g} s "
                                   f"(last status: {self.status or 'none'})")

    def terminate(self) -> None:
        """Ask the child to stop, once: to a daebus service a second SIGTERM
        means "exit now", abandoning the handlers it is draining."""
        if not self._terminated and self.process.poll() is None:
            self._terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM (unless sent already), then SIGKILL after ``timeout``;
        returns the exit status."""
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.close()
        return self.process.returncode

    def close(self) -> None:
        self.notify.close()


def stop_stages(children: list[Child]) -> list[list[Child]]:
    """``children`` grouped by :data:`STOP_STAGES`; any other child stops with the first stage."""
    named = {name for stage in STOP_STAGES for name in stage}
    stages = [[child for child in children if child.name in stage] for stage in STOP_STAGES]
    stages[0] += [child for child in children if child.name not in named]
    return [stage for stage in stages if stage]


def child_env(redis_url: str, config: Path | None = None) -> dict[str, str]:
    """The environment of every demo process: this repository on the path,
    the demo's Redis and config rather than the machine's."""
    env = dict(os.environ)
    path = [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env.update({"PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1",
                "DAEBUS_REDIS_URL": redis_url})
    if config is not None:
        env["DAEBUS_CONFIG"] = str(config)
    env.pop("JOURNAL_STREAM", None)  # we are not systemd: plain timestamped logs
    return env


def start_service(script: Path, redis_url: str, env=None) -> subprocess.Popen:
    """Run a service script and wait for its READY=1; returns the process."""
    child = Child(script.stem, [sys.executable, str(script)], {**child_env(redis_url), **(env or {})})
    try:
        child.wait_ready()
    finally:
        child.close()
    return child.process


# -- the gateway ---------------------------------------------------------------------

def device_exposure() -> dict:
    """The ``[gateway]`` keys the device drop-in sets: the same actions and
    channels are exposed here and on the appliance."""
    with open(DEVICE_GATEWAY_CONFIG, "rb") as handle:
        table = tomllib.load(handle)["gateway"]
    # Its static_dir is the installed page's folder; here the checkout's is used.
    return {key: value for key, value in table.items() if key.startswith("expose_")}


def gateway_config(redis_url: str, port: int, **extra) -> str:
    """The text of a daebus config file for the demo's gateway."""
    gateway = {"bind": f"127.0.0.1:{port}", "static_dir": str(STATIC_DIR), "threads": 16,
               **device_exposure(), **extra}
    return render(redis_url, gateway, comment="Written by kiosk_demo for one run.")


def start_gateway(config: Path, redis_url: str, **popen) -> Child:
    """gunicorn with the gateway, as the appliance's unit runs it."""
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:gateway.gunicorn_conf", "gateway.wsgi:app"]
    return Child("gateway", argv, child_env(redis_url, config), **popen)


def start_worker(name: str, redis_url: str, config: Path | None = None, **popen) -> Child:
    return Child(name, [sys.executable, str(HERE / f"{name}.py")], child_env(redis_url, config), **popen)


# -- the command ----------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kiosk_demo",
                                     description="Run the Daebus kiosk demo until Ctrl-C.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"gateway port on 127.0.0.1 (default {DEFAULT_PORT}, or a free one "
                             "when it is taken; 0 for any free port)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--redis-url", help="use this Redis instead of starting a private one")
    source.add_argument("--embedded-redis", action="store_true",
                        help="use the embedded fakeredis server even if redis-server is installed")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def say(message: str) -> None:
        print(f"kiosk_demo: {message}", flush=True)

    stop_requested = threading.Event()
    reason: list[str] = []
    notifier = Notifier.from_env()  # whoever started us (systemd, a test) hears READY=1

    def on_signal(signum, _frame):
        reason.append(signal.Signals(signum).name)
        stop_requested.set()

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for sig in stops:
        signal.signal(sig, on_signal)
    signals.unblock(stops)  # the children inherit the unblocked mask too

    port = args.port
    if port == 0:
        port = free_port()
    elif port_in_use(port):
        chosen = free_port()
        say(f"port {port} is taken, using {chosen}")
        port = chosen

    workdir = Path(tempfile.mkdtemp(prefix="daebus-kiosk-demo-"))
    stop_redis: Callable[[], None] = lambda: None
    children: list[Child] = []
    status = 0
    try:
        if args.redis_url:
            redis_url = args.redis_url
            say(f"using the Redis at {redis_url}")
        else:
            redis_url, stop_redis = start_redis(embedded=args.embedded_redis, say=say)
        config = workdir / "daebus.toml"
        config.write_text(gateway_config(redis_url, port))
        children.append(start_gateway(config, redis_url))
        children += [start_worker(name, redis_url, config) for name in WORKERS]
        for child in children:
            child.wait_ready(60)
            say(f"{child.name} ready")
        url = f"http://127.0.0.1:{port}/"
        say(f"the kiosk page is at {url}  (Ctrl-C stops everything)")
        notifier.ready(f"serving on {url}")

        def watch(child: Child) -> None:
            code = child.process.wait()
            if stop_requested.is_set():
                return
            say(f"{child.name} exited with status {code}")
            if child.name == "gateway":
                reason.append("the gateway exited")
                stop_requested.set()

        for child in children:
            threading.Thread(target=watch, args=(child,), daemon=True).start()
        stop_requested.wait()
        if "the gateway exited" in reason:
            status = 1
    except RuntimeError as exc:
        say(f"cannot start: {exc}")
        status = 1
    finally:
        # Ignore further Ctrl-C while stopping: a second one would leave
        # children behind (they would still get SIGTERM when we exit).
        stop_requested.set()
        notifier.stopping()
        if children:
            say("stopping " + (f"({reason[0]})" if reason else ""))
        for stage in stop_stages(children):
            # A stage drains together; the next waits, so what a draining
            # handler calls is still there to answer it.
            for child in stage:
                child.terminate()
            for child in stage:
                code = child.stop()
                if code not in (0, None):
                    say(f"{child.name} stopped with status {code}")
        stop_redis()
        shutil.rmtree(workdir, ignore_errors=True)
    if status == 0:
        say("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
