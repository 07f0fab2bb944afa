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

from appliance.nspawn import PATH, SUITE, Container, add_dependencies, booted, build_image, unpack, wait_until
from appliance.packages import ADD_EXAMPLE_WORKER, PACKAGES, ROOT, make_debs, make_versioned_debs, version_of

VERSION = version_of(ROOT)
DEMO_WORKERS = ("kiosk-sensors", "kiosk-display", "kiosk-system")
GATEWAY = "http://127.0.0.1:8080"
WORKER = "daebus-worker@example.service"
# The bus: the package's own unit running redis-tools' server with /etc/redis/redis-daebus.conf.
BUS = "daebus-redis.service"
SOCKET = "/run/redis-daebus/redis-server.sock"
SECRETS = "/etc/daebus/secrets"
# systemd-analyze security's exposure of the units, at most.
EXPOSURE = {"daebus-gateway.service": 1.5, WORKER: 1.5, BUS: 1.1}
# Debian 12's versions: what the device runs, and what this proves daebus works with.
BOOKWORM = {"python3-redis": "4.3.4", "python3-flask": "2.2.2", "python3-apscheduler": "3.9.1",
            "gunicorn": "20.1.0"}

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="needs Linux"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (debootstrap, systemd-nspawn)"),
    pytest.mark.timeout(1800),
]


# -- fixtures: the package, the root, the booted container ---------------------

@pytest.fixture(scope="module")
def debs(steps) -> dict[str, Path]:
    with steps("build the .debs (make deb)"):
        return make_debs(ROOT)


def apt_install(box: Container, *debs: str, timeout: float = 900) -> str:
    out = box.run("apt-get", "install", "-y", "-q", "-o", "Dpkg::Use-Pty=0", *debs, timeout=timeout)
    assert "Configuration file" not in out.stdout and "*** " not in out.stdout, out.stdout
    return out.stdout


@pytest.fixture(scope="module")
def box(debs, steps):
    with steps(f"debootstrap'd {SUITE} root (cached between runs)"):
        log_dir = Path(tempfile.mkdtemp(prefix="daebus-appliance-", dir="/var/tmp"))
        with open(log_dir / "image.log", "w") as log:
            tarball = build_image(log)
    with steps("unpack a fresh copy of the root, add the dependencies' .debs"):
        root = unpack(tarball, log_dir)
        for deb in debs.values():
            shutil.copy(deb, root / "srv" / deb.name)
        with open(log_dir / "image.log", "a") as log:
            # redis-server and a broker too, downloaded only: installed by later steps.
            add_dependencies(root, [f"/srv/{deb.name}" for deb in debs.values()] + ["redis-server", *BROKER],
                             log)
    with booted(root, f"daebus-test-{os.getpid()}", log_dir,
                steps("boot it: systemd-nspawn --register=no --keep-unit -b")) as container:
        yield container


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
    # --all: without it journalctl writes null for a field of 4096 bytes or more.
    out = box.run("journalctl", "--no-pager", "--all", "-o", "json", *args, check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def cursor(box: Container) -> str:
    out = box.run("journalctl", "--no-pager", "-n", "0", "--show-cursor").stdout
    return out.strip().rsplit("-- cursor: ", 1)[-1]


def messages_since(box: Container, unit: str, after: str) -> list[str]:
    # journalctl's JSON gives a message holding control characters as a list of bytes.
    return [bytes(m).decode("utf-8", "replace") if isinstance(m, list) else str(m)
            for m in (e.get("MESSAGE") for e in journal(box, "-u", unit, f"--after-cursor={after}"))]


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


LISTENERS = r"""
import json, os
inodes = {}
for proto in ("tcp", "tcp6"):
    for line in open(f"/proc/net/{proto}").read().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":  # LISTEN
            inodes[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        unit = open(f"/proc/{pid}/cgroup").read().strip().rsplit("/", 1)[-1]
    except OSError:
        continue
    for link in links:
        if link.startswith("socket:[") and link[8:-1] in inodes:
            found.append({"port": inodes[link[8:-1]], "pid": int(pid), "unit": unit})
print(json.dumps(found))
"""


def tcp_listeners(box: Container) -> list[dict]:
    """Every listening TCP socket in the box: port, pid and systemd unit."""
    return json.loads(box.run("python3", "-c", LISTENERS).stdout)


def admin_cli(box: Container, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """redis-cli on the bus's socket as the admin user (as root may)."""
    secret = (box.root / SECRETS.lstrip("/") / "admin").read_text().strip()
    return box.run("redis-cli", "-s", SOCKET, "--user", "admin", "--pass", secret, "--no-auth-warning",
                   *args, check=check)


def mode(box: Container, path: str) -> str:
    return box.run("stat", "-c", "%a %U:%G", path).stdout.strip()


def exposure(box: Container, unit: str) -> float:
    out = box.run("systemd-analyze", "security", "--no-pager", unit, check=False).stdout
    return float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out).group(1))


# -- the story -----------------------------------------------------------------

def contents(deb: Path) -> str:
    return subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout


