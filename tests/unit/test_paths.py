"""The units and maintainer scripts name the appliance's paths as
daebus/ops/paths.py does (they cannot import it; each says it holds them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daebus.ops import paths

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*ROOT.glob("systemd/*.service"), *ROOT.glob("debian/*.postinst"), *ROOT.glob("debian/*.postrm"),
                *ROOT.glob("debian/*.preinst"), *ROOT.glob("debian/*.prerm"), ROOT / "debian/redis/redis-daebus.conf"])
# A path under one of the appliance's folders: which folder it is under must be one paths.py names.
UNDER = re.compile(r"(/etc/daebus|/etc/redis/redis-daebus|/run/redis-daebus|/usr/share/daebus)[\w./%*@-]*")
KNOWN = (paths.WORKERS_DIR, paths.SECRETS_DIR, paths.ACL_FILE, paths.BUS_CONFIG, paths.BUS_RUNTIME_DIR, paths.SHARE_DIR,
         f"{paths.CONFIG_DIR}/conf.d", f"{paths.CONFIG_DIR}/daebus.toml", paths.CONFIG_DIR)


def _mentions(path: Path) -> list[str]:
    return [m.group(0).rstrip(".") for m in UNDER.finditer(path.read_text())]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_appliance_path_is_one_paths_names(path):
    for mention in _mentions(path):
        assert any(mention == known or mention.startswith(known + "/") for known in KNOWN), \
            f"{path.relative_to(ROOT)} names {mention}, which daebus/ops/paths.py does not"


def test_the_bus_config_and_the_units_use_the_same_socket_acl_and_secrets():
    bus = (ROOT / "debian/redis/redis-daebus.conf").read_text()
    assert re.search(rf"^unixsocket {re.escape(paths.BUS_SOCKET)}$", bus, re.M)
    assert re.search(rf"^aclfile {re.escape(paths.ACL_FILE)}$", bus, re.M)
    worker = (ROOT / "systemd/daebus-worker@.service").read_text()
    assert f"AssertPathExists={paths.WORKERS_DIR}/%i.toml" in worker
    assert f"LoadCredential=redis-password:{paths.SECRETS_DIR}/workers/%i" in worker
    assert f'url = "{paths.BUS_URL}"' in (ROOT / "debian/daebus.postinst").read_text()
