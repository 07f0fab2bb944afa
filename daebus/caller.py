"""Calling services: :class:`DaebusCaller`.

Every caller in a process shares one reply subscription per Redis URL
(:mod:`daebus.replies`); a waiting call is woken by its reply, so nothing
polls, and a lost connection fails every waiting call at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import Any, Callable

import redis

from . import config, protocol, standins, wirejson
from .context import current_trace_id, get_daemon
from .errors import BadRequest, ConnectionLost, DaebusError, RequestTimeout, remote_error
from .kept import KeepingPublisher
from .replies import ReplyHub
from .sending import Sender
from .transport import REDIS_ERRORS, Publisher, connect, redact

log = logging.getLogger("daebus.caller")

# What a service reads by default (``[service] max_message_bytes``); a
# request over a service's limit would be dropped there.
MAX_MESSAGE_BYTES = config.SERVICE.keys["max_message_bytes"].default
# The longest wait the interpreter's locks and queues take.
MAX_TIMEOUT = threading.TIMEOUT_MAX

_lock = threading.Lock()
_publishers: dict[tuple[str, int], Publisher] = {}
_keepers: dict[tuple[str, int], KeepingPublisher] = {}


def shared_publisher(url: str) -> Publisher:
    """The process's publisher for ``url`` (a forked child gets its own)."""
    key = (url, os.getpid())
    with _lock:
        publisher = _publishers.get(key)
        if publisher is None:
            publisher = _publishers[key] = Publisher(connect(url))
        return publisher


def shared_broadcaster(url: str) -> KeepingPublisher:
    """The process's broadcast publisher for ``url``: it keeps what a
    gateway asked to keep (see :mod:`daebus.kept`)."""
    key = (url, os.getpid())
    with _lock:
        keeper = _keepers.get(key)
    if keeper is None:
        publisher = shared_publisher(url)
        with _lock:
            keeper = _keepers.setdefault(key, KeepingPublisher(publisher.client, publisher))
    return keeper


def shared_client(url: str):
    """The process's command client for ``url``; connection pools are thread-safe."""
    return shared_publisher(url).client


def resolve_trace_id(trace_id: str | None) -> str | None:
    """The trace id a request carries: the one given (checked), else the one
    of the request being handled, if any."""
    if trace_id is None:
        return current_trace_id()
    if protocol.valid_trace_id(trace_id) is None:
        raise ValueError(f"trace_id must match {protocol.TRACE_ID_PATTERN.pattern}, got {trace_id!r}")
    return trace_id


def check_timeout(timeout: float) -> float:
    """``timeout`` when it is a usable number of seconds, else ValueError."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
        raise ValueError(f"timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}, "
                         f"got {timeout!r}")
    return timeout


def encode_request(service: str, action: str, envelope: dict) -> str:
    """The wire text of a request; :class:`BadRequest` for one that the
    service would refuse (not JSON the bus carries, or too large), before
    anything is sent: a request over Redis's pub/sub buffers is lost, not refused."""
    try:
        text = protocol.dumps(envelope)
        if len(text) > MAX_MESSAGE_BYTES // 4:  # a str of fewer chars is surely within the default
            wirejson.check_size(text, _max_message_bytes(), "the request")
    except ValueError as exc:
        raise BadRequest(f"{service}.{action}: cannot send the payload: {exc}") from None
    return text