@pytest.mark.independent
def test_package_contents(debs, steps):
    with steps("package contents: library, appliance, demo; no conffile"):
        files = {name: contents(deb) for name, deb in debs.items()}
        info = {name: subprocess.run(["dpkg-deb", "-f", str(deb), "Architecture", "Version", "Depends"],
                                     capture_output=True, text=True, check=True).stdout
                for name, deb in debs.items()}
        conffiles = {name: subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"], capture_output=True,
                                          text=True).stdout.split() for name, deb in debs.items()}
    for name in PACKAGES:
        assert "Architecture: all" in info[name] and f"Version: {VERSION}" in info[name], info[name]
        assert "__pycache__" not in files[name], name
    library, appliance, demo = files["python3-daebus"], files["daebus"], files["daebus-kiosk-demo"]
    # The bridge: its unit, and paho only for what runs it.
    assert "/lib/systemd/system/daebus-bridge.service" in files["daebus-bridge"]
    assert "/lib/systemd/system/daebus-bridge.service" not in appliance
    assert "python3-paho-mqtt" in info["daebus-bridge"] and f"daebus (= {VERSION})" in info["daebus-bridge"]
    assert "paho" not in info["daebus"] and "paho" not in info["python3-daebus"]
    # The library alone: what a program that only calls services needs.
    assert "/usr/lib/python3/dist-packages/daebus/cli/__init__.py" in library
    assert "/usr/bin/" not in library and "/lib/systemd/" not in library and "/usr/share/daebus" not in library
    assert "python3-redis" in info["python3-daebus"] and "python3-flask" not in info["python3-daebus"]
    assert "python3-prometheus-client" in info["daebus"]
    # Redis's server program (in redis-tools), not redis-server's default instance on TCP.
    assert "redis-tools (>= 5:7.0)" in info["daebus"] and "redis-server" not in info["daebus"], info["daebus"]
    assert f"python3-daebus (= {VERSION})" in info["daebus"] and "gunicorn" in info["daebus"]
    assert f"daebus (= {VERSION})" in info["daebus-kiosk-demo"]
    assert "/usr/bin/daebus\n" in appliance
    assert "/usr/share/daebus/gateway/wsgi.py" in appliance
    assert "/usr/share/daebus/gateway/gunicorn_conf.py" in appliance
    assert "/usr/share/bash-completion/completions/daebus" in appliance
    # The gateway is an application: no top-level "gateway" module for every Python program.
    assert "dist-packages" not in appliance and "dist-packages" not in demo
    assert "kiosk_demo" not in appliance and "daebus-kiosk-demo" not in appliance
    for unit in ("daebus-gateway.service", "daebus-worker@.service", "daebus.target", "daebus-acl.service",
                 "daebus-acl@.service", "daebus-redis.service"):
        assert f"/lib/systemd/system/{unit}" in appliance, unit
    assert "/usr/share/daebus/redis/redis-daebus.conf" in appliance
    assert "/usr/lib/sysusers.d/daebus.conf" in appliance
    # Named by the units' Documentation= and copied by vendors as they are.
    for doc in ("appliance.md", "examples/example.py", "examples/example.toml", "examples/devices.conf",
                "examples/daebus.toml"):
        assert f"/usr/share/doc/daebus/{doc}\n" in appliance, doc
    assert "./etc/daebus/conf.d/" in appliance and "./etc/daebus/workers/" in appliance
    for path in ("/usr/sbin/daebus-kiosk-demo", "/usr/share/daebus/kiosk_demo/static/index.html",
                 "/usr/share/daebus/kiosk_demo/display.py", "/usr/share/daebus/kiosk_demo/device/gateway.toml"):
        assert path in demo, path
    # No configuration file for an upgrade to ask about: defaults live in
    # the code, the example in /usr/share/doc.
    assert conffiles == {name: [] for name in PACKAGES}, conffiles
    assert "./etc/daebus/daebus.toml" not in appliance
    man = subprocess.run(f"dpkg-deb --fsys-tarfile {debs['daebus']} | tar -xO ./usr/share/man/man1/daebus.1.gz "
                         "| gzip -dc | head -1", shell=True, capture_output=True, text=True).stdout
    assert f'"daebus {VERSION}"' in man, man


@pytest.mark.independent
def test_lintian_clean(debs, steps):
    with steps("lintian (make lint)"):
        result = subprocess.run(["make", "-C", str(ROOT), "lint"], capture_output=True, text=True,
                                env={"PATH": PATH, "LC_ALL": "C.UTF-8"}, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_install_pulls_debian_dependencies(box, debs, steps):
    with steps("apt-get install ./daebus_*.deb ./python3-daebus_*.deb (no demo)"):
        out = apt_install(box, f"/srv/{debs['daebus'].name}", f"/srv/{debs['python3-daebus'].name}")
    assert "Setting up daebus" in out and "Setting up python3-daebus" in out
    versions = dict(line.split("\t") for line in box.run(
        "dpkg-query", "-W", "-f", "${Package}\t${Version}\n", *BOOKWORM).stdout.splitlines())
    for package, version in BOOKWORM.items():
        assert versions[package].startswith(version), (package, versions[package])
    user = box.run("getent", "passwd", "daebus").stdout.split(":")
    assert user[6].strip() in ("/usr/sbin/nologin", "/sbin/nologin"), user
    assert int(user[2]) < 1000  # a system user


def test_gateway_and_redis_active(box, steps):
    with steps("daebus-gateway and daebus-redis active"):
        states = box.run("systemctl", "is-active", "daebus-gateway.service", BUS,
                         "daebus.target", check=False).stdout.split()
        assert states == ["active", "active", "active"], states
        enabled = box.run("systemctl", "is-enabled", "daebus-gateway.service", "daebus.target", BUS,
                          check=False).stdout.split()
        assert enabled == ["enabled", "enabled", "enabled"], enabled
        status, body = curl(box, "/api/health")
        page_status, page = curl(box, "/")
    assert status == 200 and body["version"] == VERSION, (status, body)
    # No kiosk page installed: the gateway says how to install one.
    assert page_status == 200 and "apt install daebus-kiosk-demo" in page, page
    assert show(box, "daebus-gateway.service", "User")["User"] == "daebus"
    entries = journal(box, "-u", "daebus-gateway.service")
    assert entries, "the gateway wrote nothing to the journal"
    # Priority prefixes are parsed by journald, not left in the text.
    leaked = [e["MESSAGE"] for e in entries if re.match(r"<\d>", str(e.get("MESSAGE", "")))]
    assert not leaked, leaked


def test_the_bus_is_private(box, steps):
    with steps("the bus: no TCP listener, a socket nobody else opens, the default user off, secrets private") \
            as step:
        listeners = tcp_listeners(box)
        nobody = box.run("runuser", "-u", "nobody", "--", "redis-cli", "-s", SOCKET, "PING", check=False)
        anonymous = box.run("redis-cli", "-s", SOCKET, "PING", check=False)
        info = admin_cli(box, "INFO", "server").stdout
        flush = admin_cli(box, "FLUSHALL", check=False)
        modes = {path: mode(box, path) for path in (
            SECRETS, f"{SECRETS}/admin", f"{SECRETS}/gateway", "/etc/redis/redis-daebus.acl",
            "/etc/redis/redis-daebus.conf", "/run/redis-daebus", SOCKET, "/etc/daebus/conf.d/00-bus.toml")}
        config = box.run("daebus", "config", "redis").stdout
        redis_server = box.run("dpkg-query", "-W", "-f", "${Status}", "redis-server", check=False).stdout
        step["figures"] = "TCP listeners: " + (", ".join(f"{l['port']} ({l['unit']})" for l in listeners) or "none")
    bus = show(box, BUS, "MainPID", "User", "Group")
    # The bus shows as what it is, in ps and in the journal.
    comm = box.run("ps", "-o", "comm=", "-p", bus["MainPID"]).stdout.strip()
    assert comm == "redis-server", comm
    names = {(e.get("_COMM"), e.get("SYSLOG_IDENTIFIER")) for e in journal(box, "_PID=" + bus["MainPID"])}
    assert names == {("redis-server", "redis-server")}, names
    assert not [l for l in listeners if l["unit"] == BUS or l["pid"] == int(bus["MainPID"])], listeners
    # Nothing at all on Redis's port: the install brought no default instance.
    assert not [l for l in listeners if l["port"] == 6379], listeners
    assert "install ok installed" not in redis_server, redis_server
    # Nothing of daebus listens on TCP but the gateway on loopback.
    daebus_ports = sorted(l["port"] for l in listeners if l["unit"].startswith("daebus"))
    assert set(daebus_ports) <= {8080}, listeners
    assert "tcp_port:0" in info, info
    assert nobody.returncode != 0 and "Permission denied" in nobody.stdout + nobody.stderr, nobody
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr, anonymous
    assert "NOPERM" in flush.stdout + flush.stderr, flush
    assert (bus["User"], bus["Group"]) == ("redis", "daebus"), bus
    assert modes == {SECRETS: "700 root:root", f"{SECRETS}/admin": "600 root:root",
                     f"{SECRETS}/gateway": "600 root:root", "/etc/redis/redis-daebus.acl": "640 redis:redis",
                     "/etc/redis/redis-daebus.conf": "640 redis:redis", "/run/redis-daebus": "2750 redis:daebus",
                     SOCKET: "770 redis:daebus", "/etc/daebus/conf.d/00-bus.toml": "644 root:root"}, modes
    assert "unix:///run/redis-daebus/redis-server.sock" in config and "admin" in config, config
    # The gateway logs in as its own user, with its secret as a credential.
    gateway = show(box, "daebus-gateway.service", "Environment")
    assert "DAEBUS_REDIS_USERNAME=gateway" in gateway["Environment"], gateway
    credential = "/run/credentials/daebus-gateway.service/redis-password"
    secret = (box.root / SECRETS.lstrip("/") / "gateway").read_text()
    handed = box.run("runuser", "-u", "daebus", "--", "cat", credential, check=False)
    others = box.run("runuser", "-u", "nobody", "--", "cat", credential, check=False)
    assert handed.returncode == 0 and handed.stdout == secret, handed
    assert others.returncode != 0 and others.stdout == "", others
    # The default user is off, so a gateway that answers has logged in.
    status, _ = curl(box, "/api/services")
    assert status == 200


def test_worker_instance_runs(box, steps):
    with steps("add the example worker, systemctl enable --now daebus-worker@example"):
        box.sh(ADD_EXAMPLE_WORKER, timeout=120)
    props = show(box, WORKER, "ActiveState", "SubState", "User", "Type", "WatchdogUSec", "PartOf")
    assert props["ActiveState"] == "active" and props["SubState"] == "running", props
    assert props["User"] == "daebus" and props["Type"] == "notify", props
    assert props["WatchdogUSec"] != "0" and "daebus.target" in props["PartOf"], props
    assert box.run("systemctl", "is-enabled", WORKER).stdout.strip() == "enabled"
    listed = box.run("daebus", "services").stdout
    assert re.search(r"^example\s", listed, re.M), listed
    # Under its own Redis user, whose secret was made before it started.
    assert mode(box, f"{SECRETS}/workers/example") == "600 root:root"
    environ = box.run("cat", f"/proc/{show(box, WORKER, 'MainPID')['MainPID']}/environ").stdout.split("\0")
    assert "DAEBUS_REDIS_USERNAME=worker:example" in environ, environ
    assert box.run("systemctl", "is-failed", "daebus-acl@example.service", check=False).stdout.strip() != "failed"


@pytest.mark.independent
def test_units_exposure(box, steps):
    with steps("systemd-analyze security: the gateway, a worker and the bus") as step:
        scores = {unit: exposure(box, unit) for unit in EXPOSURE}
        step["figures"] = ", ".join(f"{unit} {score}" for unit, score in scores.items())
    assert all(scores[unit] <= bound for unit, bound in EXPOSURE.items()), scores


def test_action_through_gateway(box, steps):
    with steps("curl an action through the gateway"):
        result = hello(box)
        status, body = curl(box, "/api/services/example/fail", {"reason": "checking priorities"})
    assert result["message"] == "Hello, box!"
    assert status == 502, (status, body)
    assert body["error"]["code"] == "handler_error", body


def gateway_memory(box: Container) -> dict[str, float]:
    """RSS and PSS in MB of the gateway's gunicorn master and worker, together."""
    master = show(box, "daebus-gateway.service", "MainPID")["MainPID"]
    children = box.run("cat", f"/proc/{master}/task/{master}/children").stdout.split()
    total = {"rss": 0.0, "pss": 0.0, "processes": 0}
    for pid in [master, *children]:
        for line in box.run("cat", f"/proc/{pid}/smaps_rollup").stdout.splitlines():
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                total[name.lower()] += int(rest.split()[0]) / 1024
        total["processes"] += 1
    return total


@pytest.mark.independent
def test_gateway_memory(box, steps):
    with steps("the gateway's memory (master + worker) after calls") as step:
        for n in range(20):
            hello(box, f"memory {n}")
        memory = gateway_memory(box)
        step["figures"] = f"RSS {memory['rss']:.1f} MB, PSS {memory['pss']:.1f} MB"
    assert memory["processes"] == 2, memory
    assert memory["rss"] <= 60, memory


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
                      f"/lib/systemd/system/{BUS}", check=False)
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


