"""``daebus config``: every value in effect with the file and line it came from."""

import json
import re

import pytest

from daebus import cli
from daebus.ops import configspec


@pytest.fixture(autouse=True)
def only_daebus_sections(registry):
    registry.pop("gateway", None)


def test_each_value_shows_its_origin(etc, capsys, monkeypatch):
    (etc / "daebus.toml").write_text('[redis]\nurl = "redis://:secret@10.0.0.2:6379/0"\n\n'
                                     '[service]\nqueue_size = 7\n\n[gateway]\nthreads = 4\n')
    (etc / "conf.d" / "50-vendor.toml").write_text('# vendor\n[service]\nqueue_size = 8\n')
    monkeypatch.setenv("DAEBUS_LOG_LEVEL", "debug")
    assert cli.main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_key = {re.search(r"(\w+\.\w+) = ", line).group(1): line for line in lines}
    assert by_key["service.queue_size"].split() == [f"{etc}/conf.d/50-vendor.toml:3", "service.queue_size", "=",
                                                    "8"]
    assert by_key["redis.url"].split()[0] == f"{etc}/daebus.toml:2"
    assert "secret" not in "\n".join(lines) and "redis://:***@10.0.0.2:6379/0" in by_key["redis.url"]
    assert by_key["log.level"].startswith("environment DAEBUS_LOG_LEVEL")
    assert by_key["service.shutdown_timeout"].split() == ["default", "service.shutdown_timeout", "=", "10.0"]
    assert by_key["gateway.threads"].split()[0] == f"{etc}/daebus.toml:8"
    assert by_key["gateway.threads"].endswith("(not declared here)")


def test_one_key_as_json(etc, capsys):
    (etc / "daebus.toml").write_text('[service]\nqueue_size = 7\n')
    assert cli.main(["config", "service.queue_size", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"section": "service", "key": "queue_size", "value": 7,
                                                    "origin": f"{etc}/daebus.toml:2", "declared": True}]


def test_a_declared_section_shows_secrets_hidden_and_computed_defaults(etc, capsys):
    configspec.register(configspec.Section("acme", "acme", [
        configspec.Key("token", configspec.STR, "", "a secret", secret=True),
        configspec.Key("streams", configspec.INT, None, "streams", shown_default="threads less a reserve"),
    ]))
    (etc / "daebus.toml").write_text('[acme]\ntoken = "0123456789abcdef"\n')
    assert cli.main(["config", "acme"]) == 0
    out = capsys.readouterr().out
    assert "0123456789abcdef" not in out and 'acme.token = "(hidden)"' in out
    assert "acme.streams = (threads less a reserve)" in out


def test_unknown_name_and_bad_file_are_usage_errors(etc, capsys):
    assert cli.main(["config", "nope"]) == 2
    (etc / "daebus.toml").write_text('[service]\nqueue_size = "many"\n')
    assert cli.main(["config"]) == 2
    assert "daebus.toml:2: service.queue_size: expected an integer" in capsys.readouterr().err
