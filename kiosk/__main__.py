"""``python3 -m kiosk``: run cage + Chromium on the frame page and restart
them when they exit or the page stops sending heartbeats.

Run by daebus-kiosk.service as the ``kiosk`` user. Exits 2 on a
configuration error (named with file and line), which systemd doesn't retry.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from daebus.ops import signals
from daebus.errors import ConfigError
from daebus.ops import logs
from daebus.ops.systemd import Notifier

from . import browser, frame, settings as kiosk_settings

log = logging.getLogger("daebus.kiosk")
STATE = Path(os.environ.get("STATE_DIRECTORY") or "/var/lib/daebus-kiosk")
# Seconds Chromium has to show its first heartbeat after starting.
FIRST_BEAT = 60.0
# Backoff between restarts: doubles while the browser keeps failing soon,
# back to the first step once it ran for STABLE seconds.
BACKOFF_FIRST, BACKOFF_MAX, STABLE = 1.0, 30.0, 60.0


def stop(process: subprocess.Popen) -> None:
    """End cage, Chromium and everything they started."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def watch(process: subprocess.Popen, heartbeat: frame.Heartbeat, timeout: float,
          notifier: Notifier) -> str:
    """Wait until the browser exits or hangs; why, in words."""
    started = time.monotonic()
    ready = False
    while True:
        code = process.poll()
        if code is not None:
            return f"the browser exited with status {code}"
        notifier.notify("WATCHDOG=1")
        if heartbeat.last is not None and not ready:
            ready = True
            log.info("page visible %.1f s after the browser started", time.monotonic() - started)
            notifier.notify("READY=1", "STATUS=showing the page")
        limit = timeout if heartbeat.last is not None else max(timeout, FIRST_BEAT)
        if heartbeat.age(started) > limit:
            return f"no heartbeat from the page for {limit:.0f} s: the browser hangs"
        time.sleep(0.5)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        settings = kiosk_settings.load()
    except ConfigError as exc:
        logs.exit_on_config_error("daebus-kiosk", exc)
    os.environ.setdefault("XDG_RUNTIME_DIR", os.environ.get("RUNTIME_DIRECTORY", f"/run/user/{os.getuid()}"))
    profile = STATE / "chromium"
    profile.mkdir(parents=True, exist_ok=True)
    heartbeat = frame.Heartbeat()
    try:
        frame.serve(settings, heartbeat)
    except OSError as exc:
        log.error("cannot serve the kiosk frame on 127.0.0.1:%d (kiosk.port): %s", settings.port, exc.strerror)
        return 1
    command = browser.cage_command(settings, profile, f"http://127.0.0.1:{settings.port}/")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signals.unblock()
    supervise(command, heartbeat, settings.heartbeat_timeout, Notifier.from_env(), profile)
    return 0


def supervise(command: list[str], heartbeat: frame.Heartbeat, timeout: float, notifier: Notifier,
              profile: Path, rounds: int | None = None) -> None:
    """Run ``command`` again each time it exits or hangs (``rounds`` times,
    or for ever), waiting longer between quick failures."""
    backoff = BACKOFF_FIRST
    while rounds is None or rounds > 0:
        rounds = None if rounds is None else rounds - 1
        browser.forget_crash(profile)
        heartbeat.reset()
        started = time.monotonic()
        log.info("starting %s", " ".join(command))
        process = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL)
        try:
            reason = watch(process, heartbeat, timeout, notifier)
        finally:
            stop(process)
        backoff = BACKOFF_FIRST if time.monotonic() - started > STABLE else min(backoff * 2, BACKOFF_MAX)
        log.warning("%s; starting it again in %.0f s", reason, backoff)
        notifier.notify(f"STATUS=restarting the browser: {reason}")
        if rounds == 0:
            return
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline:
            notifier.notify("WATCHDOG=1")
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


if __name__ == "__main__":
    sys.exit(main())
