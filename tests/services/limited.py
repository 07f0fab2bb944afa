"""A service with limited actions and a limited listener, for the
concurrency tests (DAEBUS_SERVICE_MODE picks owner or group).

Usage: limited.py SERVICE
"""

import asyncio
import sys
import threading
import time

from daebus import Blueprint, Daebus, broadcast, request

app = Daebus(__name__, max_workers=3)
bp = Blueprint("device")

_lock = threading.Lock()
_gates: dict[str, threading.Event] = {}


def _gate(name: str) -> threading.Event:
    with _lock:
        return _gates.setdefault(name, threading.Event())


@bp.action("print", concurrency=1, queue=20)
def print_job():
    # Declared on a blueprint: the limit comes with it.
    started = time.monotonic()
    time.sleep(float(request.payload.get("seconds", 0.1)))
    return {"start": started, "end": time.monotonic()}


@app.action("aprint", concurrency=1, queue=20)
async def aprint_job():
    started = time.monotonic()
    await asyncio.sleep(float(request.payload.get("seconds", 0.1)))
    return {"start": started, "end": time.monotonic()}


@app.action("hold", concurrency=1, queue=2)
def hold():
    # Waits until "release" opens its gate: the calls queue up meanwhile.
    _gate(request.payload["gate"]).wait(30)
    return {"tag": request.payload.get("tag")}


@app.action("release")
def release():
    _gate(request.payload["gate"]).set()
    return {}


@app.listen("release")
def release_by_broadcast(payload):
    _gate(payload["gate"]).set()


@app.action("ping")
def ping():
    return {"pong": True}


@app.listen("jobs", concurrency=1, queue=2)
def on_job(payload):
    broadcast.send("job_started", {"tag": payload["tag"]})
    if "gate" in payload:
        _gate(payload["gate"]).wait(30)


app.register_blueprint(bp)

if __name__ == "__main__":
    app.run(service=sys.argv[1] if len(sys.argv) > 1 else "limited")
