"""``daebus call``, ``daebus publish`` and ``daebus listen``: the bus from a shell.

Examples::

    daebus call sensors read '{"id": 1}'          # the reply's payload on stdout
    echo '{"id": 1}' | daebus call sensors read - --timeout 30
    daebus publish sensors.alert '{"level": "high"}'
    daebus listen 'sensors.*' --count 10          # time, channel and payload per line
    daebus listen '*' --json | jq .channel
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys

from daebus.bus import wirejson
from daebus.errors import RemoteError
from daebus.cli.common import CommandError, Exit, add_redis_url, connect, dumps, json_escaped, parse_json, positive_float, \
    positive_int, printable, redis_url, unreachable


def _quiet_library_logs() -> None:
    # The command reports failures itself, in one line; keep the library's
    # warnings (Redis lost, ...) from reaching stderr through logging's last resort.
    logging.getLogger("daebus").addHandler(logging.NullHandler())


def _show_progress(payload) -> None:
    print(f"progress: {dumps(payload, pretty=False)}", file=sys.stderr, flush=True)


def cmd_call(args: argparse.Namespace) -> int:
    from daebus.call.caller import DaebusCaller

    payload = {} if args.payload is None else parse_json(args.payload)
    url = redis_url(args)
    _quiet_library_logs()
    with DaebusCaller(args.service, redis_url=url, timeout=args.timeout) as caller:
        try:
            result = caller.send_request(args.action, payload, on_progress=_show_progress)
        except RemoteError as exc:
            message = f"{args.service}.{args.action}: {exc.code}: {exc}"
            extra = {k: v for k, v in exc.payload.items() if k not in ("error", "code")} \
                if isinstance(exc.payload, dict) else {}
            if extra:
                message += "\n" + dumps(extra, pretty=False)
            raise CommandError(message, Exit.REMOTE_ERROR) from None
    print(dumps(result), flush=True)
    return Exit.OK


def cmd_publish(args: argparse.Namespace) -> int:
    from daebus.bus import protocol
    from daebus.bus.kept import KeepingPublisher
    from daebus.bus.transport import REDIS_ERRORS

    payload = parse_json(args.payload)
    if not isinstance(payload, dict):
        raise CommandError(f"a broadcast is a JSON object, not {type(payload).__name__}: "
                           "listeners receive objects", Exit.USAGE)
    url = redis_url(args)
    client = connect(url)
    try:
        # Kept like a service's broadcast when a gateway or the fleet bridge
        # asked for the channel (see daebus.bus.kept).
        receivers = KeepingPublisher(client, client.publish)(args.channel, protocol.dumps(payload))
    except REDIS_ERRORS as exc:
        raise unreachable(url, exc) from None
    finally:
        client.close()
    print(f"{args.channel}: {receivers} receiver{'s' if receivers != 1 else ''}", flush=True)
    return Exit.OK


def event_line(channel: str, data: bytes, as_json: bool) -> str:
    """One printed line for a message; text that is not JSON is shown as text."""
    now = datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")
    try:
        payload, raw = wirejson.loads(data), None
    except ValueError:
        payload, raw = None, data if isinstance(data, str) else data.decode("utf-8", errors="replace")
    if as_json:
        event = {"time": now, "channel": channel}
        event.update({"data": payload} if raw is None else {"raw": raw})
        return json_escaped(json.dumps(event, separators=(",", ":"), ensure_ascii=False))
    shown = dumps(payload, pretty=False) if raw is None else f"(not JSON) {raw!r}"
    return f"{now} {printable(channel)} {shown}"


def cmd_listen(args: argparse.Namespace) -> int:
    from daebus.bus.transport import REDIS_ERRORS, subscriber_client

    url = redis_url(args)
    pubsub = subscriber_client(url, socket_timeout=10.0).pubsub()
    seen = 0
    try:
        try:
            pubsub.psubscribe(*args.patterns)
        except REDIS_ERRORS as exc:
            raise unreachable(url, exc) from None
        if sys.stderr.isatty():
            print(f"daebus: listening to {' '.join(args.patterns)} (Ctrl-C to stop)", file=sys.stderr)
        while args.count is None or seen < args.count:
            try:
                message = pubsub.get_message(timeout=1.0)
            except REDIS_ERRORS as exc:
                raise unreachable(url, exc) from None
            if message is None or message["type"] != "pmessage":
                continue
            channel = message["channel"].decode("utf-8", errors="replace")
            print(event_line(channel, message["data"], args.json), flush=True)
            seen += 1
    except KeyboardInterrupt:
        pass  # the ordinary way to stop listening
    finally:
        try:
            pubsub.close()
        except REDIS_ERRORS:
            pass
    return Exit.OK


def register(commands) -> None:
    call = commands.add_parser(
        "call", help="call a service's action and print the reply",
        description="Call ACTION of SERVICE and print the reply's payload: indented on a "
                    "terminal, one compact JSON line otherwise. Progress replies go to stderr "
                    "as they arrive; an error reply prints its code and message to stderr.")
    call.add_argument("service", metavar="SERVICE")
    call.add_argument("action", metavar="ACTION")
    call.add_argument("payload", nargs="?", metavar="JSON",
                      help="the request payload (default: {}); - reads it from stdin")
    call.add_argument("--timeout", type=positive_float, default=5.0, metavar="S",
                      help="seconds to wait for the final reply (default: 5)")
    add_redis_url(call)
    call.set_defaults(handler=cmd_call)

    publish = commands.add_parser(
        "publish", help="broadcast a JSON object on a channel",
        description="Broadcast a JSON object on CHANNEL, as broadcast.send does, and print "
                    "how many subscribers received it.")
    publish.add_argument("channel", metavar="CHANNEL")
    publish.add_argument("payload", metavar="JSON", help="a JSON object; - reads it from stdin")
    add_redis_url(publish)
    publish.set_defaults(handler=cmd_publish)

    listen = commands.add_parser(
        "listen", help="print the messages on channels matching glob patterns",
        description="Print each message on a channel matching one of the glob PATTERNs "
                    "(*, ?, [abc]) as one line: time, channel and payload, until Ctrl-C or "
                    "--count messages. Messages that are not JSON are shown as text.")
    listen.add_argument("patterns", nargs="+", metavar="PATTERN")
    listen.add_argument("--json", action="store_true",
                        help='JSON lines: {"time", "channel", "data"} ("raw" text instead of "data" '
                             "for a message that is not JSON)")
    listen.add_argument("--count", type=positive_int, metavar="N", help="stop after N messages")
    add_redis_url(listen)
    listen.set_defaults(handler=cmd_listen)
