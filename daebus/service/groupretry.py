"""Group mode: retries that wait in Redis.

A handler of a group member that raises :class:`~daebus.Retry` gives its
stream entry back: in one transaction the entry is acknowledged, deleted,
and added to the sorted set ``daebus:retry:<service>``, scored by when it is
due on Redis's clock. Its member is ``<first entry id> <deliveries so far>
<request>``: the id of the entry the caller added (the request's age, hence
its expiry, counts from it), and the deliveries that count towards
``max_deliveries``. At each beat a member moves what is due back into the
stream with one script, as a new entry with the fields ``first`` and
``delivered``, and any member reads it then. The beat comes when the first
is due: the member that kept it wakes for it, and tells the others on the
group channel, so that one of them does should it stop meanwhile; a member
that starts looks at once. Nothing waits in a process, so a restart neither
loses a retry nor runs it early.

A retry that would come after its caller's deadline is not kept: the caller
gets the last error at once. One asked for by the last of the
``max_deliveries`` (or of the policy's attempts) dead-letters the entry, as
an entry no instance answered, with the ``dead_letter`` code.
"""

from __future__ import annotations

import logging

import redis

from daebus.app.retry import Retry, next_wait
from daebus.bus import protocol
from daebus.bus.keys import retry_key, text
from daebus.bus.transport import REDIS_ERRORS
from daebus.errors import AccessDenied
from daebus.ops.ratelog import RateLimitedLog
from daebus.service.claims import GROUP_NAME

log = logging.getLogger("daebus.group")
# A bus whose ACL predates the retry set refuses it at every beat: one line per interval.
_refused = RateLimitedLog(log, interval=600.0)

# Entries moved back per beat at most (the next beat, soon, moves the rest).
MOVE_BATCH = 100

# KEYS: the retry set, the stream. ARGV: now (ms, Redis's clock), how many
# at most, the stream's MAXLEN. Returns the count moved and the next due score ('' if none).
_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local first, delivered, request = string.match(member, '^(%d+%-%d+) (%d+) (.*)$')
  if first then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'request', request, 'first', first,
               'delivered', delivered)
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, nxt[2] or ''}
"""

class GroupRetries:
    """The retry side of one :class:`~daebus.service.group.GroupServer`."""

    def __init__(self, server, policies: dict, wake):
        self.server = server
        self.client, self.stream, self.service = server.client, server.stream, server.service
        self.key = retry_key(server.service)
        self.policies = policies
        self._wake = wake      # beat now: a retry is kept, or taken over
        self._move = server.client.register_script(_MOVE_DUE)
        self.scheduled = 0

    def keep(self, entry_id: str, first: str, message: protocol.Request, exc: Retry) -> bool:
        """Give ``message`` (holding ``entry_id``) back for a later delivery,
        or dead-letter it; False when neither (its caller gets the last error now)."""
        server, delivery = self.server, message.delivery
        wait = next_wait(exc, self.policies.get(message.action), delivery)
        if wait is None or delivery >= server.max_deliveries:
            self._dead_letter(entry_id, message, exc)
            return True
        if message.timeout_ms and server.age_ms(first) + wait * 1000 >= message.timeout_ms:
            log.info("%s: %r asked for a retry in %.1f s, past its caller's deadline: answering the last "
                     "error now", self.service, message.action, wait)
            return False
        member = f"{first} {delivery} {protocol.dumps(message.raw)}"
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.zadd(self.key, {member: server.now_ms() + wait * 1000})
            pipe.xack(self.stream, GROUP_NAME, entry_id)
            pipe.xdel(self.stream, entry_id)
            pipe.execute()
        except (*REDIS_ERRORS, redis.ResponseError) as exc:
            # Still pending with us: claimed again once claim_idle has passed.
            log.warning("%s: could not keep the retry of %s: %s", self.service, entry_id, exc)
            return True
        self.scheduled += 1
        log.info("%s: %r asked for a retry: delivery %d of %d in %.2f s", self.service, message.action,
                 delivery + 1, server.max_deliveries, wait)
        self._wake()
        return True

    def _dead_letter(self, entry_id: str, message: protocol.Request, exc: Retry) -> None:
        cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
        why = str(cause) or type(cause).__name__
        self.server.claims.dead_letter(
            entry_id, {"request": protocol.dumps(message.raw)}, message.delivery + 1,
            f"{self.service}.{message.action} asked for a retry on delivery {message.delivery}, the last one "
            f"allowed ({why}); moved to {self.server.dead}")

    def move_due(self) -> float | None:
        """Put what is due back in the stream; seconds until the next is due (None: nothing waits)."""
        now = self.server.now_ms()
        try:
            moved, following = self._move(keys=[self.key, self.stream],
                                          args=[int(now), MOVE_BATCH, self.server.max_length])
        except (redis.ResponseError, AccessDenied) as exc:
            _refused.warning(self.key, "%s: cannot read %s (render the bus's ACL again: daebus acl "
                             "--load): %s", self.service, self.key, exc)
            return None
        if moved:
            log.debug("%s: %d retry(s) due, back in the stream", self.service, moved)
        if moved >= MOVE_BATCH:
            return 0.05
        following = text(following)
        if not following:
            return None
        return max(0.05, (float(following) - now) / 1000)
