"""The fleet: a bridge from each box's bus to an MQTT 5 broker, and the
vendor's side of it.

* :mod:`.topics` builds and parses every topic (the wire contract of
  docs/fleet.md);
* :class:`~.bridge.Bridge` runs on a box (``daebus bridge``);
* :class:`FleetCaller` and :class:`AsyncFleetCaller` call devices, read
  their states and publish into them from anywhere that reaches the broker.

paho-mqtt is imported only when a client is made, so the rest of daebus
runs without it. Example::

    from daebus.fleet import FleetCaller

    with FleetCaller("mqtt://broker:1883", fleet="kiosks") as fleet:
        for device, outcome in fleet.call("all", "display", "ping", {}, timeout=5):
            print(device, outcome)
"""

from __future__ import annotations

import importlib

_HOMES = {"FleetCaller": "caller", "AsyncFleetCaller": "aiocaller", "Bridge": "bridge",
          "FleetError": "mqtt", "Outcome": "caller"}


def __getattr__(name):
    if name in _HOMES:
        value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'daebus.fleet' has no attribute {name!r}")


__all__ = sorted(_HOMES)
