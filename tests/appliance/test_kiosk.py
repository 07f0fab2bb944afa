"""The kiosk package in a booted bookworm root: cage + Chromium on wlroots'
headless backend, looked at with grim as the kiosk user.

Run with ``pytest tests/appliance/test_kiosk.py`` as root. The screenshots
are kept in ``artifacts/`` (``DAEBUS_ARTIFACTS`` to put them elsewhere).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from appliance.nspawn import ARTIFACTS, Container, add_dependencies, build_image, unpack, wait_until
from appliance.packages import ROOT, make_debs, version_of

VERSION = version_of(ROOT)
UNIT = "daebus-kiosk.service"
# The demo page's background and its cards' (kiosk_demo/static/style.css
# --bg, --card).
PAGE_RGB = (0x0E, 0x13, 0x18)
CARD_RGB = (0x18, 0x20, 0x28)
# The frame page's offline notice (kiosk/static/frame.html #offline).
OFFLINE_RGB = (0x3B, 0x2A, 0x10)
# The bus's socket (debian/redis/redis-daebus.conf).
SOCKET = "/run/redis-daebus/redis-server.sock"
# What docs/kiosk.md gives a box without a display.
HEADLESS = """[Unit]
ConditionPathExists=

[Service]
StandardInput=null
TTYReset=no
TTYVHangup=no
TTYVTDisallocate=no
Environment=WLR_BACKENDS=headless WLR_RENDERER=pixman WLR_LIBINPUT_NO_DEVICES=1
"""

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="needs Linux"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (debootstrap, systemd-nspawn)"),
    pytest.mark.timeout(1200),
]


@pytest.fixture(scope="module")
def debs(steps) -> dict[str, Path]:
    with steps("build the .debs (make deb)"):
        debs = make_debs(ROOT)
        debs["daebus-kiosk"] = ROOT / "dist" / f"daebus-kiosk_{VERSION}_all.deb"
        assert debs["daebus-kiosk"].is_file()
        return debs


@pytest.fixture(scope="module")
def box(debs, steps):
    log_dir = Path(tempfile.mkdtemp(prefix="daebus-kiosk-", dir="/var/tmp"))
    with steps("cached bookworm root; unpack; add the dependencies' .debs (cage, chromium...)"):
        with open(log_dir / "image.log", "w") as log:
            root = unpack(build_image(log), log_dir)
            for deb in debs.values():
                shutil.copy(deb, root / "srv" / deb.name)
            # grim only for looking at the screen; not a dependency of the kiosk.
            add_dependencies(root, [*(f"/srv/{deb.name}" for deb in debs.values()), "grim"], log)
    container = Container(root, f"daebus-kiosk-{os.getpid()}", log_dir / "console.log")
    try:
        with steps("boot it"):
            container.boot()
        yield container
    finally:
        container.stop()
        if not os.environ.get("DAEBUS_TEST_KEEP"):
            shutil.rmtree(log_dir, ignore_errors=True)


# -- looking at the screen -------------------------------------------------------

def cage_environment(box: Container) -> dict[str, str]:
    pid = box.run("pgrep", "-u", "kiosk", "-x", "cage").stdout.split()[0]
    raw = box.run("cat", f"/proc/{pid}/environ").stdout
    env = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
    return {"XDG_RUNTIME_DIR": env["XDG_RUNTIME_DIR"], "WAYLAND_DISPLAY": env.get("WAYLAND_DISPLAY", "wayland-0")}


def screenshot(box: Container, keep: str | None = None) -> tuple[int, int, bytes]:
    """The output as (width, height, RGB bytes), taken with grim as the
    kiosk user; ``keep`` also saves a PNG under artifacts/."""
    env = cage_environment(box)
    args = ["runuser", "-u", "kiosk", "--", "env", *(f"{k}={v}" for k, v in env.items()), "grim"]
    # /var/tmp is on the root's disk (the container's /tmp is a tmpfs).
    box.run(*args, "-t", "ppm", "/var/tmp/kiosk-shot.ppm", timeout=30)
    data = (box.root / "var/tmp/kiosk-shot.ppm").read_bytes()
    if keep:
        box.run(*args, f"/var/tmp/{keep}", timeout=30)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(box.root / "var/tmp" / keep, ARTIFACTS / keep)
    match = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
    assert match, data[:40]
    width, height = int(match.group(1)), int(match.group(2))
    return width, height, data[match.end():match.end() + width * height * 3]


def share(shot: tuple[int, int, bytes], *colours: tuple[int, int, int], tolerance: int = 6) -> float:
    """The fraction of a grid of sample points, over the whole output, that
    have one of the ``colours``."""
    width, height, pixels = shot
    points = [(x, y) for x in range(2, width, max(1, width // 40)) for y in range(2, height, max(1, height // 30))]
    hits = 0
    for x, y in points:
        i = (y * width + x) * 3
        if any(all(abs(pixels[i + c] - rgb[c]) <= tolerance for c in range(3)) for rgb in colours):
            hits += 1
    return hits / len(points)


def corners(shot, rgb) -> bool:
    width, height, pixels = shot
    for x, y in ((3, height - 4), (width - 4, height - 4), (width - 4, height // 2)):
        i = (y * width + x) * 3
        if not all(abs(pixels[i + c] - rgb[c]) <= 6 for c in range(3)):
            return False
    return True


def covering(box: Container, least: float, edge: tuple[int, int, int], *inside: tuple[int, int, int]):
    """A screenshot with the colour ``edge`` in its far corners and ``edge``
    or ``inside`` on more than ``least`` of the samples, or None."""
    try:
        shot = screenshot(box)
    except Exception:
        return None
    return shot if corners(shot, edge) and share(shot, edge, *inside) > least else None


def page_shown(box: Container):
    # The page's background up to the output's edges, and its cards over
    # most of it (the rest is text, charts and buttons).
    return covering(box, 0.5, PAGE_RGB, CARD_RGB)


def describe(shot) -> str:
    return f"{shot[0]}x{shot[1]}, page colours on {share(shot, PAGE_RGB, CARD_RGB):.0%} of samples"


def show(box: Container, *props: str) -> dict[str, str]:
    out = box.run("systemctl", "show", UNIT, *(f"--property={p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


# -- the story ---------------------------------------------------------------------

@pytest.mark.independent
def test_kiosk_package_contents(debs, steps):
    import subprocess

    with steps("daebus-kiosk contents and dependencies"):
        deb = debs["daebus-kiosk"]
        files = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
        fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Architecture", "Depends"], capture_output=True,
                                text=True, check=True).stdout
        demo = subprocess.run(["dpkg-deb", "-f", str(debs["daebus-kiosk-demo"]), "Depends", "Recommends"],
                              capture_output=True, text=True, check=True).stdout
    assert "Architecture: all" in fields and "cage" in fields and "chromium" in fields, fields
    assert f"python3-daebus (= {VERSION})" in fields
    for path in ("/lib/systemd/system/daebus-kiosk.service", "/usr/lib/sysusers.d/daebus-kiosk.conf",
                 "/usr/share/daebus/kiosk/__main__.py", "/usr/share/daebus/kiosk/static/frame.html",
                 "/usr/share/doc/daebus-kiosk/kiosk.md"):
        assert path in files, path
    assert "daebus-kiosk" not in demo  # the demo doesn't pull a browser in


# What `ss -lntup` lists (the box has no iproute2): listening TCP and bound
# UDP sockets from /proc/net, with the process that holds each.
LISTENING = r"""
import glob, json, os, socket, struct
owners = {}
for fd in glob.glob("/proc/[0-9]*/fd/*"):
    try:
        target = os.readlink(fd)
    except OSError:
        continue
    if target.startswith("socket:["):
        owners[target[8:-1]] = open(fd.split("/fd/")[0] + "/comm").read().strip()