def unit_messages(box: Container, unit: str, after: str) -> list[tuple[float, str]]:
    """(seconds, message) of what ``journalctl -u unit`` shows since the cursor."""
    return [(int(e["__REALTIME_TIMESTAMP"]) / 1e6, bytes(e["MESSAGE"]).decode("utf-8", "replace")
             if isinstance(e["MESSAGE"], list) else str(e["MESSAGE"]))
            for e in journal(box, "-u", unit, f"--after-cursor={after}") if e.get("MESSAGE") is not None]


@pytest.mark.independent
def test_a_worker_that_cannot_start_says_why_in_its_journal(box, steps):
    bad_file, bad_code = "daebus-worker@bad1.service", "daebus-worker@bad2.service"
    mark = cursor(box)
    try:
        with steps("a wrong worker file and code that fails to import: journalctl -u, spacing, doctor") as step:
            box.sh("""
                printf 'app = "/usr/local/lib/bad1.py"\nservce = "typo"\n' > /etc/daebus/workers/bad1.toml
                mkdir -p /usr/local/lib/daebus-bad2
                echo 'import no_such_module' > /usr/local/lib/daebus-bad2/bad2.py
                echo 'app = "/usr/local/lib/daebus-bad2/bad2.py"' > /etc/daebus/workers/bad2.toml
            """)
            box.run("systemctl", "start", bad_file, check=False, timeout=60)
            started = time.monotonic()
            box.run("systemctl", "start", bad_code, timeout=60)   # returns at once: it is up, waiting
            start_took = time.monotonic() - started
            wait_until(lambda: sum("failed again" in m for _, m in unit_messages(box, bad_code, mark)) >= 2, 60,
                       "the third try of the worker that fails to import")
            file_lines = unit_messages(box, bad_file, mark)
            code_lines = unit_messages(box, bad_code, mark)
            status = show(box, bad_code, "ActiveState", "StatusText", "NRestarts")
            doctor = box.run("daebus", "doctor", check=False, timeout=120).stdout
            tries = [t for t, m in code_lines if "loading /usr/local/lib/daebus-bad2/bad2.py failed" in m]
            spacing = [round(b - a, 1) for a, b in zip(tries, tries[1:])]
            step["figures"] = f"start returned in {start_took:.1f} s; tries spaced {spacing} s"
    finally:
        box.sh("""
            systemctl stop daebus-worker@bad1.service daebus-worker@bad2.service || true
            rm -rf /etc/daebus/workers/bad1.toml /etc/daebus/workers/bad2.toml /usr/local/lib/daebus-bad2
            systemctl reset-failed daebus-worker@bad1.service daebus-worker@bad2.service || true
        """, timeout=120)
    # The wrong file: one line naming the file and line, in the worker's own journal, once.
    named = [m for _, m in file_lines if "bad1.toml:2" in m]
    assert len(named) == 1, file_lines
    assert not [m for _, m in file_lines if "Dependency failed" in m], file_lines
    # The import failure: one traceback, then a line per try, 5 s then 10 s apart; no restart by systemd.
    assert sum("Traceback" in m for _, m in code_lines) == 1, code_lines
    assert len(spacing) >= 2 and 4 <= spacing[0] <= 8 and 9 <= spacing[1] <= 14, spacing
    assert status["ActiveState"] == "active" and status["StatusText"].startswith("cannot load its app"), status
    assert status["NRestarts"] == "0", status
    assert start_took < 10, start_took
    assert f"✘ unit {bad_code}: cannot load its app" in doctor, doctor
    # Their secrets go at the next ACL pass, with their files.
    box.run("daebus", "acl", "--quiet")
    left = sorted(p.name for p in (box.root / SECRETS.lstrip("/") / "workers").iterdir())
    assert "bad1" not in left and "bad2" not in left, left


