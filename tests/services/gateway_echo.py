"""A worker for the gateway tests: echo, failures, slow and busy handlers.

    gateway_echo.py [service-name] [--workers N] [--queue N]
"""

import argparse
import threading
import time

from daebus import BadRequest, Daebus, broadcast, cache, request, response

parser = argparse.ArgumentParser()
parser.add_argument("service", nargs="?", default="echo")
parser.add_argument("--workers", type=int, default=10)
parser.add_argument("--queue", type=int, default=100)
options = parser.parse_args()

app = Daebus(__name__, max_workers=options.workers)
release = threading.Event()


@app.action("echo")
def echo():
    return request.payload


@app.action("fail")
def fail():
    raise ValueError("the handler broke on purpose")


@app.action("reject")
def reject():
    raise BadRequest("missing field 'x'")


@app.action("record")
def record():
    # Lets a test prove that a refused request never reached the handler.
    return cache.incr(f"gateway-test:{options.service}:record")


@app.action("slow")
def slow():
    # Announces that a worker thread is now taken, then holds it.
    broadcast.send(f"{options.service}.started", {"seconds": request.payload.get("seconds", 5)})
    release.wait(float(request.payload.get("seconds", 5)))
    return {"slept": True}


@app.action("steps")
def steps():
    # ``count`` progress replies ``pause`` seconds apart, then the result
    # (or an error, with ``fail``).
    count = int(request.payload.get("count", 5))
    for index in range(1, count + 1):
        response.progress({"step": index}, 100 * index / count)
        time.sleep(float(request.payload.get("pause", 0.05)))
    if request.payload.get("fail"):
        raise BadRequest(f"failed after {count} steps")
    return {"steps": count}


@app.action("announce")
def announce():
    broadcast.send(request.payload["channel"], request.payload["data"])
    return None


if __name__ == "__main__":
    app.run(service=options.service, queue_size=options.queue)
