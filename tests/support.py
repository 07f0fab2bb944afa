"""Real parts for tests: a private redis-server and services in subprocesses."""

from __future__ import annotations

import array
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis


from daebus.bus.localredis import RedisServer, free_port, redis_server_binary  # noqa: F401 - shared with the tests
from daebus.ops.systemd import NotifySocket  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
SERVICES = Path(__file__).resolve().parent / "services"


def default_signals() -> None:
    """``preexec_fn`` for a child a test signals: SIGINT and SIGTERM at their
    default dispositions and unblocked, as systemd starts a unit, whatever
    mask or ignored signals this test run inherited from its runner."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def inherited_signals() -> None:
    """``preexec_fn`` of the hostile case: SIGINT and SIGTERM blocked, as a
    CI runner or supervisor that handles them itself passes them on. Their
    dispositions are the defaults (an ignored SIGINT, as a shell leaves it for
    a background job, is a choice a process rightly keeps: not this case)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


class ManagedProcess:
    """A subprocess that reports ``READY=1`` on a NOTIFY_SOCKET of its own,
    as under systemd, with its output kept in a log file for failure messages.

    ``journal=True`` sets ``JOURNAL_STREAM`` to the log file, as systemd does
    for a unit whose output goes to the journal; ``new_session=True`` gives it
    a process group of its own, so ``kill()`` also reaches its children.
    The child starts with SIGINT and SIGTERM as systemd leaves them
    (``preexec_fn``: :func:`inherited_signals` for the hostile case).
    """

    #: Every one made, for :meth:`release_finished` after each test.
    made: "list[ManagedProcess]" = []

    def __init__(self, argv: list[str], env: dict, *, name: str = "process", log_path: Path | None = None,
                 journal: bool = False, new_session: bool = False, preexec_fn=default_signals):
        self.name = name
        ManagedProcess.made.append(self)
        self.notify = NotifySocket()
        # A folder of our own only when the caller gave none; removed by close().
        self._own_dir = None if log_path else Path(tempfile.mkdtemp(prefix="daebus-proc-"))
        self.log_path = log_path or self._own_dir / "output.log"
        self._log = open(self.log_path, "a")
        env = {**env, "NOTIFY_SOCKET": self.notify.path}
        env.pop("JOURNAL_STREAM", None)
        if journal:
            st = os.fstat(self._log.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        self._group = new_session
        try:
            self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._log,
                                            stderr=subprocess.STDOUT, start_new_session=new_session,
                                            preexec_fn=preexec_fn)
        except BaseException:
            self._release()  # nobody holds an object whose constructor failed
            raise

    @property
    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text() if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float = 15) -> None:
        # READY=1 is the event waited for; the short slices only notice a
        # process that died before sending it.
        deadline = time.monotonic() + timeout
        while not self.notify.wait_for("READY=1", 0.25):
            if not self.running or time.monotonic() > deadline:
                log = self.log
                self.close()  # nobody holds it to close it: it failed in its constructor's wait, say
                raise AssertionError(f"{self.name} did not become ready; log:\n{log}")

    def signal(self, sig=signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 15) -> int:
        return self.process.wait(timeout)

    def stop(self, timeout: float = 15) -> int:
        if self.running:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.running:
            try:
                if self._group:
                    os.killpg(self.process.pid, signal.SIGKILL)
                else:
                    self.process.kill()
            except ProcessLookupError:
                pass
            self.process.wait(10)

    def close(self) -> None:
        self.kill()
        self._release()

    @classmethod
    def release_finished(cls) -> None:
        """Release the socket and folder of each process that has exited: a
        test that stopped one and read its log need not close it too. Those
        still running (a module's fixture) are left to their owner."""
        for process in list(cls.made):
            if getattr(process, "process", None) is None or not process.running:
                process._release()

    def _release(self) -> None:
        if self in ManagedProcess.made:
            ManagedProcess.made.remove(self)
        self._log.close()
        self.notify.close()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)


