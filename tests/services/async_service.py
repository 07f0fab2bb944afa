"""A worker with async def handlers beside sync ones, for the integration tests.

    async_service.py [service-name] [--workers N] [--queue N] [--shutdown S]
"""

import argparse
import asyncio
import time

from daebus import AsyncCaller, Daebus, broadcast, cache, request, response

parser = argparse.ArgumentParser()
parser.add_argument("service", nargs="?", default="aio")
parser.add_argument("--workers", type=int, default=50)
parser.add_argument("--queue", type=int, default=100)
parser.add_argument("--shutdown", type=float, default=10.0)
options = parser.parse_args()

app = Daebus(__name__, max_workers=options.workers)
state = {}


@app.on_start()
async def prepare():
    state["lock"] = asyncio.Lock()  # made on the service's loop, used by handlers
    state["started"] = True


@app.action("nap")
async def nap():
    seconds = float(request.payload.get("seconds", 1))
    broadcast.send("aio.started", {"tag": request.payload.get("tag")})
    await asyncio.sleep(seconds)
    # request/response still belong to this call after the await.
    return {"slept": seconds, "tag": request.payload.get("tag"), "request_id": request.request_id}


@app.action("sync_nap")
def sync_nap():
    time.sleep(float(request.payload.get("seconds", 1)))
    return {"slept": request.payload.get("seconds", 1)}


@app.action("echo")
def echo():
    return request.payload


@app.action("steps")
async def steps():
    for i in range(3):
        response.progress({"step": i}, (i + 1) * 33)
        await asyncio.sleep(0.01)
    return "done"


@app.action("spawn")
async def spawn():
    # A task started by the handler inherits its context.
    async def child():
        await asyncio.sleep(0.01)
        return request.payload["value"]
    return await asyncio.create_task(child())


@app.action("relay")
async def relay():
    # Calls this same service through the bus from async code.
    async with AsyncCaller(app.service) as me:
        naps = await asyncio.gather(*(me.call("nap", {"seconds": 0.5, "tag": i}) for i in range(5)))
        echoed = await me.call("echo", {"x": 1})
    return {"tags": [n["tag"] for n in naps], "echo": echoed}


@app.action("hog")
async def hog():
    time.sleep(float(request.payload.get("seconds", 1.5)))  # blocks the loop on purpose
    return "hogged"


@app.action("explode")
async def explode():
    await asyncio.sleep(0)
    raise RuntimeError("async kaboom")


@app.action("forever")
async def forever():
    broadcast.send("aio.started", {"tag": "forever"})
    try:
        await asyncio.sleep(3600)
    finally:
        cache.set(f"aio:{app.service}:cleaned", "yes")


@app.action("locked")
async def locked():
    async with state["lock"]:
        return state["started"]


@app.listen("aio.in")
async def on_in(payload):
    await asyncio.sleep(0.01)
    broadcast.send("aio.out", {"got": payload})


@app.background("tick", 0.2)
async def tick():
    await asyncio.sleep(0)
    cache.incr(f"aio:{app.service}:ticks")


if __name__ == "__main__":
    app.run(service=options.service, queue_size=options.queue, shutdown_timeout=options.shutdown)
