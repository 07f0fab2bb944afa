"""Calling services: :class:`DaebusCaller` and the process-wide reply hub.

Every caller in a process shares one reply subscription per Redis URL. A
waiting call sleeps on its own queue and is woken by the reply, so nothing
polls, and a lost connection fails every waiting call at once.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from typing import Any, Callable

from . import config, protocol
from .context import get_daemon
from .errors import ConnectionLost, DaebusError, RequestTimeout, ServiceUnavailable, remote_error
from .transport import REDIS_ERRORS, Publisher, Subscriber, connect, redact

log = logging.getLogger("daebus.caller")

_lock = threading.Lock()
_publishers: dict[tuple[str, int], Publisher] = {}
_hubs: dict[tuple[str, int], ReplyHub] = {}


def shared_publisher(url: str) -> Publisher:
    """The process's publisher for ``url`` (a forked child gets its own)."""
    key = (url, os.getpid())
    with _lock:
        publisher = _publishers.get(key)
        if publisher is None:
            publisher = _publishers[key] = Publisher(connect(url))
        return publisher


def shared_client(url: str):
    """The process's command client for ``url``; connection pools are thread-safe."""
    return shared_publisher(url).client


class ReplyHub:
    """One ``caller:<uuid>`` subscription routing replies to waiting calls."""

    def __init__(self, url: str):
        self.url = url
        self.channel = f"{protocol.REPLY_PREFIX}{uuid.uuid4()}"
        self._waiting: dict[str, queue.SimpleQueue] = {}
        self._subscriber = Subscriber(url, [self.channel], self._on_message, name="replies",
                                      on_lost=self._on_lost).start()

    @classmethod
    def for_url(cls, url: str) -> ReplyHub:
        key = (url, os.getpid())
        with _lock:
            hub = _hubs.get(key)
            if hub is None or not hub.alive:
                hub = _hubs[key] = cls(url)
            return hub

    def wait_ready(self, timeout: float) -> bool:
        """Wait for the reply subscription. When Redis is known to be down,
        try once more at once and give up quickly rather than hold the
        caller for its whole timeout."""
        if self._subscriber.ready:
            return True
        if self._subscriber.failed:
            self._subscriber.retry_now()
            timeout = min(timeout, 0.5)
        return self._subscriber.wait_ready(timeout)

    @property
    def alive(self) -> bool:
        return self._subscriber.alive

    def expect(self, request_id: str) -> queue.SimpleQueue:
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._waiting[request_id] = inbox
        return inbox

    def forget(self, request_id: str) -> None:
        self._waiting.pop(request_id, None)

    def _on_message(self, channel: str, data: bytes) -> None:
        try:
            reply = protocol.decode_object(data, 64 * 1024 * 1024)
        except protocol.ProtocolError as exc:
            log.warning("dropped malformed reply on %s: %s", channel, exc)
            return
        request_id = reply.get("request_id")
        inbox = self._waiting.get(request_id) if isinstance(request_id, str) else None
        if inbox is None:
            log.debug("reply for unknown or finished request %r", reply.get("request_id"))
            return
        inbox.put(reply)

    def _on_lost(self, exc: Exception) -> None:
        error = ConnectionLost(f"lost connection to Redis while waiting for a reply: {exc}")
        for inbox in list(self._waiting.values()):
            inbox.put(error)

    def close(self) -> None:
        self._subscriber.stop()