found = []
for proto, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
    for line in open("/proc/net/" + proto).read().splitlines()[1:]:
        f = line.split()
        if f[3] != state:
            continue
        raw, port = f[1].split(":")
        data = bytes.fromhex(raw)
        if len(data) == 4:
            host = socket.inet_ntop(socket.AF_INET, data[::-1])
        else:
            host = socket.inet_ntop(socket.AF_INET6, b"".join(struct.pack("<I", *struct.unpack(">I", data[i:i + 4])) for i in range(0, 16, 4)))
        found.append([proto.rstrip("6"), f"{host}:{int(port, 16)}", owners.get(f[9], "?")])
print(json.dumps(found))
"""


def listeners(box: Container) -> set[tuple[str, str, str]]:
    """(protocol, local address, process) of every listening socket."""
    return {tuple(entry) for entry in json.loads(box.run("python3", "-c", LISTENING).stdout)}


def loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host.startswith("127.") or host == "::1"


def test_install_starts_the_kiosk_as_its_user(box, debs, steps):
    names = ("python3-daebus", "daebus", "daebus-kiosk-demo", "daebus-kiosk")
    with steps("headless drop-in; apt-get install the four packages (chromium, cage...) and grim") as step:
        box.run("mkdir", "-p", f"/etc/systemd/system/{UNIT}.d")
        box.run("tee", f"/etc/systemd/system/{UNIT}.d/headless.conf", input=HEADLESS)
        before = listeners(box)
        started = time.monotonic()
        out = box.run("apt-get", "install", "-y", "-q", "-o", "Dpkg::Use-Pty=0",
                      *(f"/srv/{debs[n].name}" for n in names), "grim", timeout=900).stdout
        step["figures"] = f"install {time.monotonic() - started:.0f} s"
        wait_until(lambda: show(box, "ActiveState")["ActiveState"] == "active", 90, "the kiosk unit active")
        added = sorted(listeners(box) - before)
        step["figures"] += (f"; {len(re.findall(r'^Setting up ', out, re.M))} packages set up; new listeners: "
                            + ", ".join(f"{p} {a} ({n})" for p, a, n in added))
    # What docs/kiosk.md says: our packages listen on loopback only; apt's
    # default of installing recommendations brings avahi-daemon (from
    # chromium-common's system-config-printer), and nothing else.
    network = {(p, a, n) for p, a, n in added if not loopback(a)}
    assert {n for _, _, n in network} <= {"avahi-daemon"}, added
    props = show(box, "User", "Type", "SubState", "MainPID")
    assert props["User"] == "kiosk" and props["Type"] == "notify", props
    owners = box.run("ps", "-C", "cage,chromium", "-o", "user=").stdout.split()
    assert owners and set(owners) == {"kiosk"}, owners
    user = box.run("getent", "passwd", "kiosk").stdout.split(":")
    assert int(user[2]) < 1000, user


def kiosk_journal(box: Container, *args: str) -> str:
    return box.run("journalctl", "--no-pager", "-o", "cat", "-u", UNIT, *args).stdout


def said(box: Container, line: str) -> int:
    """Times the launcher logged ``line`` since the box booted."""
    return kiosk_journal(box, "-b").count(line)


def visible_count(box: Container) -> int:
    """Times the launcher saw the page's first heartbeat after a start."""
    return said(box, "page visible")


