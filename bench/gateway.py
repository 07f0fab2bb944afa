"""Gateway benchmark: an action call through the gateway against the
physical limit of the design.

    python bench/gateway.py [--requests 4000] [--connections 16] [--rounds 2]

Two stacks answer ``POST /api/services/echo/echo`` on one private
redis-server, both under gunicorn with the gateway's settings
(gateway.gunicorn_conf: its gthread-based worker, 1 worker, same threads):

* gateway:  the gateway app -> DaebusCaller -> Redis -> a daebus ``echo`` service;
* baseline: a minimal Flask app -> raw redis-py PUBLISH + one reply
  subscription -> Redis -> a raw redis-py echo loop.

Each round sends a bounded number of requests over ``--connections``
keep-alive connections (spread over client processes so the client's GIL
is not the limit) and prints throughput, p50 and p99 per stack, the ratios
(targets: throughput >= 0.8x, p99 <= 1.5x) and the gateway's memory
(arbiter + worker; target RSS <= 60 MB).

Then kept events: two gateways exposing 20 channels, one keeping their
recent broadcasts (``keep_events``, the default 100 per channel) and one not
(``keep_events = 0``), get the same traffic: 20 streams each, 100 broadcasts
per channel while the streams are away, the streams back with Last-Event-ID
(the one replays all 2000 events, the other answers with a gap), then live
broadcasts. Target: the keeping gateway's worker RSS within 5 MB of the
other's. ``--kept-only`` runs just this part.
"""

from __future__ import annotations

import os
import sys

# This file's folder must not be on the path: this module would shadow the
# gateway package, and the other benchmarks would shadow the stdlib.
BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:] = [ROOT, os.path.join(ROOT, "tests")] + [p for p in sys.path if os.path.abspath(p or ".") != BENCH]

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

PATH = "/api/services/echo/echo"
RAW_CHANNEL = "bench:rawecho"


# -- the raw stack -------------------------------------------------------------
def raw_echo(url: str) -> None:
    """The baseline's worker: answers every request on RAW_CHANNEL."""
    import redis

    client = redis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(RAW_CHANNEL)
    pubsub.get_message(timeout=5)  # the subscribe confirmation
    print("ready", flush=True)
    for message in pubsub.listen():
        if message["type"] != "message":
            continue
        request = json.loads(message["data"])
        client.publish(request["reply_to"], json.dumps({"id": request["id"], "payload": request["payload"]}))


def baseline_app(url: str):
    """A minimal Flask app doing the gateway's job with raw redis-py."""
    import queue

    import redis
    from flask import Flask, Response, request

    app = Flask("baseline")
    state: dict = {}
    lock = threading.Lock()

    def replies():
        # One reply subscription per process, started after gunicorn's fork.
        with lock:
            if state.get("pid") != os.getpid():
                client = redis.Redis.from_url(url)
                channel = f"bench:reply:{uuid.uuid4()}"
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(channel)
                pubsub.get_message(timeout=5)
                waiting: dict = {}

                def read():
                    for message in pubsub.listen():
                        if message["type"] == "message":
                            reply = json.loads(message["data"])
                            inbox = waiting.get(reply["id"])
                            if inbox is not None:
                                inbox.put(reply["payload"])

                threading.Thread(target=read, daemon=True).start()
                state.update(pid=os.getpid(), client=client, channel=channel, waiting=waiting)
        return state

    @app.post(PATH)
    def echo():
        hub = replies()
        payload = json.loads(request.get_data())
        request_id = uuid.uuid4().hex
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        hub["waiting"][request_id] = inbox
        try:
            hub["client"].publish(RAW_CHANNEL, json.dumps(
                {"id": request_id, "reply_to": hub["channel"], "payload": payload}))
            result = inbox.get(timeout=5)
        finally:
            hub["waiting"].pop(request_id, None)
        return Response(json.dumps({"result": result}), mimetype="application/json")

    return app


