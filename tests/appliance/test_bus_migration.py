"""A box from before the bus had a unit of its own, upgraded in a booted bookworm.

Packages built from ``PREVIOUS`` (the last commit whose ``daebus`` depended on
Debian's ``redis-server`` and ran the bus as ``redis-server@daebus``) are
installed first, with a worker and data in the bus; this tree, built as a
newer version, replaces them. The bus must come back as ``daebus-redis``
with the same configuration, secrets and data, the old instance stopped, and
once ``apt autoremove`` takes the no longer needed ``redis-server`` away,
nothing listens on TCP 6379.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from appliance.nspawn import Container, add_dependencies, booted, build_image, unpack, wait_until
from appliance.packages import ADD_EXAMPLE_WORKER, ROOT, make_debs, make_versioned_debs, version_of
from appliance.test_appliance import BUS, SECRETS, SOCKET, admin_cli, apt_install, hello, show, tcp_listeners

PREVIOUS = "6fc1f739920ebb32b42c21865cbfbc11fe7c657b"
OLD_BUS = "redis-server@daebus.service"
NEW = f"{version_of(ROOT)}+bus1"


def _has_previous() -> bool:
    return subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"],
                          capture_output=True).returncode == 0


pytestmark = [
    pytest.mark.skipif(not _has_previous(), reason=f"this checkout lacks the previous packaging's source "
                       f"({PREVIOUS[:7]}): a shallow clone"),
    pytest.mark.skipif(sys.platform != "linux", reason="needs Linux"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (debootstrap, systemd-nspawn)"),
    pytest.mark.timeout(1800),
]


@pytest.fixture(scope="module")
def packages(steps, tmp_path_factory) -> dict[str, dict[str, Path]]:
    with steps(f"build the .debs of {PREVIOUS[:7]} and of this tree as {NEW}"):
        old_source = tmp_path_factory.mktemp("previous") / "daebus"
        old_source.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS], capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(old_source)
        return {"old": make_debs(old_source, ("python3-daebus", "daebus")),
                "new": make_versioned_debs(ROOT, tmp_path_factory.mktemp("new"), NEW,
                                           "The bus's Redis in a unit of its own, for the upgrade test.")}


@pytest.fixture(scope="module")
def box(packages, steps):
    names = ("python3-daebus", "daebus")
    with steps("a fresh copy of the cached root, with both versions' dependencies"):
        log_dir = Path(tempfile.mkdtemp(prefix="daebus-migration-", dir="/var/tmp"))
        with open(log_dir / "image.log", "w") as log:
            root = unpack(build_image(log), log_dir)
            for debs in packages.values():
                for name in names:
                    shutil.copy(debs[name], root / "srv" / debs[name].name)
            for debs in packages.values():
                add_dependencies(root, [f"/srv/{debs[name].name}" for name in names], log)
    with booted(root, f"daebus-migration-{os.getpid()}", log_dir, steps("boot it")) as container:
        yield container


ACL_FILE = "etc/redis/redis-daebus.acl"


def passwords(acl: bytes) -> dict[str, str]:
    """``{user: password hash}`` of an ACL file."""
    found = {}
    for line in acl.decode().splitlines():
        words = line.split()
        if words[:1] == ["user"]:
            found[words[1]] = next((w for w in words if w.startswith("#")), "")
    return found


def bus_files(box: Container) -> dict[str, bytes]:
    """The secrets, the bus's configuration and its ACL file, by path."""
    paths = [p for p in (box.root / SECRETS.lstrip("/")).rglob("*") if p.is_file()]
    paths += [box.root / "etc/redis/redis-daebus.conf", box.root / ACL_FILE]
    return {str(p.relative_to(box.root)): p.read_bytes() for p in paths}


before: dict = {}


def test_previous_version_serves_on_redis_server(box, packages, steps):
    old = packages["old"]
    with steps(f"install {PREVIOUS[:7]}'s packages: the bus as redis-server@daebus, a worker, a key"):
        apt_install(box, f"/srv/{old['python3-daebus'].name}", f"/srv/{old['daebus'].name}")
        box.sh(ADD_EXAMPLE_WORKER, timeout=120)
        result = hello(box, "before")
        admin_cli(box, "SET", "migration:marker", "kept")
        states = box.run("systemctl", "is-active", OLD_BUS, "redis-server.service", check=False).stdout.split()
    assert result["message"] == "Hello, before!"
    # What the new version must take over: the old instance, and the default
    # instance that redis-server brought along.
    assert states == ["active", "active"], states
    before.update(files=bus_files(box), pid=show(box, OLD_BUS, "MainPID")["MainPID"])
    assert "etc/daebus/secrets/workers/example" in before["files"], sorted(before["files"])


