"""The daebus command: worker files, app specs, exit codes and messages."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from daebus import Daebus, cli
from daebus.ops import logs
from daebus.bus import registry
from daebus.cli import common, services as services_cmd
from daebus.errors import ConfigError
from daebus.service.workers import load_app, parse_worker, read_worker, split_spec

APP_SOURCE = """
from daebus import Daebus
app = Daebus(__name__)

@app.action("ping")
def ping():
    return {"pong": True}
"""


@pytest.fixture
def module_file(tmp_path, monkeypatch):
    """Write a uniquely named module; forget it (and its folder) afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    written = []

    def write(source: str, stem: str | None = None) -> Path:
        stem = stem or f"worker_{uuid.uuid4().hex[:8]}"
        path = tmp_path / f"{stem}.py"
        path.write_text(textwrap.dedent(source))
        written.append(stem)
        return path

    yield write
    for stem in written:
        for name in (stem, f"daebus_app_{stem}"):
            sys.modules.pop(name, None)


@pytest.fixture
def ran(monkeypatch):
    """Replace Daebus.run: record what would have run instead of serving."""
    calls = []

    def fake_run(self, service=None, debug=False, redis_url=None, **kwargs):
        calls.append({"app": self, "service": service, "debug": debug, "redis_url": redis_url})

    monkeypatch.setattr(Daebus, "run", fake_run)
    return calls


def worker_file(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# -- app specs -----------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("/opt/x/worker.py", ("file", "/opt/x/worker.py", None)),
    ("/opt/x/worker.py:app", ("file", "/opt/x/worker.py", "app")),
    ("worker.py", ("file", "worker.py", None)),
    ("vendor.worker", ("module", "vendor.worker", None)),
    ("vendor.worker:main_app", ("module", "vendor.worker", "main_app")),
    ("./bin/tool", ("file", "./bin/tool", None)),
])
def test_split_spec(spec, expected):
    assert split_spec(spec) == expected


@pytest.mark.parametrize("spec", ["vendor worker", ":app", "1vendor"])
def test_split_spec_rejects_what_is_neither_file_nor_module(spec):
    with pytest.raises(ConfigError):
        split_spec(spec)


def test_load_app_from_a_file_finds_its_only_app(module_file):
    path = module_file("""
        from daebus import Daebus
        service = Daebus("sensors")
    """)
    app = load_app(str(path))
    assert isinstance(app, Daebus) and app.name == "sensors"


def test_load_app_prefers_the_name_app_among_several(module_file):
    path = module_file("""
        from daebus import Daebus
        other = Daebus("other")
        app = Daebus("main")
    """)
    assert load_app(str(path)).name == "main"


def test_load_app_with_several_apps_asks_for_a_name(module_file):
    path = module_file("""
        from daebus import Daebus
        one = Daebus("one")
        two = Daebus("two")
    """)
    with pytest.raises(ConfigError, match=r"several Daebus apps \(one, two\).*:<name>"):
        load_app(str(path))
    assert load_app(f"{path}:two").name == "two"


def test_load_app_errors_name_the_file(module_file, tmp_path):
    empty = module_file("x = 1\n")
    with pytest.raises(ConfigError, match="defines no Daebus app"):
        load_app(str(empty))
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        load_app(f"{empty}:nope")
    with pytest.raises(ConfigError, match=r":x is a int, not a Daebus app"):
        load_app(f"{empty}:x")
    with pytest.raises(ConfigError, match="no such file"):
        load_app(str(tmp_path / "missing.py"))


def test_load_app_from_a_module(module_file, monkeypatch, tmp_path):
    stem = f"vendor_{uuid.uuid4().hex[:8]}"
    module_file(APP_SOURCE, stem)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_app(f"{stem}:app").actions.keys() == {"ping"}
    assert load_app(stem).actions.keys() == {"ping"}


def test_missing_module_is_a_config_error_but_a_broken_import_is_not(module_file, monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="no module named 'no_such_vendor_module'"):
        load_app("no_such_vendor_module:app")
    stem = f"broken_{uuid.uuid4().hex[:8]}"
    module_file("import no_such_dependency_xyz\n", stem)
    monkeypatch.syspath_prepend(str(tmp_path))
    # The vendor's own bug keeps its traceback.
    with pytest.raises(ModuleNotFoundError):
        load_app(stem)


def test_a_file_named_like_an_imported_module_does_not_replace_it(module_file):
    import json as real_json

    path = module_file(APP_SOURCE, "json")
    assert load_app(str(path)).actions.keys() == {"ping"}
    assert sys.modules["json"] is real_json


def test_a_file_can_import_its_siblings(module_file):
    helper = f"helper_{uuid.uuid4().hex[:8]}"
    module_file("GREETING = 'hi'\n", helper)
    path = module_file(f"""
        from daebus import Daebus
        from {helper} import GREETING
        app = Daebus(GREETING)
    """)
    assert load_app(str(path)).name == "hi"


# -- worker files ----------------------------------------------------------------

