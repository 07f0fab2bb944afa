"""``daebus services``: the live services, from their registry entries.

Examples::

    daebus services                 # a table: pid, host, uptime, status, actions, channels,
                                    # then calls, errors, rate and p50/p99 per action
    daebus services --json          # the same as a JSON list
    daebus services --watch         # refreshed every 2 s until Ctrl-C
"""

from __future__ import annotations

import argparse
import sys
import time

from daebus.cli.common import (CLEAR_SCREEN, CommandError, Exit, add_redis_url, age, dumps, fetch, positive_float,
                               redis_url, table)
from daebus.cli.top import render_actions

COLUMNS = ("SERVICE", "PID", "HOST", "UP", "STATUS", "ACTIONS", "CHANNELS")
def render(services: list[dict]) -> str:
    if not services:
        return "no services running"
    from daebus.bus.registry import GROUP, MODE

    rows = [COLUMNS]
    for info in services:
        name = f"{info['name']} (group)" if info.get(MODE) == GROUP else info["name"]
        # A group has a row per live member; an owner's one instance is the record itself.
        for instance in info.get("instances") or [info]:
            rows.append((name, str(instance.get("pid") or "-"), instance.get("host") or "-",
                         age(instance.get("uptime")), instance.get("status") or "-",
                         ", ".join(info.get("actions") or []) or "-",
                         ", ".join(info.get("channels") or []) or "-"))
    text = table(rows)
    if any(info.get("metrics") or info.get("metrics_error") for info in services):
        # Rates and percentiles since each service started (daebus top: the last few seconds).
        text += "\n\n" + render_actions(services)
    return text


def _show(services: list[dict], args, refresh: bool) -> None:
    if args.json:
        # One document per refresh: a JSON array per line when watching.
        print(dumps(services, pretty=None if not args.watch else False), flush=True)
        return
    text = render(services)
    if refresh and sys.stdout.isatty():
        print(CLEAR_SCREEN + time.strftime("%H:%M:%S") + f"  every {args.interval:g} s, Ctrl-C to stop\n", flush=True)
    elif args.watch:
        print(f"-- {time.strftime('%H:%M:%S')}", flush=True)
    print(text, flush=True)


def cmd_services(args: argparse.Namespace) -> int:
    url = redis_url(args)
    if not args.watch:
        _show(fetch(url), args, refresh=False)
        return Exit.OK
    try:
        # Ctrl-C is the ordinary end of a watch, also during the first refresh.
        _show(fetch(url), args, refresh=True)
        while True:
            time.sleep(args.interval)
            try:
                services = fetch(url)
            except CommandError as exc:
                # Keep watching: Redis restarts are what one watches for.
                print(f"daebus: {exc}", file=sys.stderr, flush=True)
                continue
            _show(services, args, refresh=True)
    except KeyboardInterrupt:
        return Exit.OK


def register(commands) -> None:
    services = commands.add_parser(
        "services", help="list the running services (from the registry)",
        description="List the services running on the bus: pid, host, uptime, status, "
                    "actions and channels; then, per action, the calls, errors, busy refusals, "
                    "expired requests, calls per second and p50/p99 latency since the service started.")
    services.add_argument("--json", action="store_true", help="print JSON (one line per refresh with --watch)")
    services.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    services.add_argument("--interval", type=positive_float, default=2.0, metavar="S",
                          help="seconds between refreshes with --watch (default: 2)")
    add_redis_url(services)
    services.set_defaults(handler=cmd_services)
