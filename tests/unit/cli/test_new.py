"""daebus new worker: names and the rendered files, without running anything."""

from __future__ import annotations

import re

import pytest

from daebus.cli import new
from daebus.cli.common import CommandError, Exit


@pytest.mark.parametrize("name, module", [("sensors", "sensors"), ("acme-sensors", "acme_sensors"),
                                          ("a1-b2-c3", "a1_b2_c3")])
def test_good_names_and_their_modules(name, module):
    assert new.check_name(name) == module


@pytest.mark.parametrize("name", ["", "x", "Sensors", "2x", "acme_x", "acme--x", "acme-", "a.b", "a/b",
                                  "json", "os", "daebus", "gateway", "import", "x" * 61])
def test_bad_names_are_usage_errors(name):
    with pytest.raises(CommandError) as info:
        new.check_name(name)
    assert info.value.status == Exit.USAGE and "invalid worker name" in str(info.value)


def test_every_placeholder_is_filled(tmp_path):
    files = new.create_worker("acme-probe", tmp_path / "p", "Acme Ltd <dev@acme.example>")
    assert "debian/acme-probe.postinst" in files and "acme_probe.py" in files
    for relative in files:
        text = (tmp_path / "p" / relative).read_text()
        assert not re.search(r"@[A-Z_]+@", text), relative
        assert "@" not in relative
    assert "Maintainer: Acme Ltd <dev@acme.example>" in (tmp_path / "p/debian/control").read_text()
    assert (tmp_path / "p/debian/rules").stat().st_mode & 0o111


def test_the_maintainer_comes_from_the_debian_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("DEBFULLNAME", "Jo Vendor")
    monkeypatch.setenv("DEBEMAIL", "jo@vendor.example")
    new.create_worker("acme-probe", tmp_path / "p")
    assert "-- Jo Vendor <jo@vendor.example>  " in (tmp_path / "p/debian/changelog").read_text()


def test_an_empty_folder_may_be_used(tmp_path):
    (tmp_path / "p").mkdir()
    assert new.create_worker("acme-probe", tmp_path / "p")


def test_templates_are_not_scripts_but_what_they_write_is(tmp_path):
    # A template starting with "#!" would be a non-executable script in the package shipping it.
    for template in new.TEMPLATES.rglob("*" + new.SUFFIX):
        assert not template.read_bytes().startswith(b"#!"), template
    new.create_worker("acme-probe", tmp_path / "p")
    for script in ("debian/rules", "debian/acme-probe.postinst", "debian/acme-probe.prerm",
                   "debian/acme-probe.postrm"):
        assert (tmp_path / "p" / script).read_text().startswith("#!/"), script
