"""Who serves a service name: one owner (the default), or a group.

Every running instance has a token (``host:pid:random``) and subscribes to
its own liveness channel, ``daebus:instance:<token>``. Redis drops that
subscription the moment the process dies (its socket closes), so "is that
instance still alive?" is one ``PUBSUB NUMSUB``, true or false at once
after a crash rather than after a TTL. Group members also subscribe to
``daebus:group:<service>``, which makes "does the group have a live member?"
the same question.

Claiming a name is one Lua script, so it is atomic: of two instances started
at the same moment exactly one finds the record free. The record
``daebus:service:<name>`` is written only by its owner (compared by token);
a group's record is shared by its members, which also keep a record of
their own, ``daebus:member:<name>:<token>``.

Example::

    membership = Membership(client, "sensors", OWNER, ttl=15)
    membership.claim(info)        # raises NameTaken naming the live owner
    ...
    membership.release()
"""

from __future__ import annotations

import os
import socket
import time
import uuid

from daebus.errors import NameTaken
from daebus.bus.keys import group_channel
from daebus.bus.registry import GROUP, LIVENESS_PREFIX, MODE, OWNER, ServiceRecord, encode, key, member_key


# KEYS[1] the service record. ARGV: token, mode, ttl ms, liveness prefix,
# group channel, service channel, then field/value pairs to write.
_CLAIM = """
local function subscribed(channel)
  return tonumber(redis.call('PUBSUB', 'NUMSUB', channel)[2]) > 0
end
local rec = redis.call('HMGET', KEYS[1], 'token', 'mode')
local token, mode = rec[1], rec[2]
local live = false
if mode == 'group' then
  live = ARGV[2] ~= 'group' and subscribed(ARGV[5])
elseif token then
  live = token ~= ARGV[1] and subscribed(ARGV[4] .. token)
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  -- written by a version without tokens: its subscription says it lives
  live = subscribed(ARGV[6])
end
if live then
  return redis.call('HGETALL', KEYS[1])
end
if mode ~= ARGV[2] or (ARGV[2] == 'owner' and token ~= ARGV[1]) then
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return false
"""

# Deletes the record only if it is still ours.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def new_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def liveness_channel(token: str) -> str:
    return LIVENESS_PREFIX + token


def is_live(client, token: str) -> bool:
    """True while the instance with ``token`` is connected to Redis."""
    return bool(client.pubsub_numsub(liveness_channel(token))[0][1])


class Membership:
    """This instance's claim on its service name, in ``mode``."""

    def __init__(self, client, service: str, mode: str = OWNER, ttl: float = 15.0, token: str | None = None):
        if mode not in (OWNER, GROUP):
            raise ValueError(f"mode must be {OWNER!r} or {GROUP!r}, got {mode!r}")
        self.client = client
        self.service = service
        self.mode = mode
        self.ttl_ms = max(1000, int(ttl * 1000))
        self.token = token or new_token()
        self.channels = [liveness_channel(self.token)] + ([group_channel(service)] if mode == GROUP else [])
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    def claim(self, info: dict) -> None:
        """Write (or refresh) the record; raises :class:`NameTaken` when
        another live instance holds the name in a way ``mode`` can't share.

        ``info`` is this instance's record (:func:`registry.record`).
        """
        shared = {**info, MODE: self.mode}
        if self.mode == OWNER:
            shared["token"] = self.token
        else:
            for field in ("pid", "host", "started_at", "token", "metrics", "expired", "dead_lettered"):
                shared.pop(field, None)
        args = [self.token, self.mode, self.ttl_ms, LIVENESS_PREFIX, group_channel(self.service), self.service]
        for field, value in encode(shared).items():
            args += [field, value]
        holder = self._claim(keys=[key(self.service)], args=args)
        if holder:
            raise self._taken(ServiceRecord.parse(_pairs(holder), self.service))
        if self.mode == GROUP:
            member = {**encode({**info, MODE: GROUP}), "token": self.token}
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(member_key(self.service, self.token), mapping=member)
            pipe.pexpire(member_key(self.service, self.token), self.ttl_ms)
            pipe.execute()

    def release(self) -> None:
        """Remove this instance's own record; never another's."""
        if self.mode == GROUP:
            self.client.delete(member_key(self.service, self.token))
        else:
            self._release(keys=[key(self.service)], args=[self.token])

    def _taken(self, holder: ServiceRecord) -> NameTaken:
        if holder.mode == GROUP:
            what = f"a group (mode=group, version {holder.version or '?'})"
        else:
            since = holder.started_at
            since_text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since)) if since else "?"
            what = f"pid {holder.pid or '?'} on host {holder.host or '?'} since {since_text}"
        wanted = "join it as a group member" if self.mode == GROUP else "serve it alone"
        return NameTaken(f"service {self.service!r} is already served by {what}; "
                         f"refusing to {wanted}", holder.info())


def _pairs(flat) -> dict:
    # HGETALL's reply as the script returns it: field, value, field, value...
    return dict(zip(flat[::2], flat[1::2]))

