"""A worker for the observability tests: known outcomes, a handler that logs
an exception, and an action held until the test releases it.

    observed.py [service-name] [--no-metrics]
"""

import argparse

from daebus import AsyncCaller, BadRequest, Daebus, DaebusCaller, broadcast, cache, logger, request

parser = argparse.ArgumentParser()
parser.add_argument("service", nargs="?", default="observed")
parser.add_argument("--no-metrics", action="store_true")
options = parser.parse_args()

# One handler thread and one queue slot: a held call, one waiting, and the
# next is refused as busy.
app = Daebus(__name__, max_workers=1)


@app.action("echo")
def echo():
    return request.payload


@app.action("aecho")
async def aecho():
    return request.payload


@app.action("fail")
def fail():
    raise ValueError("the handler broke on purpose")


@app.action("reject")
def reject():
    raise BadRequest("missing field 'x'")


@app.action("explode")
def explode():
    logger.info("dividing %s", request.payload.get("n"))
    try:
        return 1 / 0
    except ZeroDivisionError:
        logger.exception("could not divide %s", request.payload.get("n"))
        return {"logged": True}


@app.action("relay")
def relay():
    # A call made while handling a request carries that request's id on.
    with DaebusCaller(request.payload["to"]) as caller:
        return caller.send_request("explode", {"n": request.payload.get("n")})


@app.action("arelay")
async def arelay():
    return await AsyncCaller(request.payload["to"]).call("explode", {"n": request.payload.get("n")})


@app.action("hold")
def hold():
    # Announces that the only handler thread is taken, then keeps it until
    # the test pushes to the release list.
    broadcast.send(f"{options.service}.held", {})
    cache.blpop(f"{options.service}:release", timeout=4)  # under the socket timeout
    return {"held": True}


ticks = []


@app.background("tick", 0.3)
def tick():
    ticks.append(1)
    if len(ticks) == 1:
        raise RuntimeError("the first tick fails on purpose")


@app.listen(f"{options.service}.news")
def on_news(payload):
    if payload.get("fail"):
        raise RuntimeError("the listener broke on purpose")


if __name__ == "__main__":
    # A heartbeat every half second, so figures are fresh soon after a call.
    app.run(service=options.service, registry_ttl=1.5, queue_size=1, metrics=not options.no_metrics)
