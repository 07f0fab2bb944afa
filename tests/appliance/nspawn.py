"""A Debian bookworm root made with debootstrap, booted with systemd-nspawn.

The root is built once per machine and kept as a tarball in the cache folder
(``DAEBUS_TEST_CACHE``, default ``/var/cache/daebus-test``); each run unpacks
a fresh copy, boots it with ``systemd-nspawn --register=no --keep-unit -b``
and runs commands inside with ``nsenter`` (no machined, no registration).

The container has only a loopback network (``--private-network``): its Redis
on 6379 and gateway on 8080 can't collide with anything on the host. So that
``apt install ./daebus.deb`` still resolves its dependencies from Debian, the
tarball holds bookworm's package lists and the dependencies' .deb files
(downloaded, not installed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

SUITE = "bookworm"
MIRROR = os.environ.get("DAEBUS_TEST_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("DAEBUS_TEST_CACHE", "/var/cache/daebus-test"))
# Bump when the recipe below changes in a way the key doesn't capture.
RECIPE = 1
# Booting needs systemd and dbus; the rest is what the checks and the
# integration suite use (all from Debian, never from PyPI).
BOOT_PACKAGES = ["systemd", "systemd-sysv", "dbus"]
EXTRA_PACKAGES = ["curl", "procps", "python3-pytest", "python3-pytest-timeout", "python3-requests"]
# Timers that would start apt or other work in the middle of a test.
MASKED_UNITS = ["apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer",
                "e2scrub_all.timer", "fstrim.timer", "systemd-tmpfiles-clean.timer"]
HOST_TOOLS = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container", "nsenter": "util-linux",
              "make": "make", "dpkg-buildpackage": "dpkg-dev"}
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ContainerError(RuntimeError):
    pass


def _run(cmd, *, log=None, timeout=None, env=None, **kwargs) -> subprocess.CompletedProcess:
    """Run a host command; on failure raise with its output."""
    clean = {"PATH": PATH, "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive", **(env or {})}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=clean, **kwargs)
    if log is not None:
        log.write(f"$ {' '.join(map(str, cmd))}\n{result.stdout}{result.stderr}\n")
        log.flush()
    if result.returncode != 0:
        raise ContainerError(f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result


def ensure_host_tools() -> None:
    """Install debootstrap, systemd-nspawn, make... with apt-get where missing."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool, path=PATH) is None})
    if not missing:
        return
    apt = ["apt-get", "-y", "-q", "-o", "Dpkg::Use-Pty=0"]
    try:
        _run([*apt, "install", "--no-install-recommends", *missing], timeout=600)
    except ContainerError:
        _run([*apt, "update"], timeout=600)
        _run([*apt, "install", "--no-install-recommends", *missing], timeout=600)


