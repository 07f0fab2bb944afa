"""The maintainer scripts handle services as Debian's own packages do: only
through deb-systemd-helper and deb-systemd-invoke (which honour policy-rc.d
and an administrator's disabled and masked units), and they never fail
because a unit did."""

import re
import subprocess
from pathlib import Path

import pytest

DEBIAN = Path(__file__).resolve().parents[3] / "debian"
SCRIPTS = sorted(p for p in DEBIAN.iterdir() if p.suffix in (".preinst", ".postinst", ".prerm", ".postrm"))
SERVICE_CALL = re.compile(r"^\s*(deb-systemd-invoke|deb-systemd-helper)\b(.*)$")


def commands(script: Path) -> list[str]:
    """The script's lines that are shell, not a here-document's text."""
    lines, heredoc = [], None
    for line in script.read_text().splitlines():
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        match = re.search(r"<<-?\s*'?(\w+)'?", line)
        if match:
            heredoc = match.group(1)
        if not line.lstrip().startswith("#"):
            lines.append(line)
    return lines


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_as_posix_shell(script):
    assert script.read_text().startswith("#!/bin/sh\nset -e\n")
    done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_services_only_through_the_debian_helpers(script):
    for line in commands(script):
        # systemctl for daemon-reload only; never the demo's own command.
        if re.search(r"\bsystemctl\b", line):
            assert "daemon-reload" in line, line
        assert "daebus-kiosk-demo enable" not in line and "daebus-kiosk-demo disable" not in line, line
        match = SERVICE_CALL.match(line)
        if match:
            # A unit that fails to start or stop is that unit's failure.
            assert line.rstrip().endswith("|| true"), line


def test_the_demo_units_are_installed_as_instances_of_the_template():
    links = (DEBIAN / "daebus-kiosk-demo.links").read_text().split("\n")
    units = {line.split()[1].rsplit("/", 1)[1] for line in links if line.strip()}
    for script in ("postinst", "prerm", "postrm"):
        text = (DEBIAN / f"daebus-kiosk-demo.{script}").read_text()
        named = set(re.search(r'^UNITS="([^"]+)"', text, re.M).group(1).split())
        assert named == units, script


def test_one_restart_per_transaction_through_the_trigger():
    assert (DEBIAN / "daebus.triggers").read_text().split() == ["interest-noawait", "daebus-restart"]
    postinst = (DEBIAN / "daebus.postinst").read_text()
    assert "dpkg-trigger --no-await daebus-restart" in postinst
    assert '"$1" = triggered' in postinst
    assert "dpkg-trigger --no-await daebus-restart" in (DEBIAN / "daebus-kiosk-demo.postinst").read_text()
    rules = (DEBIAN / "rules").read_text()
    for line in rules.splitlines():
        if line.split()[:2] == ["dh_installsystemd", "-pdaebus"]:
            assert "--no-restart-after-upgrade" in line, line
