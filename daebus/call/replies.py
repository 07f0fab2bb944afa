"""The process's reply subscription, read by the callers that wait on it.

Every :class:`DaebusCaller` in a process shares one ``caller:<uuid>``
subscription per Redis URL. There is no reader thread: the waiting callers
take turns reading it (leader/follower). The caller reading the socket hands
each reply to the queue of the caller it belongs to, and when it leaves, it
passes the reading role to another waiting caller. A lone caller therefore
gets its reply without any thread switch, and an idle process holds no thread
and wakes for nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid

import redis

from daebus.bus import auth, protocol
from daebus.bus.bus import Bus
from daebus.errors import AccessDenied, ConnectionLost, MalformedReply, RequestTimeout
from daebus.ops.logs import StateLog
from daebus.ops.ratelog import RateLimitedLog, kind_of
from daebus.bus.transport import REDIS_ERRORS, Liveness, redact

log = logging.getLogger("daebus.caller")
# A rogue peer flooding this channel gets a line per interval.
_rogue = RateLimitedLog(log)

_TAKE_OVER = object()  # put in a waiting caller's queue: "the reading role is yours now"
_MAX_REPLY_BYTES = 64 * 1024 * 1024
_SOCKET_TIMEOUT = 5.0


class ReplyHub:
    """One reply channel per process and Redis URL.

    Example (what :meth:`DaebusCaller.send_request` does)::

        hub = bus.part(ReplyHub)
        hub.prepare(deadline)
        inbox = hub.expect(request_id)
        try:
            publish(request with reply_to=hub.channel)
            reply = hub.next_reply(inbox, deadline)
        finally:
            hub.forget(request_id, inbox)
    """

    def __init__(self, bus: Bus, health_interval: float = 5.0):
        self.url = url = bus.url
        self._bus = bus   # makes its subscription's clients
        # Named after the Redis user, whose ACL lets it subscribe to its own replies only.
        user = auth.username(url)
        self.channel = f"{protocol.REPLY_PREFIX}{user + ':' if user else ''}{uuid.uuid4()}"
        self.health_interval = health_interval
        self._pubsub = None               # only touched by the thread holding _reader
        # Per subscription, not per call: calls shorter than the health
        # interval must still add up to noticing a connection that hangs.
        self._liveness: Liveness | None = None
        self._reader = threading.Lock()   # the reading role
        self._subscribed = threading.Event()
        # Notified when a subscribe attempt ends or the reading role is
        # released: what callers waiting in prepare() wait for.
        self._changed = threading.Condition()
        self._waiting: dict[str, queue.SimpleQueue] = {}
        self._handing = threading.Lock()
        self._state = StateLog(log)
        self._lost_at: float | None = None

    # -- one call ------------------------------------------------------------
    def expect(self, request_id: str, inbox=None) -> queue.SimpleQueue:
        """Register a call; ``inbox`` (anything with put/get_nowait) receives its replies."""
        inbox = queue.SimpleQueue() if inbox is None else inbox
        self._waiting[request_id] = inbox
        return inbox

    def forget(self, request_id: str, inbox: queue.SimpleQueue) -> None:
        # Under the hand-over lock: a reading role is either handed to us
        # before we leave (and passed on below) or to someone still waiting.
        with self._handing:
            self._waiting.pop(request_id, None)
            handed = False
            while True:
                try:
                    handed = inbox.get_nowait() is _TAKE_OVER or handed
                except queue.Empty:
                    break
        if handed:
            self._hand_over(exclude=inbox)

    def prepare(self, deadline: float) -> None:
        """Make sure the subscription is confirmed and its socket healthy
        before a request is published; raises :class:`ConnectionLost`."""
        while True:
            if self._reader.acquire(blocking=False):
                try:
                    self._ensure(deadline)
                finally:
                    self._release()
                return
            if self._subscribed.is_set():
                return  # another caller is reading a confirmed subscription
            # Another caller is connecting: wait until it succeeds or gives
            # up, not for the lock (callers reading replies take it in turns,
            # and a wait for it is no sign of a silent Redis).
            with self._changed:
                self._changed.wait_for(lambda: self._subscribed.is_set() or not self._reader.locked(),
                                       max(0.0, deadline - time.monotonic()))
            if self._subscribed.is_set():
                return
            if time.monotonic() >= deadline:
                raise ConnectionLost(f"Redis at {redact(self.url)} did not confirm the reply "
                                     f"subscription in time")

    def next_reply(self, inbox: queue.SimpleQueue, deadline: float) -> dict:
        """The next reply (or progress update) for ``inbox``'s request;
        raises :class:`RequestTimeout` or :class:`ConnectionLost`."""
        while True:
            item = _poll(inbox)
            if item is not None and item is not _TAKE_OVER:
                return _checked(item)
            if self._reader.acquire(blocking=False):
                try:
                    return _checked(self._read_until(inbox, deadline))
                finally:
                    self._release(exclude=inbox)
            try:
                item = inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RequestTimeout("no reply") from None
            if item is not _TAKE_OVER:
                return _checked(item)

    def take(self, inbox):
        """The next reply already in ``inbox`` (raising the error it is, for
        a lost connection), or None: for callers that wait elsewhere (async
        code awaits an event the hub's reader sets)."""
        while True:
            item = _poll(inbox)
            if item is None:
                return None
            if item is not _TAKE_OVER:
                return _checked(item)

    @property
    def subscribed(self) -> bool:
        """The subscription is confirmed (prepare() then never blocks)."""
        return self._subscribed.is_set()

    @property
    def reading(self) -> bool:
        """Some caller holds the reading role."""
        return self._reader.locked()

    def read_for(self, inbox, deadline: float):
        """Take the reading role if it is free and read until ``inbox`` has
        an item, which is returned (an exception instance for a lost
        connection); None when another caller holds the role. For callers
        that cannot block where they wait (async code runs this in a thread)."""
        if not self._reader.acquire(blocking=False):
            return None
        try:
            return self._read_until(inbox, deadline)
        finally:
            self._release(exclude=inbox)

    # -- the reading role (callers hold self._reader) ------------------------------
    def _ensure(self, deadline: float) -> None:
        if self._pubsub is not None:
            try:
                # Drains what arrived meanwhile; a socket closed by a Redis
                # restart shows up here, before the request goes out.
                while (message := self._pubsub.get_message(timeout=0)) is not None:
                    self._liveness.heard()
                    self._dispatch(message)
                # A PING unanswered for an interval (a frozen Redis) fails here,
                # so the request is not sent to wait on a subscription that hangs.
                self._liveness.idle(self._pubsub)
                return
            except REDIS_ERRORS as exc:
                self._broken(exc)  # it died while idle: subscribe afresh below
        # A client whose connect and socket timeouts end with this call: a
        # stalled Redis must not hold it past its deadline. Rare (the first
        # call, or after an outage), so a fresh client costs nothing.
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            # Spent before Redis was even asked: the call's timeout, not Redis's fault.
            raise RequestTimeout(f"the call's timeout ran out before the reply subscription to Redis at "
                                 f"{redact(self.url)} was made")
        # The call's own budget bounds the socket below the usual timeout:
        # running out of it is the call's timeout, not a sign of a dead Redis.
        short = remaining < _SOCKET_TIMEOUT
        pubsub = self._pubsub = self._bus.subscriber_client(min(remaining, _SOCKET_TIMEOUT)).pubsub()
        try:
            pubsub.subscribe(self.channel)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise redis.TimeoutError("no subscribe confirmation in time")
                message = pubsub.get_message(timeout=min(remaining, 1.0))
                if message is not None and _kind(message) == "subscribe":
                    break
                if message is not None:
                    self._dispatch(message)
        except redis.TimeoutError as exc:
            if not short or self._lost_at is not None:
                # Redis already stopped answering (the liveness check or an error said so):
                # an unconfirmed subscription is more of the same outage, not the call's timeout.
                self._broken(exc)
                raise ConnectionLost(f"cannot reach Redis at {redact(self.url)}: the reply subscription "
                                     f"was not confirmed in time ({exc})") from exc
            self._pubsub = None
            pubsub.close()
            raise RequestTimeout(f"the reply subscription on Redis at {redact(self.url)} was not "
                                 f"confirmed within the call's timeout") from None
        except REDIS_ERRORS as exc:
            self._broken(exc)
            raise ConnectionLost(f"cannot reach Redis at {redact(self.url)}: {exc}") from exc
        except AccessDenied:
            # Not an outage: the call fails at once with it, and the next one asks again.
            self._pubsub = None
            pubsub.close()
            raise
        # Replies may be large: once subscribed, reads get the usual timeout.
        connection = getattr(pubsub, "connection", None)
        sock = getattr(connection, "_sock", None)
        if sock is not None:
            connection.socket_timeout = _SOCKET_TIMEOUT
            sock.settimeout(_SOCKET_TIMEOUT)
        self._liveness = Liveness(self.health_interval)
        self._subscribed.set()
        with self._changed:
            self._changed.notify_all()
        if self._lost_at is not None:
            self._state.set("up", logging.WARNING, "replies: Redis connection restored after %.1f s",
                            time.monotonic() - self._lost_at)
            self._lost_at = None

    def _read_until(self, inbox: queue.SimpleQueue, deadline: float):
        pubsub = self._pubsub
        if pubsub is None:
            return ConnectionLost(f"lost connection to Redis at {redact(self.url)}")
        liveness = self._liveness
        while True:
            item = _poll(inbox)
            if item is not None and item is not _TAKE_OVER:
                return item
            now = time.monotonic()
            if now >= deadline:
                raise RequestTimeout("no reply")
            try:
                message = pubsub.get_message(timeout=min(deadline - now, 1.0))
                if message is None:
                    liveness.idle(pubsub)
                    continue
            except REDIS_ERRORS as exc:
                self._broken(exc)
                continue  # our queue now holds the ConnectionLost
            liveness.heard()
            self._dispatch(message)

    def _dispatch(self, message: dict) -> None:
        if _kind(message) != "message" or not message["data"]:
            return   # an empty message only wakes the reader (see daebus.call.cancelling)
        try:
            reply = protocol.decode_object(message["data"], _MAX_REPLY_BYTES)
        except protocol.ProtocolError as exc:
            _rogue.warning(kind_of(str(exc)), "dropped malformed reply on %s: %s", self.channel, exc)
            inbox = self._inbox_of_unreadable(exc.request_id)
            if inbox is not None:
                # Its caller learns now, not at its timeout.
                inbox.put(MalformedReply(f"the reply could not be read: {exc}"))
            return
        request_id = reply.get("request_id")
        inbox = self._waiting.get(request_id) if isinstance(request_id, str) else None
        if inbox is None:
            inbox = self._inbox_of_unreadable(None) if not isinstance(request_id, str) else None
            if inbox is not None:
                problem = reply_shape_problem(reply) or "'request_id' is not a string"
                inbox.put(MalformedReply(f"the reply could not be read: {problem}"))
                return
            log.debug("reply for unknown or finished request %r", request_id)
            return
        problem = reply_shape_problem(reply)
        if problem is not None:
            _rogue.warning(kind_of(problem), "dropped malformed reply on %s: %s", self.channel, problem)
            inbox.put(MalformedReply(f"the reply could not be read: {problem}"))
            return
        inbox.put(reply)

    def _inbox_of_unreadable(self, request_id):
        """Whose reply an unreadable one is: the request it names, else the
        only request waiting (this channel carries this process's replies
        alone, so it can be no other's)."""
        if request_id is not None:
            return self._waiting.get(request_id)
        waiting = list(self._waiting.values())
        return waiting[0] if len(waiting) == 1 else None

    def _broken(self, exc: Exception) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self._subscribed.clear()
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001 - closing a broken socket may fail any way
                pass
        if self._lost_at is None:
            self._lost_at = time.monotonic()
        self._state.set("lost", logging.ERROR, "replies: lost connection to Redis at %s: %s",
                        redact(self.url), exc or type(exc).__name__)
        error = ConnectionLost(f"lost connection to Redis while waiting for a reply: {exc}")
        for inbox in list(self._waiting.values()):
            inbox.put(error)

    def _release(self, exclude: queue.SimpleQueue | None = None) -> None:
        self._reader.release()
        with self._changed:
            self._changed.notify_all()
        self._hand_over(exclude)

    def _hand_over(self, exclude: queue.SimpleQueue | None) -> None:
        # Someone still waiting may have found the role taken: give it to one.
        with self._handing:
            for inbox in list(self._waiting.values()):
                if inbox is not exclude:
                    inbox.put(_TAKE_OVER)
                    return


def reply_shape_problem(reply: dict) -> str | None:
    """What makes a decoded reply envelope unusable, or None."""
    status = reply.get("status")
    if status not in (protocol.SUCCESS, protocol.ERROR):
        return f"'status' must be {protocol.SUCCESS!r} or {protocol.ERROR!r}, got {status!r:.60}"
    final = reply.get("final", True)
    if not isinstance(final, bool):
        return f"'final' must be true or false, got {final!r:.60}"
    if not final and status == protocol.ERROR:
        return "an error reply must be final"
    if "request_id" not in reply:
        return "no 'request_id'"
    return None


def _poll(inbox: queue.SimpleQueue):
    try:
        return inbox.get_nowait()
    except queue.Empty:
        return None


def _checked(item):
    if isinstance(item, Exception):
        raise item
    return item


def _kind(message: dict) -> str:
    kind = message["type"]
    return kind.decode() if isinstance(kind, bytes) else kind
