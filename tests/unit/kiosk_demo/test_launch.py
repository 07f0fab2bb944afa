"""The launcher's pieces that need no processes (the whole launcher runs in
tests/browser/test_launch.py)."""

import tomllib

from gateway.settings import load as load_gateway_settings
from kiosk_demo import launch


def test_the_generated_config_is_valid_and_matches_the_device(tmp_path, monkeypatch):
    text = launch.gateway_config("redis://127.0.0.1:7000/0", 8123)
    config = tmp_path / "daebus.toml"
    config.write_text(text)
    monkeypatch.setenv("DAEBUS_CONFIG", str(config))
    monkeypatch.delenv("DAEBUS_REDIS_URL", raising=False)
    settings = load_gateway_settings()
    assert settings.bind == ("127.0.0.1:8123",)
    assert settings.redis_url == "redis://127.0.0.1:7000/0"
    assert settings.static_dir == str(launch.STATIC_DIR)
    device = tomllib.loads(launch.DEVICE_GATEWAY_CONFIG.read_text())["gateway"]
    assert list(settings.expose_actions) == device["expose_actions"]
    assert list(settings.expose_channels) == device["expose_channels"]


def test_extra_keys_override(tmp_path):
    text = launch.gateway_config("redis://x", 1, threads=4, static_dir="/srv/page")
    gateway = tomllib.loads(text)["gateway"]
    assert gateway["threads"] == 4 and gateway["static_dir"] == "/srv/page"


def test_child_environment_points_at_the_demo(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    env = launch.child_env("redis://127.0.0.1:1/0", tmp_path / "daebus.toml")
    assert env["PYTHONPATH"].split(":") == [str(launch.ROOT), "/elsewhere"]
    assert env["DAEBUS_REDIS_URL"] == "redis://127.0.0.1:1/0"
    assert env["DAEBUS_CONFIG"] == str(tmp_path / "daebus.toml")
    assert "JOURNAL_STREAM" not in env


def test_a_taken_port_is_noticed():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert launch.port_in_use(sock.getsockname()[1])
    assert not launch.port_in_use(launch.free_port())
