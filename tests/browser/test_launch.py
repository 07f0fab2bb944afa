"""The run command (`./dev run` is `python -m kiosk_demo`): everything up,
a URL printed, everything down again on Ctrl-C."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis
import requests
from support import ROOT, NotifySocket, default_signals, inherited_signals


def children_of(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


class Output:
    """Collects a process's output lines as they come; ``wait_for`` a text."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 15) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: text in "".join(self.lines), timeout)


def first_event(base_url: str, channel: str) -> dict:
    """The first broadcast on ``channel`` from the gateway's event stream."""
    parts = base_url.split("//", 1)[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(parts[0], int(parts[1]), timeout=15)
    conn.request("GET", f"/api/events?channel={channel}")
    response = conn.getresponse()
    assert response.status == 200
    try:
        while True:
            line = response.readline().decode()
            assert line, "the stream ended"
            if line.startswith("data:") and '"channel"' in line:
                return json.loads(line[5:])
    finally:
        conn.close()


def start_demo(args: list[str]):
    """``python -m kiosk_demo --port 0 ...`` with a NOTIFY_SOCKET of ours."""
    notify = NotifySocket()
    env = {**os.environ, "NOTIFY_SOCKET": notify.path, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "kiosk_demo", "--port", "0", *args], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=default_signals)
    return notify, process, Output(process.stdout)


def ready_url(notify: NotifySocket, output: Output) -> str:
    """The kiosk page's address, once the launcher said READY=1."""
    assert notify.wait_for("READY=1", 90), output.text
    return re.search(r"http://127\.0\.0\.1:\d+/", notify.last("STATUS=")).group(0)


@pytest.mark.parametrize("redis", ["redis-server", "embedded"])
def test_the_demo_starts_serves_and_stops_on_ctrl_c(redis):
    notify, process, output = start_demo(["--embedded-redis"] if redis == "embedded" else [])
    try:
        url = ready_url(notify, output)
        assert output.wait_for(f"the kiosk page is at {url}"), output.text
        expected = "embedded Redis (fakeredis)" if redis == "embedded" else "redis-server on 127.0.0.1:"
        assert expected in output.text
        children = children_of(process.pid)
        assert len(children) >= 4  # gateway and three workers (and redis-server)

        page = requests.get(url, timeout=10)
        assert page.status_code == 200 and "Daebus kiosk" in page.text
        services = requests.get(url + "api/services", timeout=10).json()["services"]
        assert [s["name"] for s in services] == ["display", "sensors", "system"]
        reply = requests.post(url + "api/services/display/set_brightness", json={"brightness": 42}, timeout=10)
        assert reply.status_code == 200 and reply.json()["result"]["brightness"] == 42
        reply = requests.post(url + "api/services/display/set_brightness", json={"brightness": 420}, timeout=10)
        assert reply.status_code == 400 and reply.json()["error"]["code"] == "bad_request"
        event = first_event(url, "sensors.readings")
        assert event["channel"] == "sensors.readings" and "temperature_c" in event["data"]

        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
        output.thread.join(10)
        assert output.text.rstrip().endswith("kiosk_demo: stopped"), output.text
        assert notify.wait_for("STOPPING=1", 1)
        assert not [pid for pid in children if alive(pid)], "processes left behind"
        port = int(url.rsplit(":", 1)[1].strip("/"))
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        notify.close()


def test_a_taken_port_falls_back_to_a_free_one():
    # Started with SIGINT and SIGTERM blocked, as a CI runner may leave them:
    # Ctrl-C still stops the launcher and everything it started.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        notify = NotifySocket()
        process = subprocess.Popen([sys.executable, "-m", "kiosk_demo", "--port", str(port)], cwd=ROOT,
                                   env={**os.environ, "NOTIFY_SOCKET": notify.path},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   preexec_fn=inherited_signals)
        try:
            assert notify.wait_for("READY=1", 90)
            process.send_signal(signal.SIGINT)
            out, _ = process.communicate(timeout=60)
            assert f"port {port} is taken, using " in out
            assert process.returncode == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
            notify.close()


def test_ctrl_c_lets_a_handler_in_flight_answer_and_workers_exit_cleanly():
    notify, process, output = start_demo([])
    try:
        url = ready_url(notify, output)
        redis_port = re.search(r"redis-server on 127\.0\.0\.1:(\d+)", output.text).group(1)
        pubsub = redis.Redis(port=int(redis_port)).pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe("system.diagnostics")
        assert pubsub.get_message(timeout=5) is None  # the subscription is confirmed
        answer: list = []
        call = threading.Thread(target=lambda: answer.append(requests.post(
            url + "api/services/system/run_diagnostics?timeout=25", json={"pause": 0.5}, timeout=40)))
        call.start()
        started = pubsub.get_message(timeout=15)
        assert started is not None and json.loads(started["data"])["percent"] == 0

        process.send_signal(signal.SIGINT)  # the handler is in flight
        call.join(40)
        assert answer and answer[0].status_code == 200, answer and answer[0].text
        assert answer[0].json()["result"]["total"] >= 1
        # The workers the diagnostics call were still there to answer them.
        checks = {check["name"]: check for check in answer[0].json()["result"]["checks"]}
        assert checks["Sensors worker"]["ok"] and checks["Display worker"]["ok"], checks
        assert process.wait(60) == 0
        output.thread.join(10)
        assert "stopped with status" not in output.text, output.text
        assert "second signal" not in output.text, output.text
        assert "service 'system' stopped" in output.text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        notify.close()
