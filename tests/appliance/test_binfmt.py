"""Registering qemu with binfmt_misc: a kernel that refuses is reported
with its reason, never passed over."""

from __future__ import annotations

import pytest

from appliance import nspawn


@pytest.fixture
def binfmt(tmp_path, monkeypatch):
    """A stand-in for /proc/sys/fs/binfmt_misc, and qemu's rule files."""
    folder = tmp_path / "binfmt_misc"
    folder.mkdir()
    rules = tmp_path / "binfmt.d"
    rules.mkdir()
    (rules / "qemu-aarch64.conf").write_text(":qemu-aarch64:M::\\x7fELF:\\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OCF\n")
    monkeypatch.setattr(nspawn, "BINFMT", folder)
    monkeypatch.setattr(nspawn, "BINFMT_RULES", rules)
    monkeypatch.setattr(nspawn, "ensure_host_tools", lambda tools=None: None)
    return folder


def test_the_rule_is_written_to_register(binfmt):
    (binfmt / "register").write_text("")
    nspawn.register_binfmt("arm64")
    assert (binfmt / "register").read_text().startswith(":qemu-aarch64:M::")


def test_a_refusing_kernel_fails_with_its_reason(binfmt):
    (binfmt / "register").mkdir()  # writing to it fails, as a kernel that refuses makes it
    with pytest.raises(nspawn.ContainerError, match="the kernel refused the binfmt_misc rule for qemu-aarch64"):
        nspawn.register_binfmt("arm64")


def test_binfmt_misc_that_cannot_be_mounted_fails_with_the_reason(binfmt, monkeypatch):
    monkeypatch.setattr(nspawn, "BINFMT", binfmt / "missing")  # not mounted: no register file
    with pytest.raises(nspawn.ContainerError, match="mounting binfmt_misc on .* failed"):
        nspawn.register_binfmt("arm64")
