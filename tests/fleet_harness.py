"""Real parts for the fleet tests: a mosquitto broker of our own, bridges in
subprocesses, MQTT 5 clients that collect what they hear, a test CA."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from support import ROOT, ManagedProcess, default_signals, free_port

from daebus.fleet import mqtt

ACL_FILE = ROOT / "debian" / "examples" / "mosquitto-fleet.acl"


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.path.exists(p)), None)


class Mosquitto:
    """A mosquitto restartable on the same port; ``users`` makes a password
    file with mosquitto_passwd and turns anonymous access off."""

    def __init__(self, *, users: dict[str, str] | None = None, acl: Path | None = None, tls: dict | None = None,
                 port: int | None = None, persistent: bool = False):
        self.port = port or free_port()
        self.persistent = persistent
        self.dir = Path(tempfile.mkdtemp(prefix="daebus-mqtt-"))
        self.users, self.acl, self.tls = users or {}, acl, tls
        self.process: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.config = self._write_config()

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        persistence = ["persistence true", f"persistence_location {self.dir}/"] if self.persistent \
            else ["persistence false"]
        lines = [f"listener {self.port} 127.0.0.1", *persistence, "log_dest stderr",
                 "log_type error", "log_type warning", "log_type notice", "log_type information",
                 "max_queued_messages 100000", "max_inflight_messages 0",
                 # As brokers tuned for request/response are: no Nagle delay on replies.
                 "set_tcp_nodelay true"]
        if os.geteuid() == 0:
            # Run as root, mosquitto would become the mosquitto user, who cannot
            # read this test's private folders.
            lines.append("user root")
        if self.users:
            passwd = self.dir / "passwd"
            passwd.touch(mode=0o600)
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl:
            lines.append(f"acl_file {self.acl}")
        if self.tls:
            lines += [f"cafile {self.tls['ca']}", f"certfile {self.tls['cert']}", f"keyfile {self.tls['key']}"]
        path = self.dir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 10) -> Mosquitto:
        # With systemd's dispositions: stop() signals it, whatever mask the test run inherited.
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(self.config)], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, preexec_fn=default_signals)
        deadline = time.monotonic() + timeout
        for line in self.process.stdout:
            self.lines.append(line)
            if " running" in line or time.monotonic() > deadline:
                break
        if not self.lines or " running" not in self.lines[-1]:
            self.stop()
            raise RuntimeError("mosquitto did not start:\n" + "".join(self.lines[-20:]))
        threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()
        return self

    def _drain(self, process) -> None:
        for line in process.stdout:
            self.lines.append(line)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Listener:
    """An MQTT 5 client subscribed to ``filters``, keeping what it hears."""

    def __init__(self, broker: Mosquitto, *filters: str, username: str = "", password: str = "",
                 ca_file: str = "", session: str | None = None):
        self.messages: queue.Queue = queue.Queue()
        self.subscribed = threading.Event()
        self.connected = threading.Event()
        self.refused: list[str] = []
        endpoint = mqtt.Endpoint.parse(broker.url)
        self.client = mqtt.client(session or f"listener-{uuid.uuid4().hex[:8]}", endpoint,
                                  mqtt.Credentials(username, password, ca_file))
        self.client.reconnect_delay_set(0.2, 1)
        self.filters = filters
        mqtt.bind(self.client, on_connect=self._on_connect, on_message=self._on_message)
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        if session:
            # A session the broker keeps (and queues QoS 1 messages for) across
            # this client's disconnections and, when persistent, its restarts.
            props = mqtt.properties("CONNECT", SessionExpiryInterval=3600)
            self.client.connect_async(endpoint.host, endpoint.port, 30, clean_start=False, properties=props)
        else:
            mqtt.connect(self.client, endpoint, 30)
        self.client.loop_start()

    def _on_connect(self, ok: bool, reason: str) -> None:
        if not ok:
            self.refused.append(reason)
            return
        self.connected.set()
        if self.filters:
            self.client.subscribe([(f, 1) for f in self.filters])

    def _on_message(self, message) -> None:
        self.messages.put((message.topic, message.payload, message.retain, message.properties))

    def wait_subscribed(self, timeout: float = 10) -> Listener:
        assert self.subscribed.wait(timeout), "the listener's subscription was not acknowledged"
        return self

    def get(self, timeout: float = 10):
        return self.messages.get(timeout=timeout)

    def json(self, timeout: float = 10) -> tuple[str, dict]:
        topic, payload, _retain, _props = self.get(timeout)
        return topic, json.loads(payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_online(broker: Mosquitto, fleet: str, device: str, timeout: float = 15, **creds) -> dict:
    """The device's retained state once it says online (the bridge is
    subscribed to its calls by then: it publishes the state after subscribing)."""
    listener = Listener(broker, f"daebus/{fleet}/{device}/state", **creds)
    try:
        deadline = time.monotonic() + timeout
        while True:
            topic, state = listener.json(timeout=max(0.1, deadline - time.monotonic()))
            if state.get("online"):
                return state
    finally:
        listener.close()


def bridge_config(path: Path, broker_url: str, **bridge) -> Path:
    lines = ["[bridge]", f"broker = {json.dumps(broker_url)}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in bridge.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class BridgeProcess(ManagedProcess):
    """``daebus bridge`` in a subprocess, ready at its READY=1."""

    def __init__(self, redis_url: str, broker_url: str, *, wait: bool = True, env: dict | None = None,
                 **bridge):
        self.dir = Path(tempfile.mkdtemp(prefix="daebus-bridge-"))
        bridge.setdefault("fleet", "test")
        bridge.setdefault("device", "box")
        self.device, self.fleet = bridge["device"], bridge["fleet"]
        self.config = bridge_config(self.dir / "daebus.toml", broker_url, **bridge)
        full_env = {**os.environ, "DAEBUS_CONFIG": str(self.config), "DAEBUS_REDIS_URL": redis_url,
                    "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
        super().__init__([sys.executable, "-m", "daebus.cli", "bridge"], full_env, name=f"bridge {self.device}",
                         log_path=self.dir / "bridge.log")
        if wait:
            self.wait_ready()

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


def make_ca(folder: Path, host: str = "127.0.0.1") -> dict:
    """A test CA and a server certificate for ``host`` signed by it (openssl)."""
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=daebus test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", f"/CN={host}")
    (folder / "ext.cnf").write_text(f"subjectAltName=IP:{host},DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    for name in ("ca.key", "server.key"):
        os.chmod(folder / name, 0o644)  # mosquitto may drop privileges; a test folder only
    return {"ca": str(folder / "ca.crt"), "cert": str(folder / "server.crt"), "key": str(folder / "server.key")}
