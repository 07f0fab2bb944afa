"""An example worker: copy to /usr/local/lib/daebus-example/example.py.

Call it through the gateway (with "example/*" in [gateway] expose_actions):

    curl -s -X POST -H 'Content-Type: application/json' -d '{"name": "kiosk"}' \
        http://127.0.0.1:8080/api/services/example/hello
"""

import os
import time

from daebus import Daebus, broadcast, logger, request, response

app = Daebus(__name__)
GREETING = os.environ.get("EXAMPLE_GREETING", "Hello")


@app.action("hello")
def hello():
    name = request.payload.get("name", "world")
    logger.info("greeting %s", name)
    return response.success({"message": f"{GREETING}, {name}!", "pid": os.getpid()})


@app.action("fail")
def fail():
    # Logged with error priority: `journalctl -p err -u daebus-worker@example` shows it.
    logger.error("asked to fail: %s", request.payload.get("reason", "no reason given"))
    raise RuntimeError("failing on request")


@app.background("heartbeat", 60)
def heartbeat():
    broadcast.send("example.heartbeat", {"time": time.time()})
