"""The Debian packages under test, built with ``make deb``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from appliance.nspawn import PATH, ensure_host_tools

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("python3-daebus", "daebus", "daebus-kiosk-demo", "daebus-bridge")
# What docs/appliance.md tells an administrator to do to add the example worker.
ADD_EXAMPLE_WORKER = """
install -d /usr/local/lib/daebus-example
cp /usr/share/doc/daebus/examples/example.py /usr/local/lib/daebus-example/
cp /usr/share/doc/daebus/examples/example.toml /etc/daebus/workers/example.toml
printf '[gateway]\\nexpose_actions = ["example/*"]\\n' > /etc/daebus/conf.d/50-example.toml
systemctl restart daebus-gateway.service
systemctl enable --now daebus-worker@example
"""


def version_of(source: Path) -> str:
    return re.search(r'__version__ = "([^"]+)"', (source / "daebus/__init__.py").read_text()).group(1)


def make_debs(source: Path = ROOT, names: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """``make deb`` in ``source``: the path of each package's .deb (``names``:
    those an older tree built, e.g. before it had the bridge's)."""
    ensure_host_tools()
    result = subprocess.run(["make", "-C", str(source), "deb"], capture_output=True, text=True,
                            env={"PATH": PATH, "LC_ALL": "C.UTF-8"}, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    debs = {name: source / "dist" / f"{name}_{version_of(source)}_all.deb" for name in names}
    for path in debs.values():
        assert path.is_file(), f"make deb did not produce {path}"
    return debs


def make_versioned_debs(source: Path, dest: Path, version: str, note: str) -> dict[str, Path]:
    """The packages of ``source`` built as ``version``: a copy in ``dest``
    whose version and changelog say so (``note`` is the changelog's line),
    and whose shipped example configurations changed, as a new release's do."""
    copy = dest / "daebus"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "__pycache__", "*.egg-info"))
    init = copy / "daebus/__init__.py"
    old = version_of(copy)
    init.write_text(init.read_text().replace(f'__version__ = "{old}"', f'__version__ = "{version}"'))
    changelog = copy / "debian/changelog"
    changelog.write_text(f"daebus ({version}) bookworm; urgency=medium\n\n  * {note}\n\n -- Daebus Maintainers "
                         f"<maintainers@daebus.example.org>  Tue, 01 Dec 2026 12:00:00 +0000\n\n"
                         + changelog.read_text())
    for shipped in ("debian/examples/daebus.toml", "kiosk_demo/device/gateway.toml"):
        path = copy / shipped
        path.write_text(path.read_text() + f"# Changed in {version}.\n")
    return make_debs(copy)
