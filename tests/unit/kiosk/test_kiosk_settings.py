"""The [kiosk] section and the command line it gives."""

import json

import pytest

from daebus.errors import ConfigError
from kiosk import browser
from kiosk.settings import KIOSK, load


def test_defaults_point_at_the_gateway(etc):
    settings = load()
    assert settings.url == "http://127.0.0.1:8080/"
    assert (settings.rotation, settings.hide_cursor, settings.pinch_zoom) == (0, True, False)


def test_values_from_the_file(etc):
    (etc / "daebus.toml").write_text('[kiosk]\nurl = "http://127.0.0.1:9000/panel"\nrotation = 270\n'
                                     'pinch_zoom = true\nblank_from = "22:30"\nblank_until = "06:00"\n'
                                     'chromium_flags = ["--lang=de"]\n')
    settings = load()
    command = browser.cage_command(settings, etc / "profile", "http://127.0.0.1:8099/")
    # cage turns the output 90 degrees per -r; the browser gets the frame page.
    assert command[:5] == ["cage", "-d", "-r", "-r", "-r"] and command[5] == "--"
    assert command[6] == "chromium" and command[-1] == "http://127.0.0.1:8099/"
    assert "--disable-pinch" not in command and "--lang=de" in command
    assert f"--user-data-dir={etc / 'profile'}" in command
    for flag in ("--kiosk", "--no-first-run", "--ozone-platform=wayland", "--disable-session-crashed-bubble"):
        assert flag in command
    assert (settings.blank_from, settings.blank_until) == ("22:30", "06:00")


@pytest.mark.parametrize("rotation, backends, turns", [
    (0, None, 0), (90, None, 1), (0, "headless", 2), (90, "headless", 1), (180, "headless", 2),
    (0, "drm,libinput", 0),
])
def test_headless_output_is_never_left_unturned(etc, rotation, backends, turns):
    # Unturned, cage scans the page's buffer out and screen captures of a
    # headless output go stale; half a turn there is invisible to them.
    (etc / "daebus.toml").write_text(f"[kiosk]\nrotation = {rotation}\n")
    environ = {} if backends is None else {"WLR_BACKENDS": backends}
    command = browser.cage_command(load(), etc, "http://x/", environ)
    assert command[:command.index("--")] == ["cage", "-d", *["-r"] * turns]


def test_no_pinch_zoom_unless_configured(etc):
    assert "--disable-pinch" in browser.cage_command(load(), etc, "http://x/")


@pytest.mark.parametrize("line, complaint", [
    ("rotation = 45", "must be 0, 90, 180 or 270"),
    ('blank_from = "25:00"', "HH:MM"),
    ('rotaton = 90', "unknown key 'rotaton'"),
    ("heartbeat_timeout = 1", "must be more than 2"),
])
def test_bad_values_name_file_and_line(etc, line, complaint):
    (etc / "daebus.toml").write_text(f"[kiosk]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load()
    assert complaint in str(caught.value) and "daebus.toml:2" in str(caught.value)


def test_section_is_registered():
    from daebus.ops import configspec
    assert configspec.REGISTRY["kiosk"] is KIOSK


def test_forget_crash_removes_the_restore_bubble(tmp_path):
    prefs = tmp_path / "Default" / "Preferences"
    prefs.parent.mkdir()
    prefs.write_text(json.dumps({"profile": {"exit_type": "Crashed", "name": "x"}, "other": 1}))
    browser.forget_crash(tmp_path)
    data = json.loads(prefs.read_text())
    assert data["profile"] == {"exit_type": "Normal", "exited_cleanly": True, "name": "x"}
    assert data["other"] == 1


def test_forget_crash_leaves_a_garbled_profile_alone(tmp_path):
    browser.forget_crash(tmp_path)  # no profile yet
    prefs = tmp_path / "Default" / "Preferences"
    prefs.parent.mkdir()
    prefs.write_text("{not json")
    browser.forget_crash(tmp_path)
    assert prefs.read_text() == "{not json"


def test_docs_table_lists_every_key():
    from pathlib import Path

    from daebus.ops import configspec

    text = (Path(__file__).resolve().parents[3] / "docs/kiosk.md").read_text().splitlines()
    assert [row for row in configspec.markdown_rows(KIOSK, with_env=False) if row not in text] == []
