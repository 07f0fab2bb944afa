"""Every Redis key and channel name daebus uses, in one place.

The bus's ACL rules (:mod:`daebus.security.acl`) are written from these
names, so a name changed here changes what each role may touch. Service
channels are the bare service names; everything else daebus keeps is under
``daebus:``, and reply channels under ``caller:``.
"""

from __future__ import annotations

import uuid

# Reply channels: caller:<redis user>:<uuid> (see daebus.call.replies).
REPLY_PREFIX = "caller:"

# The registry: one hash per service name, one per group member.
REGISTRY_PREFIX = "daebus:service:"
MEMBER_PREFIX = "daebus:member:"

# Cancels: a caller that gives up on a request says so here (every
# instance of the service subscribes; see daebus.service.cancels).
CANCEL_PREFIX = "daebus:cancel:"        # + service

# Liveness: each instance's own subscription, and a group's shared one.
LIVENESS_PREFIX = "daebus:instance:"   # + token
GROUP_CHANNEL_PREFIX = "daebus:group:"  # + service

# Group mode's streams: requests, dead letters, and the 0.0.x bridge role;
# and the requests waiting for a retry (a sorted set by when each is due).
STREAM_PREFIX = "daebus:stream:"
DEAD_PREFIX = "daebus:dead:"
BRIDGE_PREFIX = "daebus:bridge:"
RETRY_PREFIX = "daebus:retry:"

# A subscriber's private wake-up channel (daebus.bus.subscriber).
WAKE_PREFIX = "daebus:wake:"

# Kept broadcasts (daebus.bus.kept).
KEEP_DECLARATIONS = "daebus:keep"       # hash: pattern -> {"count", "age", "since", "until"}
KEEP_CLOCK = "daebus:keep-clock"        # the last id given to a kept event
KEEP_TRIMMED = "daebus:keep-trimmed"    # hash: channel -> the newest id dropped from its stream
KEEP_SEQ = "daebus:keep-seq"            # hash: channel -> events kept on it so far (entries' "n")
KEPT_PREFIX = "daebus:kept:"            # + channel: the channel's kept events
KEPT_NOTICE = "daebus:kept"             # "<id> <channel length> <channel><payload>" per kept event


def registry_key(service: str) -> str:
    return REGISTRY_PREFIX + service


def member_key(service: str, token: str) -> str:
    return f"{MEMBER_PREFIX}{service}:{token}"


def liveness_channel(token: str) -> str:
    return LIVENESS_PREFIX + token


def group_channel(service: str) -> str:
    return GROUP_CHANNEL_PREFIX + service


def cancel_channel(service: str) -> str:
    return CANCEL_PREFIX + service


def stream_key(service: str) -> str:
    return STREAM_PREFIX + service


def dead_key(service: str) -> str:
    return DEAD_PREFIX + service


def bridge_key(service: str) -> str:
    return BRIDGE_PREFIX + service


def retry_key(service: str) -> str:
    return RETRY_PREFIX + service


def wake_channel() -> str:
    return f"{WAKE_PREFIX}{uuid.uuid4()}"


def text(value) -> str:
    """A name or field Redis returned, as text (clients may decode or not)."""
    return value.decode() if isinstance(value, bytes) else value
