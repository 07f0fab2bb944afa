"""A handler that fails for a passing reason asks to be run again later.

Raise :class:`Retry` (``raise Retry(after=2) from exc``), or declare a
:class:`RetryPolicy` on the action or listener (``retry=RetryPolicy(...)``)
for the exceptions it names in ``retry_on``. How the retry is kept depends
on where the call came from:

- owner mode: the request waits in the service, holding no worker, and runs
  again when due, if that is before its caller's deadline; otherwise its
  caller gets the last error at once;
- group mode: the stream entry waits in Redis (``daebus:retry:<service>``),
  so a restart neither loses nor hastens it, and any instance runs it when
  due, within ``max_deliveries``; past them it is dead-lettered;
- listeners: the broadcast is handed to the listener again when due.

Each counts as an attempt (``request.delivery`` is the attempt's number);
past the policy's ``attempts`` the caller gets the last error: the
exception behind the ``Retry`` (its ``__cause__``) as it would have been
answered, else ``retry_exhausted``.
"""

from __future__ import annotations

import dataclasses
import math
import random

# The longest wait a retry may ask for: a day. Beyond it a request is no
# longer "retried later" but lost track of.
MAX_AFTER = 86400.0


def _seconds(what: str, value, *, least: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < least or value > MAX_AFTER:
        raise ValueError(f"{what} must be between {least:g} and {MAX_AFTER:g} seconds, got {value!r}")
    return float(value)


class Retry(Exception):
    """Raise in an action or listener to be run again ``after`` seconds
    (or after the wait its :class:`RetryPolicy` gives, without ``after``).

    Example::

        @app.action("print")
        def print_label():
            try:
                printer.send(request.payload["label"])
            except PrinterBusy as exc:
                raise Retry(after=2) from exc    # exc is the last error, should no retry be left
    """

    def __init__(self, after: float | None = None, message: str = ""):
        if after is not None:
            after = _seconds("Retry(after=...)", after)
        if not isinstance(message, str):
            raise TypeError(f"Retry(message=...) must be a string, got {type(message).__name__}")
        super().__init__(message)
        self.after = after

    @classmethod
    def because(cls, exc: BaseException) -> Retry:
        """A retry asked for by a policy, for ``exc``."""
        retry = cls()
        retry.__cause__ = exc
        return retry


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and when an action or listener is run again.

    ``attempts`` counts the first run too; the first retry waits ``backoff``
    seconds, each later one ``factor`` times the one before, give or take
    ``jitter`` (a fraction of the wait, at random, so that the instances of
    a group do not retry in step), never more than ``cap``. The exceptions
    of ``retry_on`` ask for a retry as ``raise Retry()`` does; others answer
    the caller at once, as without a policy.

    Example::

        @app.action("send", retry=RetryPolicy(attempts=5, backoff=0.5, cap=10, retry_on=(OSError,)))
        def send():
            modem.send(request.payload)        # an OSError is retried: 0.5 s, 1 s, 2 s, 4 s later
    """

    attempts: int = 3
    backoff: float = 1.0
    factor: float = 2.0
    jitter: float = 0.1
    cap: float = 60.0
    retry_on: tuple = ()

    def __post_init__(self):
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"RetryPolicy: attempts must be a positive integer, got {self.attempts!r}")
        _seconds("RetryPolicy: backoff", self.backoff)
        _seconds("RetryPolicy: cap", self.cap)
        if isinstance(self.factor, bool) or not isinstance(self.factor, int | float) \
                or not 1 <= self.factor <= 10:
            raise ValueError(f"RetryPolicy: factor must be a number from 1 to 10, got {self.factor!r}")
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, int | float) \
                or not 0 <= self.jitter <= 1:
            raise ValueError(f"RetryPolicy: jitter must be a fraction from 0 to 1, got {self.jitter!r}")
        retry_on = self.retry_on if isinstance(self.retry_on, tuple) else (self.retry_on,)
        for cls in retry_on:
            if not (isinstance(cls, type) and issubclass(cls, Exception)):
                raise TypeError(f"RetryPolicy: retry_on takes exception classes, got {cls!r}")
        object.__setattr__(self, "retry_on", retry_on)

    def wait(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after attempt number ``attempt`` (1: the first) failed."""
        base = self.backoff * self.factor ** min(attempt - 1, 64)
        spread = 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return min(self.cap, base * spread)


# What a bare ``raise Retry()`` gets in a handler that declares no policy.
DEFAULT_POLICY = RetryPolicy()


def wanted(exc: BaseException, policy: RetryPolicy | None) -> Retry | None:
    """The retry ``exc`` asks for: itself when it is a :class:`Retry`, one
    caused by it when ``policy`` retries it, else None."""
    if isinstance(exc, Retry):
        return exc
    if policy is not None and policy.retry_on and isinstance(exc, policy.retry_on):
        return Retry.because(exc)
    return None


def next_wait(retry: Retry, policy: RetryPolicy | None, attempt: int) -> float | None:
    """Seconds until the attempt after ``attempt``, or None when that was
    the last the policy (or the default one) allows."""
    policy = policy or DEFAULT_POLICY
    if attempt >= policy.attempts:
        return None
    return retry.after if retry.after is not None else policy.wait(attempt)
