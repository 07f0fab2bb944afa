"""Retries kept in the process: an owner's requests, and every listener's
broadcasts (in both modes; a group's requests wait in Redis instead, see
:mod:`daebus.service.groupretry`).

A handler that raises :class:`~daebus.Retry` (or an exception its policy
retries) hands its call here through the executor. A request is run again
after the wait only when that is before its caller's deadline and the
policy has attempts left; otherwise its caller gets the last error now.
While it waits it holds no worker, only a place in the pool's bound (so a
flood of retries is refused like a flood of requests: the last error, at
once), and it is still an accepted request: a stop answers it
``shutting_down``. A broadcast is handed to its listener again within the
attempts; there is no caller to wait for it.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from daebus.app.retry import Retry, next_wait
from daebus.bus import protocol
from daebus.service.dispatch import handler_name

log = logging.getLogger("daebus.runtime")


class Retries:
    """``host``: the runtime as its components see it; ``later``: the
    :class:`~daebus.service.later.Later` that keeps the waits."""

    def __init__(self, host, later):
        self.host = host
        self.later = later

    def request(self, message: protocol.Request, sent: float | None, exc: Retry,
                rerun: Callable[[protocol.Request, float | None], None]) -> bool:
        """Run ``message`` again later through ``rerun(message, sent)``;
        False when it will not be (its caller then gets the last error)."""
        host = self.host
        action, attempt = message.action, message.delivery
        policy = host.app.retries.get(action)
        wait = next_wait(exc, policy, attempt)
        if wait is None:
            return False
        if message.timeout_ms and sent is not None:
            left = message.timeout_ms / 1000 - (time.monotonic() - sent)
            if wait >= left:
                log.info("action %r asked for a retry in %.1f s, past its caller's deadline (%.1f s left): "
                         "answering the last error now", action, wait, max(0.0, left))
                return False
        pool, executor = host.handlers.pool, host.executor
        if not pool.admit():
            log.warning("action %r asked for a retry while the work queue is full: answering the last "
                        "error now", action)
            return False
        again = message._replace(delivery=attempt + 1)
        executor.accept(again)

        def due() -> None:
            try:
                rerun(again, sent)
            finally:
                pool.release()

        def dropped() -> None:
            executor.drop(again)
            pool.release()
            if again.reply_to:
                host.reply_error(again.reply_to, again.request_id,
                                 f"service {host.service!r} stopped before retrying {action!r}",
                                 protocol.SHUTTING_DOWN)

        if not self.later.at(wait, due, dropped):   # stopping: no retry now
            executor.drop(again)
            pool.release()
            return False
        log.info("action %r asked for a retry: attempt %d in %.2f s", action, attempt + 1, wait,
                 extra={"daebus_action": action, "daebus_request_id": message.trace_id or message.request_id})
        return True

    def broadcast(self, handler, channel: str, payload: dict, attempt: int, exc: Retry,
                  rerun: Callable[..., None]) -> bool:
        """Hand ``payload`` to ``handler`` again later, through
        ``rerun(handler, channel, payload, attempt + 1)``; False when not."""
        wait = next_wait(exc, self.host.app.listen_retries.get((channel, handler)), attempt)
        pool = self.host.handlers.pool
        if wait is None or not pool.admit():
            return False

        def due() -> None:
            try:
                rerun(handler, channel, payload, attempt + 1)
            finally:
                pool.release()

        if not self.later.at(wait, due, pool.release):
            pool.release()
            return False
        log.info("listener %s for %r asked for a retry: attempt %d in %.2f s", handler_name(handler),
                 channel, attempt + 1, wait)
        return True
