"""``daebus asyncapi``: the AsyncAPI 3.0 document of the bus, from the registry.

Examples::

    daebus asyncapi > bus.json               # every live service: actions, replies, channels
    daebus asyncapi --service sensors        # one service's part

What the registry holds that cannot be used (a garbled record, a schema
that is not valid JSON Schema) is left out or left open, one ``daebus:
asyncapi: ...`` line on stderr says what, and the document stays valid.
"""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

from daebus.cli.common import CommandError, Exit, add_redis_url, dumps, fetch, redis_url, say_error

_KINDS = {"redis": "Redis", "rediss": "Redis over TLS", "unix": "Redis on a unix socket",
          "redis+sentinel": "Redis, its master found through Sentinel"}


def server_of(url: str) -> dict:
    """The AsyncAPI server object of a Redis URL, without its credentials."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2] or "localhost"
    server = {"host": host, "protocol": "redis", "description": _KINDS.get(parts.scheme, "Redis")}
    if parts.path and parts.path != "/":
        server["pathname"] = parts.path
    return server


def cmd_asyncapi(args: argparse.Namespace) -> int:
    from daebus.app.asyncapi import document, problems

    url = redis_url(args)
    services = fetch(url)
    if args.service:
        live = {s["name"] for s in services}
        missing = [name for name in args.service if name not in live]
        if missing:
            raise CommandError(f"no live service named {', '.join(map(repr, missing))} "
                               "(see daebus services)", Exit.UNAVAILABLE)
        services = [s for s in services if s["name"] in args.service]
    doc = document(services, servers={"bus": server_of(url)})
    for problem in problems(doc):
        say_error(f"asyncapi: {problem}")
    print(dumps(doc), flush=True)
    return Exit.OK


def register(commands) -> None:
    asyncapi = commands.add_parser(
        "asyncapi", help="print the AsyncAPI 3.0 document of the bus (from the registry)",
        description="Print the AsyncAPI 3.0 document of the live services: each action's request and "
                    "replies with their schemas, each listened channel with its schema, and the "
                    "envelopes of wire format v1. Indented on a terminal, one line otherwise.")
    asyncapi.add_argument("--service", action="append", metavar="NAME",
                          help="only this service (may be given more than once)")
    add_redis_url(asyncapi)
    asyncapi.set_defaults(handler=cmd_asyncapi)