def test_worker_survives_redis_restart(box, steps):
    worker = show(box, WORKER, "MainPID", "NRestarts")
    gateway = show(box, "daebus-gateway.service", "MainPID", "NRestarts")
    mark = cursor(box)
    with steps("restart daebus-redis: the worker reconnects without restarting"):
        box.run("systemctl", "restart", BUS)
        wait_until(lambda: any("restored" in m for m in messages_since(box, WORKER, mark)), 60,
                   "the worker to log that Redis is back")
        wait_until(lambda: curl(box, "/api/services/example/hello", {"name": "again"})[0] == 200, 30,
                   "an action to succeed through the gateway again")
    assert show(box, WORKER, "MainPID", "NRestarts") == worker
    assert show(box, "daebus-gateway.service", "MainPID", "NRestarts") == gateway
    messages = messages_since(box, WORKER, mark)
    lost = [m for m in messages if "lost" in m.lower()]
    # At most once: a connection that fails again while retrying is not logged again.
    assert len(lost) <= 1, messages


# A fleet broker on the box's loopback (Debian's mosquitto: local only, anonymous,
# persistent), and a subscriber whose MQTT 5 session the broker keeps while
# it is offline, so the events sent while nobody listens wait for it.
BROKER = ["mosquitto", "mosquitto-clients"]
BRIDGE_CONF = "/etc/daebus/conf.d/70-bridge.toml"
BRIDGE_SETTINGS = """[bridge]
broker = "mqtt://127.0.0.1:1883"
fleet = "appliance"
device = "box-1"
send_channels = ["fleetcheck.*"]
"""
EVENTS = "daebus/appliance/box-1/events/#"
SUBSCRIBER = ["mosquitto_sub", "-V", "5", "-i", "fleet-check", "-c", "-x", "3600", "-q", "1", "-t", EVENTS]
BROADCAST = """
import sys
from daebus import DaebusCaller
caller = DaebusCaller("fleetcheck")
for i in range(int(sys.argv[1]), int(sys.argv[2])):
    caller.send_message("fleetcheck.tick", {"i": i})
"""


def broadcast(box: Container, start: int, end: int) -> None:
    box.run("python3", "-c", BROADCAST, str(start), str(end))


def bridge_online(box: Container, since: float = 0.0) -> bool:
    """Whether the box's retained state says online, from a bridge started after ``since``."""
    out = box.run("daebus", "fleet", "status", "--json", "--broker", "mqtt://127.0.0.1:1883", "--fleet",
                  "appliance", "--timeout", "5", check=False, timeout=30).stdout
    states = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return any(s.get("online") and (s.get("since") or 0) >= since for s in states)


def test_bridge_keeps_a_backlog_across_restart_and_reboot(box, debs, steps):
    bridge = "daebus-bridge.service"
    try:
        with steps("the bridge keeps a backlog: broker stopped, bridge restarted, box rebooted") as step:
            apt_install(box, f"/srv/{debs['daebus-bridge'].name}", *BROKER, timeout=300)
            (box.root / BRIDGE_CONF.lstrip("/")).write_text(BRIDGE_SETTINGS)
            box.sh(f"install -m 0600 /dev/null {SECRETS}/mqtt")  # a broker without passwords
            box.run("systemctl", "enable", "--now", bridge)
            wait_until(lambda: bridge_online(box), 60, "the bridge's retained state online")
            box.run(*SUBSCRIBER, "-E")  # the session, subscribed; kept by the broker from now on
            mark = cursor(box)
            box.run("systemctl", "disable", "--now", "mosquitto.service")  # down until started below
            wait_until(lambda: any("lost the fleet broker" in m for m in messages_since(box, bridge, mark)), 60,
                       "the bridge to notice the broker is gone")
            broadcast(box, 0, 50)
            box.run("systemctl", "restart", bridge)
            broadcast(box, 50, 100)
            box.stop()
            started = time.time()
            box.boot()
            booted_in = time.time() - started
            assert box.run("systemctl", "is-active", bridge, check=False).stdout.strip() == "active"
            assert box.run("systemctl", "is-active", "mosquitto.service", check=False).stdout.strip() != "active"
            box.run("systemctl", "start", "mosquitto.service")
            # The state kept from before the reboot says online too: the one
            # the bridge started at boot publishes once connected is newer.
            wait_until(lambda: bridge_online(box, since=started), 60, "the bridge to reconnect after the reboot")
            broadcast(box, 100, 110)  # live events, after the backlog
            got = box.run(*SUBSCRIBER, "-C", "110", "-W", "60", check=False, timeout=90)
            step["figures"] = f"reboot {booted_in:.1f} s"
    finally:
        # Nothing of it left for the steps after: the bridge off, no broker.
        (box.root / BRIDGE_CONF.lstrip("/")).unlink(missing_ok=True)
        (box.root / SECRETS.lstrip("/") / "mqtt").unlink(missing_ok=True)
        if box.leader is not None:  # not if the reboot failed
            box.run("systemctl", "disable", "--now", bridge, check=False)
            box.run("apt-get", "purge", "-y", "-q", "-o", "Dpkg::Use-Pty=0", *BROKER, check=False, timeout=300)
    events = [json.loads(line) for line in got.stdout.splitlines() if line.strip()]
    assert got.returncode == 0, (got.returncode, got.stderr, len(events))
    # All of them, in order, each once: the backlog from before the restart
    # and the reboot, then the live ones; no gap message.
    assert not [e for e in events if "gap" in e], events
    assert [e["channel"] for e in events] == ["fleetcheck.tick"] * 110, events[:3]
    assert [e["data"]["i"] for e in events] == list(range(110)), [e["data"] for e in events]
    ids = [tuple(int(part) for part in e["id"].split("-")) for e in events]  # a stream id: ms-seq
    assert ids == sorted(ids) and len(set(ids)) == 110, ids


# What docs/security.md tells an administrator to set to serve the bus on TCP as well.
TCP_OPT_IN = "port 6379\nbind 127.0.0.1 -::1\n"
# A daebus program that reaches the bus over TCP, configured as docs/security.md says.
REMOTE = """[redis]
url = "redis://127.0.0.1:6379/0"
username = "admin"
password_file = "/etc/daebus/secrets/admin"
"""