def test_screenshot_shows_the_page_filling_the_output(box, steps):
    with steps("grim as the kiosk user: the page fills the output") as step:
        try:
            shot = wait_until(lambda: page_shown(box), 60, "the kiosk page on screen", interval=1)
        except AssertionError:
            shot = screenshot(box, keep="kiosk-page-missing.png")
            step["figures"] = describe(shot)
            raise
        step["figures"] = describe(shot)
        screenshot(box, keep="kiosk-page.png")
    # The whole output, at the headless backend's size, no border left black.
    assert (shot[0], shot[1]) == (1280, 720), shot[:2]
    assert share(shot, (0, 0, 0), tolerance=2) < 0.05
    # Live, not a frame left over: the page's clock ticks in later shots.
    assert wait_until(lambda: screenshot(box)[2] != shot[2], 10, "the page redrawn on screen", interval=1)


def test_boot_to_page_visible(box, steps):
    with steps("reboot the container: boot -> the page on screen") as step:
        box.stop()
        started = time.monotonic()
        box.boot()
        wait_until(lambda: visible_count(box) >= 1, 120, "the page's first heartbeat after boot", interval=0.5)
        beat = time.monotonic() - started
        wait_until(lambda: page_shown(box), 30, "the kiosk page on screen after boot", interval=0.5)
        step["figures"] = (f"boot -> page's first heartbeat {beat:.1f} s, "
                           f"-> page on screen {time.monotonic() - started:.1f} s")


