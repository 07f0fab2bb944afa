"""The README's quick-start service."""

import time

from daebus import Daebus, broadcast, logger, request, response

app = Daebus(__name__)
started = time.time()


@app.action("get_status")
def get_status():
    logger.info("status requested: %s", request.payload)
    return response.success({"status": "healthy", "uptime": round(time.time() - started, 1)})


@app.action("count_to")
def count_to():
    n = int(request.payload.get("n", 3))
    for i in range(1, n):
        response.progress({"at": i}, 100 * i / n)
    return {"counted": n}


@app.listen("notifications")
def on_notification(payload):
    logger.info("notification: %s", payload)


@app.background("health_check", 30, run_at_start=True)
def health_check():
    broadcast.send("system_status", {"status": "healthy"})


if __name__ == "__main__":
    app.run(service="my_service")