def _lists_example(result):
    """``result`` when it is a ``daebus services --json`` that lists the example worker."""
    if result.returncode != 0:
        return None
    try:
        names = [s["name"] for s in json.loads(result.stdout)]
    except (ValueError, TypeError, KeyError):
        return None
    return result if "example" in names else None


def test_tcp_opt_in_needs_a_password(box, steps):
    conf = box.root / "etc/redis/redis-daebus.conf"
    shipped = conf.read_text()
    remote = box.root / "srv/remote"
    remote.mkdir(exist_ok=True)
    (remote / "daebus.toml").write_text(REMOTE)
    (remote / "anonymous.toml").write_text(REMOTE.split("username")[0])
    try:
        with steps("TCP opted into as documented: a caller with the password is served, without it refused"):
            conf.write_text(shipped + TCP_OPT_IN)
            box.run("systemctl", "restart", BUS)
            listening = wait_until(lambda: [l for l in tcp_listeners(box) if l["port"] == 6379], 30,
                                   "the bus to listen on 6379")
            # The restarted bus starts empty: the worker is listed once it has
            # reconnected and registered again.
            def listed():
                out = box.run("daebus", "services", "--json", check=False, timeout=60,
                              env={"DAEBUS_CONFIG": "/srv/remote/daebus.toml"})
                return out if out.returncode != 0 or '"example"' in out.stdout else None
            served = wait_until(listed, 30, "the example worker listed over TCP")
            refused = box.run("daebus", "services", "--json", check=False, timeout=60,
                              env={"DAEBUS_CONFIG": "/srv/remote/anonymous.toml"})
            ping = box.run("redis-cli", "-p", "6379", "PING", check=False)
    finally:
        conf.write_text(shipped)
        box.run("systemctl", "restart", BUS)
    assert {l["unit"] for l in listening} == {BUS}, listening
    assert served.returncode == 0, served.stdout + served.stderr
    assert "example" in [s["name"] for s in json.loads(served.stdout)], served.stdout
    assert refused.returncode == 2 and "NOAUTH" in refused.stderr, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr
    assert "NOAUTH" in ping.stdout + ping.stderr, ping
    # Back to the shipped configuration: the unix socket alone again, and everything serves.
    wait_until(lambda: not [l for l in tcp_listeners(box) if l["port"] == 6379], 30, "6379 to close")
    wait_until(lambda: curl(box, "/api/services/example/hello", {"name": "unix"})[0] == 200, 60,
               "an action to succeed through the gateway again")


# Integration tests left out of the run inside the box, each for what it needs
# that a device doesn't have; they all run in the host tier.
HOST_ONLY = {
    "tests/integration/test_dev_script.py":
        "runs ./dev, which builds a venv from a checkout; the box has the installed package only",
    "tests/integration/test_unit_hardening.py":
        "reads the checkout's systemd/ folder; the installed units are verified by test_units_verify_cleanly",
    "tests/integration/cli/test_doctor.py::test_a_healthy_device_is_all_green":
        "expects a host where systemd is not PID 1; in the booted box doctor rightly sees the real units",
    "tests/integration/cli/test_new_worker.py::test_the_generated_package_builds_and_lintian_is_clean":
        "needs dpkg-dev, debhelper and lintian, build tools a device doesn't carry; "
        "test_generated_worker_package builds the package and installs it in the box",
    "tests/integration/test_sentinel.py":
        "starts redis-sentinel processes, a package the appliance doesn't depend on",
    "tests/integration/gateway/test_gateway_sentinel.py":
        "starts redis-sentinel processes, a package the appliance doesn't depend on",
    "tests/integration/fleet":
        "start mosquitto, the fleet's broker, which a box runs only in the bridge's own step",
    "tests/integration/gateway/test_gateway_fleet.py":
        "starts mosquitto, the fleet's broker, which a box runs only in the bridge's own step",
    "tests/integration/gateway/test_gateway_freeze.py":
        "starts redis-sentinel processes, a package the appliance doesn't depend on",
    "tests/integration/gateway/test_gateway_storm.py":
        "a load test of 1000 pages, run on the host, where it does not compete with the tier's containers",
    "tests/integration/cli/test_asyncapi.py::test_the_kiosk_demos_document_is_valid_and_names_every_action_and_channel":
        "needs the kiosk demo, installed in a later step; the source package's autopkgtest runs it with the demo",
    "tests/integration/test_compat_release.py":
        "runs Daebus 0.0.31 from PyPI, which ./dev test installs beside the venv; the box has Debian's packages only",
    "tests/integration/cli/test_services.py::test_completion_offers_running_services_and_their_actions":
        "sources the completion script from the checkout's debian/ folder, which the box doesn't have",
}


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
                      "tests/integration", *(f"--deselect={test}" for test in HOST_ONLY),
                      check=False, timeout=1300)
    output = out.stdout + out.stderr
    summary = output.strip().splitlines()[-1:] or [""]
    assert out.returncode == 0, output[-6000:]
    assert re.search(r"\d+ passed", summary[0]), summary


def build_vendor_deb(dest: Path, name: str) -> Path:
    """A vendor's worker package, as ``daebus new worker NAME`` writes it
    (and docs/appliance.md describes it), built with dpkg-buildpackage."""
    from daebus.cli.new import create_worker

    project = dest / name
    create_worker(name, project, "Acme <dev@acme.example>")
    out = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=project, capture_output=True, text=True,
                         env={"PATH": PATH, "LC_ALL": "C.UTF-8", "HOME": str(dest)}, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    [deb] = dest.glob(f"{name}_*_all.deb")
    return deb


def expose_vendors(box: Container) -> None:
    """The administrator lets the kiosk page call the vendors' workers."""
    (box.root / "etc/daebus/conf.d/60-vendors.toml").write_text('[gateway]\nexpose_actions = ["acme-*/*"]\n')
    box.run("systemctl", "restart", "daebus-gateway.service")


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
        box.run("apt-get", "purge", "-y", "-q", name, timeout=300)
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


def demo_state(box: Container) -> dict:
    """What shows whether the kiosk demo is on."""
    units = [f"daebus-worker@{name}.service" for name in DEMO_WORKERS]
    status, page = curl(box, "/")
    return {"active": box.run("systemctl", "is-active", *units, check=False).stdout.split(),
            "links": sorted(p.name for p in [*(box.root / "etc/daebus/workers").glob("kiosk-*"),
                                              *(box.root / "etc/daebus/conf.d").glob("*kiosk*")]),
            "page": "demo" if status == 200 and "app.js" in str(page) else
                    "neutral" if status == 200 and "apt install daebus-kiosk-demo" in str(page) else
                    f"{status}: {str(page)[:200]}"}


ON = ["active"] * 3
OFF = ["inactive"] * 3
LINKS = ["50-kiosk-demo.toml", "kiosk-display.toml", "kiosk-sensors.toml", "kiosk-system.toml"]


