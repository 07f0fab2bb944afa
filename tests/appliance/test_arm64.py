"""The same ``_all.deb`` files on arm64: a bookworm root booted under
qemu-user-static installs them and serves (``/api/health``, one worker call).

binfmt_misc is registered by the test (see :func:`nspawn.register_binfmt`);
where the kernel refuses, the test fails with the kernel's reason. Inside
emulation only what proves the point runs: the install, the gateway, one
worker; the cached root holds nothing beyond the boot packages.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from appliance.nspawn import (SUITE, Container, add_dependencies, build_image, register_binfmt, unpack,
                              wait_until)
from appliance.packages import ADD_EXAMPLE_WORKER, ROOT, make_debs, version_of

ARCH = "arm64"
VERSION = version_of(ROOT)
# Everything runs some 5-20 times slower under emulation.
SLOW = 10

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="needs Linux"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (binfmt_misc, debootstrap, systemd-nspawn)"),
    pytest.mark.timeout(3600),
]

# One HTTP call from inside the box, with python3 (curl is not in the root).
HTTP = """
import sys, urllib.request, urllib.error
data = sys.argv[2].encode() if len(sys.argv) > 2 else None
request = urllib.request.Request("http://127.0.0.1:8080" + sys.argv[1], data=data,
                                 headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        print(response.status, response.read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code, exc.read().decode())
except OSError as exc:
    print(0, exc)
"""


def call(box: Container, path: str, payload: dict | None = None) -> tuple[int, dict | str]:
    args = [path] + ([json.dumps(payload)] if payload is not None else [])
    out = box.run("python3", "-c", HTTP, *args, timeout=30 * SLOW).stdout.strip()
    status, _, body = out.partition(" ")
    try:
        return int(status), json.loads(body)
    except ValueError:
        return int(status or 0), body


@pytest.fixture(scope="module")
def debs(steps) -> dict[str, Path]:
    with steps("build the .debs (make deb)"):
        return make_debs(ROOT)


@pytest.fixture(scope="module")
def arm64_box(debs, steps):
    with steps("register qemu-aarch64 with binfmt_misc"):
        register_binfmt(ARCH)
    log_dir = Path(tempfile.mkdtemp(prefix="daebus-arm64-", dir="/var/tmp"))
    try:
        with steps(f"debootstrap'd {SUITE} {ARCH} root under emulation (cached between runs)"):
            with open(log_dir / "image.log", "w") as log:
                tarball = build_image(log, ARCH, extra=[])
        with steps("unpack a fresh copy, add the dependencies' arm64 .debs"):
            root = unpack(tarball, log_dir)
            for name in ("python3-daebus", "daebus"):
                shutil.copy(debs[name], root / "srv" / debs[name].name)
            # qemu-user cannot set up user namespaces, which the bus's and the
            # gateway's units ask for (PrivateUsers=): without this drop-in they
            # fail at step USER under emulation only.
            for unit in ("daebus-redis.service", "daebus-gateway.service"):
                dropin = root / f"etc/systemd/system/{unit}.d"
                dropin.mkdir(parents=True, exist_ok=True)
                (dropin / "no-user-namespace.conf").write_text("[Service]\nPrivateUsers=no\n")
            # Nor can it mount the credentials file system behind LoadCredential=
            # (the units fail with 243/CREDENTIALS): under emulation only, each
            # daebus unit gets its secret copied, readable by its user alone, into
            # a folder that CREDENTIALS_DIRECTORY names, as systemd would hand it.
            for unit, secret, folder in (
                    ("daebus-gateway.service", "/etc/daebus/secrets/gateway", "/run/daebus-emulation/gateway"),
                    ("daebus-worker@.service", "/etc/daebus/secrets/workers/%i", "/run/daebus-emulation/worker-%i")):
                dropin = root / f"etc/systemd/system/{unit}.d"
                dropin.mkdir(parents=True, exist_ok=True)
                (dropin / "emulation.conf").write_text(
                    "[Service]\nLoadCredential=\n"
                    f"Environment=CREDENTIALS_DIRECTORY={folder}\n"
                    f"ExecStartPre=+/usr/bin/install -D -m 0400 -o daebus {secret} {folder}/redis-password\n")
            with open(log_dir / "image.log", "a") as log:
                add_dependencies(root, [f"/srv/{debs[name].name}" for name in ("python3-daebus", "daebus")],
                                 log, ARCH)
        container = Container(root, f"daebus-arm64-{os.getpid()}", log_dir / "console.log")
        try:
            with steps("boot it under qemu-user-static"):
                container.boot(timeout=120 * SLOW / 2)
                machine = container.run("uname", "-m").stdout.strip()
            assert machine == "aarch64", machine
            yield container
        finally:
            container.stop(timeout=120)
    finally:
        if os.environ.get("DAEBUS_TEST_KEEP"):
            print(f"arm64 container root kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


def test_arm64_installs_and_serves(arm64_box, debs, steps):
    box = arm64_box
    with steps(f"{ARCH}: apt-get install the same _all.deb files") as step:
        started = time.monotonic()
        out = box.run("apt-get", "install", "-y", "-q", "-o", "Dpkg::Use-Pty=0",
                      f"/srv/{debs['python3-daebus'].name}", f"/srv/{debs['daebus'].name}", timeout=3000)
        step["figures"] = f"install {time.monotonic() - started:.0f} s"
    assert "Setting up daebus" in out.stdout
    assert box.run("dpkg", "--print-architecture").stdout.strip() == ARCH

    with steps(f"{ARCH}: /api/health and a worker call through the gateway") as step:
        health = wait_until(lambda: (r := call(box, "/api/health"))[0] == 200 and r, 60 * SLOW,
                          "the gateway to answer", interval=1)
        box.sh(ADD_EXAMPLE_WORKER, timeout=120 * SLOW)
        started = time.monotonic()
        status, body = wait_until(lambda: (r := call(box, "/api/services/example/hello", {"name": "arm64"}))[0]
                                == 200 and r, 60 * SLOW, "the example worker to answer", interval=1)
        step["figures"] = f"worker call {time.monotonic() - started:.1f} s"
    assert health[1]["version"] == VERSION and health[1]["redis"] == "up", health
    assert body["result"]["message"] == "Hello, arm64!", body
    states = box.run("systemctl", "is-active", "daebus-gateway.service", "daebus-worker@example.service",
                     "daebus-redis.service", check=False).stdout.split()
    assert states == ["active"] * 3, states
    installed = box.run("dpkg-query", "-W", "-f", "${Status}", "redis-server", check=False).stdout
    assert "install ok installed" not in installed, installed