def test_upgrade_moves_the_bus_to_its_own_unit(box, packages, steps):
    new = packages["new"]
    with steps(f"upgrade to {NEW}: daebus-redis serves the same files, the old instance stopped") as step:
        out = apt_install(box, f"/srv/{new['python3-daebus'].name}", f"/srv/{new['daebus'].name}")
        wait_until(lambda: box.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                   "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "{}",
                                   "http://127.0.0.1:8080/api/services/example/hello",
                                   check=False).stdout == "200", 60, "the worker to answer after the upgrade")
        result = hello(box, "after")
        marker = admin_cli(box, "GET", "migration:marker").stdout.strip()
        states = box.run("systemctl", "is-active", OLD_BUS, BUS, check=False).stdout.split()
        bus = show(box, BUS, "MainPID", "User", "Group")
        listeners = tcp_listeners(box)
        nobody = box.run("runuser", "-u", "nobody", "--", "redis-cli", "-s", SOCKET, "PING", check=False)
        step["figures"] = "TCP listeners: " + ", ".join(f"{l['port']} ({l['unit']})" for l in listeners)
    assert f"Unpacking daebus ({NEW})" in out, out[-3000:]
    assert states == ["inactive", "active"], states
    assert (bus["User"], bus["Group"]) == ("redis", "daebus"), bus
    assert bus["MainPID"] != before["pid"]
    after = bus_files(box)
    # A newer version may add users (and their secrets) and render the ACL
    # file anew; what was there is kept: each secret, the configuration, and
    # each user's password in the ACL file.
    changed = [path for path, data in before["files"].items()
               if path != ACL_FILE and after.get(path) != data]
    assert not changed, f"the upgrade changed the bus's secrets or configuration: {changed}"
    assert passwords(before["files"][ACL_FILE]).items() <= passwords(after[ACL_FILE]).items(), \
        "the upgrade changed a user's password in the ACL file"
    before["files"] = after
    assert marker == "kept", "the bus's data did not survive the upgrade"
    assert result["message"] == "Hello, after!"
    assert nobody.returncode != 0 and "Permission denied" in nobody.stdout + nobody.stderr, nobody
    # Nothing on TCP that daebus started: the default instance on 6379 is
    # redis-server's own, still installed until autoremove.
    assert {l["unit"] for l in listeners if l["port"] == 6379} <= {"redis-server.service"}, listeners
    assert not [l for l in listeners if l["pid"] == int(bus["MainPID"])], listeners


def test_autoremove_leaves_nothing_on_tcp(box, steps):
    with steps("apt-get autoremove --purge: redis-server goes, nothing listens on 6379, the bus serves"):
        box.run("apt-get", "autoremove", "--purge", "-y", "-q", "-o", "Dpkg::Use-Pty=0", timeout=300)
        installed = box.run("dpkg-query", "-W", "-f", "${Status}", "redis-server", check=False).stdout
        listeners = tcp_listeners(box)
        result = hello(box, "alone")
        state = box.run("systemctl", "is-active", BUS, check=False).stdout.strip()
    assert "install ok installed" not in installed, installed
    assert not [l for l in listeners if l["port"] == 6379], listeners
    assert state == "active" and result["message"] == "Hello, alone!"
    assert bus_files(box) == before["files"]


def test_purge_removes_what_the_bus_owned(box, steps):
    with steps("apt-get purge daebus: the bus's unit, files, secrets and data gone"):
        box.run("apt-get", "purge", "-y", "-q", "-o", "Dpkg::Use-Pty=0", "daebus", timeout=300)
        states = box.run("systemctl", "is-active", BUS, OLD_BUS, check=False).stdout.split()
    assert "active" not in states, states
    for path in ("etc/daebus/secrets", "etc/redis/redis-daebus.acl", "etc/redis/redis-daebus.conf",
                 "var/lib/redis-daebus", "lib/systemd/system/daebus-redis.service", "run/redis-daebus"):
        assert not (box.root / path).exists(), path
