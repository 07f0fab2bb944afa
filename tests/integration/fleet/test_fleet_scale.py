"""A fleet: 20 boxes (each its own redis-server, bridge and worker) and 300
simulated devices on one broker."""

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from daebus.fleet import FleetCaller
from fleet_harness import BridgeProcess, Listener, wait_online
from support import ROOT, RedisServer, Service, default_signals

BOXES, SIMULATED = 20, 300
KEEPALIVE = 5


@pytest.fixture
def fleet_of_320(broker):
    redis_servers, workers, bridges, devices = [], [], [], None
    try:
        with ThreadPoolExecutor(4) as pool:
            redis_servers = list(pool.map(lambda _: RedisServer().start(), range(BOXES)))
            workers = list(pool.map(lambda r: Service("basic.py", r.url, "basic"), redis_servers))
            bridges = list(pool.map(
                lambda i: BridgeProcess(redis_servers[i].url, broker.url, device=f"box-{i:02d}",
                                        call_actions=["basic/echo"], keepalive=KEEPALIVE, groups=["boxes"]),
                range(BOXES)))
        devices = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fleet_devices.py"), broker.url, "test",
                                    str(SIMULATED)], stdout=subprocess.PIPE, text=True, preexec_fn=default_signals)
        assert devices.stdout.readline().strip() == "READY"
        for i in range(BOXES):
            wait_online(broker, "test", f"box-{i:02d}")
        yield bridges
    finally:
        if devices is not None:
            devices.kill()
            devices.wait(10)
        for process in [*bridges, *workers]:
            process.close()
        for server in redis_servers:
            server.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_status_call_all_and_a_killed_bridge_across_320_devices(broker, fleet_of_320):
    bridges = fleet_of_320
    status = subprocess.run([sys.executable, "-m", "daebus.cli", "fleet", "status", "--json", "--broker", broker.url,
                             "--fleet", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    states = [json.loads(line) for line in status.stdout.splitlines()]
    assert len(states) == BOXES + SIMULATED and all(s["online"] for s in states)

    with FleetCaller(broker.url, "test") as fleet:
        started = time.monotonic()
        outcomes = list(fleet.call("all", "basic", "echo", {"n": 1}, timeout=20))
        took = time.monotonic() - started
        assert len(outcomes) == BOXES + SIMULATED
        assert [o.device for o in outcomes if not o.ok] == []
        assert len({o.device for o in outcomes}) == BOXES + SIMULATED
        assert took < 20
        boxes = list(fleet.call("group:boxes", "basic", "echo", {}, timeout=20))
        assert sorted(o.device for o in boxes if o.ok) == [f"box-{i:02d}" for i in range(BOXES)]
    print(f"fleet call all over {len(outcomes)} devices: {took:.2f} s")

    listener = Listener(broker, "daebus/test/box-07/state").wait_subscribed()
    assert listener.json(10)[1]["online"] is True
    killed = time.monotonic()
    bridges[7].process.send_signal(signal.SIGKILL)
    topic, state = listener.json(timeout=1.5 * KEEPALIVE + 2)
    assert state == {"online": False, "device": "box-07"}
    assert time.monotonic() - killed <= 1.5 * KEEPALIVE
    listener.close()
