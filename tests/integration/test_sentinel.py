"""Redis Sentinel: a master, a replica and three sentinels from Debian's
redis-sentinel on loopback; the master is SIGKILLed under traffic."""

import threading
import time

import redis

from daebus import DaebusCaller
from support import FAILOVER_BOUND as RECOVERY_BOUND


def test_failover_under_traffic_recovers_without_restarting_anything(sentinel_cluster, service):
    svc = service("member.py", "failover", url=sentinel_cluster.url)
    outcomes: list[tuple[float, object]] = []
    stop = threading.Event()

    def traffic():
        with DaebusCaller("failover", redis_url=sentinel_cluster.url, timeout=2) as caller:
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
        sentinel_cluster.master.stop(kill=True)
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
    new_master = redis.Redis(port=sentinel_cluster.replica_port, decode_responses=True)
    assert new_master.info("replication")["role"] == "master"
    assert new_master.hget("daebus:service:failover", "pid") == str(svc.process.pid)