def image_key(depends: list[str]) -> str:
    recipe = {"recipe": RECIPE, "suite": SUITE, "mirror": MIRROR, "boot": BOOT_PACKAGES,
              "extra": EXTRA_PACKAGES, "masked": MASKED_UNITS, "depends": sorted(depends)}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def build_image(depends: list[str], log) -> Path:
    """The cached root tarball for ``depends``, built if it doesn't exist."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{SUITE}-{image_key(depends)}.tar"
    if tarball.is_file():
        return tarball
    ensure_host_tools()
    work = Path(tempfile.mkdtemp(prefix="build-", dir=CACHE))
    try:
        root = work / "root"
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(BOOT_PACKAGES)}",
              SUITE, str(root), MIRROR], log=log, timeout=1200)
        # A non-booting nspawn gives apt /proc, /dev and the host's DNS.
        chroot = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit",
                  "--resolv-conf=copy-host", "--timezone=off", "-D", str(root),
                  "--setenv=DEBIAN_FRONTEND=noninteractive"]
        apt = [*chroot, "apt-get", "-y", "-q", "-o", "Dpkg::Use-Pty=0"]
        _run([*apt, "update"], log=log, timeout=600)
        _run([*apt, "install", "--no-install-recommends", *EXTRA_PACKAGES], log=log, timeout=1200)
        _run([*apt, "clean"], log=log)
        # What `apt install ./daebus_*.deb` will need, downloaded but not
        # installed: the test proves the package pulls them in itself.
        _run([*apt, "install", "--download-only", *depends], log=log, timeout=1200)
        for unit in MASKED_UNITS:
            link = root / "etc/systemd/system" / unit
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/null")
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        # debootstrap writes no /etc/hosts; without one "localhost" (the
        # default Redis host) would not resolve.
        (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        partial = tarball.with_suffix(".partial")
        _run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", str(root),
              "-cf", str(partial), "."], log=log, timeout=600)
        partial.rename(tarball)
        for old in CACHE.glob(f"{SUITE}-*.tar"):
            if old != tarball:
                old.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def unpack(tarball: Path, dest: Path) -> Path:
    root = dest / "root"
    root.mkdir(parents=True)
    _run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", str(root),
          "-xf", str(tarball)], timeout=600)
    return root


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


class Container:
    """A booted bookworm root; ``run()`` executes commands inside it.

    Example::

        with Container(root, "daebus-test", log_path) as box:
            box.run("systemctl", "is-active", "redis-server")
    """

    def __init__(self, root: Path, name: str, log_path: Path):
        self.root = root
        self.name = name
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.leader: int | None = None

    def __enter__(self) -> Container:
        self.boot()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def boot(self, timeout: float = 120) -> None:
        self._log = open(self.log_path, "w")
        cmd = ["systemd-nspawn", "--register=no", "--keep-unit", "--private-network",
               "--console=read-only", f"--machine={self.name}", "-D", str(self.root), "-b"]
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT,
                                        env={"PATH": PATH, "LC_ALL": "C.UTF-8"},
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        # The container's PID 1 is nspawn's child; it is ready to be entered
        # once it has exec'd systemd (its namespaces and root are then final).
        while self.leader is None:
            if self.process.poll() is not None:
                raise ContainerError(f"systemd-nspawn exited with {self.process.returncode}:\n{self.boot_log()}")
            for child in _children(self.process.pid):
                try:
                    if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                        self.leader = child
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise ContainerError(f"the container did not start systemd:\n{self.boot_log()}")
            time.sleep(0.05)
        # Until systemd listens on its private socket, systemctl can't ask.
        state = ""
        while state not in ("running", "degraded", "maintenance", "stopping", "offline"):
            if time.monotonic() > deadline:
                break
            state = self.run("systemctl", "is-system-running", "--wait", check=False,
                             timeout=max(5.0, deadline - time.monotonic())).stdout.strip()
            if not state:
                time.sleep(0.1)
        if state not in ("running", "degraded"):
            raise ContainerError(f"the container's systemd is {state!r}:\n{self.boot_log()}")
        if state == "degraded":
            failed = self.run("systemctl", "--failed", "--no-legend", check=False).stdout
            self._log.write(f"\n[degraded at boot]\n{failed}\n")

    def boot_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def run(self, *cmd: str, check: bool = True, timeout: float = 120, input: str | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        """Run ``cmd`` inside the container (all its namespaces, its root)."""
        if self.leader is None:
            raise ContainerError("the container is not running")
        variables = {"PATH": PATH, "LANG": "C.UTF-8", "TERM": "dumb", "SYSTEMD_PAGER": "",
                     "SYSTEMD_COLORS": "0", "DEBIAN_FRONTEND": "noninteractive", "HOME": "/root",
                     **(env or {})}
        full = ["nsenter", f"--target={self.leader}", "--all", "--", "env", "-i",
                *(f"{k}={v}" for k, v in variables.items()), *cmd]
        result = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input,
                                stdin=None if input is not None else subprocess.DEVNULL,
                                env={"PATH": PATH})
        if check and result.returncode != 0:
            raise ContainerError(f"in the container: {' '.join(cmd)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-4000:]}{result.stderr[-4000:]}")
        return result

    def sh(self, script: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run("sh", "-ec", script, **kwargs)

    def stop(self, timeout: float = 60) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            # SIGTERM to nspawn halts the container cleanly (as poweroff).
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                if self.leader is not None:
                    # Killing PID 1 of the container ends its whole PID namespace.
                    try:
                        os.kill(self.leader, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.process.kill()
                self.process.wait(30)
        self.process = None
        self.leader = None
        self._log.close()
        # nspawn leaves an empty propagation folder named after the machine.
        propagate = Path("/run/systemd/nspawn/propagate") / self.name
        if propagate.is_dir():
            shutil.rmtree(propagate, ignore_errors=True)