def test_killed_browser_comes_back(box, steps):
    with steps("kill -9 Chromium: the page back on screen within 10 s") as step:
        before = visible_count(box)
        pid = box.run("pgrep", "-o", "-u", "kiosk", "-f", "chromium/chromium").stdout.split()[0]
        box.run("kill", "-9", pid)
        killed = time.monotonic()
        wait_until(lambda: visible_count(box) > before, 10, "the page's heartbeat after kill -9", interval=0.3)
        left = 10 - (time.monotonic() - killed)
        wait_until(lambda: page_shown(box), left, "the page on screen after kill -9", interval=0.3)
        step["figures"] = f"page back on screen {time.monotonic() - killed:.1f} s after kill -9"
    assert show(box, "ActiveState")["ActiveState"] == "active"
    assert box.run("kill", "-0", pid, check=False).returncode != 0


def test_gateway_outage_shows_offline_then_live(box, steps):
    with steps("stop the gateway 5 s: the page goes offline, then live again") as step:
        before = {line: said(box, line) for line in ("page is offline", "page is online", "starting cage")}
        more = lambda line: said(box, line) > before[line]
        box.run("systemctl", "stop", "daebus-gateway.service")
        stopped = time.monotonic()
        wait_until(lambda: more("page is offline"), 10, "the page's offline state")
        wait_until(lambda: covering(box, 0.6, OFFLINE_RGB), 10, "the offline notice on screen", interval=0.5)
        time.sleep(max(0.0, 5 - (time.monotonic() - stopped)))  # the outage lasts 5 s
        box.run("systemctl", "start", "daebus-gateway.service")
        restarted = time.monotonic()
        wait_until(lambda: more("page is online"), 30, "the page live again")
        wait_until(lambda: page_shown(box), 10, "the page on screen again", interval=0.5)
        step["figures"] = f"page on screen {time.monotonic() - restarted:.1f} s after the gateway"
        screenshot(box, keep="kiosk-page-after-outage.png")
    # The same browser: nothing was restarted or reloaded by hand.
    assert not more("starting cage")


@pytest.mark.independent
def test_kiosk_user_cannot_reach_redis(box, steps):
    probe = ("import socket\ntry:\n    s = socket.create_connection(('127.0.0.1', 6379), 3)\n"
             "    s.sendall(b'PING\\r\\n'); print(s.recv(100))\nexcept OSError as e:\n    print('refused', e)\n")
    with steps("runuser -u kiosk: no Redis, neither on TCP nor on the bus's socket"):
        tcp = box.run("runuser", "-u", "kiosk", "--", "python3", "-c", probe).stdout
        unix = box.run("runuser", "-u", "kiosk", "--", "redis-cli", "-s", SOCKET, "PING", check=False)
        groups = box.run("id", "-nG", "kiosk").stdout.split()
    assert tcp.startswith("refused") and "Connection refused" in tcp, tcp
    assert unix.returncode != 0 and "Permission denied" in unix.stdout + unix.stderr, unix
    assert "daebus" not in groups, groups


@pytest.mark.independent
def test_security_score_is_reported(box, steps):
    with steps("systemd-analyze security daebus-kiosk") as step:
        out = box.run("systemd-analyze", "security", "--no-pager", UNIT, check=False).stdout
        score = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", out)
        assert score, out[-2000:]
        step["figures"] = f"exposure {score.group(1)} {score.group(2)}"
