"""A master that freezes rather than dies (SIGSTOP, DEBUG SLEEP): a caller
loop and a gateway call loop serve again soon after Sentinel promotes the
replica, a page is told the Redis was lost and is back, and no request is
handled or answered twice, also once the old master wakes up."""

import json
import os
import signal
import socket
import threading
import time

import pytest
import redis
import requests

from daebus import DaebusCaller
from support import wait_until

# From the promotion until both loops are served again: the bound docs/failover.md gives.
SERVED_AGAIN_WITHIN = 10.0


class Loops:
    """A DaebusCaller loop and a gateway call loop, each one call at a time."""

    def __init__(self, url: str, gw):
        self.url, self.gw = url, gw
        self.stop = threading.Event()
        self.outcomes: dict[str, list[tuple[float, object]]] = {"caller": [], "gateway": []}
        self.threads = [threading.Thread(target=self._caller), threading.Thread(target=self._gateway)]
        for thread in self.threads:
            thread.start()

    def _caller(self):
        with DaebusCaller("frozen", redis_url=self.url, timeout=2) as caller:
            while not self.stop.is_set():
                try:
                    result = caller.send_request("record", {})
                except Exception as exc:  # noqa: BLE001 - failures during the failover are expected
                    result = exc
                self.outcomes["caller"].append((time.monotonic(), result))
                self.stop.wait(0.1)   # the pace of the traffic, not a synchronisation

    def _gateway(self):
        while not self.stop.is_set():
            try:
                response = self.gw.post("/api/services/frozen/record", {}, timeout=5)
                result = response.json()["result"] if response.status_code == 200 else response.status_code
            except (requests.RequestException, ValueError) as exc:
                result = exc
            self.outcomes["gateway"].append((time.monotonic(), result))
            self.stop.wait(0.1)

    def _page(self):
        # Blocked reads end at heartbeats (1 s) or at close(), which the test's end does.
        try:
            while (event := self.page.next_event(30)) is not None:
                if event["event"] == "status":
                    self.statuses.append((time.monotonic(), json.loads(event["data"])["redis"]))
        except (OSError, ValueError, AttributeError):
            pass

    def watch(self, page) -> None:
        """Record the status events ``page`` (an open stream) is sent."""
        self.page, self.statuses = page, []
        self.threads.append(threading.Thread(target=self._page, daemon=True))
        self.threads[-1].start()

    def served_since(self, since: float) -> dict[str, float | None]:
        return {name: next((at for at, r in list(results) if at > since and isinstance(r, dict)), None)
                for name, results in self.outcomes.items()}

    def wait_served(self, since: float, timeout: float) -> dict[str, float | None]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            served = self.served_since(since)
            if all(served.values()):
                return served
            time.sleep(0.1)
        return self.served_since(since)

    def close(self):
        self.stop.set()
        if self.threads[2:]:
            self.page.conn.sock.shutdown(socket.SHUT_RDWR)   # wakes the page's read at once
        for thread in self.threads:
            thread.join(10)


def _wait_promotion(cluster, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.master_port() == cluster.replica_port:
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError("the sentinels never promoted the replica")


def _sigstop(cluster):
    pid = cluster.master.process.pid
    os.kill(pid, signal.SIGSTOP)
    return 60.0, lambda: os.kill(pid, signal.SIGCONT)


def _debug_sleep(cluster):
    client = redis.Redis(port=cluster.master.port, socket_timeout=None)
    thread = threading.Thread(target=lambda: client.execute_command("DEBUG", "SLEEP", "30"), daemon=True)
    thread.start()
    return 30.0, lambda: thread.join(10)


@pytest.mark.parametrize("freeze, mode", [(_sigstop, "owner"), (_debug_sleep, "owner"), (_debug_sleep, "group")],
                         ids=["sigstop-60s", "debug-sleep-30s", "debug-sleep-30s-group"])
def test_calls_survive_a_master_that_freezes(sentinel_cluster, service, start_gateway, tmp_path, freeze, mode):
    handled = tmp_path / "handled"
    svc = service("member.py", "frozen", url=sentinel_cluster.url,
                  env={"MEMBER_LOG": str(handled), "DAEBUS_SERVICE_MODE": mode})
    gw = start_gateway({"expose_actions": ["frozen/*"], "expose_channels": ["frozen.*"], "default_timeout": 2.0,
                        "heartbeat": 1.0}, url=sentinel_cluster.url)
    loops = Loops(sentinel_cluster.url, gw)
    try:
        started = loops.wait_served(0, 10)
        assert all(started.values()), "no call worked before the freeze"
        page = gw.events("frozen.news")
        page.wait_status("up")
        loops.watch(page)
        frozen_at = time.monotonic()
        length, wake = freeze(sentinel_cluster)
        promoted = _wait_promotion(sentinel_cluster, 20)
        served = loops.wait_served(promoted, SERVED_AGAIN_WITHIN + 5)
        late = {name: None if at is None else round(at - promoted, 1) for name, at in served.items()}
        try:
            wait_until(lambda: any(at > promoted and state == "up" for at, state in list(loops.statuses)),
                       SERVED_AGAIN_WITHIN + 5)
        except AssertionError:
            pass   # the assertions below say what the page heard
        statuses = [(round(at - promoted, 1), state) for at, state in list(loops.statuses)]
        print(f"promoted {promoted - frozen_at:.1f} s after the freeze; served again {late} s after it; "
              f"the page's status events at {statuses} s")
        assert all(at is not None and at - promoted <= SERVED_AGAIN_WITHIN for at in served.values()), \
            f"served again at {late} s after the promotion ({promoted - frozen_at:.1f} s after the freeze)\n" \
            f"{svc.log[-1500:]}\n{gw.log[-1500:]}"
        # docs/failover.md: the page hears "down", then "up" once the gateway's hub follows the new master.
        assert [state for _, state in statuses][-2:] == ["down", "up"], statuses
        assert statuses[-1][0] <= SERVED_AGAIN_WITHIN, statuses
        # The old master wakes (and is made a replica): nothing it held comes back as a second answer.
        time.sleep(max(0.0, frozen_at + length - time.monotonic()))   # the freeze's own length
        wake()
        woke = time.monotonic()
        assert all(loops.wait_served(woke, 10).values()), "calls failed once the old master woke"
        time.sleep(2)   # traffic after the wake-up, for the old master's backlog to show itself
    finally:
        loops.close()
    answers = [r["request_id"] for results in loops.outcomes.values() for _, r in results if isinstance(r, dict)]
    assert len(answers) == len(set(answers)), "a reply was given to two calls"
    ids = [line.split()[0] for line in handled.read_text().splitlines()]
    assert len(ids) == len(set(ids)), "a request was handled twice"
    assert set(answers) <= set(ids)
    assert svc.running and gw.running
