"""The shipped units' sandbox, as ``systemd-analyze security`` scores it
(offline, from the unit files; the appliance tier scores the installed ones)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
# The scores must never rise: lower is better. Measured offline on bookworm's
# systemd 252 when these settings were made (the gateway was 1.8 and the
# worker 1.8 before).
BOUNDS = {"daebus-gateway.service": 1.5, "daebus-worker@.service": 1.5,
          # The bus's Redis: below Debian's redis-server@.service (1.2).
          "daebus-redis.service": 1.1,
          # The fleet bridge: Redis and outgoing TCP to the broker only.
          "daebus-bridge.service": 1.2}


def exposure(unit: str) -> float:
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--root=/", str(UNITS / unit)],
                         capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert found, out.stdout + out.stderr
    return float(found.group(1))


@pytest.mark.parametrize("unit", sorted(BOUNDS))
def test_exposure_does_not_get_worse(unit):
    assert shutil.which("systemd-analyze"), "systemd-analyze is part of systemd, installed on Debian"
    assert exposure(unit) <= BOUNDS[unit]


def test_the_hardening_settings_are_there():
    worker = (UNITS / "daebus-worker@.service").read_text()
    gateway = (UNITS / "daebus-gateway.service").read_text()
    assert "\nProtectProc=invisible\n" in worker and "\nProtectProc=invisible\n" in gateway
    assert "\nStateDirectoryMode=0750\n" in worker
    assert "\nWatchdogSec=" in worker and "\nWatchdogSec=" in gateway
    bridge = (UNITS / "daebus-bridge.service").read_text()
    assert "\nType=notify\n" in bridge and "\nWatchdogSec=" in bridge and "\nProtectProc=invisible\n" in bridge
