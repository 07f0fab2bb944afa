"""Fixtures shared by the unit tests."""

import pytest

from daebus.ops import configspec


@pytest.fixture
def etc(tmp_path, monkeypatch):
    main = tmp_path / "daebus.toml"
    (tmp_path / "conf.d").mkdir()
    monkeypatch.setenv("DAEBUS_CONFIG", str(main))
    for name in ("DAEBUS_REDIS_URL", "DAEBUS_LOG_LEVEL", "DAEBUS_SHUTDOWN_TIMEOUT", "DAEBUS_QUEUE_SIZE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def registry(monkeypatch):
    """The registered sections, restored after the test."""
    monkeypatch.setattr(configspec, "REGISTRY", dict(configspec.REGISTRY))
    return configspec.REGISTRY