def wait_until(condition, timeout: float = 15, what: str = "condition") -> None:
    """Poll a state in Redis or a process until ``condition()`` holds: for
    what no event announces (a stream entry acknowledged after its reply)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def child_env(redis_url: str, env: dict | None = None) -> dict:
    """The environment of a daebus process under test: this checkout's code,
    the private Redis, and none of the machine's /etc/daebus."""
    return {**os.environ, "DAEBUS_REDIS_URL": redis_url, "DAEBUS_CONFIG": "/nonexistent/daebus.toml",
            "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **(env or {})}


class Service(ManagedProcess):
    """A service script from tests/services run in a subprocess."""

    def __init__(self, script: str, redis_url: str, *args: str, env: dict | None = None,
                 wait: bool = True, journal: bool = False, preexec_fn=default_signals):
        super().__init__([sys.executable, str(SERVICES / script), *args], child_env(redis_url, env),
                         name=f"service {script}", journal=journal, preexec_fn=preexec_fn)
        if wait:
            self.wait_ready()


def start_slow_call(caller, server: RedisServer, seconds: float, *, timeout: float = 30,
                    action: str = "slow"):
    """Call basic.py's ``slow`` action (or another) from a thread; for
    ``slow``, return once the handler has announced that it started.

    Returns the thread and a list that receives the result or the exception.
    """
    pubsub = server.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("slow_started")
    pubsub.get_message(timeout=5)  # the subscribe confirmation
    outcome: list = []

    def call():
        try:
            outcome.append(caller.send_request(action, {"seconds": seconds, "tag": "t"}, timeout=timeout))
        except Exception as exc:  # noqa: BLE001 - inspected by the test
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    try:
        if action == "slow":
            assert pubsub.get_message(timeout=10) is not None, "slow handler never started"
    finally:
        pubsub.close()
    return thread, outcome


class HandlerReports:
    """What a test service's handlers broadcast on ``channel`` about
    themselves (``{"event", "tag", ...}``, see tests/services/cancellable.py),
    read in order."""

    def __init__(self, client, channel: str):
        self.client = client   # its pool holds the subscription's connection
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        assert self.pubsub.get_message(timeout=5) is None  # the confirmation, skipped
        self.seen: list[dict] = []

    def wait(self, event: str, tag: str, timeout: float = 10) -> dict:
        """The first report of ``event`` for ``tag`` not returned yet (the
        others read meanwhile are kept in ``seen``)."""
        for report in self.seen:
            if report["event"] == event and report["tag"] == tag and not report.get("_returned"):
                report["_returned"] = True
                return report
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {event!r} for {tag!r}; saw {self.seen}"
            message = self.pubsub.get_message(timeout=remaining)
            if message is None:
                continue
            report = json.loads(message["data"])
            self.seen.append(report)
            if report["event"] == event and report["tag"] == tag:
                report["_returned"] = True
                return report

    def of(self, tag: str) -> list[str]:
        return [r["event"] for r in self.seen if r["tag"] == tag]

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


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
            # shutdown() first: close() alone leaves a socket that another
            # thread is reading open, and Redis would keep its subscriptions.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def parse_journal_entry(data: bytes) -> dict:
    """Fields of one entry in journald's native format."""
    fields: dict = {}
    i = 0
    while i < len(data):
        end = data.index(b"\n", i)
        line = data[i:end]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            fields[name.decode()] = value.decode()
            i = end + 1
        else:
            size = struct.unpack("<Q", data[end + 1:end + 9])[0]
            start = end + 9
            fields[line.decode()] = data[start:start + size].decode()
            assert data[start + size:start + size + 1] == b"\n", "a binary field must end with a newline"
            i = start + size + 1
    return fields


class JournalSink:
    """A datagram socket standing in for journald's: collects entries,
    including those passed as a memfd. ``read=False`` never reads, so the
    queue fills up as with a journald that has stalled."""

    def __init__(self, path: str | None = None, read: bool = True):
        self._own_dir = None if path else tempfile.mkdtemp(prefix="daebus-journal-")
        self.path = path or os.path.join(self._own_dir, "socket")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.entries: list[dict] = []
        self.memfd_entries = 0
        self._cond = threading.Condition()
        if read:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(8 * 1024 * 1024, socket.CMSG_SPACE(16))
            except OSError:
                return
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fd = array.array("i", payload[:4])[0]
                    with os.fdopen(fd, "rb") as f:
                        f.seek(0)  # the sender's writes moved the shared offset, as journald's mmap ignores
                        data = f.read()
                    self.memfd_entries += 1
            with self._cond:
                self.entries.append(parse_journal_entry(data))
                self._cond.notify_all()

    def wait_for(self, timeout: float = 10, **fields) -> dict:
        """The first entry whose fields include ``fields``."""
        def match():
            return next((e for e in self.entries if all(e.get(k) == v for k, v in fields.items())), None)
        with self._cond:
            entry = self._cond.wait_for(match, timeout)
        assert entry, f"no journal entry with {fields}; got {self.entries}"
        return entry

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader, so the socket really goes
        except OSError:
            pass
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)


# -- Redis Sentinel -------------------------------------------------------------------

SENTINEL_MASTER = "bus"
FAILOVER_BOUND = 15.0   # seconds from killing the master until calls succeed again


