"""The .deb in a booted Debian bookworm: install, run, break, upgrade, purge.

Run with ``pytest tests/appliance`` as root (it builds the package, a
bookworm root with debootstrap, and boots it with systemd-nspawn). Set
``DAEBUS_TEST_KEEP=1`` to keep the container's root for inspection.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from appliance.nspawn import PATH, SUITE, Container, build_image, ensure_host_tools, unpack

ROOT = Path(__file__).resolve().parents[2]
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "daebus/__init__.py").read_text()).group(1)
DEB_NAME = f"daebus_{VERSION}_all.deb"
GATEWAY = "http://127.0.0.1:8080"
WORKER = "daebus-worker@example.service"
# Debian 12's versions: what the device runs, and what this proves daebus works with.
BOOKWORM = {"python3-redis": "4.3.4", "python3-flask": "2.2.2", "python3-apscheduler": "3.9.1",
            "gunicorn": "20.1.0"}

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="needs Linux"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (debootstrap, systemd-nspawn)"),
    pytest.mark.timeout(1800),
]


def wait_until(check, timeout: float, what: str, interval: float = 0.2):
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


# -- fixtures: the package, the root, the booted container ---------------------

@pytest.fixture(scope="module")
def deb(steps) -> Path:
    with steps("build the .deb (make deb)"):
        ensure_host_tools()
        result = subprocess.run(["make", "-C", str(ROOT), "deb"], capture_output=True, text=True,
                                env={"PATH": PATH, "LC_ALL": "C.UTF-8"}, timeout=900)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    path = ROOT / "dist" / DEB_NAME
    assert path.is_file(), f"make deb did not produce {path}"
    return path


def _depends(deb: Path) -> list[str]:
    """Package names of the .deb's Depends (first of each alternative)."""
    field = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True,
                           check=True).stdout
    names = []
    for item in field.split(","):
        name = item.split("|")[0].split("(")[0].strip().split(":")[0]
        if name:
            names.append(name)
    return names


