"""A worker whose handlers report what cancellation does to them, for the
cancellation tests.

    cancellable.py [service-name] [--workers N] [--queue N] [--group] [--claim-idle S]

Each handler broadcasts on ``cancel.events`` what happened to it, as
``{"event": "started" | "cancelled" | "finished", "action", "tag", "at",
"reason"}`` with ``at`` the service's wall clock (the tests run on the same
machine), and the ``record`` action also appends its tag to the Redis list
``cancellable:ran``, so a test can tell that a request never ran.
"""

import argparse
import asyncio
import time

from daebus import Daebus, DaebusCaller, broadcast, cache, request, response

parser = argparse.ArgumentParser()
parser.add_argument("service", nargs="?", default="cancellable")
parser.add_argument("--workers", type=int, default=4)
parser.add_argument("--queue", type=int, default=16)
parser.add_argument("--group", action="store_true")
parser.add_argument("--claim-idle", type=float, default=10.0)
options = parser.parse_args()

app = Daebus(__name__, max_workers=options.workers, mode="group" if options.group else None)


def report(event: str) -> None:
    broadcast.send("cancel.events", {"event": event, "action": request.action,
                                     "tag": request.payload.get("tag"), "at": time.time(),
                                     "reason": request.cancelled.reason, "delivery": request.delivery})


@app.action("nap")
async def nap():
    """Sleeps ``seconds`` (10), awaiting: a cancel interrupts the await."""
    report("started")
    try:
        await asyncio.sleep(float(request.payload.get("seconds", 10)))
    except asyncio.CancelledError:
        report("cancelled")
        raise
    report("finished")
    return "rested"


@app.action("pulse")
async def pulse():
    """One progress reply, then a nap (what a page streaming progress waits on)."""
    response.progress({"step": 1}, 10)
    return await nap()


@app.action("wait")
def wait():
    """A sync handler waiting on its request's cancellation for ``seconds`` (10)."""
    report("started")
    if request.cancelled.wait(float(request.payload.get("seconds", 10))):
        report("cancelled")
        return None
    report("finished")
    return "waited"


@app.action("relay")
def relay():
    """Calls this service's ``wait`` (tag ``<tag>-inner``): a call made in a
    handler is cancelled with the handler's request."""
    report("started")
    with DaebusCaller(options.service, timeout=30) as itself:
        try:
            return itself.send_request("wait", {"tag": f"{request.payload.get('tag')}-inner"})
        finally:
            report("cancelled" if request.cancelled else "finished")


@app.action("block")
def block():
    """Holds a worker until the list ``cancellable:release`` gets an item,
    whatever happens to its caller."""
    report("started")
    cache.blpop("cancellable:release", timeout=30)
    report("finished")
    return "released"


@app.action("record")
def record():
    """Leaves a trace that it ran."""
    cache.rpush("cancellable:ran", str(request.payload.get("tag")))
    report("started")
    return "recorded"


if __name__ == "__main__":
    # A beat every half second: the counters reach the registry soon after a call.
    app.run(service=options.service, queue_size=options.queue, registry_ttl=1.5, claim_idle=options.claim_idle)
