"""The [gateway] section: defaults, files, overrides and file:line errors."""

import pytest

from daebus.errors import ConfigError
from gateway import app as gateway_app
from gateway import create_app, get_gateway
from gateway.settings import Settings, load


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "daebus.toml"
    monkeypatch.setenv("DAEBUS_CONFIG", str(path))

    def write(text: str):
        path.write_text(text)
        return path

    return write


def test_defaults_without_files():
    settings = load()
    assert settings.bind == ("127.0.0.1:8080",)
    assert settings.threads >= 16 and settings.max_streams < settings.threads
    assert settings.graceful_timeout <= 5
    assert settings.expose_actions == () and settings.expose_channels == ()
    assert settings.token == "" and settings.cors_origins == ()


def test_values_come_from_the_file_and_conf_d_overrides(config_file, tmp_path):
    config_file('[redis]\nurl = "redis://10.1.1.1:6380/2"\n\n'
                '[gateway]\nthreads = 20\nexpose_actions = ["clock/*"]\nbind = "127.0.0.1:9000"\n')
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-vendor.toml").write_text('[gateway]\nthreads = 40\n')
    settings = load()
    assert settings.threads == 40
    assert settings.expose_actions == ("clock/*",)
    assert settings.bind == ("127.0.0.1:9000",)  # a single string is a list of one
    assert settings.redis_url == "redis://10.1.1.1:6380/2"


def test_the_event_hub_notices_a_hung_redis_as_the_redis_section_says(config_file, monkeypatch):
    config_file('[redis]\nurl = "redis://127.0.0.1:1"\nsocket_timeout = 3.0\nhealth_check_interval = 2.0\n\n'
                '[gateway]\nexpose_actions = ["clock/*"]\n')
    settings = load()
    assert (settings.socket_timeout, settings.health_check_interval) == (3.0, 2.0)
    made = {}

    class Hub:
        def __init__(self, url, exposure, **kwargs):
            made.update(kwargs)

        def start(self):
            return self

    monkeypatch.setattr(gateway_app, "EventHub", Hub)
    get_gateway(create_app(settings)).start()
    assert (made["socket_timeout"], made["health_interval"]) == (3.0, 2.0)


def test_expose_lists_add_up_across_files(config_file, tmp_path):
    config_file('[gateway]\nexpose_actions = ["clock/*"]\nexpose_channels = "sensors.*"\n')
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "50-acme.toml").write_text('[gateway]\nexpose_actions = ["acme/status"]\n')
    (tmp_path / "conf.d" / "60-admin.toml").write_text('[gateway]\nexpose_actions = ["display/*"]\n')
    settings = load()
    assert settings.expose_actions == ("clock/*", "acme/status", "display/*")
    assert settings.expose_channels == ("sensors.*",)


def test_a_bad_expose_list_names_its_own_file(config_file, tmp_path):
    config_file('[gateway]\nexpose_actions = ["clock/*"]\n')
    (tmp_path / "conf.d").mkdir()
    bad = tmp_path / "conf.d" / "50-acme.toml"
    bad.write_text('[gateway]\nexpose_actions = [1]\n')
    with pytest.raises(ConfigError, match=f"^{bad}:2: gateway.expose_actions"):
        load()


def test_max_streams_follows_threads_unless_set(config_file):
    assert load({"threads": 16}).max_streams == 12
    assert load({"threads": 4}).max_streams == 2
    assert load({"threads": 64}).max_streams == 56
    assert load({"threads": 16, "max_streams": 15}).max_streams == 15


def test_overrides_win_over_files(config_file):
    config_file('[gateway]\nthreads = 20\n')
    assert load({"threads": 24, "redis_url": "redis://x:1/0"}).threads == 24
    assert load({"redis_url": "redis://x:1/0"}).redis_url == "redis://x:1/0"


def test_unknown_key_names_file_and_line(config_file):
    path = config_file('[redis]\nurl = "redis://localhost"\n\n[gateway]\nthreads = 20\nbnd = "x"\n')
    with pytest.raises(ConfigError, match=rf"^{path}:6: unknown key 'bnd' in \[gateway\]"):
        load()


def test_wrong_type_names_file_and_line(config_file):
    path = config_file('[gateway]\n\nheartbeat = "often"\n')
    with pytest.raises(ConfigError, match=rf"^{path}:3: gateway.heartbeat: expected a number"):
        load()


@pytest.mark.parametrize("text, message", [
    ("trust_loopback = 1", "expected true or false"),
    ("expose_actions = [1]", "expected a list of strings"),
    ("threads = 1", "threads: must be at least 2"),
    ("threads = 8\nmax_streams = 8", "max_streams: must be less than threads"),
    ("default_timeout = 10\nmax_timeout = 5", "max_timeout: must be at least default_timeout"),
    ("heartbeat = 0", "heartbeat: must be more than 0"),
    ('expose_actions = ["clock"]', "not a 'service/action' pattern"),
    ('cors_origins = ["kiosk.local"]', "is not an origin"),
    ('token = "short"', "at least 16 characters"),
    ('static_dir = "/nonexistent/static"', "is not a directory"),
])
def test_invalid_values_are_refused(config_file, text, message):
    config_file(f"[gateway]\n{text}\n")
    with pytest.raises(ConfigError, match=message):
        load()


def test_listening_beyond_loopback_requires_a_token(config_file):
    path = config_file('[gateway]\nbind = ["127.0.0.1:8080", "0.0.0.0:8080"]\n')
    with pytest.raises(ConfigError, match=rf"^{path}:2: gateway.bind: 0.0.0.0:8080 listens beyond "
                                          r"loopback: set gateway.token"):
        load()
    config_file('[gateway]\nbind = "0.0.0.0:8080"\ntoken = "0123456789abcdef0"\n')
    assert load().bind == ("0.0.0.0:8080",)


def test_token_file_is_read(config_file, tmp_path):
    (tmp_path / "token").write_text("0123456789abcdef-from-file\n")
    (tmp_path / "token").chmod(0o640)   # the gateway's group may read it
    config_file(f'[gateway]\nbind = "[::]:8080"\ntoken_file = "{tmp_path / "token"}"\n')
    assert load().token == "0123456789abcdef-from-file"


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o602, 0o666])
def test_a_token_file_open_to_every_user_is_refused(config_file, tmp_path, mode):
    (tmp_path / "token").write_text("0123456789abcdef-from-file\n")
    (tmp_path / "token").chmod(mode)
    path = config_file(f'[gateway]\nbind = "[::]:8080"\ntoken_file = "{tmp_path / "token"}"\n')
    with pytest.raises(ConfigError, match=rf"^{path}:3: gateway.token_file: .*token is open to every "
                                          rf"user \(mode 0{mode:o}\).*chmod o-rwx"):
        load()


def test_unreadable_token_file_is_an_error(config_file, tmp_path):
    path = config_file(f'[gateway]\ntoken_file = "{tmp_path / "missing"}"\n')
    with pytest.raises(ConfigError, match=rf"^{path}:2: gateway.token_file: cannot read"):
        load()


def test_errors_in_overrides_say_config():
    with pytest.raises(ConfigError, match=r"^config: gateway.threads: expected an integer"):
        load({"threads": "many"})


def test_settings_name_the_file_to_edit(config_file):
    path = config_file("[gateway]\n")
    assert load().config_file == f"{path} or a drop-in in {path.parent / 'conf.d'}"
    assert Settings().config_file == "/etc/daebus/daebus.toml"
