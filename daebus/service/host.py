"""What a component of a running service sees of it.

The runtime is the container; its components (the bus reader, the intakes,
the heartbeat, the group reader, the start hooks) are given this interface
and nothing else of it, so each can be read, tested and changed knowing
only these members.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Host(Protocol):
    app: object                 # the Daebus app (its handlers, listeners, max_workers)
    service: str
    settings: object            # daebus.ops.config.Settings
    notifier: object            # daebus.ops.systemd.Notifier
    stopping: threading.Event   # set once the service is to stop
    client: object              # the service's command client
    publish: object             # daebus.bus.transport.Publisher on that client
    metrics: object             # daebus.ops.metrics counters
    membership: object          # daebus.service.membership.Membership
    executor: object            # daebus.service.executor.Executor
    handlers: object            # daebus.service.handlers.Handlers
    cancel_channel: str         # where the service's callers publish their cancels
    gates: object               # daebus.service.gates.Gates: concurrency limits
    retries: object             # daebus.service.retries.Retries: retries kept in the process

    @property
    def subscriber(self): ...              # the bus reader's Subscriber, once made

    @property
    def grouped(self) -> bool: ...         # requests come from a group's stream

    @property
    def serving(self) -> bool: ...         # started and ready

    def on_message(self, channel: str, data: bytes) -> None: ...
    def on_restored(self, outage: float) -> None: ...
    def reply_error(self, reply_to: str, request_id, message: str, code: str) -> None: ...
    def claim(self, status: str) -> None: ...
    def register(self, status: str) -> None: ...
    def refused(self, exc) -> None: ...
    def taken(self, exc) -> None: ...
    def health(self) -> list[str]: ...     # what is wrong with a component, if anything
    def group_beat(self) -> float | None: ...
    def beat_soon(self) -> None: ...       # the group has news: beat now
    def bridge(self, on: bool) -> None: ...
