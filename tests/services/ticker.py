"""A worker that broadcasts {"seq": n} on ``ticks.seq`` every 50 ms.

    ticker.py [interval-seconds]
"""

import sys

from daebus import Daebus, broadcast

app = Daebus(__name__)
INTERVAL = float(sys.argv[1]) if len(sys.argv) > 1 else 0.05


@app.thread("ticker")
def tick(running):
    seq = 0
    while running():
        seq += 1
        broadcast.send("ticks.seq", {"seq": seq})
        running.wait(INTERVAL)


if __name__ == "__main__":
    app.run(service="ticker")
