"""How a request reaches a service: PUBLISH to an owner, XADD to a group.

A caller learns a service's mode from the registry once and caches it per
process. It never polls for changes: a change shows up in the send itself.
An owner's PUBLISH that reaches nobody makes the caller look again (the
service may have become a group, whose requests wait in its stream), and a
group's XADD is sent with a read of the registry's mode in the same round
trip: if the name now belongs to a single owner, the entry is taken back
and published instead.

Example::

    sender = bus.part(Sender)
    sender.send("sensors", envelope_json, deadline)   # raises ServiceUnavailable
"""

from __future__ import annotations

import redis

from daebus.bus import registry
from daebus.bus.auth import refusal
from daebus.errors import ConnectionLost, ServiceUnavailable
from daebus.bus.keys import stream_key
from daebus.bus.bus import Bus
from daebus.bus.transport import REDIS_ERRORS, Publisher, redact
from daebus.call.exchange import Call


class Sender:
    """Sends requests on one Redis, remembering each service's mode.

    Every command runs on the publisher's thread-owned connection within
    the caller's deadline, as a PUBLISH does.
    """

    def __init__(self, bus: Bus):
        self.publish: Publisher = bus.publisher
        self._modes: dict[str, tuple[str, int]] = {}

    def mode(self, service: str, deadline: float, refresh: bool = False) -> tuple[str | None, int]:
        """``(mode, stream_max_length)`` of ``service`` from its registry
        record, cached; the mode is None while it has no record (not
        running, or a group with no live instance)."""
        known = self._modes.get(service)
        if known is None or refresh:
            found = dict(zip(registry.ROUTING, self.publish.command(
                deadline, "HMGET", registry.key(service), *registry.ROUTING)))
            record = registry.ServiceRecord.parse(found)
            # No mode field: nothing to route by (see _mode).
            mode = None if found[registry.MODE] is None else record.mode
            known = self._modes[service] = (mode, record.stream_max_length)
        return known

    def send(self, service: str, message: str, deadline: float) -> None:
        """Deliver one request envelope, or raise :class:`ServiceUnavailable`."""
        mode, max_length = self.mode(service, deadline)
        if mode == registry.GROUP:
            if self._to_group(service, message, max_length, deadline, create=True):
                return
            mode, max_length = self.mode(service, deadline, refresh=True)
        if self.publish(service, message, deadline):
            return
        mode, max_length = self.mode(service, deadline, refresh=True)
        # No record: a group whose instances are all down still has its stream,
        # and the request waits there (NOMKSTREAM: only if it exists).
        if mode != registry.OWNER and self._to_group(service, message, max_length, deadline,
                                                     create=mode == registry.GROUP):
            self._modes[service] = (registry.GROUP, max_length)
            return
        raise ServiceUnavailable(f"service {service!r} is not running "
                                 f"(nobody subscribed to its channel)")

    def _to_group(self, service: str, message: str, max_length: int, deadline: float, create: bool) -> bool:
        stream = stream_key(service)
        # One round trip: the request goes in, and the mode comes back with it.
        entry, mode = self.publish.commands(
            ("XADD", stream, *(() if create else ("NOMKSTREAM",)), "MAXLEN", "~", max_length, "*",
             "request", message),
            ("HGET", registry.key(service), registry.MODE), deadline=deadline)
        for reply in (entry, mode):
            if isinstance(reply, Exception):
                raise refusal(reply) or reply
        if entry is None:
            return False   # no stream: the service never ran as a group here
        if _mode(mode) != registry.OWNER:
            return True
        # The name now belongs to a single owner, which reads no stream: take
        # the request back (no group member can have read it) and publish it.
        # A caller allowed only XADD leaves it, to expire unanswered.
        try:
            self.publish.command(deadline, "XDEL", stream, entry)
        except redis.ResponseError:
            pass
        return False


def _mode(value) -> str | None:
    """A record's mode field as routing reads it: None when there is none to
    read (no record, or one 0.0.x wrote: its owner answers a PUBLISH, and
    with nobody subscribed a group's stream may still be there)."""
    return None if value is None else registry.ServiceRecord.parse({registry.MODE: value}).mode


def deliver(bus: Bus, call: Call, reply_to: str) -> None:
    """Send ``call``'s request on ``bus``, replies going to ``reply_to``:
    what both callers do; Redis's failures become :class:`ConnectionLost`."""
    message = call.envelope(reply_to)
    try:
        bus.part(Sender).send(call.service, message, call.deadline)
    except redis.TimeoutError as exc:
        raise ConnectionLost(f"Redis at {redact(bus.url)} did not take the request within "
                             f"{call.timeout:g} s (stalled or overloaded): {exc}") from exc
    except REDIS_ERRORS as exc:
        raise ConnectionLost(f"cannot reach Redis at {redact(bus.url)}: {exc}") from exc
