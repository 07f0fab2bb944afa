import logging

import pytest

from daebus import RemoteError
from daebus.testing import TestClient


@pytest.fixture
def display(load_worker, monkeypatch, tmp_path):
    monkeypatch.delenv("KIOSK_DISPLAY_BACKLIGHT", raising=False)
    worker = load_worker("display")
    # Never the machine's own panel.
    monkeypatch.setattr(worker, "BACKLIGHTS", tmp_path / "no-backlights")
    return worker


@pytest.fixture
def client(display):
    with TestClient(display.app) as client:
        client.run_start_hooks()
        yield client


def test_state_starts_at_the_default(client):
    state = client.call("get_state")
    assert state == {"brightness": 80, "auto": False, "source": "default", "updated_at": None}


def test_set_brightness_stores_broadcasts_and_answers_the_new_state(client):
    state = client.call("set_brightness", {"brightness": 35})
    assert state["brightness"] == 35 and state["source"] == "manual" and not state["auto"]
    assert client.call("get_state") == state
    assert client.broadcasts == [("display.state", state)]
    # Kept in Redis, so a restarted worker finds it again.
    assert client.cache.hget("display:state", "brightness") == "35"


def test_a_whole_float_is_accepted(client):
    assert client.call("set_brightness", {"brightness": 70.0})["brightness"] == 70


@pytest.mark.parametrize("payload, message", [
    ({}, 'send {"brightness": N}'),
    ({"brightness": 150}, "from 0 to 100, got 150"),
    ({"brightness": -1}, "from 0 to 100, got -1"),
    ({"brightness": 12.5}, "whole number from 0 to 100, got 12.5"),
    ({"brightness": "50"}, 'whole number from 0 to 100, got "50"'),
    ({"brightness": True}, "got true"),
    ({"brightness": None}, "got null"),
])
def test_invalid_brightness_is_a_bad_request_and_changes_nothing(client, payload, message):
    reply = client.request("set_brightness", payload)
    assert reply.status == "error"
    assert reply.payload["code"] == "bad_request"
    assert message in reply.payload["error"]
    assert client.call("get_state")["brightness"] == 80
    assert client.broadcasts == []


def test_bad_request_reaches_a_caller_as_remote_error(client):
    with pytest.raises(RemoteError) as caught:
        client.call("set_brightness", {"brightness": 101})
    assert caught.value.code == "bad_request"


def test_set_auto_needs_a_boolean(client):
    reply = client.request("set_auto", {"enabled": "yes"})
    assert reply.payload["code"] == "bad_request"
    assert client.call("set_auto", {"enabled": True})["auto"] is True


def test_auto_mode_follows_the_light_readings(client):
    client.call("set_auto", {"enabled": True})
    client.publish("sensors.readings", {"light_lux": 0})
    assert client.call("get_state")["brightness"] == 10
    client.publish("sensors.readings", {"light_lux": 1000})
    state = client.call("get_state")
    assert state == {**state, "brightness": 100, "auto": True, "source": "auto"}
    assert client.broadcasts[-1] == ("display.state", state)


def test_manual_mode_ignores_the_light_and_setting_by_hand_leaves_auto(client):
    client.publish("sensors.readings", {"light_lux": 0})
    assert client.call("get_state")["brightness"] == 80
    client.call("set_auto", {"enabled": True})
    state = client.call("set_brightness", {"brightness": 55})
    assert not state["auto"]
    client.publish("sensors.readings", {"light_lux": 0})
    assert client.call("get_state")["brightness"] == 55


def test_readings_it_does_not_understand_are_ignored(client):
    client.call("set_auto", {"enabled": True})
    before = len(client.broadcasts)
    client.publish("sensors.readings", {"light_lux": "bright"})
    client.publish("sensors.readings", {"temperature_c": 20})
    assert len(client.broadcasts) == before


def test_small_changes_of_light_do_not_make_the_screen_pulse(display):
    assert display.brightness_for_light(300) == display.brightness_for_light(310)
    assert all(display.brightness_for_light(lux) % display.AUTO_STEP == 0 for lux in range(0, 2000, 37))


def test_the_backlight_is_written_when_configured(display, tmp_path, monkeypatch):
    (tmp_path / "max_brightness").write_text("255\n")
    (tmp_path / "brightness").write_text("0\n")
    monkeypatch.setenv("KIOSK_DISPLAY_BACKLIGHT", str(tmp_path))
    with TestClient(display.app) as client:
        client.run_start_hooks()  # applies the stored state at start
        assert (tmp_path / "brightness").read_text() == "204"
        client.call("set_brightness", {"brightness": 50})
    assert (tmp_path / "brightness").read_text() == "128"


def test_a_missing_backlight_is_logged_not_fatal(display, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("KIOSK_DISPLAY_BACKLIGHT", str(tmp_path / "absent"))
    with TestClient(display.app) as client:
        assert client.call("set_brightness", {"brightness": 20})["brightness"] == 20
    assert "cannot set the backlight" in caplog.text


def test_a_state_saved_by_an_earlier_version_is_found(client):
    client.cache.hset("kiosk_demo:display", mapping={"brightness": "42", "auto": "0", "source": "manual"})
    assert client.call("get_state")["brightness"] == 42
    client.call("set_brightness", {"brightness": 43})
    assert client.cache.hget("display:state", "brightness") == "43"


def test_the_first_backlight_of_the_kernel_is_used(display, tmp_path, monkeypatch):
    for name, maximum in (("b_second", "100"), ("a_first", "1000")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "max_brightness").write_text(maximum + "\n")
        (tmp_path / name / "brightness").write_text("0\n")
    (tmp_path / "0_no_brightness_file").mkdir()
    monkeypatch.setattr(display, "BACKLIGHTS", tmp_path)
    with TestClient(display.app) as client:
        client.call("set_brightness", {"brightness": 30})
    assert (tmp_path / "a_first" / "brightness").read_text() == "300"
    assert (tmp_path / "b_second" / "brightness").read_text() == "0\n"


def test_without_a_backlight_the_panel_is_simulated(display, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(display, "BACKLIGHTS", tmp_path / "none")
    caplog.set_level(logging.INFO)
    with TestClient(display.app) as client:
        client.run_start_hooks()
        assert client.call("set_brightness", {"brightness": 20})["brightness"] == 20
    assert "no backlight: simulated" in caplog.text and "cannot set" not in caplog.text
