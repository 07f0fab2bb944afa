"""Benchmark: a ``/ping`` route on DaebusHttp against Flask on gunicorn (gthread).

Both servers run as subprocesses in the same run and are driven the same
way: 16 keep-alive connections (one client thread each, http.client), a
fixed number of requests, latencies measured per request. Rounds alternate
between the servers so background noise hits both.

Targets: DaebusHttp p99 latency no worse than gunicorn's, and throughput at
least 0.7x gunicorn's.

Usage::

    .venv/bin/python bench/http.py [--requests 20000] [--connections 16] [--rounds 3]

Needs redis-server (the Daebus app runs for real, with ``app.run()``),
Flask and gunicorn.
"""

import os
import sys

# This file is named like the standard library's http package; drop its
# folder from the path so "import http.client" finds the real one.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import http.client  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

DAEBUS_APP = """
import logging, sys
from daebus import Daebus, DaebusHttp
logging.basicConfig(level=logging.WARNING)
app = Daebus("bench-http")
app.attach(DaebusHttp(port=int(sys.argv[1]), threads=16))

@app.route("/ping")
def ping(req):
    return {"pong": True}

app.run(service="bench-http", redis_url=sys.argv[2])
"""

FLASK_APP = """
from flask import Flask
app = Flask(__name__)

@app.route("/ping")
def ping():
    return {"pong": True}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before listening on {port}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.05)  # polling a foreign process's port: there is no event to wait on
    raise SystemExit(f"nothing answered on port {port} within {timeout} s")


def drive(port: int, connections: int, requests: int, warmup: int) -> dict:
    """Send ``requests`` GET /ping over ``connections`` keep-alive connections."""
    per_conn = [requests // connections + (i < requests % connections) for i in range(connections)]
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors: list[str] = []
    start = threading.Barrier(connections + 1)

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for _ in range(warmup):
                conn.request("GET", "/ping")
                conn.getresponse().read()
            start.wait()
            record = latencies[index].append
            clock = time.perf_counter
            for _ in range(per_conn[index]):
                t0 = clock()
                conn.request("GET", "/ping")
                resp = conn.getresponse()
                resp.read()
                record(clock() - t0)
                if resp.status != 200:
                    errors.append(f"status {resp.status}")
        except Exception as exc:  # noqa: BLE001 - report, don't hide, a failed client
            errors.append(repr(exc))
            start.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    samples = sorted(x for part in latencies for x in part)
    if errors or not samples:
        raise SystemExit(f"benchmark clients failed: {errors[:5]}")
    return {"p50": samples[len(samples) // 2], "p99": samples[int(len(samples) * 0.99) - 1],
            "rps": len(samples) / wall, "n": len(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per server per round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests per connection")
    args = parser.parse_args()

    redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    if not gunicorn.exists():
        gunicorn = Path(shutil.which("gunicorn") or "gunicorn")
    work = Path(tempfile.mkdtemp(prefix="daebus-bench-"))
    (work / "bench_flask_ping.py").write_text(FLASK_APP)
    redis_port, daebus_port, gunicorn_port = free_port(), free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DAEBUS_CONFIG": "/nonexistent/daebus.toml"}
    procs = []
    try:
        procs.append(subprocess.Popen(
            [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            [sys.executable, "-c", DAEBUS_APP, str(daebus_port), f"redis://127.0.0.1:{redis_port}/0"],
            env=env))
        procs.append(subprocess.Popen(
            [str(gunicorn), "-k", "gthread", "-w", "1", "--threads", "16", "--log-level", "warning",
             "-b", f"127.0.0.1:{gunicorn_port}", "--chdir", str(work), "bench_flask_ping:app"], env=env))
        wait_port(daebus_port, procs[1])
        wait_port(gunicorn_port, procs[2])

        results: dict[str, list[dict]] = {"daebus": [], "gunicorn": []}
        for round_no in range(1, args.rounds + 1):
            for name, port in (("daebus", daebus_port), ("gunicorn", gunicorn_port)):
                r = drive(port, args.connections, args.requests, args.warmup)
                results[name].append(r)
                print(f"round {round_no} {name:9s} p50 {r['p50'] * 1e3:6.2f} ms  "
                      f"p99 {r['p99'] * 1e3:6.2f} ms  {r['rps']:8.0f} req/s  ({r['n']} requests)")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)

    med = {name: {k: statistics.median(r[k] for r in rs) for k in ("p50", "p99", "rps")}
           for name, rs in results.items()}
    d, g = med["daebus"], med["gunicorn"]
    print(f"\nmedian over {args.rounds} round(s), {args.connections} keep-alive connections:")
    for name, m in med.items():
        print(f"  {name:9s} p50 {m['p50'] * 1e3:6.2f} ms  p99 {m['p99'] * 1e3:6.2f} ms  {m['rps']:8.0f} req/s")
    p99_ratio, rps_ratio = d["p99"] / g["p99"], d["rps"] / g["rps"]
    print(f"  p99 ratio daebus/gunicorn {p99_ratio:.2f} (target <= 1.00): "
          f"{'met' if p99_ratio <= 1 else 'MISSED'}")
    print(f"  throughput ratio daebus/gunicorn {rps_ratio:.2f} (target >= 0.70): "
          f"{'met' if rps_ratio >= 0.7 else 'MISSED'}")


if __name__ == "__main__":
    main()
