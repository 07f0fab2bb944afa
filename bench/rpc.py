"""Request/reply through daebus against a raw redis-py pub/sub echo.

Both run in the same run of this script on one private redis-server: the raw echo
is the physical limit of this design (one PUBLISH each way, one subscriber
connection each side). Prints median/p99 latency of sequential calls, req/s
with 1, 8 and 32 caller threads, the ratios, and the daebus service's RSS.
Then the same echo action with a small payload schema against the one
without, to show what checking a contract costs; and a service with its
counters on, called with a request id, against one with ``metrics = false``
called without, to show what observability costs; and a group-mode service
against a raw redis-py XADD/XREADGROUP/XACK echo.

    .venv/bin/python bench/rpc.py [--calls 2000]

Targets: median latency within 1.3x raw; throughput at 32 callers >= 0.8x raw;
service RSS < 40 MB; an action with a small schema at most 1.2x the cost of
the same action without; counters and request ids cost at most 3% of the
throughput at 32 callers; group mode's median within 1.3x the raw stream echo.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
# bench/http.py would shadow the standard library's http package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from daebus.bus.localredis import RedisServer  # noqa: E402

RAW_SERVER = """
import json, sys, redis
client = redis.Redis.from_url(sys.argv[1])
pubsub = client.pubsub(ignore_subscribe_messages=True)
pubsub.subscribe("raw_echo")
print("ready", flush=True)
for message in pubsub.listen():
    request = json.loads(message["data"])
    client.publish(request["reply_to"], json.dumps(
        {"status": "success", "payload": request["payload"], "request_id": request["request_id"], "final": True}))
"""

RAW_STREAM_SERVER = """
import json, sys, redis
client = redis.Redis.from_url(sys.argv[1])
client.xgroup_create("raw_stream", "g", id="0", mkstream=True)
print("ready", flush=True)
while True:
    for _, entries in client.xreadgroup("g", "c", {"raw_stream": ">"}, count=32, block=5000) or []:
        for entry_id, fields in entries:
            request = json.loads(fields[b"request"])
            # The reply and its acknowledgement in one round trip.
            pipe = client.pipeline(transaction=False)
            pipe.publish(request["reply_to"], json.dumps({"status": "success", "payload": request["payload"],
                                                          "request_id": request["request_id"], "final": True}))
            pipe.xack("raw_stream", "g", entry_id)
            pipe.execute()
"""

DAEBUS_SERVER = """
import sys
from daebus import Daebus, request
app = Daebus("bench", max_workers=int(sys.argv[2]), mode=sys.argv[5] if len(sys.argv) > 5 else None)

@app.action("echo")
def echo():
    return request.payload

@app.action("echo_checked", schema={"type": "object", "required": ["i"],
            "properties": {"i": {"type": "integer", "minimum": 0}}, "additionalProperties": False})
def echo_checked():
    return request.payload

app.run(service=sys.argv[3] if len(sys.argv) > 3 else "daebus_echo", redis_url=sys.argv[1],
        metrics=sys.argv[4] != "off" if len(sys.argv) > 4 else True)
