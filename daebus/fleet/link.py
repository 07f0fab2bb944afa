"""The fleet side's connection: one MQTT 5 client, replies routed to their
calls by Correlation Data, and the devices' retained states kept current.

Shared by :class:`~.caller.FleetCaller` and :class:`~.aiocaller.AsyncFleetCaller`;
its callbacks run on paho's network thread and only hand things on.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Callable

from daebus.errors import ConfigError
from daebus.fleet import mqtt, settings
from daebus.fleet.guard import BadMessage, json_object
from daebus.fleet.mqtt import FleetError
from daebus.fleet.topics import Topics

MAX_REPLY = 16 * 1024 * 1024  # bytes of one reply read at most


class Link:
    def __init__(self, broker=None, fleet: str | None = None, *, username: str | None = None,
                 password: str | None = None, ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, timeout: float | None = None, client_id: str | None = None):
        brokers = [broker] if isinstance(broker, str) else (list(broker) if broker else None)
        conn, default_timeout = settings.fleet(broker=brokers, fleet=fleet, username=username,
                                               ca_file=ca_file, cert_file=cert_file, key_file=key_file)
        if password is not None:
            conn = settings.Connection(conn.endpoints, conn.fleet,
                                       mqtt.Credentials(conn.credentials.username, password, conn.credentials.ca_file,
                                                        conn.credentials.cert_file, conn.credentials.key_file),
                                       conn.keepalive)
        self.connection = conn
        self.timeout = default_timeout if timeout is None else timeout
        self.topics = Topics(conn.fleet)
        self.client_id = client_id or f"daebus-fleet-{uuid.uuid4().hex[:12]}"
        self.reply_topic = self.topics.reply_topic(self.client_id)
        self.states: dict[str, dict] = {}       # device -> its state, and "seen"
        self._handlers: dict[bytes, Callable[[dict], None]] = {}
        self._listeners: list[tuple[str, Callable]] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._refused: str | None = None
        self._marks: dict[bytes, threading.Event] = {}
        self._state_subscribed = False
        self._mqttc = None

    # -- connecting ------------------------------------------------------------------
    def open(self, timeout: float | None = None) -> Link:
        if self._mqttc is not None:
            return self
        timeout = self.timeout if timeout is None else timeout
        last = None
        for endpoint in self.connection.endpoints:
            client = mqtt.client(self.client_id, endpoint, self.connection.credentials)
            mqtt.bind(client, on_connect=self._on_connect, on_message=self._on_message,
                      on_disconnect=lambda reason: self._connected.clear())
            self._mqttc = client
            mqtt.connect(client, endpoint, self.connection.keepalive)
            client.loop_start()
            if self._connected.wait(max(timeout, 1.0)):
                return self
            last = self._refused or "no answer"
            client.loop_stop()
            self._mqttc = None
        raise FleetError(f"cannot reach the fleet broker ({', '.join(map(str, self.connection.endpoints))}): {last}")

    def _on_connect(self, ok: bool, reason: str) -> None:
        if not ok:
            self._refused = reason
            return
        subs = [(self.reply_topic, 1)]
        if self._state_subscribed:
            subs.append((self.topics.state_filter(), 1))
        subs += [(pattern, 1) for pattern, _ in self._listeners]
        self._mqttc.subscribe(subs)
        self._connected.set()

    def close(self) -> None:
        client, self._mqttc = self._mqttc, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    # -- sending -------------------------------------------------------------------
    def publish(self, topic: str, body, *, props=None, wait: float | None = None) -> None:
        self.open()
        text = body if isinstance(body, (str, bytes)) else json.dumps(body, separators=(",", ":"))
        info = self._mqttc.publish(topic, text, qos=1, properties=props)
        if wait is not None:
            try:
                info.wait_for_publish(wait)
            except (RuntimeError, ValueError) as exc:
                raise FleetError(f"the broker did not take {topic}: {exc}") from None
            if not info.is_published():
                raise FleetError(f"the broker did not acknowledge {topic} within {wait:g} s")

    def request(self, topic: str, payload, correlation: bytes, timeout: float,
                handler: Callable[[dict], None]) -> None:
        """Publish a call; ``handler`` gets each reply body for ``correlation``."""
        with self._lock:
            self._handlers[correlation] = handler
        props = mqtt.properties("PUBLISH", ResponseTopic=self.reply_topic, CorrelationData=correlation,
                                MessageExpiryInterval=max(1, int(timeout + 0.999)))
        self.publish(topic, {} if payload is None else payload, props=props)

    def forget(self, correlation: bytes) -> None:
        with self._lock:
            self._handlers.pop(correlation, None)

    # -- states ----------------------------------------------------------------------
    def read_states(self, timeout: float | None = None) -> dict[str, dict]:
        """Every device's retained state: subscribed once, then kept current.
        The first time, waits for a marker published after subscribing: a
        broker sends the retained messages a subscription matches before
        what is published later on it."""
        self.open()
        if not self._state_subscribed:
            self._state_subscribed = True
            token = uuid.uuid4().hex.encode()
            done = self._marks[token] = threading.Event()
            result, mid = self._mqttc.subscribe(self.topics.state_filter(), 1)
            props = mqtt.properties("PUBLISH", CorrelationData=token)
            self._mqttc.publish(self.reply_topic, b"{}", qos=1, properties=props)
            done.wait(self.timeout if timeout is None else timeout)
            self._marks.pop(token, None)
        with self._lock:
            return dict(self.states)

    def listen(self, pattern: str, sink: Callable) -> None:
        self.open()
        self._listeners.append((pattern, sink))
        self._mqttc.subscribe(pattern, 1)

    # -- the network thread ----------------------------------------------------------
    def _on_message(self, message) -> None:
        topic = message.topic
        if topic == self.reply_topic:
            return self._on_reply(message)
        device = self.topics.parse_state(topic)
        if device is not None and self._state_subscribed:
            self._on_state(device, message)
        for pattern, sink in list(self._listeners):
            if _matches(pattern, topic):
                sink(topic, message.payload)

    def _on_reply(self, message) -> None:
        correlation = mqtt.prop(message, "CorrelationData")
        if correlation is None:
            return
        correlation = bytes(correlation)
        mark = self._marks.get(correlation)
        if mark is not None:
            return mark.set()
        with self._lock:
            handler = self._handlers.get(correlation)
        if handler is None:
            return  # late, or not ours
        try:
            body = json_object(message.payload, MAX_REPLY)
        except BadMessage as exc:
            body = {"error": {"code": "malformed_reply", "message": f"the reply is {exc}"}}
        handler(body)

    def _on_state(self, device: str, message) -> None:
        with self._lock:
            if not message.payload:
                self.states.pop(device, None)  # a retained state cleared
                return
            try:
                state = json_object(message.payload, 65536)
            except BadMessage:
                return
            previous = self.states.get(device, {})
            seen = state.get("seen") or (time.time() if state.get("online") else previous.get("seen"))
            self.states[device] = {**state, "device": device, "seen": seen}


def _matches(pattern: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest)."""
    want, have = pattern.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or (level != "+" and level != have[i]):
            return False
    return len(want) == len(have)


def check_target(target: str) -> str:
    if not isinstance(target, str) or not target:
        raise ConfigError("a target is a device id, group:NAME or all")
    return target
