"""Fleet calls into the box: checked, bounded, and answered MQTT 5's way.

A call arrives on ``daebus/<fleet>/<device>/call/<service>/<action>`` with a
Response Topic and Correlation Data; the answer goes there with the same
Correlation Data: ``{"progress": ..., "pct": ...}`` while the action reports
progress, then ``{"result": ...}`` or ``{"error": {"code", "message"}}``.
The message expiry interval is the deadline. Only ``call_actions`` are run,
at most ``max_calls`` at once (``busy`` beyond)::

    calls = Calls(settings, redis_url, publish=bridge.reply)   # reply(topic, text, correlation, left)
    calls.handle(message, "display", "show")
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from typing import Any, Callable

from daebus import DaebusCaller, DaebusError

from daebus.errors import error_code
from daebus.bus.globs import glob_match
from daebus.fleet.guard import BadMessage, Complaints, json_object
from daebus.fleet.mqtt import prop

log = logging.getLogger("daebus.fleet")

# The fleet's own code beside the bus's (busy, service_unavailable, timeout...).
FORBIDDEN = "forbidden"
error_code(FORBIDDEN, 403, "the fleet may not call that action (`[bridge] call_actions`)")
MAX_RESPONSE_TOPIC = 1024  # bytes
MAX_CALLERS = 64           # services a caller is kept for (a glob may let the fleet name any)


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def encode(body: dict) -> str:
    """A reply body as sent, encoded once: a final one that is not JSON
    answers ``malformed_reply`` instead; progress is passed on as it can be."""
    try:
        return json.dumps(body, separators=(",", ":"), default=None if "progress" not in body else str)
    except (TypeError, ValueError):
        return json.dumps(error_body("malformed_reply", "the action's result is not JSON"), separators=(",", ":"))


def progress_body(payload: Any) -> dict:
    """A daebus progress reply as the fleet sees it: the data and its percentage."""
    pct = None
    if isinstance(payload, dict) and "progress_percentage" in payload:
        payload = dict(payload)
        pct = payload.pop("progress_percentage")
        if set(payload) == {"data"}:
            payload = payload["data"]
        elif not payload:
            payload = None
    return {"progress": payload, "pct": pct}


class Calls:
    """Runs the fleet's calls against the box's services."""

    def __init__(self, allowed, redis_url: str, publish: Callable[[str, str, bytes | None, float], None], *,
                 max_calls: int, default_timeout: float, limit: int, complaints: Complaints):
        self.allowed = list(allowed)
        self.redis_url = redis_url
        self.publish = publish   # (topic, encoded body, correlation data, seconds left)
        self.default_timeout, self.limit = default_timeout, limit
        self.complaints = complaints
        self.max_calls = max_calls
        self._running = 0
        self._idle = threading.Condition()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_calls, thread_name_prefix="fleet-call")
        self._callers: dict[str, DaebusCaller] = {}
        self.counts = {"calls": 0, "forbidden": 0, "busy": 0, "dropped": 0, "expired": 0}

    def permitted(self, service: str, action: str) -> bool:
        name = f"{service}/{action}"
        return any(glob_match(pattern, name) for pattern in self.allowed)

    def handle(self, message, service: str, action: str) -> None:
        """Called on the MQTT network thread: never blocks."""
        reply_to = prop(message, "ResponseTopic")
        correlation = prop(message, "CorrelationData")
        if getattr(message, "retain", False):
            # A retained call would run again for every bridge that subscribes.
            return self._drop("a retained call on %s", message.topic)
        if not _usable_topic(reply_to):
            return self._drop("a call on %s without a usable Response Topic", message.topic)
        expiry = prop(message, "MessageExpiryInterval")
        timeout = float(expiry) if expiry is not None else self.default_timeout
        if timeout <= 0:
            self.counts["expired"] += 1
            return None
        deadline = time.monotonic() + timeout
        answer = lambda body: self.publish(reply_to, encode(body), correlation,  # noqa: E731
                                           deadline - time.monotonic())
        try:
            payload = json_object(message.payload, self.limit, empty_ok=True)
        except BadMessage as exc:
            self._drop("a call on %s: %s", message.topic, exc)
            return answer(error_body("bad_request", f"the payload is {exc}"))
        if not self.permitted(service, action):
            self.counts["forbidden"] += 1
            return answer(error_body(FORBIDDEN, f"{service}/{action} is not in this box's call_actions"))
        if not self._take():
            self.counts["busy"] += 1
            return answer(error_body("busy", "the bridge runs as many fleet calls as it may; try again later"))
        self.counts["calls"] += 1
        try:
            self._pool.submit(self._run, service, action, payload, deadline, answer)
        except RuntimeError:  # stopping
            self._give()

    def _run(self, service: str, action: str, payload: dict, deadline: float, answer) -> None:
        try:
            left = deadline - time.monotonic()
            if left <= 0:
                self.counts["expired"] += 1
                return  # expired while waiting for a thread: not run
            try:
                result = self._caller(service).send_request(
                    action, payload, timeout=left, on_progress=lambda p: answer(progress_body(p)))
                body = {"result": result}
            except DaebusError as exc:
                body = error_body(exc.code, str(exc) or exc.code)
            except Exception:  # noqa: BLE001 - a bug must still answer the fleet
                log.exception("fleet call %s/%s failed in the bridge", service, action)
                body = error_body("internal_error", "the bridge failed; see its log")
            answer(body)
        finally:
            self._give()

    def _take(self) -> bool:
        with self._idle:
            if self._running >= self.max_calls:
                return False
            self._running += 1
            return True

    def _give(self) -> None:
        with self._idle:
            self._running -= 1
            self._idle.notify_all()

    def _caller(self, service: str) -> DaebusCaller:
        caller = self._callers.get(service)
        if caller is None:
            caller = DaebusCaller(service, redis_url=self.redis_url)
            if len(self._callers) < MAX_CALLERS:
                self._callers[service] = caller
        return caller

    def _drop(self, msg: str, *args) -> None:
        self.counts["dropped"] += 1
        self.complaints.warn("call", "dropped " + msg, *args)

    def close(self, wait: float = 5.0) -> None:
        """Stop taking calls; those running get up to ``wait`` seconds."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._idle:
            self._idle.wait_for(lambda: self._running <= 0, wait)


def _usable_topic(topic) -> bool:
    return (isinstance(topic, str) and 0 < len(topic.encode("utf-8")) <= MAX_RESPONSE_TOPIC
            and not set(topic) & set("+#\x00"))
