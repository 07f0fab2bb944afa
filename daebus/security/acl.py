"""The Redis ACL of a locked bus: one user per role, rendered as an ACL file.

Roles and what each may do (Redis 7 ACL syntax, selectors in parentheses):

``admin`` (the ``daebus`` command as root, and loading this file)
    every key and channel, every command except the dangerous ones
    (``ACL LOAD`` and ``INFO`` excepted).
``gateway``
    publish anywhere (requests, through the selector); subscribe only to its
    own reply channels (``caller:gateway:*``), the kept-event notices and
    the broadcast patterns of ``[gateway] expose_channels``, exactly as
    written there (Redis compares a ``PSUBSCRIBE`` pattern literally); read
    the registry and kept events; write only the kept-event declarations;
    add requests to group streams.
``bridge`` (the fleet bridge, ``daebus bridge``)
    publish anywhere (requests, and the fleet's broadcasts); subscribe only
    to its own reply channels; read the registry; write the kept-event
    declarations, kept events (it broadcasts through them and reads the
    outbox from them) and its own ``daebus:bridge:*`` keys.
``worker:<name>`` (one per worker instance, serving ``service``)
    subscribe only to its service channel and its cancel channel
    (``daebus:cancel:<service>``), its own reply channels
    (``caller:worker:<name>:*``), liveness and group channels, and the
    broadcast patterns its worker file lists under ``listen``; publish
    anywhere (requests, replies, broadcasts); read the registry; write its
    own registry entry, member records, group stream, dead-letter stream,
    retry set and bridge key, kept events, and its **cache** keys: ``<service>:*``.

No role may run FLUSHALL, FLUSHDB, CONFIG, KEYS, DEBUG, SHUTDOWN, MODULE,
MONITOR or any other command of Redis's ``@dangerous`` category, nor change
functions or flush scripts. The ``default`` user is off: a client without
credentials gets ``NOAUTH``.

Example::

    text = render(secrets, workers=[Worker("sensors", "sensors", listen=("system_status",))],
                  gateway_channels=["system_status", "sensors.*"])
    Path("/etc/redis/daebus-users.acl").write_text(text)
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Iterable, Mapping

from daebus.bus.keys import (BRIDGE_PREFIX, CANCEL_PREFIX, DEAD_PREFIX, GROUP_CHANNEL_PREFIX, KEEP_CLOCK as CLOCK,
                             KEEP_DECLARATIONS as DECLARATIONS, KEEP_SEQ as SEQ, KEEP_TRIMMED as TRIMMED,
                             KEPT_NOTICE as NOTICE, KEPT_PREFIX, LIVENESS_PREFIX, MEMBER_PREFIX, REGISTRY_PREFIX,
                             REPLY_PREFIX, RETRY_PREFIX, STREAM_PREFIX, WAKE_PREFIX)

ADMIN = "admin"
GATEWAY = "gateway"
FLEET_BRIDGE = "bridge"
FLEET_KEYS = "daebus:bridge:*"   # the fleet bridge's own keys (daebus.fleet.outbox)
WORKER_PREFIX = "worker:"
WAKE = WAKE_PREFIX + "*"

# What no role may run, whatever else it is granted.
FORBIDDEN = ("-@dangerous", "-flushall", "-flushdb", "-config", "-keys", "-debug", "-shutdown",
             "-module", "-monitor", "-function", "-script|flush", "-script|kill")
_BASE = ("+@all", *FORBIDDEN)
_GLOB = re.compile(r"([*?\[\]\\])")


@dataclasses.dataclass(frozen=True)
class Worker:
    """A worker instance: its name (``daebus-worker@<name>``), the service
    it serves and the broadcast channel patterns it listens to."""

    name: str
    service: str
    listen: tuple[str, ...] = ()


def worker_user(name: str) -> str:
    return WORKER_PREFIX + name


def reply_channels(username: str) -> str:
    """The reply channels a user may subscribe to (see daebus.call.replies)."""
    return f"{REPLY_PREFIX}{literal(username)}:*"


def literal(text: str) -> str:
    """``text`` as an ACL pattern matching only itself."""
    return _GLOB.sub(r"\\\1", text)


def password_hash(secret: str) -> str:
    """The ``#<sha256>`` form: the file never holds a password."""
    return "#" + hashlib.sha256(secret.encode()).hexdigest()


