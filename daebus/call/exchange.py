"""One call, without I/O: the request it sends and what each reply means.

:class:`DaebusCaller` and :class:`AsyncCaller` drive the same
:class:`Call`; they differ only in how they wait (a thread blocks, a
coroutine awaits). Everything a call decides - the envelope, its deadline,
progress or result or error, the messages of its timeouts - is here, once.

Example (what both callers do around their own I/O)::

    call = Call("sensors", "read", {"id": 3}, timeout=2.0, trace_id=None)
    send(call.envelope(reply_channel))       # PUBLISH or XADD, by the sender
    while True:
        outcome = call.receive(next_reply())  # raises RemoteError / MalformedReply
        if outcome.final:
            return outcome.payload
        on_progress(outcome.payload)
    # given up before the final reply (timeout, Ctrl-C, cancelled):
    publish(*call.cancel("timeout"))          # the service stops working on it
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, NamedTuple

from daebus.app.context import current_trace_id, get_daemon
from daebus.bus import protocol, wirejson
from daebus.bus.keys import cancel_channel
from daebus.errors import BadRequest, DaebusError, RequestTimeout, remote_error
from daebus.ops import config

# What a service reads by default (``[service] max_message_bytes``); a
# request over a service's limit would be dropped there.
MAX_MESSAGE_BYTES = config.SERVICE.keys["max_message_bytes"].default
# The longest wait the interpreter's locks and queues take.
MAX_TIMEOUT = threading.TIMEOUT_MAX


class Outcome(NamedTuple):
    """A reply as the caller sees it: progress (``final`` False) or the result."""

    final: bool
    payload: Any


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


class Call:
    """One request to ``service``'s ``action`` and the replies it gets."""

    def __init__(self, service: str, action: str, payload: Any, timeout: float, trace_id: str | None):
        check_timeout(timeout)
        self.service = service
        self.action = action
        self.payload = {} if payload is None else payload
        self.timeout = timeout
        self.trace_id = resolve_trace_id(trace_id)
        self.request_id = uuid.uuid4().hex
        self.deadline = time.monotonic() + timeout
        self.reply_to: str | None = None   # known once the envelope is made

    @property
    def name(self) -> str:
        return f"{self.service}.{self.action}"

    def envelope(self, reply_to: str) -> str:
        """The request as sent, replies going to ``reply_to``; raises
        :class:`BadRequest` for one the service would refuse (not JSON the bus
        carries, see :mod:`daebus.bus.wirejson`, or too large: a request over
        Redis's pub/sub buffers is lost, not refused), :class:`RequestTimeout`
        when the deadline passed before it could go."""
        self.reply_to = reply_to
        envelope = protocol.request_envelope(
            self.action, self.payload, reply_to, self.request_id, self.service, int(self.timeout * 1000),
            time.time(), self.trace_id)
        try:
            message = protocol.dumps(envelope)
            if len(message) > MAX_MESSAGE_BYTES // 4:  # a str of fewer chars is surely within the default
                wirejson.check_size(message, _max_message_bytes(), "the request")
        except ValueError as exc:
            raise BadRequest(f"{self.name}: cannot send the payload: {exc}") from None
        if time.monotonic() >= self.deadline:
            # This process was too busy to even send it: not Redis's fault.
            raise RequestTimeout(f"{self.name} could not be sent within {self.timeout:g} s "
                                 f"(this process is overloaded)")
        return message

    def receive(self, reply: dict) -> Outcome:
        """What one reply envelope means for this call; an error reply raises
        the :class:`RemoteError` it carries."""
        if not reply.get("final", True):
            return Outcome(False, reply.get("payload"))
        if reply.get("status") == protocol.ERROR:
            raise remote_error(reply.get("payload"), self.service)
        return Outcome(True, reply.get("payload"))

    def cancel(self, reason: str) -> tuple[str, str]:
        """The channel and text of the cancel a caller that gives up
        publishes (``reason``: one of :data:`protocol.CANCEL_REASONS`). It
        names the request by its id and reply channel, which only this
        caller and the service know, so nobody else can cancel it."""
        remaining_ms = (self.deadline - time.monotonic()) * 1000
        text = protocol.dumps(protocol.cancel_envelope(self.request_id, self.reply_to or "", reason, remaining_ms))
        return cancel_channel(self.service), text

    def no_answer(self) -> RequestTimeout:
        """The error of a call whose deadline passed without its reply."""
        return RequestTimeout(f"{self.name} did not answer within {self.timeout:g} s")
