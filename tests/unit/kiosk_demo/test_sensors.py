import pytest

from daebus.testing import TestClient


@pytest.fixture
def sensors(load_worker):
    return load_worker("sensors")


def test_each_run_of_the_task_broadcasts_a_new_reading(sensors):
    with TestClient(sensors.app) as client:
        client.run_task("sample")
        client.run_task("sample")
    assert [channel for channel, _ in client.broadcasts] == ["sensors.readings"] * 2
    first, second = (reading for _, reading in client.broadcasts)
    assert (first["seq"], second["seq"]) == (1, 2)
    assert set(first) == {"seq", "time", "temperature_c", "humidity_pct", "light_lux"}
    assert second["time"] >= first["time"]


def test_the_task_runs_every_second_from_the_start(sensors):
    task = sensors.app.tasks["sample"]
    assert task.interval == 1
    assert task.run_at_start


def test_readings_drift_but_stay_plausible(sensors):
    room = sensors.Room(seed=7)
    readings = [room.sample(1_700_000_000 + i) for i in range(2000)]
    temperatures = [r["temperature_c"] for r in readings]
    assert len(set(temperatures)) > 100  # it moves...
    assert 15 < min(temperatures) and max(temperatures) < 28  # ...but like a room
    assert all(0 <= r["humidity_pct"] <= 100 for r in readings)
    assert all(r["light_lux"] >= 0 for r in readings)


def test_daylight_is_dark_at_night_and_bright_at_noon(sensors):
    assert sensors.Room.daylight(2) == pytest.approx(30)
    assert sensors.Room.daylight(12) == pytest.approx(850)
    assert sensors.Room.daylight(9) < sensors.Room.daylight(12)


def test_get_readings_answers_with_the_latest_reading(sensors):
    with TestClient(sensors.app) as client:
        first = client.call("get_readings")  # none taken yet: takes one
        assert first["seq"] == 1
        client.run_task("sample")
        assert client.call("get_readings") == client.broadcasts[-1][1]


def test_get_history_keeps_the_last_minute_oldest_first(sensors):
    with TestClient(sensors.app) as client:
        for _ in range(sensors.HISTORY + 5):
            client.run_task("sample")
        history = client.call("get_history")
    seqs = [r["seq"] for r in history["readings"]]
    assert seqs == list(range(6, sensors.HISTORY + 6))
    assert history["interval"] == sensors.INTERVAL
