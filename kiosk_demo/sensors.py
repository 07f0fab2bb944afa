"""Simulated room sensors: one reading a second, broadcast on ``sensors.readings``.

What it shows: ``@app.background`` (a periodic job that never overlaps
itself) and ``broadcast.send``, plus small actions that answer with the
latest reading and the last minute of them. Every page subscribed to the channel through the gateway gets
each reading as it is taken. Run it with either of::

    python kiosk_demo/sensors.py
    daebus run kiosk_demo/sensors.py

and watch it from another shell::

    from daebus import DaebusCaller
    print(DaebusCaller("sensors").send_request("get_readings"))
"""

from __future__ import annotations

import collections
import math
import os
import random
import threading
import time

from daebus import Daebus, broadcast, logger

app = Daebus(__name__)

CHANNEL = "sensors.readings"
# Seconds between readings; a real sensor board would set its own pace.
INTERVAL = float(os.environ.get("KIOSK_SENSORS_INTERVAL", "1"))
# Readings kept for get_history, so a page that just opened can draw the
# last minute at once instead of starting from an empty chart.
HISTORY = 60


class Room:
    """A room whose temperature and humidity drift and whose light follows
    the time of day: good enough to make a dashboard move.

    Example::

        room = Room(seed=1)
        room.sample(time.time())   # {"seq": 1, "temperature_c": 21.6, ...}
    """

    def __init__(self, seed: int | None = None):
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.temperature = 21.5
        self.humidity = 45.0
        self.seq = 0
        self.latest: dict | None = None
        self.history: collections.deque[dict] = collections.deque(maxlen=HISTORY)

    def _drift(self, value: float, centre: float, pull: float, noise: float) -> float:
        # A random walk pulled back towards ``centre``: it wanders but never
        # runs away, like a room with a thermostat.
        return value + (centre - value) * pull + self._random.gauss(0.0, noise)

    @staticmethod
    def daylight(hour: float) -> float:
        """Lux at ``hour`` (0-24, local time): dark at night, 850 at noon."""
        sun = math.sin((hour - 6.0) / 12.0 * math.pi)
        return 30.0 + 820.0 * max(0.0, sun)

    def sample(self, now: float) -> dict:
        """Advance the simulation and return the new reading."""
        local = time.localtime(now)
        hour = local.tm_hour + local.tm_min / 60 + local.tm_sec / 3600
        with self._lock:
            self.seq += 1
            self.temperature = self._drift(self.temperature, 21.5, 0.05, 0.12)
            self.humidity = min(100.0, max(0.0, self._drift(self.humidity, 45.0, 0.03, 0.4)))
            light = max(0.0, self.daylight(hour) * (1 + self._random.gauss(0.0, 0.03)))
            self.latest = {
                "seq": self.seq,
                "time": round(now, 3),
                "temperature_c": round(self.temperature, 2),
                "humidity_pct": round(self.humidity, 1),
                "light_lux": round(light),
            }
            self.history.append(self.latest)
            return dict(self.latest)

    def recent(self) -> list[dict]:
        with self._lock:
            return list(self.history)


room = Room()


@app.background("sample", INTERVAL, run_at_start=True)
def sample():
    """Take a reading and broadcast it to whoever listens."""
    reading = room.sample(time.time())
    receivers = broadcast.send(CHANNEL, reading)
    if reading["seq"] == 1:
        logger.info("first reading sent on %s (%d receiver(s))", CHANNEL, receivers)


@app.action("get_readings")
def get_readings():
    """The latest reading (taking one if none was taken yet)."""
    return room.latest or room.sample(time.time())


@app.action("get_history")
def get_history():
    """Up to the last HISTORY readings, oldest first."""
    return {"interval": INTERVAL, "readings": room.recent()}


if __name__ == "__main__":
    app.run(service="sensors")
