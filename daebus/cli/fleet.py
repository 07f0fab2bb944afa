"""``daebus fleet``: the vendor's side of the fleet, from anywhere that
reaches the broker.

Examples::

    daebus fleet status
    daebus fleet call kiosk-7 display ping
    daebus fleet call group:lobby display show '{"page": "menu"}' --timeout 5
    daebus fleet listen '+/events/#'
    daebus fleet publish all announce '{"text": "closing soon"}'

``call`` prints one JSON line per device as it answers; it exits as
``daebus call`` does, by the worst outcome: 5 a device did not answer,
4 a service was unavailable (or no device is online), 3 an error reply.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from daebus.cli.common import CommandError, Exit, age, dumps, parse_json, positive_float, table

# The worst outcome decides the exit status.
_EXIT_FOR_CODE = {"timeout": Exit.TIMEOUT, "service_unavailable": Exit.UNAVAILABLE}


def _caller(args):
    from daebus.fleet.caller import FleetCaller

    options = {"username": args.username, "ca_file": args.ca_file, "timeout": args.timeout}
    if args.password_file:
        from daebus.fleet.mqtt import read_secret

        options["password"] = read_secret(args.password_file, "--password-file")
    return FleetCaller(args.broker or None, args.fleet, **options)


def cmd_status(args: argparse.Namespace) -> int:
    with _caller(args) as fleet:
        states = fleet.status()
    if args.json:
        for state in states:
            print(json.dumps(state, separators=(",", ":")), flush=True)
        return Exit.OK
    rows = [("DEVICE", "ONLINE", "VERSION", "GROUPS", "SERVICES", "LAST SEEN")]
    now = time.time()
    for s in states:
        seen = s.get("seen")
        rows.append((s["device"], "yes" if s.get("online") else "no", str(s.get("version") or "-"),
                     ",".join(s.get("groups") or []) or "-", str(len(s.get("services") or [])),
                     "now" if s.get("online") else (age(now - seen) + " ago" if seen else "-")))
    print(table(rows) if states else "no device has reported a state", flush=True)
    return Exit.OK


def cmd_call(args: argparse.Namespace) -> int:
    payload = {} if args.payload is None else parse_json(args.payload)
    if not isinstance(payload, dict):
        raise CommandError(f"a fleet call's payload is a JSON object, not {type(payload).__name__}", Exit.USAGE)
    worst = Exit.OK
    answered = 0
    with _caller(args) as fleet:
        try:
            outcomes = fleet.call(args.target, args.service, args.action, payload, on_progress=_show_progress)
            for outcome in outcomes:
                answered += 1
                print(dumps(outcome.as_json(), pretty=False), flush=True)
                if not outcome.ok:
                    status = _EXIT_FOR_CODE.get(outcome.code, Exit.REMOTE_ERROR)
                    worst = max(worst, status, key=_severity)
        except ValueError as exc:
            raise CommandError(str(exc), Exit.USAGE) from None
    if not answered:
        raise CommandError(f"no online device matches {args.target}", Exit.UNAVAILABLE)
    return worst


def _severity(status: Exit) -> int:
    return {Exit.OK: 0, Exit.REMOTE_ERROR: 1, Exit.UNAVAILABLE: 2, Exit.TIMEOUT: 3}[status]


def _show_progress(device, data, pct) -> None:
    shown = f"{pct:g}% " if isinstance(pct, (int, float)) else ""
    print(f"{device}: progress {shown}{json.dumps(data)}", file=sys.stderr, flush=True)


def cmd_listen(args: argparse.Namespace) -> int:
    with _caller(args) as fleet:
        for topic, payload in fleet.listen(args.pattern):
            print(topic, payload.decode("utf-8", "replace"), flush=True)
    return Exit.OK


def cmd_publish(args: argparse.Namespace) -> int:
    payload = parse_json(args.payload)
    if not isinstance(payload, dict):
        raise CommandError(f"a fleet broadcast is a JSON object, not {type(payload).__name__}", Exit.USAGE)
    with _caller(args) as fleet:
        try:
            fleet.publish(args.target, args.channel, payload)
        except ValueError as exc:
            raise CommandError(str(exc), Exit.USAGE) from None
    return Exit.OK


def _common(parser) -> None:
    parser.add_argument("--broker", action="append", metavar="URL",
                        help="mqtt://host:port or mqtts://host:port (repeatable; default: [fleet] broker)")
    parser.add_argument("--fleet", help="the fleet's name (default: [fleet] fleet)")
    parser.add_argument("--username", help="broker user name (default: [fleet] username)")
    parser.add_argument("--password-file", metavar="FILE", help="a file holding the broker password")
    parser.add_argument("--ca-file", metavar="FILE", help="mqtts://: the CA to check the broker against")
    parser.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                        help="seconds to wait (default: [fleet] timeout)")


def register(commands) -> None:
    fleet = commands.add_parser("fleet", help="call, inspect and broadcast into the boxes of a fleet",
                                description="The fleet side of daebus bridge, over the MQTT 5 broker.")
    sub = fleet.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND", required=True)

    status = sub.add_parser("status", help="every device from its retained state")
    status.add_argument("--json", action="store_true", help="one JSON state per line")
    status.set_defaults(handler=cmd_status)

    call = sub.add_parser("call", help="call an action on a device, group:NAME or all")
    call.add_argument("target", help="a device id, group:NAME or all")
    call.add_argument("service")
    call.add_argument("action")
    call.add_argument("payload", nargs="?", help="a JSON object (- reads stdin)")
    call.set_defaults(handler=cmd_call)

    listen = sub.add_parser("listen", help="print the messages of a topic filter")
    listen.add_argument("pattern", help="an MQTT filter under daebus/<fleet>/, such as '+/events/#'")
    listen.set_defaults(handler=cmd_listen)

    publish = sub.add_parser("publish", help="broadcast a JSON object into a device, group:NAME or all")
    publish.add_argument("target")
    publish.add_argument("channel")
    publish.add_argument("payload", help="a JSON object (- reads stdin)")
    publish.set_defaults(handler=cmd_publish)
    for parser in (status, call, listen, publish):
        _common(parser)