"""


class RawCaller:
    """One reply subscription per thread; the calling thread reads it itself."""

    def __init__(self, url):
        self.client = redis.Redis.from_url(url)
        self.local = threading.local()

    def call(self, payload, send=None):
        local = self.local
        if not hasattr(local, "pubsub"):
            local.channel = f"caller:{uuid.uuid4()}"
            local.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            local.pubsub.subscribe(local.channel)
            local.pubsub.get_message(timeout=5)
        rid = uuid.uuid4().hex
        (send or (lambda m: self.client.publish("raw_echo", m)))(json.dumps(
            {"action": "echo", "payload": payload, "reply_to": local.channel, "request_id": rid}))
        while True:
            message = local.pubsub.get_message(timeout=5)
            if message is None:
                raise TimeoutError("raw echo did not answer")
            reply = json.loads(message["data"])
            if reply["request_id"] == rid:
                return reply["payload"]


def start(code, *args, ready="ready"):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DAEBUS_CONFIG": "/nonexistent"}
    if ready == "notify":
        path = os.path.join(tempfile.mkdtemp(), "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(30)
        env["NOTIFY_SOCKET"] = path
        proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stderr=subprocess.DEVNULL)
        while b"READY=1" not in sock.recv(1024):
            pass
        sock.close()
        return proc
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()
    return proc


def latencies(calls, n):
    """Sequential calls, the sides taking turns call by call so that noise on
    this shared machine hits both alike; (median, p99) per side."""
    samples = [[] for _ in calls]
    for i in range(n):
        for call, out in zip(calls, samples):
            t0 = time.perf_counter()
            call({"i": i})
            out.append(time.perf_counter() - t0)
    result = []
    for out in samples:
        out.sort()
        result.append((statistics.median(out), out[int(len(out) * 0.99) - 1]))
    return result


def throughput(call, threads, total):
    per_thread = total // threads
    barrier = threading.Barrier(threads + 1)

    def work():
        barrier.wait()
        for i in range(per_thread):
            call({"i": i})

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    return per_thread * threads / (time.perf_counter() - t0)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def schema_costs(caller, args):
    """The same echo with and without a payload schema: latency paired call
    by call, throughput with 8 callers of each at once (noise hits both)."""
    plain = lambda p: caller.send_request("echo", p)  # noqa: E731
    checked = lambda p: caller.send_request("echo_checked", p)  # noqa: E731
    latencies([plain, checked], 300)
    medians = {"plain": [], "checked": []}
    counts = {"plain": [], "checked": []}
    for _ in range(args.rounds):
        (m_plain, _), (m_checked, _) = latencies([plain, checked], args.calls)
        medians["plain"].append(m_plain)
        medians["checked"].append(m_checked)
        for name, count in side_by_side({"plain": plain, "checked": checked}, 8, args.seconds).items():
            counts[name].append(count)
    med = {k: min(v) for k, v in medians.items()}
    ratios = sorted(p / c for p, c in zip(counts["plain"], counts["checked"]))
    rate = {k: sum(v) / (args.seconds * len(v)) for k, v in counts.items()}
    print(f"{'':12}{'no schema':>14}{'schema':>12}{'ratio':>9}")
    print(f"{'median ms':12}{med['plain'] * 1e3:14.3f}{med['checked'] * 1e3:12.3f}"
          f"{med['checked'] / med['plain']:8.2f}x  (target <= 1.2x)")
    print(f"{'req/s x8+8':12}{rate['plain']:14.0f}{rate['checked']:12.0f}"
          f"{rate['plain'] / rate['checked']:8.2f}x  (cost, both at once; rounds {ratios[0]:.2f} to "
          f"{ratios[-1]:.2f}; target <= 1.2x)")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def side_by_side(calls: dict, threads: int, seconds: float) -> dict:
    """Run ``threads`` callers of every side at once for ``seconds``: the
    machine's noise then hits all sides alike. Calls completed per side."""
    stop = threading.Event()
    barrier = threading.Barrier(threads * len(calls) + 1)
    done = {name: [0] * threads for name in calls}

    def work(name, index):
        call = calls[name]
        barrier.wait()
        i = 0
        while not stop.is_set():
            call({"i": i})
            i += 1
        done[name][index] = i

    pool = [threading.Thread(target=work, args=(name, i)) for name in calls for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    return {name: sum(counts) for name, counts in done.items()}


def observability_cost(server, args, observed_pid: int):
    """A service with its counters on, called with a request id, against one
    with ``metrics = false`` called without: 32 callers each, both at once
    (turns taken one after the other swing by 2x on a busy machine), and the
    services' own CPU time per call."""
    from daebus import DaebusCaller

    plain_proc = start(DAEBUS_SERVER, server.url, "32", "daebus_echo_plain", "off", ready="notify")
    try:
        observed = DaebusCaller("daebus_echo", redis_url=server.url, timeout=10)
        plain = DaebusCaller("daebus_echo_plain", redis_url=server.url, timeout=10)
        calls = {"on": lambda p: observed.send_request("echo", p, trace_id=f"bench-{p['i']:08d}"),
                 "off": lambda p: plain.send_request("echo", p)}
        pids = {"on": observed_pid, "off": plain_proc.pid}
        latencies(list(calls.values()), 300)
        counts = {name: [] for name in calls}
        cpu = dict.fromkeys(calls, 0.0)
        for _ in range(args.rounds * 2):
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            for name, count in side_by_side(calls, 32, args.seconds).items():
                counts[name].append(count)
                cpu[name] += cpu_seconds(pids[name]) - before[name]
        ratios = sorted(on / off for on, off in zip(counts["on"], counts["off"]))
        total = {name: sum(c) for name, c in counts.items()}
        per_call = {name: cpu[name] / total[name] * 1e6 for name in calls}
        rate = {name: total[name] / (args.seconds * len(counts[name])) for name in calls}
        print(f"{'':12}{'metrics off':>14}{'on + id':>12}{'ratio':>9}")
        print(f"{'req/s x32':12}{rate['off']:14.0f}{rate['on']:12.0f}{total['on'] / total['off']:8.2f}x"
              f"  (both at once; rounds {ratios[0]:.2f} to {ratios[-1]:.2f}; target >= 0.97x)")
        print(f"{'service CPU':12}{per_call['off']:11.0f} us{per_call['on']:9.0f} us"
              f"{per_call['on'] / per_call['off']:8.2f}x  per call")
    finally:
        plain_proc.terminate()
        plain_proc.wait(10)


def compare(names, calls, args):
    """Paired medians and alternating throughput runs; the best of each is kept."""
    latencies(calls, 300)  # warm up connections and code paths
    results = {name: {"median": [], "p99": [], 1: [], 8: [], 32: []} for name in names}
    for _ in range(args.rounds):
        for name, (med, p99) in zip(names, latencies(calls, args.calls)):
            results[name]["median"].append(med)
            results[name]["p99"].append(p99)
        for name, call in zip(names, calls):
            for threads in (1, 8, 32):
                results[name][threads].append(throughput(call, threads, args.calls))
    return [{k: (min(v) if k in ("median", "p99") else max(v)) for k, v in results[name].items()}
            for name in names]


def group_costs(server, args):
    """Group mode (XADD, XREADGROUP, reply, XACK + XDEL) against the same
    round trip written directly with redis-py."""
    from daebus import DaebusCaller

    raw_proc = start(RAW_STREAM_SERVER, server.url)
    group_proc = start(DAEBUS_SERVER, server.url, "32", "daebus_group", "on", "group", ready="notify")
    raw = RawCaller(server.url)
    raw_call = lambda p: raw.call(p, lambda m: raw.client.xadd("raw_stream", {"request": m},  # noqa: E731
                                                                maxlen=10000, approximate=True))
    caller = DaebusCaller("daebus_group", redis_url=server.url, timeout=10)
    group_call = lambda p: caller.send_request("echo", p)  # noqa: E731
    try:
        r, d = compare(("raw", "group"), [raw_call, group_call], args)
        print(f"{'':12}{'raw streams':>14}{'group':>12}{'ratio':>9}")
        print(f"{'median ms':12}{r['median'] * 1e3:14.3f}{d['median'] * 1e3:12.3f}"
              f"{d['median'] / r['median']:8.2f}x  (target <= 1.3x)")
        print(f"{'p99 ms':12}{r['p99'] * 1e3:14.3f}{d['p99'] * 1e3:12.3f}{d['p99'] / r['p99']:8.2f}x")
        for threads in (1, 8, 32):
            print(f"{f'req/s x{threads}':12}{r[threads]:14.0f}{d[threads]:12.0f}{d[threads] / r[threads]:8.2f}x")
    finally:
        for proc in (raw_proc, group_proc):
            proc.terminate()
            proc.wait(10)


def pubsub_costs(raw, raw_proc, daebus_call, daebus_proc, args):
    """The pub/sub service against the raw redis-py echo."""
    r, d = compare(("raw", "daebus"), [raw.call, daebus_call], args)
    print(f"{'':12}{'raw redis-py':>14}{'daebus':>12}{'ratio':>9}")
    print(f"{'median ms':12}{r['median'] * 1e3:14.3f}{d['median'] * 1e3:12.3f}"
          f"{d['median'] / r['median']:8.2f}x  (target <= 1.3x)")
    print(f"{'p99 ms':12}{r['p99'] * 1e3:14.3f}{d['p99'] * 1e3:12.3f}{d['p99'] / r['p99']:8.2f}x")
    for threads in (1, 8, 32):
        target = "  (target >= 0.8x)" if threads == 32 else ""
        print(f"{f'req/s x{threads}':12}{r[threads]:14.0f}{d[threads]:12.0f}"
              f"{d[threads] / r[threads]:8.2f}x{target}")
    print(f"daebus service RSS: {rss_mb(daebus_proc.pid):.1f} MB (target < 40 MB); "
          f"raw echo RSS: {rss_mb(raw_proc.pid):.1f} MB")


PARTS = ("pubsub", "schema", "observability", "group")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; best of each is kept")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each side-by-side round")
    parser.add_argument("--only", choices=PARTS, action="append",
                        help="run only this part (may be repeated); default: all")
    args = parser.parse_args()
    parts = args.only or PARTS

    from daebus import DaebusCaller

    server = RedisServer().start()
    raw_proc = start(RAW_SERVER, server.url)
    daebus_proc = start(DAEBUS_SERVER, server.url, "32", ready="notify")
    raw = RawCaller(server.url)
    caller = DaebusCaller("daebus_echo", redis_url=server.url, timeout=10)
    daebus_call = lambda p: caller.send_request("echo", p)  # noqa: E731
    try:
        if "pubsub" in parts:
            pubsub_costs(raw, raw_proc, daebus_call, daebus_proc, args)
        if "schema" in parts:
            schema_costs(caller, args)
        if "observability" in parts:
            observability_cost(server, args, daebus_proc.pid)
        if "group" in parts:
            group_costs(server, args)
    finally:
        for proc in (raw_proc, daebus_proc):
            proc.terminate()
            proc.wait(10)
        server.close()


if __name__ == "__main__":
    main()
