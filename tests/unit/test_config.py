import pytest

from daebus import ConfigError
from daebus.ops import config, configspec


def test_defaults_without_files(etc):
    settings = config.load()
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.shutdown_timeout == 10.0 and settings.queue_size == 100


def test_precedence_arguments_env_conf_d_main_defaults(etc, monkeypatch):
    (etc / "daebus.toml").write_text('[redis]\nurl = "redis://main/0"\n[service]\nqueue_size = 5\n'
                                     'shutdown_timeout = 3\n[log]\nlevel = "debug"\n')
    (etc / "conf.d" / "10-a.toml").write_text('[redis]\nurl = "redis://a/0"\n[service]\nqueue_size = 6\n')
    (etc / "conf.d" / "20-b.toml").write_text('[redis]\nurl = "unix:///run/redis.sock?db=2"\n')
    settings = config.load()
    assert settings.redis_url == "unix:///run/redis.sock?db=2"
    assert settings.queue_size == 6 and settings.shutdown_timeout == 3.0 and settings.log_level == "debug"
    monkeypatch.setenv("DAEBUS_REDIS_URL", "rediss://:secret@env:6380/1")
    monkeypatch.setenv("DAEBUS_QUEUE_SIZE", "9")
    settings = config.load()
    assert settings.redis_url == "rediss://:secret@env:6380/1" and settings.queue_size == 9
    assert config.load(redis_url="redis://arg/0").redis_url == "redis://arg/0"


def test_syntax_error_names_file_and_line(etc):
    path = etc / "daebus.toml"
    path.write_text('[redis]\nurl = "redis://x"\nbroken = \n')
    with pytest.raises(ConfigError) as info:
        config.load()
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "\n" not in message


def test_unknown_key_names_file_and_line(etc):
    path = etc / "conf.d" / "50-vendor.toml"
    path.write_text('# vendor settings\n[service]\nshutdown_timeout = 4\nshutdown_timout = 5\n')
    with pytest.raises(ConfigError, match=rf"^{path}:4: unknown key 'shutdown_timout' in \[service\]"):
        config.load()


def test_unknown_section_and_wrong_type(etc):
    path = etc / "daebus.toml"
    path.write_text('[redsi]\nurl = "x"\n')
    with pytest.raises(ConfigError, match=r"daebus.toml:1: unknown section \[redsi\]"):
        config.load()
    path.write_text('[service]\nqueue_size = "many"\n')
    with pytest.raises(ConfigError, match=r"daebus.toml:2: service.queue_size: expected an integer"):
        config.load()


def test_log_level_must_be_a_known_level(etc, monkeypatch):
    (etc / "daebus.toml").write_text('[log]\nlevel = "loud"\n')
    with pytest.raises(ConfigError, match=r"daebus.toml:2: log.level: expected one of"):
        config.load()
    (etc / "daebus.toml").write_text('[log]\nlevel = "WARNING"\n')
    assert config.load().log_level == "WARNING"
    monkeypatch.setenv("DAEBUS_LOG_LEVEL", "chatty")
    with pytest.raises(ConfigError, match="DAEBUS_LOG_LEVEL"):
        config.load()


def test_a_section_nobody_here_declared_is_left_to_its_program(etc, registry):
    registry.pop("gateway", None)
    (etc / "daebus.toml").write_text('[gateway]\nbind = "127.0.0.1:8080"\n[redis]\nurl = "redis://x/0"\n')
    assert config.load().redis_url == "redis://x/0"


def test_a_near_miss_of_a_declared_section_is_refused(etc, registry):
    registry.pop("gateway", None)
    (etc / "daebus.toml").write_text('[log]\nlevel = "info"\n\n[servcie]\nqueue_size = 3\n')
    with pytest.raises(ConfigError, match=r"daebus.toml:4: unknown section \[servcie\] .*did you mean \[service\]"):
        config.load()


def test_a_program_declares_its_own_section(etc, registry):
    section = configspec.register(configspec.Section("acme", "the acme worker", [
        configspec.Key("rate", configspec.FLOAT, 1.0, "samples per second", check=configspec.more_than(0)),
        configspec.Key("ports", configspec.LIST, (), "serial ports", additive=True),
    ]))
    (etc / "daebus.toml").write_text('[acme]\nports = "/dev/ttyUSB0"\n')
    (etc / "conf.d" / "50-x.toml").write_text('[acme]\n\nports = ["/dev/ttyUSB1"]\nrate = 2\n')
    values = config.resolve((section,))["acme"]
    assert values["rate"] == configspec.Value(2.0, f"{etc / 'conf.d' / '50-x.toml'}:4")
    assert values["ports"].value == ("/dev/ttyUSB0", "/dev/ttyUSB1")
    assert values["ports"].origin == f"{etc / 'daebus.toml'}:2, {etc / 'conf.d' / '50-x.toml'}:3"
    (etc / "conf.d" / "50-x.toml").write_text('[acme]\nrate = 0\n')
    with pytest.raises(ConfigError, match=r"50-x.toml:2: acme.rate: must be more than 0"):
        config.resolve((section,))


def test_every_value_knows_where_it_came_from(etc, monkeypatch):
    (etc / "daebus.toml").write_text('[service]\n\nqueue_size = 5\n')
    monkeypatch.setenv("DAEBUS_LOG_LEVEL", "debug")
    origins = config.load(shutdown_timeout=2).origins
    assert origins["service.queue_size"] == f"{etc / 'daebus.toml'}:3"
    assert origins["log.level"] == "environment DAEBUS_LOG_LEVEL"
    assert origins["service.shutdown_timeout"] == "argument"
    assert origins["redis.url"] == "default"


def test_one_helper_finds_a_keys_line():
    text = '# c\napp = "x"\n[redis]\n"url" = 1\n[env]\nA = "1"\n'
    assert configspec.line_of(text, None, "app") == 2
    assert configspec.line_of(text, "redis", "url") == 4
    assert configspec.line_of(text, "env") == 5 == configspec.line_of(text, None, "env")
    assert configspec.line_of(text, "env", "A") == 6
    assert configspec.line_of(text, "redis", "missing") == 0


def test_bad_environment_value_is_a_clear_error(etc, monkeypatch):
    monkeypatch.setenv("DAEBUS_SHUTDOWN_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="DAEBUS_SHUTDOWN_TIMEOUT"):
        config.load()


def test_redis_url_from_host_and_port():
    assert config.redis_url_from(None, "10.0.0.2", 6380) == "redis://10.0.0.2:6380/0"
    assert config.redis_url_from("redis://u/1", "ignored", None) == "redis://u/1"
    assert config.redis_url_from(None, None, None) is None


@pytest.mark.parametrize("text, message", [
    ('url = "redis://x"\n', r"daebus.toml:1: 'url' is outside any section"),
    ('redis = "redis://x"\n', r"daebus.toml:1: redis must be a \[redis\] table"),
    ('[service]\nqueue_size = -1\n', r"daebus.toml:2: service.queue_size: must be at least 0"),
    ('[log]\nlevel = 3\n', r"daebus.toml:2: log.level: expected a string, got int 3"),
    ('\xff\xfe', r"daebus.toml: not UTF-8 text"),
])
def test_garbage_in_a_file_is_one_clear_error(etc, text, message):
    (etc / "daebus.toml").write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError, match=message):
        config.load()