def test_minimal_worker_file_defaults_the_service_to_its_name(tmp_path):
    worker_file(tmp_path, "sensors", 'app = "/usr/lib/acme/sensors.py"\n')
    config = read_worker("sensors", tmp_path)
    assert config.app == "/usr/lib/acme/sensors.py"
    assert config.service == "sensors"
    assert config.python_path == () and config.env == {}


def test_full_worker_file(tmp_path):
    worker_file(tmp_path, "sensors", """
        app = "acme.sensors:app"
        service = "acme-sensors"
        python_path = "/usr/lib/acme"

        [env]
        ACME_PORT = "/dev/ttyUSB0"
        ACME_RATE = 5
        ACME_DEBUG = true
    """)
    config = read_worker("sensors", tmp_path)
    assert config.service == "acme-sensors"
    assert config.python_path == ("/usr/lib/acme",)
    assert config.env == {"ACME_PORT": "/dev/ttyUSB0", "ACME_RATE": "5", "ACME_DEBUG": "1"}


@pytest.mark.parametrize("text, message", [
    ('app = "/a.py"\nservce = "x"\n', r"x\.toml:2: unknown key 'servce' \(known: app, service, python_path, listen, env\)"),
    ('service = "x"\n', r"x\.toml: missing 'app'"),
    ('app = "worker.py"\n', r"x\.toml:1: app: 'worker.py' must be an absolute path"),
    ('app = 3\n', r"x\.toml:1: app: expected a non-empty string"),
    ('app = "a b"\n', r"x\.toml:1: app: .*neither a \.py file nor a module"),
    ('app = "m:app"\nservice = ""\n', r"x\.toml:2: service: expected a non-empty string"),
    ('app = "m:app"\npython_path = ["lib"]\n', r"x\.toml:2: python_path: 'lib' must be an absolute path"),
    ('app = "m:app"\npython_path = 4\n', r"x\.toml:2: python_path: expected a folder"),
    ('app = "m:app"\nenv = "A=1"\n', r"x\.toml:2: env: expected a table"),
    ('app = "m:app"\n\n[env]\nGOOD = "1"\nBAD = [1]\n', r"x\.toml:5: env\.BAD: expected a string, got list"),
    ('app = "m:app"\n[env]\n"NOT-OK" = "1"\n', r"x\.toml:3: env: 'NOT-OK' is not a valid"),
    ('app = "m:app"\nservice = \n', r"x\.toml: invalid TOML: .*line 2"),
])
def test_worker_file_errors_name_file_and_line(tmp_path, text, message):
    worker_file(tmp_path, "x", text)
    with pytest.raises(ConfigError, match=message):
        read_worker("x", tmp_path)


def test_missing_worker_file_says_how_to_define_it(tmp_path):
    with pytest.raises(ConfigError, match=r"ghost\.toml: no such worker file"):
        read_worker("ghost", tmp_path)


@pytest.mark.parametrize("name", ["../etc/passwd", "", ".hidden", "a/b", "x.toml", "sp ace"])
def test_worker_names_are_plain_file_names(tmp_path, name):
    with pytest.raises(ConfigError, match="invalid worker name"):
        read_worker(name, tmp_path)


def test_workers_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DAEBUS_WORKERS_DIR", str(tmp_path))
    worker_file(tmp_path, "here", 'app = "m:app"\n')
    assert read_worker("here").path == tmp_path / "here.toml"


def test_parse_worker_accepts_text_directly():
    config = parse_worker('app = "m:app"\n', Path("/etc/daebus/workers/w.toml"), "w")
    assert config.service == "w"


# -- the command -------------------------------------------------------------------

def test_run_loads_the_file_and_runs_its_app(module_file, ran):
    path = module_file(APP_SOURCE)
    assert cli.main(["run", str(path), "--service", "pinger", "--redis-url", "redis://r:1/0"]) == 0
    [call] = ran
    assert call["app"].actions.keys() == {"ping"}
    assert call["service"] == "pinger" and call["redis_url"] == "redis://r:1/0"


def test_worker_applies_env_and_python_path_before_loading(tmp_path, monkeypatch, module_file, ran):
    monkeypatch.setenv("DAEBUS_WORKERS_DIR", str(tmp_path))
    monkeypatch.setenv("CLI_TEST_GREETING", "placeholder")  # restored after the test
    lib = tmp_path / "lib"
    lib.mkdir()
    stem = f"greeter_{uuid.uuid4().hex[:8]}"
    (lib / f"{stem}.py").write_text(textwrap.dedent("""
        import os
        from daebus import Daebus
        app = Daebus(os.environ["CLI_TEST_GREETING"])
    """))
    worker_file(tmp_path, "greeter", f"""
        app = "{stem}"
        python_path = ["{lib}"]
        [env]
        CLI_TEST_GREETING = "hello"
    """)
    try:
        assert cli.main(["worker", "greeter"]) == 0
    finally:
        sys.modules.pop(stem, None)
    [call] = ran
    assert call["app"].name == "hello"
    assert call["service"] == "greeter"
    assert sys.path[0] == str(lib)


