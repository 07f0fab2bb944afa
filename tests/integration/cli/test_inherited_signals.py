"""The long-running commands stop on Ctrl-C even when started with SIGINT and
SIGTERM blocked, as a CI runner or a supervisor that handles them itself
leaves them in its children's signal mask."""

from __future__ import annotations

import json
import signal

import pytest

from daebus.cli import Exit
from support import inherited_signals


def numpat(client) -> int:
    return client.execute_command("PUBSUB", "NUMPAT")


def stop_with(proc, sig) -> None:
    proc.send_signal(sig)
    assert proc.wait(10) == Exit.OK
    assert "Traceback" not in proc.stderr.read()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_listen(background, redis_server, wait_until, sig):
    client = redis_server.client()
    before = numpat(client)
    proc = background("listen", "cli.masked.*", preexec_fn=inherited_signals)
    wait_until(lambda: numpat(client) > before, what="the listener's subscription")
    client.publish("cli.masked.x", "{}")
    assert proc.stdout.readline().endswith(" cli.masked.x {}\n")
    if sig == signal.SIGINT:
        stop_with(proc, sig)
    else:
        # SIGTERM keeps its default action: the command ends at once.
        proc.send_signal(sig)
        assert proc.wait(10) == -signal.SIGTERM


def test_services_watch(background, service):
    service("basic.py", "cli-masked")
    proc = background("services", "--watch", "--json", "--interval", "0.2", preexec_fn=inherited_signals)
    assert "cli-masked" in [s["name"] for s in json.loads(proc.stdout.readline())]
    stop_with(proc, signal.SIGINT)


def test_top(background, service):
    service("basic.py", "cli-masked-top")
    proc = background("top", "--interval", "0.2", preexec_fn=inherited_signals)
    assert proc.stdout.readline().startswith("-- ")
    stop_with(proc, signal.SIGINT)