def _user(name: str, secret: str, rules: Iterable[str]) -> str:
    if not secret or any(c.isspace() for c in name):
        raise ValueError(f"ACL user {name!r} needs a secret and a name without spaces")
    return " ".join(["user", name, "on", password_hash(secret), "resetkeys", "resetchannels", "-@all",
                     *rules])


def admin_rules() -> list[str]:
    return ["~*", "&*", *_BASE, "+info", "+acl|load", "+acl|whoami"]


def gateway_rules(channels: Iterable[str] = ()) -> list[str]:
    """``channels``: the exposed broadcast patterns (``[gateway] expose_channels``)."""
    registry = [f"%R~{REGISTRY_PREFIX}*", f"%R~{MEMBER_PREFIX}*"]
    # The clock is written too: a declaration that starts again marks it (see daebus.bus.kept).
    kept = [f"~{DECLARATIONS}", f"~{CLOCK}", f"%R~{TRIMMED}", f"%R~{SEQ}", f"%R~{KEPT_PREFIX}*"]
    subscriptions = ["&" + reply_channels(GATEWAY), f"&{literal(NOTICE)}", f"&{WAKE}",
                     *(f"&{pattern}" for pattern in channels)]
    return [*registry, *kept, *subscriptions, *_BASE, *_requests()]


def bridge_rules() -> list[str]:
    registry = [f"%R~{REGISTRY_PREFIX}*", f"%R~{MEMBER_PREFIX}*"]
    kept = [f"~{DECLARATIONS}", f"~{CLOCK}", f"~{TRIMMED}", f"~{SEQ}", f"~{KEPT_PREFIX}*"]
    channels = ["&" + reply_channels(FLEET_BRIDGE), f"&{WAKE}"]
    return [*registry, *kept, f"~{FLEET_KEYS}", *channels, *_BASE, *_requests()]


def worker_rules(worker: Worker) -> list[str]:
    service = literal(worker.service)
    own = [f"~{service}:*", f"~{REGISTRY_PREFIX}{service}", f"~{MEMBER_PREFIX}{service}:*",
           f"~{STREAM_PREFIX}{service}", f"~{DEAD_PREFIX}{service}", f"~{BRIDGE_PREFIX}{service}",
           f"~{RETRY_PREFIX}{service}"]
    shared = [f"%R~{REGISTRY_PREFIX}*", f"%R~{MEMBER_PREFIX}*", f"%R~{DECLARATIONS}",
              f"~{CLOCK}", f"~{TRIMMED}", f"~{SEQ}", f"~{KEPT_PREFIX}*"]
    # Callers cancel by PUBLISH, which every role may: only the worker hears it.
    channels = [f"&{service}", f"&{CANCEL_PREFIX}{service}", "&" + reply_channels(worker_user(worker.name)),
                f"&{LIVENESS_PREFIX}*",
                f"&{GROUP_CHANNEL_PREFIX}{service}", f"&{WAKE}", *(f"&{p}" for p in worker.listen)]
    return [*own, *shared, *channels, *_BASE, *_requests()]


def _requests() -> list[str]:
    # Selectors: PUBLISH to any channel (requests and cancels to any service,
    # replies to any caller, broadcasts, kept-event notices) and XADD to any group's
    # stream, without the right to subscribe there or read those streams.
    return ["(&* +publish)", f"(~{STREAM_PREFIX}* +xadd)"]


def render(secrets: Mapping[str, str], workers: Iterable[Worker] = (),
           gateway_channels: Iterable[str] = ()) -> str:
    """The ACL file: ``secrets`` maps each user (``admin``, ``gateway``,
    ``bridge``, ``worker:<name>``) to its password; a user without one is left out;
    ``gateway_channels`` are the gateway's exposed broadcast patterns."""
    # Redis ACL files hold no comments: the file says nothing but users.
    lines = ["user default off resetkeys resetchannels -@all"]
    lines.append(_user(ADMIN, secrets[ADMIN], admin_rules()))
    if secrets.get(GATEWAY):
        lines.append(_user(GATEWAY, secrets[GATEWAY], gateway_rules(gateway_channels)))
    if secrets.get(FLEET_BRIDGE):
        lines.append(_user(FLEET_BRIDGE, secrets[FLEET_BRIDGE], bridge_rules()))
    for worker in sorted(workers, key=lambda w: w.name):
        secret = secrets.get(worker_user(worker.name))
        if secret:
            lines.append(_user(worker_user(worker.name), secret, worker_rules(worker)))
    return "\n".join(lines) + "\n"