def _max_message_bytes() -> int:
    # Looked up only for a large request: the running service's setting, else
    # this device's config (services on it read the same files), else the default.
    app = get_daemon()
    runtime = getattr(app, "_runtime", None) if app is not None else None
    if runtime is not None:
        return runtime.settings.max_message_bytes
    try:
        return config.load().max_message_bytes
    except DaebusError:
        return MAX_MESSAGE_BYTES


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
        if cached is None or cached[0] != url or cached[1] != os.getpid():
            publisher = shared_publisher(url)
            cached = self._cached = (url, os.getpid(), ReplyHub.for_url(url), publisher,
                                     Sender.for_url(url, publisher))
        return cached[2], cached[3]

    def _check_open(self) -> None:
        if self._closed:
            raise DaebusError(f"DaebusCaller({self.target_service!r}) is closed")

    def send_request(self, action: str, payload: Any = None, timeout: float | None = None,
                     on_progress: Callable[[Any], None] | None = None, trace_id: str | None = None) -> Any:
        """Call ``action`` and return the reply's payload.

        Ends within ``timeout`` seconds (plus at most
        :data:`daebus.transport.PUBLISH_GRACE`) whatever Redis does. Raises :class:`RemoteError` (the
        service answered with an error), :class:`ServiceUnavailable` (nobody
        serves it, raised at once; a group's requests wait in its stream for an
        instance instead, up to the timeout), :class:`RequestTimeout` (Redis took the
        request but no reply came in time, or the timeout ran out before the reply
        subscription was confirmed), :class:`BadRequest` (a payload the bus does not
        carry, see :mod:`daebus.wirejson`, refused before sending), :class:`ConnectionLost` (Redis
        refused, dropped or stalled the request or the reply subscription) or
        :class:`MalformedReply` (a reply that is not strict JSON).

        ``trace_id`` (letters, digits and ``._:@+=/-``, at most 128) travels
        with the request into the service's log records; by default a call
        made while handling a request carries that request's id on.
        """
        self._check_open()
        timeout = check_timeout(self.timeout if timeout is None else timeout)
        local = standins.active()
        if local is not None:  # under daebus.testing: never the real bus
            return local._stand_ins.call(self.target_service, action, payload)
        trace_id = resolve_trace_id(trace_id)
        url = self.redis_url
        deadline = time.monotonic() + timeout
        hub, publish = self._route(url)
        hub.prepare(deadline)
        request_id = uuid.uuid4().hex
        inbox = hub.expect(request_id)
        try:
            self._send(hub, url, action, payload, request_id, timeout, deadline, trace_id)
            return self._wait(hub, inbox, action, deadline, timeout, on_progress)
        finally:
            hub.forget(request_id, inbox)

    def _send(self, hub: ReplyHub, url: str, action: str, payload: Any, request_id: str, timeout: float,
              deadline: float, trace_id: str | None) -> None:
        """Deliver one request (PUBLISH, or XADD to a group); shared with AsyncCaller."""
        message = encode_request(self.target_service, action, protocol.request_envelope(
            action, {} if payload is None else payload, hub.channel, request_id,
            self.target_service, int(timeout * 1000), time.time(), trace_id))
        if time.monotonic() >= deadline:
            # This process was too busy to even send it: not Redis's fault.
            raise RequestTimeout(f"{self.target_service}.{action} could not be sent within "
                                 f"{timeout:g} s (this process is overloaded)")
        try:
            self._cached[4].send(self.target_service, message, deadline)
        except redis.TimeoutError as exc:
            raise ConnectionLost(f"Redis at {redact(url)} did not take the request within "
                                 f"{timeout:g} s (stalled or overloaded): {exc}") from exc
        except REDIS_ERRORS as exc:
            raise ConnectionLost(f"cannot reach Redis at {redact(url)}: {exc}") from exc

    def _wait(self, hub: ReplyHub, inbox, action: str, deadline: float, timeout: float,
              on_progress) -> Any:
        while True:
            try:
                reply = hub.next_reply(inbox, deadline)
            except RequestTimeout:
                raise RequestTimeout(f"{self.target_service}.{action} did not answer within "
                                     f"{timeout:g} s") from None
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
        text = protocol.dumps(payload)
        local = standins.active()
        if local is not None:
            return local._publish(channel, text)
        try:
            return shared_broadcaster(self.redis_url)(channel, text)
        except REDIS_ERRORS as exc:
            raise ConnectionLost(f"cannot reach Redis at {redact(self.redis_url)}: {exc}") from exc

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
