"""A Debian bookworm root made with debootstrap, booted with systemd-nspawn.

The root is built once per machine and architecture and kept as a tarball
in the cache folder (``DAEBUS_TEST_CACHE``, default ``/var/cache/daebus-test``);
each run unpacks a fresh copy, boots it with ``systemd-nspawn --register=no
--keep-unit -b`` and runs commands inside with ``nsenter`` (no machined, no
registration). A foreign architecture (arm64 on an amd64 host) runs under
qemu-user-static through binfmt_misc, registered by :func:`register_binfmt`.

The container has only a loopback network (``--private-network``): a Redis
on 6379 and the gateway on 8080 can't collide with anything on the host. So that
``apt install ./daebus.deb`` still resolves its dependencies from Debian, the
tarball holds bookworm's package lists, and :func:`add_dependencies` puts
the dependencies' .deb files in a fresh copy (downloaded, not installed;
kept in the cache between runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from support import default_signals

SUITE = "bookworm"
MIRROR = os.environ.get("DAEBUS_TEST_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("DAEBUS_TEST_CACHE", "/var/cache/daebus-test"))
# Bump when the recipe below changes in a way the key doesn't capture.
RECIPE = 2
# Booting needs systemd and dbus; the rest is what the checks and the
# integration suite use (all from Debian, never from PyPI).
BOOT_PACKAGES = ["systemd", "systemd-sysv", "dbus"]
EXTRA_PACKAGES = ["curl", "procps", "python3-pytest", "python3-pytest-timeout", "python3-requests"]
# Timers that would start apt or other work in the middle of a test.
MASKED_UNITS = ["apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer",
                "e2scrub_all.timer", "fstrim.timer", "systemd-tmpfiles-clean.timer"]
HOST_TOOLS = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container", "nsenter": "util-linux",
              "make": "make", "dpkg-buildpackage": "dpkg-dev"}
# What a foreign architecture needs on the host (binfmt_misc entries and the
# static emulators they name).
EMULATION_TOOLS = {"update-binfmts": "binfmt-support", "qemu-aarch64-static": "qemu-user-static"}
QEMU_NAMES = {"arm64": "aarch64", "armhf": "arm"}
# What a failed step leaves to look at (DAEBUS_ARTIFACTS to put it elsewhere).
ARTIFACTS = Path(os.environ.get("DAEBUS_ARTIFACTS") or Path(__file__).resolve().parents[2] / "artifacts")
BINFMT = Path("/proc/sys/fs/binfmt_misc")
BINFMT_RULES = Path("/usr/lib/binfmt.d")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


def host_arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()


def ensure_host_tools(tools: dict[str, str] = HOST_TOOLS) -> None:
    """Install debootstrap, systemd-nspawn, make... with apt-get where missing."""
    missing = sorted({pkg for tool, pkg in tools.items() if shutil.which(tool, path=PATH) is None})
    if not missing:
        return
    apt = ["apt-get", "-y", "-q", "-o", "Dpkg::Use-Pty=0"]
    try:
        _run([*apt, "install", "--no-install-recommends", *missing], timeout=600)
    except ContainerError:
        _run([*apt, "update"], timeout=600)
        _run([*apt, "install", "--no-install-recommends", *missing], timeout=600)


def register_binfmt(arch: str) -> None:
    """Let this kernel run ``arch`` binaries through qemu-user-static.

    Registers the emulator the way systemd-binfmt would (from qemu's
    binfmt.d file, with the F flag so that it works inside the container's
    root), mounting binfmt_misc first if needed. Raises ContainerError
    with the kernel's reason where that is refused (an unprivileged
    container, a kernel without binfmt_misc).
    """
    name = f"qemu-{QEMU_NAMES.get(arch, arch)}"
    ensure_host_tools(EMULATION_TOOLS)
    if not (BINFMT / "register").exists():
        result = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise ContainerError(f"cannot run {arch} binaries: mounting binfmt_misc on {BINFMT} "
                                 f"failed: {result.stderr.strip()}")
    if (BINFMT / name).exists():
        if "enabled" not in (BINFMT / name).read_text().splitlines()[0]:
            (BINFMT / name).write_text("1")
        return
    rules = BINFMT_RULES / f"{name}.conf"
    rule = next((line for line in rules.read_text().splitlines() if line.startswith(":")), None)
    if rule is None:
        raise ContainerError(f"cannot run {arch} binaries: no rule in {rules}")
    try:
        (BINFMT / "register").write_text(rule)
    except OSError as exc:
        raise ContainerError(f"cannot run {arch} binaries: the kernel refused the binfmt_misc "
                             f"rule for {name}: {exc}") from None


def image_key(arch: str, extra: list[str]) -> str:
    recipe = {"recipe": RECIPE, "suite": SUITE, "mirror": MIRROR, "boot": BOOT_PACKAGES,
              "extra": sorted(extra), "masked": MASKED_UNITS, "arch": arch}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def _chroot(root: Path, *binds: str) -> list[str]:
    # A non-booting nspawn gives apt /proc, /dev and the host's DNS.
    return ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--resolv-conf=copy-host",
            "--timezone=off", "-D", str(root), "--setenv=DEBIAN_FRONTEND=noninteractive",
            *(f"--bind={b}" for b in binds)]


APT = ["apt-get", "-y", "-q", "-o", "Dpkg::Use-Pty=0"]


def build_image(log, arch: str | None = None, extra: list[str] = EXTRA_PACKAGES) -> Path:
    """The cached root tarball for ``arch`` (the host's by default), built
    if it doesn't exist."""
    arch = arch or host_arch()
    CACHE.mkdir(parents=True, exist_ok=True)
    suffix = "" if arch == host_arch() else f"-{arch}"
    tarball = CACHE / f"{SUITE}{suffix}-{image_key(arch, extra)}.tar"
    if tarball.is_file():
        return tarball
    ensure_host_tools()
    if suffix:
        register_binfmt(arch)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=CACHE))
    try:
        root = work / "root"
        _run(["debootstrap", "--variant=minbase", f"--arch={arch}", f"--include={','.join(BOOT_PACKAGES)}",
              SUITE, str(root), MIRROR], log=log, timeout=3600)
        apt = [*_chroot(root), *APT]
        _run([*apt, "update"], log=log, timeout=900)
        if extra:
            _run([*apt, "install", "--no-install-recommends", *extra], log=log, timeout=1800)
        _run([*apt, "clean"], log=log)
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
        for old in CACHE.glob(f"{SUITE}{suffix}-*.tar"):
            if old != tarball and (suffix or old.name.count("-") == 1):
                old.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def add_dependencies(root: Path, debs: list[str], log, arch: str | None = None) -> None:
    """Put the .deb files that installing ``debs`` (paths inside the root)
    needs in the root's apt cache, downloaded but not installed: the test
    proves the packages pull them in themselves.

    Downloads go through a per-architecture folder in the cache, so a run
    fetches only what changed since the last one; stale package lists (a
    Debian point release) are refreshed once.
    """
    archives = CACHE / f"archives-{arch or host_arch()}"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    apt = [*_chroot(root, f"{archives}:/var/cache/apt/archives"), *APT]
    try:
        _run([*apt, "install", "--download-only", *debs], log=log, timeout=1800)
    except ContainerError:
        _run([*apt, "update"], log=log, timeout=900)
        _run([*apt, "install", "--download-only", *debs], log=log, timeout=1800)
    # Versions Debian no longer offers go; the rest is what the install uses.
    _run([*apt, "autoclean"], log=log, timeout=300)
    wanted = root / "var/cache/apt/archives"
    for deb in archives.glob("*.deb"):
        shutil.copy(deb, wanted / deb.name)


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
            box.run("systemctl", "is-active", "daebus-redis")
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
                                        start_new_session=True, preexec_fn=default_signals)
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
                                env={"PATH": PATH}, preexec_fn=default_signals)
        if check and result.returncode != 0:
            raise ContainerError(f"in the container: {' '.join(cmd)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-4000:]}{result.stderr[-4000:]}")
        return result

    def sh(self, script: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run("sh", "-ec", script, **kwargs)

    def save_journal(self, name: str) -> Path | None:
        """This boot's journal, as text, kept as ``artifacts/<name>.journal.txt``."""
        if self.leader is None:
            return None
        try:
            result = self.run("journalctl", "-b", "--no-pager", "-o", "short-monotonic", check=False, timeout=60)
        except (subprocess.TimeoutExpired, OSError, ContainerError):
            return None
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / (re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".journal.txt")
        path.write_text(result.stdout + result.stderr)
        return path

    def stop(self, timeout: float = 60) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            # Asked from inside first: nspawn turns SIGTERM into SIGRTMIN+3 for
            # the container's systemd, which a foreign architecture's systemd
            # under qemu-user never receives, so it would wait out the timeout.
            if self.leader is not None:
                try:
                    self.run("systemctl", "poweroff", "--no-block", check=False, timeout=30)
                except (subprocess.TimeoutExpired, OSError, ContainerError):
                    pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
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


@contextlib.contextmanager
def booted(root: Path, name: str, log_dir: Path, step):
    """The container of ``root`` booted (inside the context manager ``step``
    gives), stopped at the end; its folder ``log_dir`` is then removed unless
    ``DAEBUS_TEST_KEEP`` is set."""
    container = Container(root, name, log_dir / "console.log")
    try:
        with step:
            container.boot()
        yield container
    finally:
        container.stop()
        if os.environ.get("DAEBUS_TEST_KEEP"):
            print(f"container root kept in {root}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
