"""The kiosk's screen: brightness set by hand or following the room's light.

What it shows: actions that validate their payload and answer errors the
way callers expect (``BadRequest`` becomes a ``bad_request`` reply, which
the gateway turns into HTTP 400), state kept in Redis through ``cache`` so
it survives a restart, ``@app.on_start``, and ``@app.listen`` on another
worker's broadcasts. Run it with either of::

    python kiosk_demo/display.py
    daebus run kiosk_demo/display.py

Actions:

* ``get_state`` -> ``{"brightness": 80, "auto": false, "source": "default", "updated_at": ...}``
* ``set_brightness`` with ``{"brightness": 0..100}`` (turns automatic mode off)
* ``set_auto`` with ``{"enabled": true}``: follow ``sensors.readings``

Every change is broadcast on ``display.state``. Where the device has a
backlight (``/sys/class/backlight/<name>``, the first one, or the folder
``KIOSK_DISPLAY_BACKLIGHT`` names) the brightness is written there too;
without one the panel is simulated by the state alone.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

from daebus import BadRequest, Daebus, broadcast, cache, logger, request
from daebus.errors import AccessDenied

app = Daebus(__name__)

CHANNEL = "display.state"
# Under the service's own prefix, the only keys its Redis user may touch on a
# locked bus (docs/security.md); earlier versions kept it in OLD_STATE_KEY.
STATE_KEY = "display:state"
OLD_STATE_KEY = "kiosk_demo:display"
DEFAULT_BRIGHTNESS = 80
# Automatic mode moves in steps of this size, so that small flickers of
# light don't make the screen pulse.
AUTO_STEP = 5

# Actions, listeners and the start hook run on different threads; this
# keeps each read-change-write of the state whole.
_lock = threading.Lock()


# -- state --------------------------------------------------------------------

def load_state() -> dict:
    """The state from Redis, with defaults for what was never set."""
    raw = cache.hgetall(STATE_KEY) or _old_state()
    return {
        "brightness": int(raw.get("brightness", DEFAULT_BRIGHTNESS)),
        "auto": raw.get("auto", "0") == "1",
        "source": raw.get("source", "default"),
        "updated_at": float(raw["updated_at"]) if "updated_at" in raw else None,
    }


def _old_state() -> dict:
    try:
        return cache.hgetall(OLD_STATE_KEY)
    except AccessDenied:
        return {}   # a locked bus: that key was never this service's to read


def save_state(brightness: int, auto: bool, source: str) -> dict:
    """Store, apply and announce a new state; returns it."""
    cache.hset(STATE_KEY, mapping={"brightness": brightness, "auto": "1" if auto else "0",
                                   "source": source, "updated_at": round(time.time(), 3)})
    state = load_state()
    apply_backlight(state["brightness"])
    broadcast.send(CHANNEL, state)
    return state


BACKLIGHTS = Path("/sys/class/backlight")


def backlight() -> Path | None:
    """The panel's backlight folder: ``KIOSK_DISPLAY_BACKLIGHT`` if set, else
    the first one the kernel offers, else None (a simulated panel)."""
    folder = os.environ.get("KIOSK_DISPLAY_BACKLIGHT")
    if folder:
        return Path(folder)
    try:
        found = sorted(p for p in BACKLIGHTS.iterdir() if (p / "brightness").exists())
    except OSError:
        return None
    return found[0] if found else None


def apply_backlight(brightness: int) -> None:
    """Write the brightness to the panel when the device has one; without
    one, the state alone is the (simulated) panel."""
    folder = backlight()
    if folder is None:
        return
    try:
        maximum = int((folder / "max_brightness").read_text().strip())
        (folder / "brightness").write_text(str(round(maximum * brightness / 100)))
    except (OSError, ValueError) as exc:
        # The state is still right; the panel can catch up on the next change.
        logger.warning("cannot set the backlight in %s: %s", folder, exc)


def brightness_for_light(lux: float) -> int:
    """Brightness that suits ``lux`` of ambient light, in steps of AUTO_STEP.

    Example::

        brightness_for_light(0) == 10      # a dark room: dim but readable
        brightness_for_light(1000) == 100  # daylight
    """
    # The eye answers light logarithmically, so the mapping does too.
    share = min(1.0, max(0.0, math.log10(1.0 + max(0.0, lux)) / 3.0))
    value = 10 + 90 * share
    return int(min(100, max(10, AUTO_STEP * round(value / AUTO_STEP))))


# -- validation ---------------------------------------------------------------

def read_brightness(payload) -> int:
    """The ``brightness`` of a payload, or a BadRequest that says what is wrong."""
    if not isinstance(payload, dict) or "brightness" not in payload:
        raise BadRequest('send {"brightness": N} with N a whole number from 0 to 100')
    value = payload["brightness"]
    # JSON has one number type; 70.0 is fine, true (a bool is an int in Python) is not.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value != int(value):
        raise BadRequest(f"brightness must be a whole number from 0 to 100, got {json.dumps(value)}")
    if not 0 <= value <= 100:
        raise BadRequest(f"brightness must be from 0 to 100, got {int(value)}")
    return int(value)


def read_enabled(payload) -> bool:
    if not isinstance(payload, dict) or not isinstance(payload.get("enabled"), bool):
        raise BadRequest('send {"enabled": true} or {"enabled": false}')
    return payload["enabled"]


# -- handlers -----------------------------------------------------------------

@app.on_start()
def restore():
    """Put the panel back where it was before the restart."""
    state = load_state()
    apply_backlight(state["brightness"])
    logger.info("display at %d%% (%s), %s", state["brightness"], "automatic" if state["auto"] else "manual",
                f"backlight {backlight()}" if backlight() else "no backlight: simulated")


@app.action("get_state")
def get_state():
    return load_state()


@app.action("set_brightness")
def set_brightness():
    brightness = read_brightness(request.payload)
    with _lock:
        state = save_state(brightness, auto=False, source="manual")
    logger.info("brightness set to %d%%", brightness)
    return state


@app.action("set_auto")
def set_auto():
    enabled = read_enabled(request.payload)
    with _lock:
        state = load_state()
        state = save_state(state["brightness"], auto=enabled, source=state["source"])
    logger.info("automatic brightness %s", "on" if enabled else "off")
    return state


@app.listen("sensors.readings")
def follow_light(reading):
    """In automatic mode, match the brightness to the sensors' light level."""
    lux = reading.get("light_lux")
    if not isinstance(lux, int | float) or isinstance(lux, bool):
        return  # not a reading we understand; another sensor board perhaps
    with _lock:
        state = load_state()
        if not state["auto"]:
            return
        target = brightness_for_light(lux)
        if target != state["brightness"]:
            save_state(target, auto=True, source="auto")


if __name__ == "__main__":
    app.run(service="display")
