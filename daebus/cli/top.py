"""``daebus top``: per-action rates and latencies of every live service, live.

The figures are the counters each service publishes with its registry
heartbeat (every ``registry_ttl / 3`` seconds, 5 s by default), so reading
them never wakes a service. ``top`` shows what happened between the last
two heartbeats it saw: calls per second and the p50/p99 latency of those
calls; ``daebus services`` shows the same columns since each service
started. Examples::

    daebus top                      # refreshed every 2 s until Ctrl-C
    daebus top --iterations 3 --interval 1   # three refreshes, then exit
"""

from __future__ import annotations

import argparse
import sys
import time

from daebus.ops.metrics import quantile
from daebus.cli.common import (CLEAR_SCREEN, CommandError, Exit, add_redis_url, age, fetch, positive_float,
                               positive_int, redis_url, table)

ACTION_COLUMNS = ("SERVICE/ACTION", "CALLS", "ERRORS", "BUSY", "EXPIRED", "RATE/s", "P50 ms", "P99 ms")


def _ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _rate(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def action_rows(services: list[dict], previous: dict | None = None) -> list[tuple[str, ...]]:
    """One row per action of every service with counters.

    Without ``previous`` the rate and percentiles cover each service's
    lifetime; with it (``{service: (snapshot, rates)}`` from :class:`Window`)
    they cover the last heartbeat interval.
    """
    rows = []
    for info in services:
        name, snapshot = info["name"], info.get("metrics")
        if info.get("metrics_error"):
            rows.append((f"{name}/*", "-", "-", "-", "-", "-", "-", f"corrupt counters: {info['metrics_error'][:60]}"))
            continue
        if not snapshot:
            continue
        bounds = snapshot["buckets"]
        window = (previous or {}).get(name)
        for action, stats in sorted(snapshot["actions"].items()):
            if window is not None:
                rate, counts = window.get(action, (None, None))
            else:
                rate = stats["calls"] / snapshot["uptime"] if snapshot["uptime"] > 0 else None
                counts = stats["buckets"]
            p50 = quantile(bounds, counts, 0.5) if counts else None
            p99 = quantile(bounds, counts, 0.99) if counts else None
            rows.append((f"{name}/{action}", str(stats["calls"]), str(sum(stats["errors"].values())), str(stats["busy"]),
                         str(stats["expired"]), _rate(rate), _ms(p50), _ms(p99)))
    return rows


def render_actions(services: list[dict], previous: dict | None = None) -> str:
    rows = action_rows(services, previous)
    if not rows:
        return "no counters published (services with [service] metrics = false publish none)"
    return table([ACTION_COLUMNS, *rows])


class Window:
    """Rates and latencies between the last two distinct snapshots of each
    service (a snapshot changes once per heartbeat)."""

    def __init__(self):
        self._last: dict[str, dict] = {}
        self.windows: dict[str, dict] = {}

    def update(self, services: list[dict]) -> dict:
        for info in services:
            name, snapshot = info["name"], info.get("metrics")
            if not snapshot:
                continue
            before = self._last.get(name)
            if before is None or snapshot["at"] <= before["at"] or snapshot["uptime"] < before["uptime"]:
                # First sight, the same heartbeat again, or a restarted service.
                if before is None or snapshot["uptime"] < before["uptime"]:
                    self._last[name] = snapshot
                    self.windows.pop(name, None)
                continue
            span = snapshot["at"] - before["at"]
            window = {}
            for action, stats in snapshot["actions"].items():
                old = before["actions"].get(action)
                old_counts = old["buckets"] if old else [0] * len(stats["buckets"])
                counts = [max(0, a - b) for a, b in zip(stats["buckets"], old_counts)]
                window[action] = (sum(counts) / span, counts)
            self.windows[name] = window
            self._last[name] = snapshot
        return self.windows


def render(services: list[dict], window: Window) -> str:
    windows = window.update(services)
    lines = []
    for info in services:
        snapshot = info.get("metrics")
        if snapshot:
            lines.append(f"{info['name']}: up {age(snapshot['uptime'])}, {snapshot['queued']} queued, "
                         f"{snapshot['in_flight']} running, {snapshot['reconnects']} reconnect(s)")
    # Services seen only once yet show no rates rather than lifetime ones.
    shown = {info["name"]: windows.get(info["name"], {}) for info in services}
    lines += ["", render_actions(services, shown)] if lines else [render_actions(services, shown)]
    return "\n".join(lines)


def cmd_top(args: argparse.Namespace) -> int:

    url = redis_url(args)
    window = Window()
    shown = 0
    try:
        while True:
            try:
                text = render(fetch(url), window)
            except CommandError as exc:
                if not shown:
                    raise
                # Keep watching: a Redis restart is what one watches for.
                text = f"daebus: {exc}"
            stamp = time.strftime("%H:%M:%S")
            if sys.stdout.isatty():
                print(f"{CLEAR_SCREEN}{stamp}  every {args.interval:g} s, Ctrl-C to stop\n\n{text}", flush=True)
            else:
                print(f"-- {stamp}\n{text}", flush=True)
            shown += 1
            if args.iterations and shown >= args.iterations:
                return Exit.OK
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return Exit.OK


def register(commands) -> None:
    top = commands.add_parser(
        "top", help="per-action rates and latencies of the live services, refreshed",
        description="Show calls per second, errors and p50/p99 latency per action of every live "
                    "service, from the counters they publish with their heartbeat, until Ctrl-C.")
    top.add_argument("--interval", type=positive_float, default=2.0, metavar="S",
                     help="seconds between refreshes (default: 2)")
    top.add_argument("--iterations", type=positive_int, default=None, metavar="N",
                     help="stop after N refreshes")
    add_redis_url(top)
    top.set_defaults(handler=cmd_top)
