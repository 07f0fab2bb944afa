"""A service exercising the framework, driven by the integration tests.

Usage: basic.py [service-name] ; settings come from DAEBUS_* variables.
"""

import datetime
import decimal
import os
import sys
import threading
import time

from daebus import BadRequest, Daebus, broadcast, cache, logger, request, response

app = Daebus(__name__, max_workers=int(os.environ.get("TEST_MAX_WORKERS", "20")))

request_counter = 0
counter_lock = threading.Lock()


@app.action("echo")
def echo():
    return response.success({"echo": request.payload, "request_id": request.request_id})


@app.action("slow")
def slow():
    # Tests wait for this event instead of guessing when the handler started.
    broadcast.send("slow_started", {"tag": request.payload.get("tag")})
    time.sleep(float(request.payload.get("seconds", 1)))
    return {"slept": request.payload.get("seconds", 1), "tag": request.payload.get("tag")}


@app.action("stubborn")
def stubborn():
    # Ignores shutdown entirely.
    time.sleep(3600)


@app.action("boom")
def boom():
    raise ValueError("kaput")


@app.action("invalid")
def invalid():
    raise BadRequest("brightness must be between 0 and 100")


@app.action("nothing")
def nothing():
    pass


@app.action("value")
def value():
    return [1, 2, 3]


@app.action("odd_types")
def odd_types():
    return {"when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
            "price": decimal.Decimal("1.10"), "tags": {"a"}, "raw": b"\xff\x00", "text": b"hi"}


@app.action("unencodable")
def unencodable():
    return {"thing": object()}


@app.action("progress")
def progress():
    for step in range(3):
        response.progress({"step": step}, (step + 1) * 25)
    return response.success({"done": True})


@app.action("increment")
def increment_counter():
    global request_counter
    with counter_lock:
        request_counter += 1
        current_count = request_counter
    return response.success({"count": current_count})


@app.action("announce")
def announce():
    return {"receivers": broadcast.send("test_events", {"from": "action", "n": request.payload.get("n")})}


@app.action("received")
def received():
    return cache.lrange("received", 0, -1)


@app.action("stop_loop")
def stop_loop():
    return app.stop_thread("loop")


@app.action("start_loop")
def start_loop():
    return app.start_thread("loop")


@app.listen("test_events")
def on_event(payload):
    cache.rpush("received", payload.get("from", "?"))


@app.background("beat", float(os.environ.get("TEST_BEAT_INTERVAL", "3600")),
                run_at_start=bool(os.environ.get("TEST_BEAT_AT_START")))
def beat():
    broadcast.send("test_events", {"from": "task"})


@app.thread("loop")
def loop(running):
    broadcast.send("test_events", {"from": "thread"})
    while running():
        running.wait(60)
    cache.set("loop_stopped", "yes")
    logger.info("loop thread ended")


@app.on_start()
def started():
    broadcast.send("test_events", {"from": "on_start"})


if __name__ == "__main__":
    app.run(service=sys.argv[1] if len(sys.argv) > 1 else "basic")
