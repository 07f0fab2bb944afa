"""A service for the membership tests: who answered, how often, and crashes.

Usage: member.py SERVICE ; DAEBUS_SERVICE_MODE picks owner or group,
MEMBER_LOG names the file each handled request appends its id to.
"""

import os
import signal
import sys
import time

from daebus import Daebus, broadcast, request

app = Daebus(__name__, max_workers=8)


def _record(tag: str) -> None:
    path = os.environ.get("MEMBER_LOG")
    if path:
        # O_APPEND writes of one short line are atomic across processes.
        with open(path, "a") as log:
            log.write(f"{request.request_id} {os.getpid()} {request.delivery} {tag}\n")


def _answer() -> dict:
    return {"pid": os.getpid(), "delivery": request.delivery, "request_id": request.request_id}


@app.action("whoami")
def whoami():
    return _answer()


@app.action("record")
def record():
    _record("record")
    return _answer()


@app.action("hold")
def hold():
    # Announces itself, then works for a while on a first delivery (the
    # tests kill the process meanwhile); a redelivery answers at once.
    _record("hold")
    broadcast.send("member_holding", {"pid": os.getpid(), "request_id": request.request_id})
    if request.delivery == 1:
        time.sleep(float(request.payload.get("seconds", 30)))
    return _answer()


@app.action("crash")
def crash():
    _record("crash")
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    app.run(service=sys.argv[1] if len(sys.argv) > 1 else "member")
