"""The worker of docs/gateway.md's "A page of one's own", made quick for tests."""

import time

from daebus import Daebus, broadcast, response

app = Daebus(__name__)
readings = iter(range(10**9))


@app.action("self_test")
def self_test():
    for step in range(1, 5):
        time.sleep(0.05)
        response.progress({"step": step}, step * 25)
    return {"passed": True}


@app.background("temperature", 0.2)
def temperature():
    broadcast.send("my_service.temperature", {"celsius": 20 + next(readings) % 10 / 10})


if __name__ == "__main__":
    app.run(service="my_service")
