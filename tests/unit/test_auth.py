"""Credentials from the config and refusals turned into AccessDenied."""

from __future__ import annotations

import pytest
import redis

from daebus.bus import auth
from daebus.errors import AccessDenied, ConfigError


@pytest.fixture
def config(tmp_path, monkeypatch):
    def write(text: str):
        path = tmp_path / "daebus.toml"
        path.write_text(text)
        monkeypatch.setenv("DAEBUS_CONFIG", str(path))
        return path
    for name in ("DAEBUS_REDIS_USERNAME", "DAEBUS_REDIS_PASSWORD_FILE", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    return write


def secret(path, text="s3cret", mode=0o600):
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def test_configured_user_and_password_file(config, tmp_path):
    config(f'[redis]\nusername = "gateway"\npassword_file = "{secret(tmp_path / "pw")}"\n')
    assert auth.credentials("redis://127.0.0.1:6379/0") == {"username": "gateway", "password": "s3cret"}
    assert auth.username("unix:///run/redis.sock") == "gateway"


def test_the_url_wins(config, tmp_path):
    config(f'[redis]\nusername = "gateway"\npassword_file = "{secret(tmp_path / "pw")}"\n')
    assert auth.credentials("redis://admin:other@127.0.0.1/0") == {}
    # A user in the URL, its password from the file.
    assert auth.credentials("redis://admin@127.0.0.1/0") == {"password": "s3cret"}
    assert auth.username("redis://admin@127.0.0.1/0") == "admin"


def test_nothing_configured_means_no_credentials(config):
    config("")
    assert auth.credentials("redis://127.0.0.1/0") == {}
    assert auth.username("redis://127.0.0.1/0") is None


def test_a_bare_name_is_a_systemd_credential(config, tmp_path, monkeypatch):
    secret(tmp_path / "redis-password", "from-systemd", 0o400)
    config('[redis]\nusername = "worker:x"\npassword_file = "redis-password"\n')
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert auth.credentials("redis://h/0")["password"] == "from-systemd"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError, match=r"systemd credential.*CREDENTIALS_DIRECTORY is unset"):
        auth.credentials("redis://h/0")


def test_password_file_problems_are_config_errors(config, tmp_path):
    config(f'[redis]\npassword_file = "{tmp_path / "missing"}"\n')
    with pytest.raises(ConfigError, match="password_file: cannot read"):
        auth.credentials("redis://h/0")
    config(f'[redis]\npassword_file = "{secret(tmp_path / "open", mode=0o644)}"\n')
    with pytest.raises(ConfigError, match=r"open to every user \(mode 0644\)"):
        auth.credentials("redis://h/0")
    config(f'[redis]\npassword_file = "{secret(tmp_path / "empty", text="")}"\n')
    with pytest.raises(ConfigError, match="is empty"):
        auth.credentials("redis://h/0")


def test_the_password_is_never_shown(config, tmp_path, capsys):
    from daebus.cli import main

    config(f'[redis]\nusername = "gateway"\npassword_file = "{secret(tmp_path / "pw")}"\n')
    assert main(["config", "redis"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "redis.username = \"gateway\"" in out


@pytest.mark.parametrize("exc, kind", [
    (redis.AuthenticationError("invalid username-password pair or user is disabled."), "WRONGPASS"),
    (redis.AuthenticationError("Authentication required."), "NOAUTH"),
    (redis.exceptions.NoPermissionError("this user has no permissions to run the 'keys' command"), "NOPERM"),
])
def test_refusals_become_access_denied(exc, kind):
    denied = auth.refusal(exc, "gateway")
    assert isinstance(denied, AccessDenied) and denied.code == "access_denied"
    assert f"Redis refused user 'gateway' ({kind})" in str(denied)


def test_other_errors_are_not_refusals():
    assert auth.refusal(redis.ConnectionError("Connection refused")) is None
    assert auth.refusal(redis.ResponseError("WRONGTYPE Operation against a key")) is None
    assert auth.refusal(ValueError("NOPERM")) is None
