"""Group mode: what happens to requests whose instance died.

An instance that dies holding requests leaves them pending in the group.
Once one sat ``claim_idle`` seconds unacknowledged, a live instance claims
it with ``XAUTOCLAIM`` and runs it again (``request.delivery`` > 1). A live
instance re-claims its own entries to itself at each beat (``XCLAIM ...
JUSTID`` resets their idle time), so a long handler keeps its requests.
After ``max_deliveries`` an entry goes to ``daebus:dead:<service>`` and its
caller gets a ``dead_letter`` error reply. Consumers of instances that are
gone and hold nothing are removed, so the group doesn't grow with restarts.
An entry that a retry put back in the stream (:mod:`daebus.service.groupretry`)
carries the deliveries it had before, which count too.
"""

from __future__ import annotations

import logging
import re
import time

from daebus.bus import protocol
from daebus.bus.keys import text
from daebus.errors import DeadLetter
from daebus.service.membership import is_live

log = logging.getLogger("daebus.group")

GROUP_NAME = "daebus"
DEAD_MAX_LENGTH = 1000

# Resets the idle time of entries this consumer still holds, without taking
# one that another consumer claimed meanwhile. ARGV: group, consumer, ids.
_KEEP = """
local kept = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept = kept + 1
  end
end
return kept
"""


_ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}")


def _field(fields: dict | None, name: str):
    if not fields:
        return None
    return fields.get(name.encode(), fields.get(name))


def delivered_before(fields: dict | None) -> int:
    """Deliveries a re-added entry had before (0 for a caller's own entry,
    or a field that is not a sane count)."""
    value = text(_field(fields, "delivered"))
    if isinstance(value, str) and value.isdigit() and len(value) <= 6:
        return int(value)
    return 0


def first_id(fields: dict | None, entry_id: str) -> str:
    """The id of the entry its caller added, which a re-added entry names."""
    value = text(_field(fields, "first"))
    return value if isinstance(value, str) and _ENTRY_ID.fullmatch(value) else entry_id


class Claims:
    """The claiming side of one :class:`~daebus.service.group.GroupServer`.

    Example (what the server's beat does)::

        claims.keep(entries_in_flight)
        claims.claim()               # starts what it claims on the server
        claims.forget_departed()
        soon = claims.next_claim(holding=bool(entries_in_flight))
    """

    def __init__(self, server):
        self.server = server
        self.client, self.stream, self.dead = server.client, server.stream, server.dead
        self.consumer, self.service = server.consumer, server.service
        self.claim_idle_ms, self.max_deliveries = server.claim_idle_ms, server.max_deliveries
        self._keep = server.client.register_script(_KEEP)
        self.dead_lettered = 0

    def keep(self, held: list[str]) -> None:
        if held:
            self._keep(keys=[self.stream], args=[GROUP_NAME, self.consumer, *held])

    def claim(self) -> None:
        """Claim what a dead instance left (one idle worker per entry)."""
        server, cursor = self.server, "0-0"
        while server.slots.try_take():
            # XAUTOCLAIM looks at a few pending entries per call: follow its cursor.
            result = self.client.xautoclaim(self.stream, GROUP_NAME, self.consumer, self.claim_idle_ms,
                                            start_id=cursor, count=1)
            cursor = text(result[0])
            entries = [e for e in result[1] if e and e[0]]
            if not entries:
                server.slots.give()
                if cursor == "0-0":
                    return
                continue
            entry_id, fields = text(entries[0][0]), entries[0][1]
            pending = self.client.xpending_range(self.stream, GROUP_NAME, entry_id, entry_id, 1)
            delivery = (pending[0]["times_delivered"] + delivered_before(fields) if pending
                        else self.max_deliveries + 1)
            if delivery > self.max_deliveries:
                self.dead_letter(entry_id, fields, delivery)
                server.slots.give()
                continue
            log.warning("%s: claimed request %s from an instance that stopped (delivery %d of %d)",
                        self.service, entry_id, delivery, self.max_deliveries)
            server.take(entry_id, fields, delivery)
            if cursor == "0-0":
                return

    def forget_departed(self) -> None:
        """Remove consumers of instances that are gone and hold nothing."""
        for consumer in self.client.xinfo_consumers(self.stream, GROUP_NAME):
            name = text(consumer["name"])
            if (name != self.consumer and not consumer["pending"]
                    and consumer["idle"] > self.claim_idle_ms and not is_live(self.client, name)):
                self.client.xgroup_delconsumer(self.stream, GROUP_NAME, name)

    def next_claim(self, holding: bool) -> float | None:
        """Seconds until an entry held elsewhere could be claimed (or until
        our own need keeping), None if neither."""
        soonest = None
        for entry in self.client.xpending_range(self.stream, GROUP_NAME, "-", "+", 100):
            if text(entry["consumer"]) == self.consumer:
                continue
            wait = (self.claim_idle_ms - entry["time_since_delivered"]) / 1000
            soonest = wait if soonest is None else min(soonest, wait)
        keep = self.claim_idle_ms / 3000 if holding else None
        candidates = [t for t in (soonest, keep) if t is not None]
        return max(0.05, min(candidates)) if candidates else None

    def dead_letter(self, entry_id: str, fields: dict, delivery: int, why: str | None = None) -> None:
        """Move the entry to the dead-letter stream, its ``delivery - 1``
        deliveries done, and tell its caller (``why``, else that no instance answered)."""
        data = _field(fields, "request")
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.dead, {"request": data or b"", "entry": entry_id, "deliveries": delivery - 1,
                              "service": self.service, "time": f"{time.time():.3f}"},
                  maxlen=DEAD_MAX_LENGTH, approximate=True)
        pipe.xack(self.stream, GROUP_NAME, entry_id)
        pipe.xdel(self.stream, entry_id)
        pipe.execute()
        self.dead_lettered += 1
        try:
            message = protocol.parse_request(protocol.decode_object(data, self.server.max_bytes))
        except (protocol.ProtocolError, TypeError):
            message = None
        if why is None:
            log.error("%s: request %s (%s) was delivered %d times without an answer; moved to %s",
                      self.service, entry_id, message.action if message else "unreadable", delivery - 1, self.dead)
        else:
            log.error("%s: request %s: %s", self.service, entry_id, why)
        if message is not None and message.reply_to:
            self.server.reply_error(message.reply_to, message.request_id,
                                    why or f"{self.service}.{message.action} was delivered {delivery - 1} times "
                                    f"and no instance answered; moved to {self.dead}", DeadLetter.code)
