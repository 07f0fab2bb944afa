"""``daebus bridge``: the box's fleet bridge in the foreground (what
daebus-bridge.service runs).

Examples::

    daebus bridge                                   # [bridge] of /etc/daebus/daebus.toml
    daebus bridge --broker mqtt://10.0.0.5:1883 --device kiosk-7 --debug
"""

from __future__ import annotations

import argparse
import logging

from daebus.ops import logs
from daebus.fleet import settings as _declared  # noqa: F401 - [bridge] and [fleet], for daebus config too
from daebus.cli.common import Exit, add_redis_url

log = logging.getLogger("daebus.cli")


def cmd_bridge(args: argparse.Namespace) -> int:
    from daebus.fleet import settings
    from daebus.fleet.bridge import Bridge

    resolved = settings.bridge(broker=args.broker or None, fleet=args.fleet, device=args.device)
    logs.setup(debug=args.debug)
    bridge = Bridge(resolved, redis_url=args.redis_url)
    try:
        bridge.run()
    except Exception:  # noqa: BLE001 - reported through logging, with priority
        log.critical("the fleet bridge stopped on an error", exc_info=True)
        return Exit.FAILURE
    return Exit.OK


def register(commands) -> None:
    bridge = commands.add_parser(
        "bridge", help="run the fleet bridge between this box's bus and an MQTT 5 broker",
        description="Run the fleet bridge ([bridge] of the configuration) until SIGTERM or Ctrl-C.")
    bridge.add_argument("--broker", action="append", metavar="URL",
                        help="mqtt://host:port or mqtts://host:port (repeatable; default: [bridge] broker)")
    bridge.add_argument("--fleet", help="the fleet's name (default: [bridge] fleet)")
    bridge.add_argument("--device", help="this box's id (default: [bridge] device, else the host name)")
    add_redis_url(bridge)
    bridge.add_argument("--debug", action="store_true", help="log at debug level")
    bridge.set_defaults(handler=cmd_bridge)