def _sentinel_binary() -> str:
    path = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
    if not os.path.exists(path):
        pytest.fail("redis-sentinel is not installed: `./dev test` installs it (apt-get install redis-sentinel)")
    return path


def _wait_for_line(process: subprocess.Popen, text: str, timeout: float) -> None:
    """Wait until the process prints a line containing ``text``; its output
    keeps being drained afterwards."""
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in process.stdout:
            seen.append(line)
            if text in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        raise AssertionError(f"never saw {text!r}:\n" + "".join(seen[-30:]))


class SentinelCluster:
    """One master, one replica, three sentinels, all on loopback."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="daebus-sentinel-")
        # DEBUG SLEEP freezes it as a wedged host would (Redis 7 refuses DEBUG unless enabled).
        self.master = RedisServer(args=("--enable-debug-command", "local")).start()
        self.processes: list[subprocess.Popen] = []
        self.replica_port = free_port()
        replica = self._spawn([redis_server_binary() or "redis-server", "--port", str(self.replica_port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", self._subdir("replica"),
                               "--replicaof", "127.0.0.1", str(self.master.port)])
        _wait_for_line(replica, "MASTER <-> REPLICA sync: Finished with success", 20)
        self.sentinel_ports = [free_port() for _ in range(3)]
        sentinels = []
        for port in self.sentinel_ports:
            conf = os.path.join(self._subdir(f"sentinel-{port}"), "sentinel.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\ndaemonize no\n"
                        f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {self.master.port} 2\n"
                        f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n"
                        f"sentinel failover-timeout {SENTINEL_MASTER} 10000\n")
            sentinels.append(self._spawn([_sentinel_binary(), conf]))
        for process in sentinels:
            # Each sentinel must know the replica (and its peers) before a failover can work.
            _wait_for_line(process, "+slave slave", 20)
        self._wait_for_peers()

    def _subdir(self, name: str) -> str:
        path = os.path.join(self.dir, name)
        os.makedirs(path)
        return path

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.processes.append(process)
        return process

    def _wait_for_peers(self, timeout: float = 20) -> None:
        # Sentinels find each other through hello messages every 2 s; there is no event to wait for.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            known = [int(redis.Redis(port=p, decode_responses=True).sentinel_master(SENTINEL_MASTER)["num-other-sentinels"])
                     for p in self.sentinel_ports]
            if min(known) >= 2:
                return
            time.sleep(0.2)
        raise AssertionError("the sentinels never found each other")

    def master_port(self) -> int:
        """The port the sentinels name as the master's now."""
        return int(redis.Redis(port=self.sentinel_ports[0], decode_responses=True)
                   .sentinel_get_master_addr_by_name(SENTINEL_MASTER)[1])

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SENTINEL_MASTER}/0"

    def close(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(10)
        self.master.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class AclBus:
    """A redis-server locked by the ACL file daebus renders, with a password
    file per user in a private folder.

    Example::

        bus = AclBus([Worker("basic", "basic", listen=("test_events",))]).start()
        env = bus.env("worker:basic")    # DAEBUS_REDIS_USERNAME / _PASSWORD_FILE
    """

    def __init__(self, workers=(), gateway_channels=()):
        from daebus.security import acl

        self.workers = list(workers)
        self.dir = Path(tempfile.mkdtemp(prefix="daebus-acl-"))
        users = [acl.ADMIN, acl.GATEWAY, acl.FLEET_BRIDGE, *(acl.worker_user(w.name) for w in self.workers)]
        self.secrets = {user: os.urandom(16).hex() for user in users}
        for user, secret in self.secrets.items():
            self.password_file(user).write_text(secret + "\n")
            self.password_file(user).chmod(0o600)
        self.acl_file = self.dir / "users.acl"
        self.acl_file.write_text(acl.render(self.secrets, self.workers, gateway_channels))
        self.server = RedisServer(args=("--aclfile", str(self.acl_file)))

    def start(self) -> "AclBus":
        self.server.start()
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def password_file(self, user: str) -> Path:
        return self.dir / user.replace(":", "-")

    def env(self, user: str) -> dict:
        return {"DAEBUS_REDIS_USERNAME": user, "DAEBUS_REDIS_PASSWORD_FILE": str(self.password_file(user))}

    def client(self, user: str, **kwargs) -> redis.Redis:
        """A plain redis-py client logged in as ``user``."""
        return redis.Redis(host="127.0.0.1", port=self.server.port, username=user,
                           password=self.secrets[user], decode_responses=True, **kwargs)

    def close(self) -> None:
        self.server.close()
        shutil.rmtree(self.dir, ignore_errors=True)
