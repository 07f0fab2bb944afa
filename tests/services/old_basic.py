"""A service written for Daebus 0.0.31, run with that release (tests/compat.py).

    python old_basic.py NAME REDIS_PORT
"""

import sys
import time

from daebus import Daebus, request, response

app = Daebus(sys.argv[1])


@app.action("echo")
def echo():
    response.send({"echo": request.payload}, final=True)


@app.action("slow")
def slow():
    time.sleep(float(request.payload.get("seconds", 1)))
    response.send({"slept": request.payload.get("seconds", 1)}, final=True)


if __name__ == "__main__":
    app.run(service=sys.argv[1], redis_host="127.0.0.1", redis_port=int(sys.argv[2]))