def test_worker_service_option_overrides_the_file(tmp_path, monkeypatch, module_file, ran):
    monkeypatch.setenv("DAEBUS_WORKERS_DIR", str(tmp_path))
    path = module_file(APP_SOURCE)
    worker_file(tmp_path, "w", f'app = "{path}"\nservice = "from-file"\n')
    assert cli.main(["worker", "w", "--service", "from-flag"]) == 0
    assert ran[0]["service"] == "from-flag"


def test_bad_worker_file_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, ran):
    monkeypatch.setenv("DAEBUS_WORKERS_DIR", str(tmp_path))
    worker_file(tmp_path, "bad", 'app = "/x.py"\nservce = "typo"\n')
    assert cli.main(["worker", "bad"]) == 2
    err = capsys.readouterr().err
    assert err == f"daebus: {tmp_path}/bad.toml:2: unknown key 'servce' (known: app, service, python_path, listen, env)\n"
    assert not ran


def test_errors_under_journald_carry_the_error_priority(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(logs, "under_journal", lambda stream=None: True)
    assert cli.main(["run", str(tmp_path / "missing.py")]) == 2
    assert capsys.readouterr().err.startswith("<3>daebus: ")


def test_config_error_raised_by_run_is_one_line(module_file, monkeypatch, capsys):
    def bad_run(self, **kwargs):
        raise ConfigError("/etc/daebus/daebus.toml:3: unknown key 'urll' in [redis]")

    monkeypatch.setattr(Daebus, "run", bad_run)
    assert cli.main(["run", str(module_file(APP_SOURCE))]) == 2
    assert capsys.readouterr().err == "daebus: /etc/daebus/daebus.toml:3: unknown key 'urll' in [redis]\n"


def test_import_failure_of_the_app_is_logged_with_traceback_and_exit_1(module_file, caplog, ran):
    path = module_file("raise RuntimeError('vendor bug')\n")
    assert cli.main(["run", str(path)]) == 1
    [record] = [r for r in caplog.records if r.name == "daebus.cli"]
    assert record.levelname == "ERROR" and "loading" in record.getMessage()
    assert "vendor bug" in str(record.exc_info[1])
    assert not ran


def test_app_failing_while_running_exits_1(module_file, monkeypatch, caplog):
    def crash(self, **kwargs):
        raise RuntimeError("on_start hook failed")

    monkeypatch.setattr(Daebus, "run", crash)
    assert cli.main(["run", str(module_file(APP_SOURCE))]) == 1
    assert any(r.levelname == "CRITICAL" and r.exc_info for r in caplog.records)


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert "daebus " in capsys.readouterr().out


# -- daebus services -----------------------------------------------------------------

@pytest.fixture
def fake_redis(monkeypatch):
    fakeredis = pytest.importorskip("fakeredis")
    client = fakeredis.FakeRedis(decode_responses=True)
    monkeypatch.setattr(common, "connect", lambda url: client)
    client.close = lambda: None
    return client


def test_services_lists_the_registry(fake_redis, capsys):
    for name, actions in (("sensors", ["read", "calibrate"]), ("clock", ["now"])):
        registry.publish(fake_redis, registry.record(name, actions=actions, channels=[], version="0.1.0",
                                                     started_at=0.0, status="running"), 30)
    assert cli.main(["services", "--redis-url", "redis://unused/0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SERVICE", "PID", "HOST", "UP", "STATUS", "ACTIONS", "CHANNELS"]
    assert [line.split()[0] for line in lines[1:]] == ["clock", "sensors"]
    assert lines[2].endswith("calibrate, read  -")
    assert cli.main(["services", "--json", "--redis-url", "redis://unused/0"]) == 0
    assert [s["name"] for s in json.loads(capsys.readouterr().out)] == ["clock", "sensors"]


def test_services_with_none_running(fake_redis, capsys):
    assert cli.main(["services", "--redis-url", "redis://unused/0"]) == 0
    assert capsys.readouterr().out == "no services running\n"


def test_services_without_redis_is_one_line_and_exit_6(capsys):
    assert cli.main(["services", "--redis-url", "redis://127.0.0.1:1/0"]) == 6
    err = capsys.readouterr().err
    assert err.startswith("daebus: cannot reach Redis at redis://127.0.0.1:1/0") and err.count("\n") == 1


@pytest.mark.parametrize("seconds, text", [(None, "-"), (5, "5s"), (307, "5m07s"), (11520, "3h12m"),
                                           (400000, "4d")])
def test_age(seconds, text):
    assert common.age(seconds) == text


def test_run_finds_modules_in_the_current_folder(tmp_path, monkeypatch, module_file, ran):
    stem = f"here_{uuid.uuid4().hex[:8]}"
    module_file(APP_SOURCE, stem)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert cli.main(["run", f"{stem}:app"]) == 0
    assert ran[0]["app"].actions.keys() == {"ping"}
