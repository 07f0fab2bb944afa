"""One owner per service name: the race, the loser's exit, take-over after a crash."""

import re
import socket
import subprocess
import time

from daebus import DaebusCaller, NameTaken, list_services
from support import Service

ROUNDS = 20


def _loser(a: Service, b: Service, timeout: float = 30) -> Service:
    """The first of the two to exit (each slice waits for a real exit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for svc in (a, b):
            try:
                svc.process.wait(0.1)
                return svc
            except subprocess.TimeoutExpired:
                pass
    raise AssertionError(f"both still running:\n--- a ---\n{a.log}\n--- b ---\n{b.log}")


def test_two_instances_started_together_exactly_one_serves(redis_server, redis_url):
    client = redis_server.client()
    for round_ in range(ROUNDS):
        name = f"race{round_}"
        a = Service("member.py", redis_url, name, wait=False)
        b = Service("member.py", redis_url, name, wait=False)
        try:
            loser = _loser(a, b)
            winner = b if loser is a else a
            winner.wait_ready()
            assert loser.process.returncode == NameTaken.exit_status, loser.log
            errors = [line for line in loser.log.splitlines() if " ERROR " in line]
            assert len(errors) == 1, loser.log
            assert (f"service '{name}' is already served by pid {winner.process.pid} "
                    f"on host {socket.gethostname()} since ") in errors[0]
            assert re.search(r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", errors[0])
            # The winner alone is subscribed, registered and answering.
            assert client.pubsub_numsub(name) == [(name, 1)]
            [info] = [s for s in list_services(client) if s["name"] == name]
            assert info["pid"] == winner.process.pid and info["mode"] == "owner"
            with DaebusCaller(name, redis_url=redis_url) as caller:
                assert caller.send_request("whoami", {})["pid"] == winner.process.pid
        finally:
            a.close()
            b.close()


def test_instance_started_later_refuses_with_one_line_and_keeps_the_owner_entry(redis_server, service,
                                                                                 redis_url):
    owner = service("member.py", "held", journal=True)
    late = service("member.py", "held", wait=False, journal=True)
    assert late.wait(15) == NameTaken.exit_status
    # Under systemd the line carries the err priority, so `journalctl -p err` shows it.
    assert [line for line in late.log.splitlines() if line.startswith("<3>")] == [
        line for line in late.log.splitlines() if "already served by" in line]
    assert len([line for line in late.log.splitlines() if line.startswith("<3>")]) == 1
    # Its clean exit did not remove the owner's entry.
    [info] = [s for s in list_services(redis_server.client()) if s["name"] == "held"]
    assert info["pid"] == owner.process.pid


def test_killed_owner_is_replaced_at_once_not_after_the_ttl(service, redis_url, tmp_path):
    conf = tmp_path / "daebus.toml"
    conf.write_text("[service]\nregistry_ttl = 120\n")
    env = {"DAEBUS_CONFIG": str(conf)}
    first = service("member.py", "phoenix", env=env)
    first.kill()  # SIGKILL: no clean shutdown, the registry entry stays for 120 s
    started = time.monotonic()
    second = service("member.py", "phoenix", env=env)
    assert time.monotonic() - started < 30, "take-over waited for the registry TTL"
    with DaebusCaller("phoenix", redis_url=redis_url) as caller:
        assert caller.send_request("whoami", {})["pid"] == second.process.pid


def test_registry_entry_of_a_stopped_owner_is_gone_and_a_new_one_starts(service, redis_server):
    first = service("member.py", "relay")
    assert first.stop() == 0
    assert [s for s in list_services(redis_server.client()) if s["name"] == "relay"] == []
    second = service("member.py", "relay")
    assert second.running


def test_entry_without_a_live_subscriber_is_taken_over(redis_server, service):
    # An entry left by a crashed instance of an older version (no token):
    # nobody subscribes to the service channel, so it is stale.
    client = redis_server.client()
    client.hset("daebus:service:old", mapping={"name": "old", "pid": "1", "host": "elsewhere"})
    client.expire("daebus:service:old", 300)
    svc = service("member.py", "old")
    [info] = [s for s in list_services(client) if s["name"] == "old"]
    assert info["pid"] == svc.process.pid