def serve_baseline(url: str, port: int) -> None:
    """gunicorn with every setting of gateway.gunicorn_conf, on ``port``."""
    from gunicorn.app.base import BaseApplication

    from gateway import gunicorn_conf

    class Baseline(BaseApplication):
        def load_config(self):
            for key, value in vars(gunicorn_conf).items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key, value)
            self.cfg.set("bind", [f"127.0.0.1:{port}"])

        def load(self):
            return baseline_app(url)

    Baseline().run()


# -- the load --------------------------------------------------------------------
def _client_process(port: int, connections: int, count: int, results) -> None:
    latencies: list[float] = []
    lock = threading.Lock()
    body = json.dumps({"msg": "hello", "n": 42}).encode()
    headers = {"Content-Type": "application/json", "Host": f"127.0.0.1:{port}"}

    def run(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        for _ in range(n):
            started = time.perf_counter()
            conn.request("POST", PATH, body, headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
            mine.append(time.perf_counter() - started)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(count // connections + (i < count % connections),))
               for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(latencies)


def load(port: int, requests: int, connections: int, processes: int) -> dict:
    results: multiprocessing.Queue = multiprocessing.Queue()
    per_proc = [connections // processes + (i < connections % processes) for i in range(processes)]
    counts = [requests * c // connections for c in per_proc]
    started = time.perf_counter()
    procs = [multiprocessing.Process(target=_client_process, args=(port, c, n, results))
             for c, n in zip(per_proc, counts, strict=True) if c]
    for proc in procs:
        proc.start()
    latencies = [x for _ in procs for x in results.get(timeout=600)]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    if len(latencies) != sum(counts):
        raise RuntimeError("some client process failed")
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000, "n": len(latencies)}


# -- kept events ---------------------------------------------------------------------
KEPT_CHANNELS = 20
KEPT_PER_CHANNEL = 100


def gateway_config(workdir: Path, redis_url: str, port: int, name: str, **gateway) -> Path:
    from gateway.settings import render

    config = workdir / f"{name}.toml"
    config.write_text(render(redis_url, {"bind": f"127.0.0.1:{port}", **gateway}).replace(
        "[gateway]", '[log]\nlevel = "warning"\n\n[gateway]'))
    return config


def start_gunicorn(config: Path):
    """A gateway as its unit runs it (``python3 -m gateway``) and its notify
    socket (READY=1 once the worker serves)."""
    from support import NotifySocket

    notify = NotifySocket()
    env = {**os.environ, "DAEBUS_CONFIG": str(config), "PYTHONPATH": ROOT, "NOTIFY_SOCKET": notify.path}
    env.pop("DAEBUS_REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=ROOT, env=env)
    return proc, notify


def read_stream(port: int, channel: str, last_event_id: str | None, messages: int) -> tuple[str, int]:
    """Open a stream, read ``messages`` broadcasts (or its first status when
    0); returns the last id seen and the broadcasts read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    query = f"channel={channel}" + (f"&last_event_id={last_event_id}" if last_event_id else "")
    conn.request("GET", "/api/events?" + query)
    response = conn.getresponse()
    last, seen = None, 0
    try:
        while True:
            line = response.readline().decode().rstrip("\n")
            if line.startswith("id: "):
                last = line[4:]
            elif line.startswith("event: status") and messages == 0:
                response.readline()  # its data line
                return last, 0
            elif line.startswith('data: {"channel"'):
                seen += 1
                if seen >= messages:
                    return last, seen
            elif line.startswith("event: gap") and last_event_id:
                return last, seen  # nothing kept here: the gap is the answer
    finally:
        conn.close()


def kept_memory(redis_url: str, workdir: Path) -> dict:
    """Worker RSS of a gateway keeping 20 channels' events and of one not."""
    from daebus.bus.bus import Bus
    from support import free_port

    ports = {"keeping": free_port(), "not keeping": free_port()}
    expose = {"expose_channels": ["bench.kept.*"]}
    configs = {"keeping": gateway_config(workdir, redis_url, ports["keeping"], "keeping", **expose),
               "not keeping": gateway_config(workdir, redis_url, ports["not keeping"], "plain",
                                             keep_events=0, **expose)}
    started = {name: start_gunicorn(config) for name, config in configs.items()}
    try:
        if not all(notify.wait_for("READY=1", 30) for _, notify in started.values()):
            raise RuntimeError("a gateway did not start")
        channels = [f"bench.kept.{i}" for i in range(KEPT_CHANNELS)]
        starts = {name: {c: read_stream(port, c, None, 0)[0] for c in channels} for name, port in ports.items()}
        publish = Bus.of(redis_url).keeper
        filler = "x" * 200
        t0 = time.perf_counter()
        for n in range(KEPT_PER_CHANNEL):
            for channel in channels:
                publish(channel, json.dumps({"n": n, "filler": filler}))
        kept_us = (time.perf_counter() - t0) * 1e6 / (KEPT_PER_CHANNEL * KEPT_CHANNELS)
        t0 = time.perf_counter()
        for n in range(KEPT_PER_CHANNEL * KEPT_CHANNELS):  # the same on a channel nobody keeps
            publish("bench.plain", json.dumps({"n": n, "filler": filler}))
        plain_us = (time.perf_counter() - t0) * 1e6 / (KEPT_PER_CHANNEL * KEPT_CHANNELS)
        # The gateway that keeps nothing gave no start id: any id gets its gap answer.
        replayed = {name: sum(read_stream(ports[name], c, starts[name][c] or "0-0", KEPT_PER_CHANNEL)[1]
                              for c in channels) for name in ports}
        if replayed["keeping"] != KEPT_CHANNELS * KEPT_PER_CHANNEL:
            raise RuntimeError(f"replayed {replayed['keeping']} events, expected "
                               f"{KEPT_CHANNELS * KEPT_PER_CHANNEL}")
        return {**{name: memory(proc.pid)["worker"]["rss"] for name, (proc, _) in started.items()},
                "kept_us": kept_us, "plain_us": plain_us}
    finally:
        for proc, notify in started.values():
            proc.terminate()
            proc.wait(15)
            notify.close()


# -- processes ---------------------------------------------------------------------
def memory(pid: int) -> dict:
    """RSS and PSS in MB of ``pid`` (the arbiter) and of its children (the worker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    result = {}
    for role, p in [("arbiter", pid)] + [("worker", int(c)) for c in children]:
        fields = {}
        for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                fields[name.lower()] = int(rest.split()[0]) / 1024
        result[role] = fields
    result["total"] = {k: sum(v[k] for v in result.values()) for k in ("rss", "pss")}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="requests per stack and round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kept-only", action="store_true", help="only measure the memory of kept events")
    parser.add_argument("--role", choices=["raw-echo", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "raw-echo":
        raw_echo(args.url)
        return 0
    if args.role == "baseline":
        serve_baseline(args.url, args.port)
        return 0

    from support import NotifySocket, RedisServer, Service, free_port

    redis_server = RedisServer().start()
    workdir = Path(tempfile.mkdtemp(prefix="daebus-bench-"))
    if args.kept_only:
        try:
            return report_kept(kept_memory(redis_server.url, workdir))
        finally:
            redis_server.close()
    gw_port, base_port = free_port(), free_port()
    config = workdir / "daebus.toml"
    config.write_text(f'[redis]\nurl = "{redis_server.url}"\n[log]\nlevel = "warning"\n'
                      f'[gateway]\nbind = "127.0.0.1:{gw_port}"\nexpose_actions = ["echo/*"]\n')
    env = {**os.environ, "DAEBUS_CONFIG": str(config), "PYTHONPATH": ROOT}
    env.pop("DAEBUS_REDIS_URL", None)
    procs: list[subprocess.Popen] = []
    echo = None
    try:
        echo = Service("gateway_echo.py", redis_server.url, "echo",
                       env={"DAEBUS_LOG_LEVEL": "warning"})
        gw_notify, base_notify = NotifySocket(), NotifySocket()
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            cwd=ROOT, env={**env, "NOTIFY_SOCKET": gw_notify.path})
        procs.append(gateway)
        raw = subprocess.Popen([sys.executable, __file__, "--role", "raw-echo", "--url", redis_server.url],
                               env=env, stdout=subprocess.PIPE, text=True)
        procs.append(raw)
        baseline = subprocess.Popen(
            [sys.executable, __file__, "--role", "baseline", "--url", redis_server.url,
             "--port", str(base_port)], cwd=ROOT, env={**env, "NOTIFY_SOCKET": base_notify.path})
        procs.append(baseline)
        if not (gw_notify.wait_for("READY=1", 30) and base_notify.wait_for("READY=1", 30)):
            raise RuntimeError("a gunicorn did not start")
        if raw.stdout.readline().strip() != "ready":
            raise RuntimeError("the raw echo loop did not start")

        for port in (gw_port, base_port):  # warm-up: connections, pools, code paths
            load(port, 400, args.connections, args.processes)
        rounds = {"gateway": [], "baseline": []}
        for _ in range(args.rounds):
            rounds["gateway"].append(load(gw_port, args.requests, args.connections, args.processes))
            rounds["baseline"].append(load(base_port, args.requests, args.connections, args.processes))
        mem = memory(gateway.pid)
        kept = kept_memory(redis_server.url, workdir)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(15)
        if echo is not None:
            echo.close()
        redis_server.close()

    def mean(name, key):
        return statistics.mean(r[key] for r in rounds[name])

    print(f"{args.rounds} round(s) x {args.requests} requests, {args.connections} connections, "
          f"{os.cpu_count()} CPU(s), {sys.version.split()[0]}")
    for name in ("gateway", "baseline"):
        for i, r in enumerate(rounds[name], 1):
            print(f"  {name:8s} round {i}: {r['rps']:7.0f} req/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms")
    ratio_rps = mean("gateway", "rps") / mean("baseline", "rps")
    ratio_p99 = mean("gateway", "p99") / mean("baseline", "p99")
    print(f"gateway : {mean('gateway', 'rps'):7.0f} req/s  p50 {mean('gateway', 'p50'):6.2f} ms  "
          f"p99 {mean('gateway', 'p99'):6.2f} ms")
    print(f"baseline: {mean('baseline', 'rps'):7.0f} req/s  p50 {mean('baseline', 'p50'):6.2f} ms  "
          f"p99 {mean('baseline', 'p99'):6.2f} ms")
    print(f"throughput ratio {ratio_rps:.2f}x (target >= 0.8)   p99 ratio {ratio_p99:.2f}x (target <= 1.5)")
    rss, pss = mem["total"]["rss"], mem["total"]["pss"]
    print(f"gateway memory (arbiter + worker): RSS {rss:.1f} MB (target <= 60), PSS {pss:.1f} MB")
    print("  " + ", ".join(f"{role} RSS {m['rss']:.1f} MB / PSS {m['pss']:.1f} MB"
                           for role, m in mem.items() if role != "total"))
    ok = ratio_rps >= 0.8 and ratio_p99 <= 1.5 and rss <= 60 and report_kept(kept) == 0
    print("targets met" if ok else "targets NOT met")
    return 0 if ok else 1


def report_kept(rss: dict) -> int:
    delta = rss["keeping"] - rss["not keeping"]
    print(f"kept events, {KEPT_CHANNELS} channels x {KEPT_PER_CHANNEL} replayed: worker RSS "
          f"{rss['keeping']:.1f} MB keeping, {rss['not keeping']:.1f} MB not keeping, "
          f"difference {delta:+.1f} MB (target <= 5)")
    print(f"a broadcast from one thread: {rss['kept_us']:.0f} us kept (script), "
          f"{rss['plain_us']:.0f} us not kept (PUBLISH)")
    return 0 if delta <= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