def test_demo_install_turns_it_on(box, debs, steps):
    with steps("apt-get install ./daebus-kiosk-demo_*.deb: the demo is on") as step:
        started = time.monotonic()
        apt_install(box, f"/srv/{debs['daebus-kiosk-demo'].name}", timeout=300)
        wait_until(lambda: curl(box, "/api/services/display/get_state", {})[0] == 200, 60,
                   "the demo's display worker to answer")
        step["figures"] = f"install to first demo call {time.monotonic() - started:.1f} s"
        services_status, services = curl(box, "/api/services")
        set_status, _ = curl(box, "/api/services/display/set_brightness", {"brightness": 42})
        state = demo_state(box)
    assert state == {"active": ON, "links": LINKS, "page": "demo"}, state
    assert services_status == 200, services
    assert {"sensors", "display", "system"} <= {s["name"] for s in services["services"]}, services
    assert set_status == 200
    assert show(box, WORKER, "ActiveState")["ActiveState"] == "active"  # the vendor's worker carries on


def autopkgtests(control: str) -> list[str]:
    """The ``Tests:`` names of a debian/tests/control."""
    return [name for line in control.splitlines() if line.startswith("Tests:")
            for name in line.split(":", 1)[1].replace(",", " ").split()]


def test_autopkgtest_from_the_source_package_passes(box, debs, steps):
    # The source package `make deb` built, unpacked as a sponsor would, and
    # each of its tests run as autopkgtest runs them: from the tree's root,
    # with AUTOPKGTEST_TMP, against the installed packages.
    dsc = ROOT / "build/deb" / f"daebus_{VERSION}.dsc"
    tree = box.root / "srv/daebus-source"
    shutil.rmtree(tree, ignore_errors=True)
    with steps("dpkg-source -x of the source package; its autopkgtests on the box") as step:
        subprocess.run(["dpkg-source", "--no-check", "-x", str(dsc), str(tree)], check=True,
                       capture_output=True, text=True, env={"PATH": PATH, "LC_ALL": "C.UTF-8"}, timeout=120)
        names = autopkgtests((tree / "debian/tests/control").read_text())
        results = {}
        for name in names:
            tmp = f"/srv/autopkgtest-{name}"
            box.run("rm", "-rf", tmp)
            box.run("mkdir", "-p", tmp)
            results[name] = box.run("sh", "-c", f"cd /srv/daebus-source && AUTOPKGTEST_TMP={tmp} "
                                    f"debian/tests/{name}", check=False, timeout=900)
        step["figures"] = ", ".join(f"{n}: exit {r.returncode}" for n, r in results.items())
    assert (tree / "tests/integration").is_dir() and (tree / "LICENSE").is_file()
    assert names == ["smoke", "integration"], names
    for name, out in results.items():
        assert out.returncode == 0, f"{name}:\n{out.stdout[-4000:]}{out.stderr[-4000:]}"
    assert "ok: the kiosk demo's page and workers are on" in results["smoke"].stdout
    assert re.search(r"\d+ passed", results["integration"].stdout), results["integration"].stdout[-2000:]


def test_demo_command_turns_it_off_and_on(box, steps):
    with steps("daebus-kiosk-demo disable, then enable"):
        box.run("daebus-kiosk-demo", "disable", timeout=300)
        off = demo_state(box)
        box.run("daebus-kiosk-demo", "enable", timeout=300)
        wait_until(lambda: curl(box, "/api/services/display/get_state", {})[0] == 200, 60,
                   "the demo's display worker to answer again")
        on = demo_state(box)
    assert off == {"active": OFF, "links": [], "page": "neutral"}, off
    assert on == {"active": ON, "links": LINKS, "page": "demo"}, on


def main_pids(box: Container, *units: str) -> dict[str, str]:
    return {unit: show(box, unit, "MainPID")["MainPID"] for unit in units}


def starts_since(box: Container, after: str, *units: str) -> dict[str, int]:
    """How many times systemd started each unit since the journal cursor."""
    counts = {}
    for unit in units:
        entries = journal(box, f"--after-cursor={after}", "_PID=1", f"UNIT={unit}")
        counts[unit] = sum(1 for e in entries if e.get("JOB_TYPE") == "start" and e.get("JOB_RESULT") == "done")
    return counts


DENY = "#!/bin/sh\n# Whatever the service and the action: not now (a chroot, an image build).\nexit 101\n"