class DaebusCaller:
    """Sends requests and messages to one service.

    Example::

        with DaebusCaller("my_service") as caller:
            status = caller.send_request("get_status", {"detail_level": "full"})

    The Redis URL is, in order: the arguments, the running app's Redis (for a
    caller used inside a service), ``DAEBUS_REDIS_URL``, the config files.
    """

    def __init__(self, target_service: str, redis_host: str | None = None, redis_port: int | None = None,
                 timeout: float = 5, redis_url: str | None = None):
        if not isinstance(target_service, str) or not target_service:
            raise ValueError("target_service must be a non-empty string")
        self.target_service = target_service
        self.timeout = timeout
        self._explicit_url = config.redis_url_from(redis_url, redis_host, redis_port)
        self._closed = False
        self._cached: tuple | None = None

    @property
    def redis_url(self) -> str:
        if self._explicit_url:
            return self._explicit_url
        app = get_daemon()
        if app is not None and app.redis_url:
            return app.redis_url
        return config.load().redis_url

    @property
    def redis(self):
        return shared_client(self.redis_url)

    def _route(self, url: str) -> tuple[ReplyHub, Publisher]:
        # Cached per caller: the lookups take a process-wide lock.
        cached = self._cached
        if cached is None or cached[0] != url or cached[1] != os.getpid() or not cached[2].alive:
            cached = self._cached = (url, os.getpid(), ReplyHub.for_url(url), shared_publisher(url))
        return cached[2], cached[3]

    def _check_open(self) -> None:
        if self._closed:
            raise DaebusError(f"DaebusCaller({self.target_service!r}) is closed")

    def send_request(self, action: str, payload: Any = None, timeout: float | None = None,
                     on_progress: Callable[[Any], None] | None = None) -> Any:
        """Call ``action`` and return the reply's payload.

        Raises :class:`RemoteError` (the service answered with an error),
        :class:`ServiceUnavailable` (nobody listens, raised at once),
        :class:`RequestTimeout` or :class:`ConnectionLost`.
        """
        self._check_open()
        timeout = self.timeout if timeout is None else timeout
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        url = self.redis_url
        deadline = time.monotonic() + timeout
        hub, publish = self._route(url)
        if not hub.wait_ready(timeout):
            raise ConnectionLost(f"Redis at {redact(url)} is unavailable")
        request_id = uuid.uuid4().hex
        inbox = hub.expect(request_id)
        try:
            message = protocol.dumps(protocol.request_envelope(
                action, {} if payload is None else payload, hub.channel, request_id,
                self.target_service, int(timeout * 1000)))
            try:
                receivers = publish(self.target_service, message)
            except REDIS_ERRORS as exc:
                raise ConnectionLost(f"cannot reach Redis at {redact(url)}: {exc}") from exc
            if receivers == 0:
                raise ServiceUnavailable(f"service {self.target_service!r} is not running "
                                         f"(nobody subscribed to its channel)")
            return self._wait(inbox, action, deadline, timeout, on_progress)
        finally:
            hub.forget(request_id)

    def _wait(self, inbox: queue.SimpleQueue, action: str, deadline: float, timeout: float,
              on_progress) -> Any:
        while True:
            try:
                reply = inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RequestTimeout(f"{self.target_service}.{action} did not answer within "
                                     f"{timeout:g} s") from None
            if isinstance(reply, Exception):
                raise reply
            if not reply.get("final", True):
                if on_progress is not None:
                    try:
                        on_progress(reply.get("payload"))
                    except Exception:  # noqa: BLE001 - a callback bug must not lose the reply
                        log.exception("on_progress callback for %s.%s failed", self.target_service, action)
                continue
            if reply.get("status") == protocol.ERROR:
                raise remote_error(reply.get("payload"), self.target_service)
            return reply.get("payload")

    def send_message(self, channel: str, payload: dict) -> int:
        """Broadcast ``payload`` on ``channel``; returns the receiver count."""
        self._check_open()
        return self._publish(channel, protocol.dumps(payload))

    def send_to_service(self, payload: dict, action: str | None = None) -> int:
        """Publish ``payload`` on the service channel without waiting for a
        reply (the Daebus 0.0.x form: the payload's keys plus ``action``)."""
        self._check_open()
        message = {**payload, "action": action} if action else payload
        return self._publish(self.target_service, protocol.dumps(message))

    def _publish(self, channel: str, text: str) -> int:
        try:
            return self._route(self.redis_url)[1](channel, text)
        except REDIS_ERRORS as exc:
            raise ConnectionLost(f"cannot reach Redis at {redact(self.redis_url)}: {exc}") from exc

    def close(self) -> None:
        """Stop using this caller. The shared reply subscription stays for
        the process's other callers. Safe to call twice."""
        self._closed = True

    def __enter__(self) -> DaebusCaller:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
