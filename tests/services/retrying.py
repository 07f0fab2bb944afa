"""A service whose handlers ask for retries, for the retry tests
(DAEBUS_SERVICE_MODE picks owner or group).

Usage: retrying.py SERVICE ; RETRY_LOG names the file each attempt appends
``<request id> <pid> <delivery> <wall clock> <tag>`` to.
"""

import asyncio
import os
import sys
import time

from daebus import Daebus, Retry, RetryPolicy, broadcast, request

app = Daebus(__name__, max_workers=4)


def _record(tag: str, request_id=None, delivery=None) -> None:
    path = os.environ.get("RETRY_LOG")
    if path:
        # O_APPEND writes of one short line are atomic across processes.
        with open(path, "a") as log:
            log.write(f"{request_id or request.request_id} {os.getpid()} "
                      f"{delivery or request.delivery} {time.time():.6f} {tag}\n")


@app.action("flaky")
def flaky():
    # Asks for a retry until the attempt the payload names.
    _record("flaky")
    if request.delivery < request.payload.get("succeed_on", 3):
        raise Retry(after=request.payload.get("after", 2))
    return {"delivery": request.delivery, "pid": os.getpid()}


@app.action("aflaky")
async def aflaky():
    _record("aflaky")
    await asyncio.sleep(0)
    if request.delivery < 3:
        raise Retry(after=request.payload.get("after", 0.3))
    return {"delivery": request.delivery}


@app.action("always")
def always():
    _record("always")
    raise Retry(after=request.payload.get("after", 0.2))


@app.action("port_busy")
def port_busy():
    _record("port_busy")
    try:
        raise OSError("serial port busy")
    except OSError as exc:
        raise Retry(after=request.payload.get("after", 0.2)) from exc


@app.action("hostile")
def hostile():
    # What a buggy handler may give Retry: a negative, huge or unreadable wait.
    _record("hostile")
    raise Retry(after=request.payload["after"])


@app.action("modem", retry=RetryPolicy(attempts=3, backoff=0.2, factor=2, jitter=0, retry_on=(OSError,)))
def modem():
    # An OSError is retried by the declared policy: 0.2 s, then 0.4 s later.
    _record("modem")
    if request.delivery < request.payload.get("succeed_on", 3):
        raise ConnectionError("modem down")
    return {"delivery": request.delivery}


_attempts: dict = {}


@app.listen("readings")
def on_reading(payload):
    # Fails until the attempt the payload names (by default, every time).
    attempt = _attempts[payload["id"]] = _attempts.get(payload["id"], 0) + 1
    broadcast.send("reading_attempt", {"id": payload["id"], "attempt": attempt, "at": time.monotonic()})
    if attempt < payload.get("succeed_on", 1000):
        raise Retry(after=payload.get("after", 0.3))


if __name__ == "__main__":
    app.run(service=sys.argv[1] if len(sys.argv) > 1 else "retrying")