def test_reinstall_keeps_the_administrators_choices(box, debs, steps):
    disabled, masked = "daebus-worker@kiosk-sensors.service", "daebus-worker@kiosk-system.service"
    running = ["daebus-gateway.service", "daebus-worker@kiosk-display.service", WORKER]
    box.run("systemctl", "disable", "--now", disabled)
    box.run("systemctl", "mask", "--now", masked)
    ours = [f"/srv/{debs[name].name}" for name in PACKAGES]
    reinstall = ["apt-get", "install", "--reinstall", "-y", "-q", "-o", "Dpkg::Use-Pty=0", *ours]
    try:
        with steps("reinstall under a denying policy-rc.d, a demo worker disabled and one masked") as step:
            (box.root / "usr/sbin/policy-rc.d").write_text(DENY)
            (box.root / "usr/sbin/policy-rc.d").chmod(0o755)
            before = main_pids(box, *running, BUS)
            denied = box.run(*reinstall, check=False, timeout=600)
            after_denied = main_pids(box, *running, BUS)
            (box.root / "usr/sbin/policy-rc.d").unlink()
            mark = cursor(box)
            allowed = box.run(*reinstall, check=False, timeout=600)
            wait_until(lambda: curl(box, "/api/services/display/get_state", {})[0] == 200, 60,
                       "the display worker to answer after the reinstall")
            after_allowed = main_pids(box, *running, BUS)
            starts = starts_since(box, mark, *running, disabled, masked)
            states = {unit: box.run("systemctl", "is-enabled", unit, check=False).stdout.strip() + "/"
                      + box.run("systemctl", "is-active", unit, check=False).stdout.strip()
                      for unit in (disabled, masked)}
            link_left = (box.root / "etc/systemd/system/daebus.target.wants" / disabled).is_symlink()
            step["figures"] = "starts after the allowed reinstall: " + ", ".join(f"{u} {n}" for u, n in starts.items())
    finally:
        (box.root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
        box.run("systemctl", "unmask", masked, check=False)
        box.run("systemctl", "enable", "--now", disabled, masked, check=False)
    assert denied.returncode == 0, denied.stdout[-3000:] + denied.stderr[-3000:]
    assert after_denied == before, (before, after_denied)     # nothing restarted under the policy
    assert allowed.returncode == 0, allowed.stdout[-3000:] + allowed.stderr[-3000:]
    # The administrator's choices kept; each running unit restarted once, the bus not at all.
    # (systemctl calls a disabled instance of the shipped link "static": it is
    # started by nothing, and its enable link is gone.)
    assert states[disabled] in ("disabled/inactive", "static/inactive"), states
    assert states[masked] == "masked/inactive", states
    assert not link_left
    assert all(after_allowed[u] != before[u] for u in running), (before, after_allowed)
    assert after_allowed[BUS] == before[BUS]
    assert starts == {**{u: 1 for u in running}, disabled: 0, masked: 0}, starts
    wait_until(lambda: demo_state(box)["active"] == ON, 60, "the demo's workers back on")


NEXT = f"{VERSION}+next1"
# The box's administrator: settings in /etc/daebus/daebus.toml (made from the
# shipped example, which the next version changes) and a drop-in of their own.
ADMIN_SETTINGS = """
[gateway]
allowed_hosts = ["localhost", "127.0.0.1", "::1", "kiosk.local"]
threads = 24
"""


@pytest.fixture(scope="module")
def next_debs(tmp_path_factory) -> dict[str, Path]:
    """The packages of the next version (N+1), built from a copy of this
    tree whose version, changelog and shipped example config differ."""
    return make_versioned_debs(ROOT, tmp_path_factory.mktemp("next"), NEXT,
                               "The next version, for the upgrade test.")


POLLER = r"""
import json, sys, time, urllib.request
targets = sys.argv[1:]
out = open("/srv/poll.jsonl", "a", buffering=1)
while True:
    for target in targets:
        started = time.time()
        request = urllib.request.Request("http://127.0.0.1:8080/api/services/" + target, data=b"{}",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                ok = response.status == 200
        except Exception:
            ok = False
        out.write(json.dumps({"t": started, "target": target, "ok": ok}) + "\n")
        time.sleep(0.1)
"""


def longest_outage(lines: list[dict]) -> dict[str, float]:
    """Per target, the longest time from a failed call to the next good one."""
    worst: dict[str, float] = {}
    failing_since: dict[str, float] = {}
    for entry in lines:
        target = entry["target"]
        worst.setdefault(target, 0.0)
        if not entry["ok"]:
            failing_since.setdefault(target, entry["t"])
        elif target in failing_since:
            worst[target] = max(worst[target], entry["t"] - failing_since.pop(target))
    for target, since in failing_since.items():  # still failing at the end
        worst[target] = float("inf")
    return worst


def daebus_processes(box: Container) -> dict[str, str]:
    out = box.run("ps", "-u", "daebus", "-o", "pid=,args=").stdout
    return dict(line.strip().split(None, 1) for line in out.splitlines() if line.strip())


UPGRADE_BOUND = 15.0  # seconds; docs/appliance.md


def test_upgrade_to_the_next_version(box, next_debs, steps, tmp_path):
    vendors = [build_vendor_deb(tmp_path, name) for name in ("acme-one", "acme-two")]
    expose_vendors(box)
    for deb in [*vendors, *next_debs.values()]:
        shutil.copy(deb, box.root / "srv" / deb.name)
    apt_install(box, *(f"/srv/{deb.name}" for deb in vendors), timeout=300)
    example = (box.root / "usr/share/doc/daebus/examples/daebus.toml").read_text()
    (box.root / "etc/daebus/daebus.toml").write_text(example + ADMIN_SETTINGS)
    box.run("systemctl", "restart", "daebus.target", "daebus-gateway.service")
    targets = ["example/hello", "acme-one/status", "acme-two/status", "display/get_state"]
    for target in targets:
        wait_until(lambda: curl(box, f"/api/services/{target}", {})[0] == 200, 60, f"{target} to answer")
    settings = (box.root / "etc/daebus/daebus.toml").read_bytes()
    secrets = {p.name: p.read_bytes() for p in (box.root / SECRETS.lstrip("/")).rglob("*") if p.is_file()}
    assert {"admin", "gateway", "example", "kiosk-display", "acme-one", "acme-two"} <= set(secrets), secrets
    before = daebus_processes(box)
    assert len(before) >= 7, before  # gateway (2), example, the demo's 3, the vendors' 2
    (box.root / "srv/poll.py").write_text(POLLER)
    box.run("systemd-run", "--unit=daebus-upgrade-poll", "--collect", "python3", "/srv/poll.py", *targets)
    wait_until(lambda: (box.root / "srv/poll.jsonl").is_file() and
               len((box.root / "srv/poll.jsonl").read_text().splitlines()) >= len(targets), 30,
               "the poller to start")

    restarted = ["daebus-gateway.service", WORKER, *(f"daebus-worker@{n}.service" for n in DEMO_WORKERS),
                 "daebus-worker@acme-one.service", "daebus-worker@acme-two.service"]
    with steps(f"upgrade {VERSION} -> {NEXT}: demo on, two vendor workers, edited config") as step:
        mark = cursor(box)
        started = time.monotonic()
        out = apt_install(box, *(f"/srv/{deb.name}" for deb in next_debs.values()), timeout=600)
        took = time.monotonic() - started
        for target in targets:
            wait_until(lambda: curl(box, f"/api/services/{target}", {})[0] == 200, 60,
                       f"{target} to answer after the upgrade")
        time.sleep(1)  # a few good polls after the last outage (the poller runs every 0.1 s)
        box.run("systemctl", "stop", "daebus-upgrade-poll.service")
        polls = [json.loads(line) for line in (box.root / "srv/poll.jsonl").read_text().splitlines()]
        outage = longest_outage(polls)
        starts = starts_since(box, mark, *restarted, BUS)
        step["figures"] = (f"apt {took:.1f} s; starts per unit: {sorted(set(starts.values()))}; "
                           "longest failing run per target: "
                           + ", ".join(f"{t} {v:.1f} s" for t, v in outage.items())
                           + f"; {sum(not p['ok'] for p in polls)} of {len(polls)} calls failed")
    assert f"Unpacking daebus ({NEXT})" in out, out[-3000:]
    # Each unit restarted once for the whole transaction (the daebus-restart trigger), the bus not at all.
    assert starts == {**{u: 1 for u in restarted}, BUS: 0}, starts
    assert max(outage.values()) <= UPGRADE_BOUND, outage
    # Settings kept, and in force.
    assert (box.root / "etc/daebus/daebus.toml").read_bytes() == settings
    kept = {p.name: p.read_bytes() for p in (box.root / SECRETS.lstrip("/")).rglob("*") if p.is_file()}
    assert kept == secrets, "the upgrade changed the bus's secrets"
    assert (box.root / "usr/share/doc/daebus/examples/daebus.toml").read_text().endswith(f"# Changed in {NEXT}.\n")
    host = box.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: kiosk.local",
                   GATEWAY + "/api/health").stdout
    assert host == "200", host
    # Every daebus process is new, and runs the new version.
    after = daebus_processes(box)
    assert set(after).isdisjoint(before), (before, after)
    assert len(after) == len(before), (before, after)
    status, health = curl(box, "/api/health")
    assert status == 200 and health["version"] == NEXT, health
    status, listed = curl(box, "/api/services")
    versions = {s["name"]: s["version"] for s in listed["services"]}
    assert {"example", "acme-one", "acme-two", "sensors", "display", "system"} <= set(versions), versions
    assert set(versions.values()) == {NEXT}, versions
    installed = box.run("dpkg-query", "-W", "-f", "${Package} ${Version} ${Status}\n", *PACKAGES).stdout
    assert all(f" {NEXT} install ok installed" in line for line in installed.splitlines()), installed
    box.run("apt-get", "purge", "-y", "-q", "acme-one", "acme-two", timeout=300)


