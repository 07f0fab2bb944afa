"""A private redis-server on a free loopback port with nothing saved: for
the demo launcher, test suites and benchmarks.

Example::

    server = RedisServer().start()      # waits for "Ready to accept connections"
    app.run(redis_url=server.url)
    server.close()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from typing import Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Redis picks what it runs from the name it is started under (argv[0]):
# Debian's redis-tools holds the server program as redis-check-rdb, and
# redis-server's /usr/bin/redis-server is a link to that file. Either is
# started as "redis-server".
SERVER_PROGRAMS = ("redis-server", "redis-check-rdb")


def redis_server_binary() -> str | None:
    """The file of Redis's server program (redis-server's, else redis-tools'),
    or None; start it with ``redis-server`` as argv[0]."""
    for name in SERVER_PROGRAMS:
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if found:
            return found
    return None


class RedisServer:
    """A redis-server of our own, restartable on the same port.

    ``preexec_fn`` and ``new_session`` go to :class:`subprocess.Popen` (a
    launcher keeps its children out of the terminal's Ctrl-C).
    """

    def __init__(self, port: int | None = None, password: str | None = None, *,
                 new_session: bool = False, preexec_fn: Callable[[], None] | None = None,
                 args: tuple[str, ...] = ()):
        self.port = port or free_port()
        self.args = tuple(args)  # more redis-server options, such as ("--aclfile", path)
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="daebus-redis-")
        self.process: subprocess.Popen | None = None
        self._popen = {"start_new_session": new_session, "preexec_fn": preexec_fn}

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def unix_socket(self) -> str:
        return os.path.join(self.dir, "redis.sock")

    def start(self, timeout: float = 10) -> RedisServer:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("no Redis server is installed (apt-get install redis-tools)")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--unixsocket", self.unix_socket, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
             "--loglevel", "notice", *(["--requirepass", self.password] if self.password else []),
             *self.args],
            executable=binary, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **self._popen)
        # Readiness is the server's own log line, not a guess.
        deadline = time.monotonic() + timeout
        lines = []
        for line in self.process.stdout:
            lines.append(line)
            if "Ready to accept connections" in line or time.monotonic() > deadline:
                break
        if not lines or "Ready to accept connections" not in lines[-1]:
            self.stop(kill=True)
            raise RuntimeError("redis-server did not start:\n" + "".join(lines[-20:]))
        # Keep reading, or a full pipe would one day stop the server.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        return self

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True)

    def stop(self, kill: bool = False) -> None:
        """Shut the server down (``kill``: at once, as a crash would)."""
        import redis

        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            try:
                self.client().shutdown(nosave=True)
            except redis.ConnectionError:
                pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)
