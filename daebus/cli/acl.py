"""``daebus acl``: the users of a locked bus (run as root).

Examples::

    sudo daebus acl                              # secrets made if missing, ACL file written
    sudo daebus acl --worker sensors --load      # and the sensors worker's user, loaded now
    daebus acl --worker sensors --load --if-changed   # what a worker's start runs

The package runs it when installed and before a worker starts, so that
each worker instance has its own Redis user; see docs/security.md.
"""

from __future__ import annotations

import argparse

from daebus.ops import paths
from daebus.security.bususers import BusUsers
from daebus.bus.transport import REDIS_ERRORS, redact
from daebus.cli.common import Exit, add_redis_url, redis_url, say_error


def cmd_write(args: argparse.Namespace) -> int:
    users = BusUsers(args.secrets_dir, args.acl_file)
    outcome = users.write(args.worker)
    if not args.quiet:
        # A worker named with --worker says what is wrong with its file
        # itself, when it starts; --quiet (the units, the package) leaves
        # the others to `daebus doctor` instead of repeating them at every start.
        for name, problem in outcome.problems.items():
            if name not in args.worker:
                say_error(f"left out of the ACL: {problem}")
        made = f"; new secrets for {', '.join(outcome.created)}" if outcome.created else ""
        gone = f"; secrets removed for {', '.join(outcome.retired)}" if outcome.retired else ""
        print(f"{users.acl_file}: {len(outcome.users)} user(s){made}{gone}")
    if args.load and (outcome.changed or not args.if_changed):
        url = redis_url(args)
        try:
            users.load(url)
        except REDIS_ERRORS as exc:
            # Redis reads the file when it starts: nothing is lost.
            if not args.quiet:
                print(f"Redis at {redact(url)} not reachable ({exc}); it reads the file when it starts")
    return Exit.OK


def register(commands) -> None:
    parser = commands.add_parser(
        "acl", help="write the Redis users of a locked bus (root)",
        description="Make the missing secrets (admin, gateway, bridge, one per worker) and write the "
                    "Redis ACL file from them and the worker files; see docs/security.md.")
    parser.add_argument("--worker", action="append", default=[], metavar="NAME",
                        help="a worker instance whose user must be there (repeatable); if its "
                             "worker file is wrong, only its secret is made (the worker says why)")
    parser.add_argument("--load", action="store_true", help="then run ACL LOAD as the admin user")
    parser.add_argument("--if-changed", action="store_true",
                        help="with --load: load only if the file's text changed (loading closes the "
                             "connections of every Redis user, which reconnect)")
    parser.add_argument("--secrets-dir", metavar="DIR",
                        help=f"default: ${paths.SECRETS_DIR_ENV} or {paths.SECRETS_DIR}")
    parser.add_argument("--acl-file", metavar="PATH",
                        help=f"default: ${paths.ACL_FILE_ENV} or {paths.ACL_FILE}")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    add_redis_url(parser)
    parser.set_defaults(handler=cmd_write)
