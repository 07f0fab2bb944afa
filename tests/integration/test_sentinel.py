"""Redis Sentinel: a master, a replica and three sentinels from Debian's
redis-sentinel on loopback; the master is SIGKILLed under traffic."""

import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import redis

from daebus import DaebusCaller
from daebus.localredis import redis_server_binary
from support import RedisServer, free_port

MASTER = "bus"
RECOVERY_BOUND = 15.0


def _sentinel_binary() -> str:
    path = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
    if not os.path.exists(path):
        pytest.fail("redis-sentinel is not installed: `./dev test` installs it (apt-get install redis-sentinel)")
    return path


def _wait_for_line(process: subprocess.Popen, text: str, timeout: float, seen: list[str]) -> None:
    """Read the process's output until a line contains ``text``."""
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        seen.append(line)
        if text in line:
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"never saw {text!r}:\n" + "".join(seen[-30:]))


class Cluster:
    """One master, one replica, three sentinels, all on loopback."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="daebus-sentinel-")
        self.master = RedisServer().start()
        self.processes: list[subprocess.Popen] = []
        self.replica_port = free_port()
        replica = self._spawn([redis_server_binary() or "redis-server", "--port", str(self.replica_port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", self._subdir("replica"),
                               "--replicaof", "127.0.0.1", str(self.master.port)])
        _wait_for_line(replica, "MASTER <-> REPLICA sync: Finished with success", 20, [])
        self.sentinel_ports = [free_port() for _ in range(3)]
        sentinels = []
        for port in self.sentinel_ports:
            conf = os.path.join(self._subdir(f"sentinel-{port}"), "sentinel.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\ndaemonize no\n"
                        f"sentinel monitor {MASTER} 127.0.0.1 {self.master.port} 2\n"
                        f"sentinel down-after-milliseconds {MASTER} 1000\n"
                        f"sentinel failover-timeout {MASTER} 10000\n")
            sentinels.append(self._spawn([_sentinel_binary(), conf]))
        for process in sentinels:
            # Each sentinel must know the replica (and its peers) before a failover can work.
            _wait_for_line(process, "+slave slave", 20, [])
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
            known = [int(redis.Redis(port=p, decode_responses=True).sentinel_master(MASTER)["num-other-sentinels"])
                     for p in self.sentinel_ports]
            if min(known) >= 2:
                return
            time.sleep(0.2)
        raise AssertionError("the sentinels never found each other")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER}/0"

    def close(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(10)
        self.master.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster():
    c = Cluster()
    yield c
    c.close()


def test_failover_under_traffic_recovers_without_restarting_anything(cluster, service):
    svc = service("member.py", "failover", url=cluster.url)
    outcomes: list[tuple[float, object]] = []
    stop = threading.Event()

    def traffic():
        with DaebusCaller("failover", redis_url=cluster.url, timeout=2) as caller:
            while not stop.is_set():
                try:
                    result = caller.send_request("whoami", {})
                except Exception as exc:  # noqa: BLE001 - failures during the failover are expected
                    result = exc
                outcomes.append((time.monotonic(), result))
                stop.wait(0.1)   # the pace of the traffic, not a synchronisation

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not any(isinstance(r, dict) for _, r in outcomes) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(isinstance(r, dict) for _, r in outcomes), outcomes[-3:]
        cluster.master.stop(kill=True)
        killed = time.monotonic()
        deadline = killed + RECOVERY_BOUND + 5
        while time.monotonic() < deadline:
            if any(isinstance(r, dict) and at > killed + 0.5 for at, r in outcomes):
                break
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(10)
    failed = [r for at, r in outcomes if at > killed and not isinstance(r, dict)]
    assert failed, "the kill was not noticed at all"
    recovered = [at for at, r in outcomes if at > killed and isinstance(r, dict)]
    assert recovered, f"no call succeeded after the failover; last: {outcomes[-3:]}\n{svc.log}"
    assert recovered[0] - killed <= RECOVERY_BOUND, f"recovered after {recovered[0] - killed:.1f} s"
    # The same service process answered before and after: nothing was restarted.
    assert svc.running
    assert {r["pid"] for _, r in outcomes if isinstance(r, dict)} == {svc.process.pid}
    # The new master is the former replica, and the service is registered there.
    new_master = redis.Redis(port=cluster.replica_port, decode_responses=True)
    assert new_master.info("replication")["role"] == "master"
    assert new_master.hget("daebus:service:failover", "pid") == str(svc.process.pid)
