"""A worker whose code fails to load tries again, each time later.

Bookworm's systemd (252) restarts a failed unit every ``RestartSec=`` for
ever: ``RestartSteps=`` and ``RestartMaxDelaySec=``, which space restarts
out, came in systemd 254. A worker whose module raises on import would so
log a traceback every few seconds. Instead, ``daebus worker`` under systemd
that cannot load its app:

- logs why: the traceback the first time, one line each time after;
- tells systemd it is up and waiting (``READY=1``, and a ``STATUS=`` that
  starts with :data:`STATUS_PREFIX`, which ``daebus doctor`` looks for),
  and keeps the watchdog fed;
- waits :func:`delay` (5 s, doubling each time, at most 5 min), then runs
  itself again in place (``exec``: a fresh interpreter, fresh imports, the
  same pid), with the count of failures in its environment.

So ``systemctl start`` never waits for a broken worker, an upgrade never
blocks on one, and the worker heals by itself once its code is fixed.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from daebus.ops.systemd import Notifier

log = logging.getLogger("daebus.cli")

FAILURES_ENV = "DAEBUS_LOAD_FAILURES"
STATUS_PREFIX = "cannot load its app"
FIRST_DELAY = 5.0
MAX_DELAY = 300.0


def failures_so_far(environ=None) -> int:
    try:
        return max(0, int((os.environ if environ is None else environ).get(FAILURES_ENV, "0")))
    except ValueError:
        return 0


def delay(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failure in a row (1-based)."""
    return min(FIRST_DELAY * 2 ** max(0, failures - 1), MAX_DELAY)


def describe(exc: BaseException) -> str:
    """``ModuleNotFoundError: No module named 'x' (at /opt/w/app.py:3)``."""
    text = f"{type(exc).__name__}: {exc}"
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        text += f" (at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})"
    return text


def retry_later(spec: str, exc: BaseException, notifier: Notifier | None = None) -> bool:
    """Report the failure, wait, and exec again; returns False (and does
    nothing) when not under systemd, where the caller just exits."""
    notifier = notifier or Notifier.from_env()
    if not notifier.enabled:
        return False
    failures = failures_so_far() + 1
    wait = delay(failures)
    if failures == 1:
        log.error("loading %s failed; trying again in %.0f s", spec, wait, exc_info=exc)
    else:
        log.warning("loading %s failed again (%d times in a row): %s; trying again in %.0f s",
                    spec, failures, describe(exc), wait)
    notifier.ready(f"{STATUS_PREFIX} {spec} ({describe(exc)}); {failures} failure(s), "
                   f"next try in {wait:.0f} s")
    _wait(wait, notifier)
    os.environ[FAILURES_ENV] = str(failures)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    return True  # not reached


def loaded() -> None:
    """The app loaded: the next failure (after a restart) is a first one."""
    os.environ.pop(FAILURES_ENV, None)


def _wait(seconds: float, notifier: Notifier) -> None:
    interval = notifier.watchdog_interval
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, interval) if interval else left)
        if interval:
            notifier.watchdog()