@pytest.fixture(scope="module")
def box(deb, steps):
    with steps(f"debootstrap'd {SUITE} root (cached between runs)"):
        log_dir = Path(tempfile.mkdtemp(prefix="daebus-appliance-", dir="/var/tmp"))
        with open(log_dir / "image.log", "w") as log:
            tarball = build_image(_depends(deb), log)
    with steps("unpack a fresh copy of the root"):
        root = unpack(tarball, log_dir)
        (root / "srv" / DEB_NAME).write_bytes(deb.read_bytes())
    container = Container(root, f"daebus-test-{os.getpid()}", log_dir / "console.log")
    try:
        with steps("boot it: systemd-nspawn --register=no --keep-unit -b"):
            container.boot()
        yield container
    finally:
        container.stop()
        if os.environ.get("DAEBUS_TEST_KEEP"):
            print(f"container root kept in {root}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


# -- helpers -------------------------------------------------------------------

def show(box: Container, unit: str, *props: str) -> dict[str, str]:
    out = box.run("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def curl(box: Container, path: str, payload: dict | None = None) -> tuple[int, dict | str]:
    cmd = ["curl", "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"]
    if payload is not None:
        cmd += ["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", json.dumps(payload)]
    out = box.run(*cmd, GATEWAY + path, check=False, timeout=30)
    if out.returncode != 0:
        return 0, out.stderr.strip()
    body, _, status = out.stdout.rpartition("\n")
    try:
        return int(status), json.loads(body)
    except ValueError:
        return int(status), body


def journal(box: Container, *args: str) -> list[dict]:
    out = box.run("journalctl", "--no-pager", "-o", "json", *args, check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def cursor(box: Container) -> str:
    out = box.run("journalctl", "--no-pager", "-n", "0", "--show-cursor").stdout
    return out.strip().rsplit("-- cursor: ", 1)[-1]


def messages_since(box: Container, unit: str, after: str) -> list[str]:
    return [str(e.get("MESSAGE")) for e in journal(box, "-u", unit, f"--after-cursor={after}")]


def scrape(box: Container) -> dict:
    """The gateway's /metrics as {(sample name, sorted label pairs): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    text = box.run("curl", "-sS", "--max-time", "20", GATEWAY + "/metrics").stdout
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def hello(box: Container, name: str = "box") -> dict:
    status, body = curl(box, "/api/services/example/hello", {"name": name})
    assert status == 200, (status, body)
    return body["result"]


# -- the story -----------------------------------------------------------------

@pytest.mark.independent
def test_package_contents(deb, steps):
    with steps("package contents"):
        files = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                               check=True).stdout
        info = subprocess.run(["dpkg-deb", "-f", str(deb), "Architecture", "Version"],
                              capture_output=True, text=True, check=True).stdout
        conffiles = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"], capture_output=True,
                                   text=True, check=True).stdout.split()
    assert "Architecture: all" in info and f"Version: {VERSION}" in info
    assert "/usr/lib/python3/dist-packages/daebus/cli/__init__.py" in files
    assert "/usr/share/daebus/gateway/wsgi.py" in files
    assert "/usr/share/daebus/gateway/gunicorn_conf.py" in files
    # The gateway is an application: no top-level "gateway" module for every Python program.
    assert "dist-packages/gateway" not in files
    assert "__pycache__" not in files
    if (ROOT / "kiosk_demo").is_dir():
        assert "/usr/share/daebus/kiosk_demo/" in files
    for unit in ("daebus-gateway.service", "daebus-worker@.service", "daebus.target"):
        assert f"/lib/systemd/system/{unit}" in files
    assert "/usr/lib/sysusers.d/daebus.conf" in files
    # Named by the units' Documentation= and copied by vendors as they are.
    for doc in ("appliance.md", "examples/example.py", "examples/example.toml", "examples/devices.conf"):
        assert f"/usr/share/doc/daebus/{doc}\n" in files, doc
    assert "./etc/daebus/conf.d/" in files and "./etc/daebus/workers/" in files
    # One conffile, all comments: nothing for an upgrade to ask about.
    assert conffiles == ["/etc/daebus/daebus.toml"]
    shipped = (ROOT / "debian/daebus.toml").read_text().splitlines()
    assert all(not line.strip() or line.lstrip().startswith("#") for line in shipped)


@pytest.mark.independent
def test_lintian_clean(deb, steps):
    with steps("lintian (make lint)"):
        result = subprocess.run(["make", "-C", str(ROOT), "lint"], capture_output=True, text=True,
                                env={"PATH": PATH, "LC_ALL": "C.UTF-8"}, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_install_pulls_debian_dependencies(box, steps):
    with steps(f"apt-get install ./{DEB_NAME}"):
        out = box.run("apt-get", "install", "-y", "-q", "-o", "Dpkg::Use-Pty=0", f"/srv/{DEB_NAME}",
                      timeout=900)
    assert "Setting up daebus" in out.stdout
    versions = dict(line.split("\t") for line in box.run(
        "dpkg-query", "-W", "-f", "${Package}\t${Version}\n", *BOOKWORM).stdout.splitlines())
    for package, version in BOOKWORM.items():
        assert versions[package].startswith(version), (package, versions[package])
    user = box.run("getent", "passwd", "daebus").stdout.split(":")
    assert user[6].strip() in ("/usr/sbin/nologin", "/sbin/nologin"), user
    assert int(user[2]) < 1000  # a system user


def test_gateway_and_redis_active(box, steps):
    with steps("daebus-gateway and redis-server active"):
        states = box.run("systemctl", "is-active", "daebus-gateway.service", "redis-server.service",
                         "daebus.target", check=False).stdout.split()
        assert states == ["active", "active", "active"], states
        enabled = box.run("systemctl", "is-enabled", "daebus-gateway.service", "daebus.target",
                          check=False).stdout.split()
        assert enabled == ["enabled", "enabled"], enabled
        status, body = curl(box, "/api/health")
    assert status == 200, (status, body)
    assert show(box, "daebus-gateway.service", "User")["User"] == "daebus"
    entries = journal(box, "-u", "daebus-gateway.service")
    assert entries, "the gateway wrote nothing to the journal"
    # Priority prefixes are parsed by journald, not left in the text.
    leaked = [e["MESSAGE"] for e in entries if re.match(r"<\d>", str(e.get("MESSAGE", "")))]
    assert not leaked, leaked


def test_worker_instance_runs(box, steps):
    with steps("add the example worker, systemctl enable --now daebus-worker@example"):
        box.sh("""
            install -d /usr/local/lib/daebus-example
            cp /usr/share/doc/daebus/examples/example.py /usr/local/lib/daebus-example/
            cp /usr/share/doc/daebus/examples/example.toml /etc/daebus/workers/example.toml
            printf '[gateway]\\nexpose_actions = ["example/*"]\\n' > /etc/daebus/conf.d/50-example.toml
            systemctl restart daebus-gateway.service
            systemctl enable --now daebus-worker@example
        """, timeout=120)
    props = show(box, WORKER, "ActiveState", "SubState", "User", "Type", "WatchdogUSec", "PartOf")
    assert props["ActiveState"] == "active" and props["SubState"] == "running", props
    assert props["User"] == "daebus" and props["Type"] == "notify", props
    assert props["WatchdogUSec"] != "0" and "daebus.target" in props["PartOf"], props
    assert box.run("systemctl", "is-enabled", WORKER).stdout.strip() == "enabled"
    listed = box.run("daebus", "services").stdout
    assert re.search(r"^example\s", listed, re.M), listed


def test_action_through_gateway(box, steps):
    with steps("curl an action through the gateway"):
        result = hello(box)
        status, body = curl(box, "/api/services/example/fail", {"reason": "checking priorities"})
    assert result["message"] == "Hello, box!"
    assert status == 502, (status, body)
    assert body["error"]["code"] == "handler_error", body


@pytest.mark.independent
def test_journal_has_priorities(box, steps):
    def worker_lines():
        return {e["MESSAGE"]: e for e in journal(box, "-u", WORKER) if isinstance(e.get("MESSAGE"), str)}

    with steps("journalctl -u daebus-worker@example, journalctl -p err"):
        lines = wait_until(lambda: (l := worker_lines()) and any("asked to fail" in m for m in l) and l,
                           15, "the worker's lines in the journal")
        errors = box.run("journalctl", "--no-pager", "-o", "cat", "-p", "err", "-u", WORKER).stdout
    greeting = next(e for m, e in lines.items() if "greeting box" in m)
    failure = next(e for m, e in lines.items() if "asked to fail" in m)
    assert greeting["PRIORITY"] == "6" and failure["PRIORITY"] == "3", (greeting, failure)
    assert greeting["SYSLOG_IDENTIFIER"] == "daebus-worker-example", greeting
    assert "asked to fail" in errors and "greeting box" not in errors, errors


@pytest.mark.independent
def test_one_call_followed_through_the_journal(box, steps):
    trace = "appliance-trace-1"
    with steps("curl -H 'X-Request-ID: ...', journalctl DAEBUS_REQUEST_ID=..., GET /metrics"):
        head = box.run("curl", "-sS", "-D", "-", "-o", "/dev/null", "--max-time", "20", "-X", "POST",
                       "-H", "Content-Type: application/json", "-H", f"X-Request-ID: {trace}",
                       "--data-binary", '{"name": "traced"}', GATEWAY + "/api/services/example/hello").stdout
        entries = wait_until(
            lambda: (e := journal(box, f"DAEBUS_REQUEST_ID={trace}"))
            and {x.get("_SYSTEMD_UNIT") for x in e} >= {"daebus-gateway.service", WORKER} and e,
            15, "the gateway's and the worker's entries for one request")
        # The counters the worker publishes with its heartbeat (every 5 s), through the gateway.
        metrics = wait_until(lambda: (m := scrape(box)).get(
            ("daebus_action_calls_total", (("action", "hello"), ("service", "example")))) and m,
            20, "the worker's counters in /metrics")
    assert f"x-request-id: {trace}" in head.lower(), head
    worker = next(e for e in entries if e.get("_SYSTEMD_UNIT") == WORKER)
    assert "greeting traced" in worker["MESSAGE"], worker
    assert (worker["DAEBUS_SERVICE"], worker["DAEBUS_ACTION"], worker["CODE_FUNC"]) == ("example", "hello", "hello")
    assert worker["SYSLOG_IDENTIFIER"] == "daebus-worker-example", worker
    gateway = next(e for e in entries if e.get("_SYSTEMD_UNIT") == "daebus-gateway.service")
    assert "POST example/hello: 200" in gateway["MESSAGE"] and gateway["SYSLOG_IDENTIFIER"] == "daebus-gateway"
    assert any(name == "daebus_gateway_http_requests_total" and ("status", "200") in labels
               for name, labels in metrics), metrics


@pytest.mark.independent
def test_units_verify_cleanly(box, steps):
    with steps("systemd-analyze verify"):
        out = box.run("systemd-analyze", "verify", "/lib/systemd/system/daebus-gateway.service",
                      "/lib/systemd/system/daebus.target", f"/lib/systemd/system/{WORKER}",
                      check=False)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == "", out.stdout + out.stderr


def test_device_drop_in_keeps_the_worker_working(box, steps):
    with steps("the documented GPIO/serial drop-in: worker restarts with it, verify silent"):
        box.sh(f"""
            install -d /etc/systemd/system/{WORKER}.d
            cp /usr/share/doc/daebus/examples/devices.conf /etc/systemd/system/{WORKER}.d/
            systemctl daemon-reload
            systemctl restart {WORKER}
        """)
        verify = box.run("systemd-analyze", "verify", f"/lib/systemd/system/{WORKER}", check=False)
        props = show(box, WORKER, "ActiveState", "SubState", "PrivateDevices", "MainPID", "DropInPaths")
        result = hello(box, "devices")
    assert verify.returncode == 0 and verify.stdout + verify.stderr == "", verify.stdout + verify.stderr
    assert props["ActiveState"] == "active" and props["SubState"] == "running", props
    assert props["PrivateDevices"] == "no" and "devices.conf" in props["DropInPaths"], props
    assert result["pid"] == int(props["MainPID"])
    groups = box.run("grep", "^Groups:", f"/proc/{props['MainPID']}/status").stdout.split()[1:]
    dialout = box.run("getent", "group", "dialout").stdout.split(":")[2]
    assert dialout in groups, groups


def test_killed_worker_is_restarted(box, steps):
    before = show(box, WORKER, "MainPID", "NRestarts")
    with steps("kill -9 the worker: systemd restarts it"):
        box.run("kill", "-9", before["MainPID"])

        def restarted():
            now = show(box, WORKER, "MainPID", "NRestarts", "ActiveState", "SubState")
            return (now["MainPID"] not in ("0", before["MainPID"]) and now["ActiveState"] == "active"
                    and now["SubState"] == "running" and now)
        after = wait_until(restarted, 30, "the worker to be restarted")
        result = hello(box)
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1, (before, after)
    assert result["pid"] == int(after["MainPID"])


def test_worker_survives_redis_restart(box, steps):
    worker = show(box, WORKER, "MainPID", "NRestarts")
    gateway = show(box, "daebus-gateway.service", "MainPID", "NRestarts")
    mark = cursor(box)
    with steps("restart redis-server: the worker reconnects without restarting"):
        box.run("systemctl", "restart", "redis-server.service")
        wait_until(lambda: any("restored" in m for m in messages_since(box, WORKER, mark)), 60,
                   "the worker to log that Redis is back")
        wait_until(lambda: curl(box, "/api/services/example/hello", {"name": "again"})[0] == 200, 30,
                   "an action to succeed through the gateway again")
    assert show(box, WORKER, "MainPID", "NRestarts") == worker
    assert show(box, "daebus-gateway.service", "MainPID", "NRestarts") == gateway
    lost = [m for m in messages_since(box, WORKER, mark) if "lost" in m.lower()]
    assert len(lost) == 1, lost  # logged once, not on every retry


@pytest.mark.independent
def test_integration_suite_on_bookworm_packages(box, steps):
    dest = box.root / "srv/daebus-tests"
    shutil.copytree(ROOT / "tests", dest / "tests",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "appliance"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    # Only the tests are copied: `import daebus` finds the installed package,
    # and the tests' checkout-relative gateway (and kiosk) are the installed ones.
    for app in ("gateway", "kiosk_demo"):
        if (box.root / "usr/share/daebus" / app).is_dir():
            (dest / app).symlink_to(f"/usr/share/daebus/{app}")
    where = box.run("sh", "-c", "cd /srv/daebus-tests && python3 -c 'import daebus, gateway; "
                    "print(daebus.__file__, gateway.__file__)'").stdout.split()
    assert where[0].startswith("/usr/lib/python3/dist-packages/daebus/"), where
    assert where[1].startswith("/srv/daebus-tests/gateway/"), where
    with steps("tests/integration inside the root (Debian's python3-pytest, the installed daebus)"):
        # As a transient unit, so that anything the suite leaves behind is
        # stopped with it and can't be mistaken for the appliance later.
        out = box.run("systemd-run", "--quiet", "--wait", "--pipe", "--collect",
                      "--unit=daebus-integration-suite", "--working-directory=/srv/daebus-tests",
                      "--setenv=LANG=C.UTF-8", "--property=RuntimeMaxSec=1200", "--",
                      "python3", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", "--maxfail=5",
                      "tests/integration", check=False, timeout=1300)
    output = out.stdout + out.stderr
    summary = output.strip().splitlines()[-1:] or [""]
    assert out.returncode == 0, output[-6000:]
    assert re.search(r"\d+ passed", summary[0]), summary


def test_upgrade_restarts_gateway_and_workers(box, steps):
    gateway = show(box, "daebus-gateway.service", "MainPID")["MainPID"]
    worker = show(box, WORKER, "MainPID")["MainPID"]
    with steps("reinstall the package as an upgrade: gateway and worker restarted"):
        out = box.run("apt-get", "install", "-y", "-q", "--reinstall", "-o", "Dpkg::Use-Pty=0",
                      f"/srv/{DEB_NAME}", timeout=600)
        wait_until(lambda: show(box, WORKER, "ActiveState", "SubState")
                   == {"ActiveState": "active", "SubState": "running"}, 30, "the worker to run again")
        result = hello(box, "upgrade")
    assert "Configuration file" not in out.stdout, out.stdout
    new_gateway = show(box, "daebus-gateway.service", "MainPID", "ActiveState")
    new_worker = show(box, WORKER, "MainPID")["MainPID"]
    assert new_gateway["ActiveState"] == "active" and new_gateway["MainPID"] not in ("0", gateway)
    assert new_worker not in ("0", worker)
    assert result["pid"] == int(new_worker)
    assert box.run("systemctl", "is-enabled", WORKER).stdout.strip() == "enabled"


# A vendor's package, written as docs/appliance.md tells vendors to.
VENDOR_SCRIPTS = {
    "postinst": """#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl restart daebus-worker@acme.service
    systemctl try-restart daebus-gateway.service
fi
""",
    "prerm": """#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop daebus-worker@acme.service || true
fi
""",
}


def build_vendor_deb(dest: Path) -> Path:
    pkg = dest / "acme-example"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text(
        "Package: acme-example\nVersion: 1.0\nArchitecture: all\nMaintainer: Acme <dev@acme.example>\n"
        "Depends: daebus (>= 0.1)\nDescription: an example vendor worker\n A test package.\n")
    (pkg / "DEBIAN/conffiles").write_text("/etc/daebus/workers/acme.toml\n/etc/daebus/conf.d/50-acme.toml\n")
    for name, text in VENDOR_SCRIPTS.items():
        (pkg / "DEBIAN" / name).write_text(text)
        (pkg / "DEBIAN" / name).chmod(0o755)
    for folder in ("usr/lib/acme-example", "etc/daebus/workers", "etc/daebus/conf.d",
                   "lib/systemd/system/daebus.target.wants"):
        (pkg / folder).mkdir(parents=True)
    shutil.copy(ROOT / "debian/examples/example.py", pkg / "usr/lib/acme-example/acme.py")
    (pkg / "etc/daebus/workers/acme.toml").write_text('app = "/usr/lib/acme-example/acme.py"\n')
    (pkg / "etc/daebus/conf.d/50-acme.toml").write_text('[gateway]\nexpose_actions = ["acme/*"]\n')
    (pkg / "lib/systemd/system/daebus.target.wants/daebus-worker@acme.service").symlink_to(
        "../daebus-worker@.service")
    out = dest / "acme-example_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(pkg), str(out)], check=True,
                   capture_output=True)
    return out


@pytest.mark.independent
def test_vendor_package_ships_a_worker(box, steps, tmp_path):
    deb = build_vendor_deb(tmp_path)
    shutil.copy(deb, box.root / "srv" / deb.name)
    unit = "daebus-worker@acme.service"
    with steps("a vendor's .deb ships and starts a worker; removing it stops the worker"):
        box.run("apt-get", "install", "-y", "-q", f"/srv/{deb.name}", timeout=300)
        state = box.run("systemctl", "is-active", unit, check=False).stdout.strip()
        status, body = curl(box, "/api/services/acme/hello", {"name": "vendor"})
        box.run("apt-get", "purge", "-y", "-q", "acme-example", timeout=300)
        after = box.run("systemctl", "is-active", unit, check=False).stdout.strip()
    assert state == "active"
    assert status == 200 and body["result"]["message"] == "Hello, vendor!", (status, body)
    assert after == "inactive"
    assert not (box.root / "etc/daebus/workers/acme.toml").exists()
    assert show(box, WORKER, "ActiveState")["ActiveState"] == "active"  # the others carry on


@pytest.mark.independent
def test_generated_worker_package(box, steps):
    """``daebus new worker`` on the device, its .deb built and linted like a vendor's, installed."""
    name, unit = "acme-probe", "daebus-worker@acme-probe.service"
    clean = {"PATH": PATH, "LC_ALL": "C.UTF-8", "HOME": str(box.root / "srv"), "DEBIAN_FRONTEND": "noninteractive"}
    with steps("daebus new worker: its tests pass, its .deb builds lintian-clean, installs, runs, goes"):
        box.run("daebus", "new", "worker", name, "--dir", f"/srv/{name}")
        tests = box.run("python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", f"/srv/{name}",
                        check=False, timeout=300)
        missing = [pkg for tool, pkg in (("dh", "debhelper"), ("lintian", "lintian"))
                   if shutil.which(tool, path=PATH) is None]
        if missing:
            subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                           env=clean, check=True, capture_output=True, timeout=600)
        built = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-ui"], cwd=box.root / "srv" / name,
                               env=clean, capture_output=True, text=True, timeout=600)
        lint = subprocess.run(["lintian", "--fail-on", "error,warning", *box.root.glob(f"srv/{name}_*.changes")],
                              env=clean, capture_output=True, text=True, timeout=600)
        box.run("apt-get", "install", "-y", "-q", f"/srv/{name}_0.1.0_all.deb", timeout=300)
        state = box.run("systemctl", "is-active", unit, check=False).stdout.strip()
        call = box.run("daebus", "call", name, "echo", '{"text": "box"}', check=False, timeout=60)
        doctor = box.run("daebus", "doctor", check=False, timeout=120)
        completion = box.run("bash", "-c", "source /usr/share/bash-completion/completions/daebus; "
                             "COMP_WORDS=(daebus call ''); COMP_CWORD=2; _daebus; echo ${COMPREPLY[*]}",
                             check=False, timeout=60).stdout.split()
        # A worker that cannot start: doctor names its file and its failed unit.
        box.sh("""
            echo 'app = "/nonexistent/broken.py"' > /etc/daebus/workers/broken.toml
            systemctl start daebus-worker@broken || true
        """, timeout=120)
        broken = box.run("daebus", "doctor", check=False, timeout=120)
        box.sh("""
            rm /etc/daebus/workers/broken.toml
            systemctl reset-failed daebus-worker@broken.service
        """, timeout=120)
        box.run("apt-get", "remove", "-y", "-q", name, timeout=300)
        after = box.run("systemctl", "is-active", unit, check=False).stdout.strip()
        listed = box.run("daebus", "services", "--json").stdout
    assert tests.returncode == 0 and "5 passed" in tests.stdout, tests.stdout + tests.stderr
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr
    assert state == "active"
    assert call.returncode == 0 and json.loads(call.stdout) == {"text": "box"}, call.stdout + call.stderr
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"daebus-worker@{name}.service" in doctor.stdout
    assert {name, "example"} <= set(completion), completion
    assert (box.root / "usr/share/man/man1/daebus.1.gz").is_file()
    assert broken.returncode == 1, broken.stdout
    assert "✘ worker broken: /etc/daebus/workers/broken.toml: app /nonexistent/broken.py does not exist" \
        in broken.stdout
    assert "✘ unit daebus-worker@broken.service: failed (failed); fix: journalctl -u " \
           "daebus-worker@broken.service -b -n 50" in broken.stdout, broken.stdout
    assert after == "inactive"
    assert name not in [s["name"] for s in json.loads(listed)]
    assert show(box, WORKER, "ActiveState")["ActiveState"] == "active"  # the others carry on


@pytest.mark.independent
def test_kiosk_demo_is_enabled_with_one_command(box, steps):
    with steps("daebus-kiosk-demo enable: the demo's workers behind the kiosk page"):
        box.run("daebus-kiosk-demo", "enable", timeout=300)
        services_status, services = curl(box, "/api/services")
        state_status, state = curl(box, "/api/services/display/get_state", {})
        page = box.run("curl", "-sS", "--max-time", "20", GATEWAY + "/", check=False, timeout=30).stdout
        box.run("daebus-kiosk-demo", "disable", timeout=300)
        after = box.run("systemctl", "is-active", "daebus-worker@kiosk-sensors", check=False).stdout.strip()
    assert services_status == 200, services
    assert {"sensors", "display", "system"} <= {s["name"] for s in services["services"]}, services
    assert state_status == 200 and "brightness" in state["result"], state
    assert "<title>" in page and "app.js" in page, page[:300]
    assert after == "inactive"
    assert show(box, WORKER, "ActiveState")["ActiveState"] == "active"  # the vendor's worker carries on


def test_purge_leaves_nothing_running(box, steps):
    with steps("apt-get purge daebus: nothing left running"):
        box.run("apt-get", "purge", "-y", "-q", "-o", "Dpkg::Use-Pty=0", "daebus", timeout=300)
        units = box.run("systemctl", "list-units", "--all", "--plain", "--no-legend", "daebus*",
                        check=False).stdout
        processes = box.run("ps", "-eo", "user:20,args", "--no-headers").stdout
    active = [line for line in units.splitlines() if " active " in f" {line} " or "activating" in line]
    assert not active, units
    leftovers = [line for line in processes.splitlines()
                 if line.split()[0] == "daebus" or "gunicorn" in line or "daebus worker" in line]
    assert not leftovers, leftovers
    assert box.run("systemctl", "is-active", "redis-server.service", check=False).stdout.strip() == "active"
    for path in ("lib/systemd/system/daebus-gateway.service", "etc/daebus/daebus.toml",
                 "etc/systemd/system/daebus.target.wants", "etc/systemd/system/multi-user.target.wants/daebus.target",
                 "usr/bin/daebus", "usr/share/daebus"):
        assert not (box.root / path).exists() and not (box.root / path).is_symlink(), path
    failed = box.run("systemctl", "--failed", "--no-legend", "--plain").stdout
    assert "daebus" not in failed, failed