def test_demo_remove_turns_it_off(box, steps):
    with steps("apt-get remove daebus-kiosk-demo: the demo is off"):
        box.run("apt-get", "remove", "-y", "-q", "daebus-kiosk-demo", timeout=300)
        state = demo_state(box)
        wants = box.root / "etc/systemd/system/daebus.target.wants"
        kept = {p.name: p.exists() for p in wants.iterdir() if "kiosk" in p.name}
        loaded = box.run("systemctl", "show", "-p", "LoadState", *kept, check=False).stdout.split()
    assert state == {"active": OFF, "links": [], "page": "neutral"}, state
    # As Debian keeps a removed package's configuration until purge, its
    # workers' enablement stays, masked (daebus's template would start them
    # otherwise): a reinstall brings them back as the administrator left them.
    assert set(kept.values()) <= {False}, kept
    assert loaded == ["LoadState=masked"] * len(kept), loaded
    assert show(box, WORKER, "ActiveState")["ActiveState"] == "active"


def redis_keys(box: Container, pattern: str) -> list[str]:
    return admin_cli(box, "--scan", "--pattern", pattern).stdout.split()


def test_demo_purge_leaves_nothing(box, steps):
    # Removed, not purged: its state in Redis is still there.
    assert redis_keys(box, "display:*"), "the demo kept no state in Redis"
    with steps("apt-get purge daebus-kiosk-demo: its links, state and Redis keys gone"):
        box.run("apt-get", "purge", "-y", "-q", "daebus-kiosk-demo", timeout=300)
        state = demo_state(box)
        keys = redis_keys(box, "display:*") + redis_keys(box, "kiosk_demo:*") + \
            [k for c in ("sensors", "display", "system") for k in redis_keys(box, f"daebus:kept:{c}.*")]
        secrets = sorted(p.name for p in (box.root / SECRETS.lstrip("/") / "workers").iterdir())
    assert state == {"active": OFF, "links": [], "page": "neutral"}, state
    assert keys == [], keys
    assert not [name for name in secrets if name.startswith("kiosk-")], secrets
    for path in ("var/lib/daebus-kiosk-demo", "var/lib/daebus/kiosk-display", "usr/share/daebus/kiosk_demo",
                 "usr/sbin/daebus-kiosk-demo", "usr/share/doc/daebus-kiosk-demo",
                 *(f"etc/systemd/system/daebus.target.wants/daebus-worker@{n}.service" for n in DEMO_WORKERS),
                 *(f"etc/systemd/system/daebus-worker@{n}.service" for n in DEMO_WORKERS)):
        assert not (box.root / path).exists() and not (box.root / path).is_symlink(), path
    assert "daebus-kiosk-demo" not in box.run("dpkg", "-l").stdout


default_redis: dict = {}


def test_default_redis_beside_the_bus(box, steps):
    """An administrator installs Debian's redis-server for something else: its
    default instance serves on 6379 as Debian ships it, and the bus stays private."""
    before = show(box, BUS, "MainPID")
    with steps("apt-get install redis-server: the default instance on 6379, the bus unchanged beside it"):
        box.run("apt-get", "install", "-y", "-q", "-o", "Dpkg::Use-Pty=0", "redis-server", timeout=300)
        listeners = wait_until(lambda: [l for l in tcp_listeners(box) if l["port"] == 6379], 30,
                               "the default instance to listen")
        default = box.run("redis-cli", "-p", "6379", "PING", check=False).stdout.strip()
        nobody = box.run("runuser", "-u", "nobody", "--", "redis-cli", "-s", SOCKET, "PING", check=False)
        result = hello(box, "neighbour")
    default_redis["conf"] = (box.root / "etc/redis/redis.conf").read_bytes()
    assert {l["unit"] for l in listeners} == {"redis-server.service"}, listeners
    assert default == "PONG"
    assert show(box, BUS, "MainPID") == before
    assert nobody.returncode != 0 and "Permission denied" in nobody.stdout + nobody.stderr, nobody
    assert result["message"] == "Hello, neighbour!"


def test_purge_leaves_nothing_running(box, steps):
    with steps("apt-get purge daebus: nothing of it left"):
        box.run("apt-get", "purge", "-y", "-q", "-o", "Dpkg::Use-Pty=0", "daebus", timeout=300)
        units = box.run("systemctl", "list-units", "--all", "--plain", "--no-legend", "daebus*",
                        check=False).stdout
        processes = box.run("ps", "-eo", "user:20,args", "--no-headers").stdout
    active = [line for line in units.splitlines() if " active " in f" {line} " or "activating" in line]
    assert not active, units
    leftovers = [line for line in processes.splitlines()
                 if line.split()[0] == "daebus" or "gunicorn" in line or "daebus worker" in line]
    assert not leftovers, leftovers
    # Its Redis, users, secrets and data are gone; Debian's default instance
    # is left as it was.
    assert box.run("systemctl", "is-active", BUS, check=False).stdout.strip() != "active"
    assert box.run("systemctl", "is-active", "redis-server.service", check=False).stdout.strip() == "active"
    for path in ("etc/daebus/secrets", "etc/redis/redis-daebus.acl", "etc/redis/redis-daebus.conf",
                 "var/lib/redis-daebus", "lib/systemd/system/daebus-redis.service"):
        assert not (box.root / path).exists(), path
    assert (box.root / "etc/redis/redis.conf").read_bytes() == default_redis["conf"]
    for path in ("lib/systemd/system/daebus-gateway.service", "etc/systemd/system/daebus.target.wants",
                 "etc/systemd/system/multi-user.target.wants/daebus.target", "var/lib/daebus",
                 "usr/bin/daebus", "usr/share/daebus", "usr/share/doc/daebus"):
        assert not (box.root / path).exists() and not (box.root / path).is_symlink(), path
    # What stays by design (docs/appliance.md): the administrator's own
    # files in /etc/daebus, and the system user.
    left = sorted(str(p.relative_to(box.root)) for p in (box.root / "etc/daebus").rglob("*"))
    assert left == ["etc/daebus/conf.d", "etc/daebus/conf.d/50-example.toml", "etc/daebus/conf.d/60-vendors.toml",
                    "etc/daebus/daebus.toml",
                    "etc/daebus/workers", "etc/daebus/workers/example.toml"], left
    assert box.run("getent", "passwd", "daebus", check=False).returncode == 0
    failed = box.run("systemctl", "--failed", "--no-legend", "--plain").stdout
    assert "daebus" not in failed, failed


def test_purge_library_leaves_nothing(box, steps):
    with steps("apt-get purge python3-daebus: nothing of ours left"):
        box.run("apt-get", "purge", "-y", "-q", "python3-daebus", timeout=300)
        ours = box.run("sh", "-c", "dpkg -l | grep -i daebus || true").stdout
        importable = box.run("python3", "-c", "import daebus", check=False).returncode
    assert ours.strip() == "", ours
    assert importable != 0
    assert not list((box.root / "usr/lib/python3/dist-packages").glob("daebus*"))
    assert not (box.root / "usr/share/doc/python3-daebus").exists()
