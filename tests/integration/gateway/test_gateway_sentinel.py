"""The gateway behind Redis Sentinel: the master is SIGKILLed while a page calls."""

import threading
import time

import requests

from support import FAILOVER_BOUND as RECOVERY_BOUND


def test_gateway_serves_again_after_a_failover_without_a_restart(sentinel_cluster, service, start_gateway):
    worker = service("member.py", "steady", url=sentinel_cluster.url)
    gw = start_gateway({"expose_actions": ["steady/*"], "default_timeout": 2.0}, url=sentinel_cluster.url)
    gateway_pid = gw.process.pid
    outcomes: list[tuple[float, int]] = []
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            try:
                status = gw.post("/api/services/steady/whoami", {}, timeout=5).status_code
            except requests.RequestException:
                status = 0
            outcomes.append((time.monotonic(), status))
            stop.wait(0.1)   # the pace of the traffic, not a synchronisation

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not any(status == 200 for _, status in outcomes) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(status == 200 for _, status in outcomes), outcomes[-3:]
        sentinel_cluster.master.stop(kill=True)
        killed = time.monotonic()
        deadline = killed + RECOVERY_BOUND + 5
        while time.monotonic() < deadline:
            if any(status == 200 and at > killed + 0.5 for at, status in outcomes):
                break
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(10)
    assert any(status != 200 for at, status in outcomes if at > killed), "the kill was not noticed"
    recovered = [at for at, status in outcomes if at > killed and status == 200]
    assert recovered, f"the gateway never answered 200 again; last: {outcomes[-3:]}\n{gw.log[-2000:]}"
    assert recovered[0] - killed <= RECOVERY_BOUND, f"recovered after {recovered[0] - killed:.1f} s"
    # Neither the gateway nor the worker was restarted.
    assert gw.running and gw.process.pid == gateway_pid and worker.running
    assert gw.get("/api/health").json()["redis"] == "up"
