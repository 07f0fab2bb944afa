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
"""

from __future__ import annotations

import time
import uuid
from typing import Any, NamedTuple

from daebus.app.context import current_trace_id
from daebus.bus import protocol
from daebus.errors import RequestTimeout, remote_error


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


class Call:
    """One request to ``service``'s ``action`` and the replies it gets."""

    def __init__(self, service: str, action: str, payload: Any, timeout: float, trace_id: str | None):
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.service = service
        self.action = action
        self.payload = {} if payload is None else payload
        self.timeout = timeout
        self.trace_id = resolve_trace_id(trace_id)
        self.request_id = uuid.uuid4().hex
        self.deadline = time.monotonic() + timeout

    @property
    def name(self) -> str:
        return f"{self.service}.{self.action}"

    def envelope(self, reply_to: str) -> str:
        """The request as sent, replies going to ``reply_to``; raises
        :class:`RequestTimeout` when the deadline passed before it could go."""
        message = protocol.dumps(protocol.request_envelope(
            self.action, self.payload, reply_to, self.request_id, self.service, int(self.timeout * 1000),
            time.time(), self.trace_id))
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

    def no_answer(self) -> RequestTimeout:
        """The error of a call whose deadline passed without its reply."""
        return RequestTimeout(f"{self.name} did not answer within {self.timeout:g} s")
