"""Real parts for tests: a private redis-server and services in subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
SERVICES = Path(__file__).resolve().parent / "services"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    path = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
    if path is None:
        pytest.fail("redis-server is not installed: `./dev test` installs it (apt-get install redis-server)")
    return path


class RedisServer:
    """A private redis-server on a free port, restartable on the same port."""

    def __init__(self, port: int | None = None, password: str | None = None):
        self.port = port or free_port()
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="daebus-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def unix_socket(self) -> str:
        return os.path.join(self.dir, "redis.sock")

    def start(self, timeout: float = 10) -> RedisServer:
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--unixsocket", self.unix_socket, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
             "--loglevel", "notice", *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # Readiness is the server's own log line, not a guess.
        deadline = time.monotonic() + timeout
        lines = []
        for line in self.process.stdout:
            lines.append(line)
            if "Ready to accept connections" in line:
                break
            if time.monotonic() > deadline:
                break
        else:
            raise RuntimeError("redis-server exited:\n" + "".join(lines))
        if "Ready to accept connections" not in lines[-1]:
            raise RuntimeError("redis-server did not start:\n" + "".join(lines))
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        return self

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            try:
                self.client().shutdown(nosave=True)
            except redis.ConnectionError:
                pass
        self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class NotifySocket:
    """A datagram socket bound as NOTIFY_SOCKET, collecting what is sent."""

    def __init__(self):
        self.path = os.path.join(tempfile.mkdtemp(prefix="daebus-notify-"), "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            with self._cond:
                self.messages.extend(data.decode().splitlines())
                self._cond.notify_all()

    def wait_for(self, line: str, timeout: float = 10, prefix: bool = False) -> bool:
        """Wait until ``line`` (or a line starting with it) has arrived."""
        def seen():
            return any(m.startswith(line) for m in self.messages) if prefix else line in self.messages
        with self._cond:
            return self._cond.wait_for(seen, timeout)

    def close(self) -> None:
        self.sock.close()


class Service:
    """A service script from tests/services run in a subprocess."""

    def __init__(self, script: str, redis_url: str, *args: str, env: dict | None = None,
                 wait: bool = True, journal: bool = False):
        self.notify = NotifySocket()
        full_env = {**os.environ, "NOTIFY_SOCKET": self.notify.path, "DAEBUS_REDIS_URL": redis_url,
                    "DAEBUS_CONFIG": "/nonexistent/daebus.toml", "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": str(ROOT), **(env or {})}
        self.log_path = Path(tempfile.mkdtemp(prefix="daebus-svc-")) / "service.log"
        self._log = open(self.log_path, "w")
        if journal:
            # As systemd does: JOURNAL_STREAM names the device:inode of our stderr.
            st = os.fstat(self._log.fileno())
            full_env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        self.process = subprocess.Popen([sys.executable, str(SERVICES / script), *args],
                                        env=full_env, stdout=self._log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 15) -> None:
        if not self.notify.wait_for("READY=1", timeout):
            self.kill()
            raise AssertionError(f"service did not become ready; log:\n{self.log}")

    @property
    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def signal(self, sig=signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 15) -> int:
        return self.process.wait(timeout)

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def close(self) -> None:
        self.kill()
        self._log.close()
        self.notify.close()


class TcpProxy:
    """Forwards a local port to Redis; ``freeze()`` stops forwarding while
    keeping every connection open, like a cable pulled mid-conversation."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.frozen = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.frozen.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self.frozen.is_set():
                continue  # swallowed: the peer never hears back
            try:
                dst.sendall(data)
            except OSError:
                return

    def freeze(self) -> None:
        self.frozen.set()

    def thaw(self) -> None:
        self.frozen.clear()

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()
