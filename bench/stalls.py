"""Stall benchmark: action calls through the gateway while clients stall, gateway worker against stock gthread.

    python bench/stalls.py [--slow 100] [--streams 24] [--seconds 6]

Two gateways run on one private redis-server with the same settings, one
with the gateway's worker (gateway.gunicorn_conf) and one with gunicorn's
stock ``gthread`` worker (the baseline). Against each, in turn:

* slowloris: ``--slow`` connections send a request head a byte every 0.5 s;
* stalled streams: ``--streams`` event streams that never read while 100
  broadcasts a second flow;

and meanwhile one client makes action calls on fresh connections for
``--seconds`` (each call gives up after 5 s). Printed per gateway and
attack: calls made, p50, p99 and the calls that failed or timed out. The
target (the gateway's bound): p99 under 100 ms and no failed call.
"""

from __future__ import annotations

import os
import sys

# This file's folder must not be on the path (see bench/gateway.py).
BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:] = [ROOT, os.path.join(ROOT, "tests")] + [p for p in sys.path if os.path.abspath(p or ".") != BENCH]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

PATH = "/api/services/stallecho/echo"


def call(port: int) -> float | None:
    """One action call on a fresh connection: seconds, or None when it failed."""
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", PATH, body=b"{}", headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
    except OSError:
        return None
    return time.perf_counter() - started if resp.status == 200 else None


def calls_for(port: int, seconds: float) -> list[float | None]:
    results = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        results.append(call(port))
        time.sleep(0.01)
    return results


def summary(results: list[float | None]) -> str:
    done = sorted(r for r in results if r is not None)
    failed = len(results) - len(done)
    if not done:
        return f"{len(results):4d} calls, all failed"
    p50, p99 = done[len(done) // 2], done[max(0, int(len(done) * 0.99) - 1)]
    return (f"{len(results):4d} calls  p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
            f"failed {failed}")


def slowloris(port: int, count: int, seconds: float) -> list[float | None]:
    from stall_harness import Slowloris

    attack = Slowloris(port, count).start()
    try:
        return calls_for(port, seconds)
    finally:
        attack.close()


def stalled_streams(port: int, count: int, seconds: float, redis_url: str) -> list[float | None]:
    import redis

    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET /api/events?channel=bench.flood HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"Accept: text/event-stream\r\n\r\n".encode())
        socks.append(sock)
    stop = threading.Event()
    client = redis.Redis.from_url(redis_url)
    payload = json.dumps({"text": "x" * 2000})

    def flood():
        while not stop.wait(0.01):
            client.publish("bench.flood", payload)

    publisher = threading.Thread(target=flood, daemon=True)
    publisher.start()
    try:
        return calls_for(port, seconds)
    finally:
        stop.set()
        publisher.join(5)
        for sock in socks:
            sock.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=100, help="slowloris connections")
    parser.add_argument("--streams", type=int, default=24, help="event streams that never read")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds of calls per attack")
    args = parser.parse_args()

    from support import NotifySocket, RedisServer, Service, free_port

    workdir = Path(tempfile.mkdtemp(prefix="daebus-bench-"))
    results: dict[str, dict[str, list]] = {}
    with contextlib.ExitStack() as cleanup:
        redis_server = RedisServer().start()
        cleanup.callback(redis_server.close)
        echo = Service("gateway_echo.py", redis_server.url, "stallecho", env={"DAEBUS_LOG_LEVEL": "warning"})
        cleanup.callback(echo.close)
        ports = {}
        for name, extra in (("gateway worker", []), ("stock gthread", ["--worker-class", "gthread"])):
            port = ports[name] = free_port()
            config = workdir / f"{port}.toml"
            config.write_text(f'[redis]\nurl = "{redis_server.url}"\n[log]\nlevel = "error"\n'
                              f'[gateway]\nbind = "127.0.0.1:{port}"\nexpose_actions = ["stallecho/*"]\n'
                              f'expose_channels = ["bench.*"]\nhead_timeout = 3.0\nsend_timeout = 2.0\n')
            notify = NotifySocket()
            env = {**os.environ, "DAEBUS_CONFIG": str(config), "PYTHONPATH": ROOT, "NOTIFY_SOCKET": notify.path}
            env.pop("DAEBUS_REDIS_URL", None)
            gunicorn = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:gateway.gunicorn_conf",
                                         *extra, "gateway.wsgi:app"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
            cleanup.callback(gunicorn.wait, 15)
            cleanup.callback(gunicorn.terminate)
            if not notify.wait_for("READY=1", 30):
                raise RuntimeError(f"the {name} gateway did not start")
            calls_for(port, 0.5)  # warm-up
        for name, port in ports.items():
            results[name] = {
                "idle": calls_for(port, 2),
                f"{args.slow} slowloris": slowloris(port, args.slow, args.seconds),
                f"{args.streams} stalled streams": stalled_streams(port, args.streams, args.seconds,
                                                                   redis_server.url),
            }

    print(f"action calls on fresh connections, {args.seconds:g} s per attack, {os.cpu_count()} CPU(s)")
    ok = True
    for name, phases in results.items():
        for phase, outcome in phases.items():
            print(f"  {name:15s} {phase:20s} {summary(outcome)}")
        if name == "gateway worker":
            done = [r for phase in phases.values() for r in phase]
            ok = None not in done and sorted(done)[max(0, int(len(done) * 0.99) - 1)] < 0.1
    print("targets met" if ok else "targets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
