"""The bridge between a box's bus and the fleet's MQTT 5 broker.

One MQTT connection (client id and, by convention, user name: the device
id) carries the retained state with its last will, the outbox's events,
the metrics, and the fleet's calls and broadcasts into the box::

    bridge = Bridge(settings.bridge())
    bridge.run()          # until SIGTERM; systemd's notify and watchdog included
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import queue
import signal
import threading
import time

from daebus import DaebusCaller, __version__, list_services

from daebus.bus.globs import glob_match
from daebus.ops.logs import StateLog
from daebus.ops.systemd import Notifier
from daebus.bus.transport import REDIS_ERRORS
from daebus.fleet import mqtt
from daebus.fleet.calls import Calls
from daebus.fleet.guard import BadMessage, Complaints, json_object
from daebus.fleet.outbox import Outbox
from daebus.fleet.sender import Sender
from daebus.fleet.settings import BridgeSettings
from daebus.fleet.topics import Topics

log = logging.getLogger("daebus.fleet")

INBOX = 1000          # fleet broadcasts waiting to be published into the box
STATE_EVERY = 5.0     # seconds between looks at the box's services
RECONNECT = (1, 8)    # paho's reconnect delay bounds, seconds


class Bridge:
    def __init__(self, settings: BridgeSettings, redis_url: str | None = None):
        self.settings = settings
        self.topics = Topics(settings.connection.fleet)
        self.device = settings.device
        self._bus = DaebusCaller("daebus-bridge", redis_url=redis_url)
        self.redis_url = self._bus.redis_url
        self.redis = self._bus.redis
        self.complaints = Complaints(log)
        self.started = time.time()
        self.stopping = threading.Event()
        self._endpoints = itertools.cycle(settings.connection.endpoints)
        self._endpoint = next(self._endpoints)
        self._link = StateLog(log)
        self._inbox: queue.Queue = queue.Queue(INBOX)
        self._last_state: str | None = None
        self.counts = {"received": 0, "refused": 0, "dropped": 0}
        self.outbox = Outbox(self.redis, settings.send_channels, count=settings.outbox_events,
                             age=settings.outbox_seconds, refuse=lambda channel, why: self.complaints.warn(
                                 "channel", "not sending channel %r to the fleet: it %s", channel, why))
        self.mqttc = self._client()
        self.sender = Sender(self.outbox, self._publish_event,
                             lambda channel: self.topics.events(self.device, channel), self.complaints)
        self.calls = Calls(settings.call_actions, self.redis_url, self._reply, max_calls=settings.max_calls,
                           default_timeout=settings.call_timeout, limit=settings.max_message_bytes,
                           complaints=self.complaints)

    # -- the MQTT side -------------------------------------------------------------
    def _client(self):
        conn = self.settings.connection
        client = mqtt.client(self.device, self._endpoint, conn.credentials)
        client.will_set(self.topics.state(self.device), self._offline(), qos=1, retain=True)
        client.reconnect_delay_set(*RECONNECT)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        mqtt.bind(client, on_connect=self._on_connect, on_disconnect=self._on_disconnect,
                  on_message=self._on_message, on_publish=lambda mid: self.sender.on_ack(mid))
        return client

    def _offline(self) -> str:
        return json.dumps({"online": False, "device": self.device})

    def _on_connect(self, ok: bool, reason: str) -> None:
        if not ok:
            self._link.set(f"refused {reason}", logging.WARNING, "the broker %s refused the bridge: %s",
                           self._endpoint, reason)
            return
        self._link.set("up", logging.INFO, "connected to the fleet broker %s as %s/%s", self._endpoint,
                       self.settings.connection.fleet, self.device)
        filters = [self.topics.call_filter(self.device)] if self.settings.call_actions else []
        if self.settings.receive_channels:
            filters += self.topics.broadcast_filters(self.device, self.settings.groups)
        if filters:
            self.mqttc.subscribe([(f, 1) for f in filters])
        self._last_state = None
        self.publish_state()
        self.sender.on_connected()

    def _on_disconnect(self, reason: str) -> None:
        self.sender.on_disconnected()
        if self.stopping.is_set():
            return
        self._link.set("down", logging.WARNING, "lost the fleet broker %s (%s); keeping events in the outbox",
                       self._endpoint, reason)
        if len(self.settings.connection.endpoints) > 1:
            # The next broker of the list for the next attempt.
            self._endpoint = next(self._endpoints)
            mqtt.connect(self.mqttc, self._endpoint, self.settings.connection.keepalive)

    def _on_message(self, message) -> None:
        try:
            self._route(message)
        except Exception:  # noqa: BLE001 - one bad message must not stop the network thread
            self.complaints.warn("bug", "a fleet message on %r failed in the bridge", message.topic[:200])
            log.debug("the failure", exc_info=True)

    def _route(self, message) -> None:
        call = self.topics.parse_call(message.topic)
        if call is not None:
            device, service, action = call
            if device == self.device:
                self.calls.handle(message, service, action)
            return
        channel = self.topics.parse_broadcast(message.topic)
        if channel is not None:
            self._take_broadcast(message, channel)

    def _publish(self, topic: str, text: str, *, retain: bool = False, props=None):
        info = self.mqttc.publish(topic, text, qos=1, retain=retain, properties=props)
        return info.mid if info.rc == 0 else None

    def _publish_event(self, topic: str, text: str):
        return self._publish(topic, text) if self.sender.connected.is_set() else None

    def _reply(self, topic: str, text: str, correlation, left: float) -> None:
        props = mqtt.properties("PUBLISH", CorrelationData=correlation,
                                MessageExpiryInterval=max(1, math.ceil(left)))
        self._publish(topic, text, props=props)

    # -- broadcasts into the box -----------------------------------------------------
    def _take_broadcast(self, message, channel: str) -> None:
        if message.retain:
            # Retained broadcasts would replay at every reconnection.
            return self.complaints.warn("broadcast", "dropped a retained broadcast on %s", message.topic)
        if not any(glob_match(p, channel) for p in self.settings.receive_channels):
            self.counts["refused"] += 1
            return self.complaints.warn("broadcast", "refused a fleet broadcast on %s: not in receive_channels",
                                        channel)
        try:
            payload = json_object(message.payload, self.settings.max_message_bytes)
        except BadMessage as exc:
            self.counts["refused"] += 1
            return self.complaints.warn("broadcast", "dropped a fleet broadcast on %s: %s", channel, exc)
        try:
            self._inbox.put_nowait((channel, payload))
        except queue.Full:
            self.counts["dropped"] += 1
            self.complaints.warn("inbox", "dropped a fleet broadcast on %s: %d are waiting for Redis",
                                 channel, INBOX)

    def _deliver(self) -> None:
        redis_state = StateLog(log, "up")
        while not self.stopping.is_set():
            try:
                channel, payload = self._inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._bus.send_message(channel, payload)
                self.counts["received"] += 1
                redis_state.set("up", logging.INFO, "fleet broadcasts reach Redis again")
            except Exception as exc:  # noqa: BLE001 - ConnectionLost and the like: counted, said once
                self.counts["dropped"] += 1
                redis_state.set("down", logging.WARNING, "cannot publish fleet broadcasts into Redis: %s", exc)

    # -- state and metrics -----------------------------------------------------------
    def services(self) -> list[dict]:
        return list_services(self.redis)

    def publish_state(self, services: list[dict] | None = None) -> None:
        try:
            services = self.services() if services is None else services
        except REDIS_ERRORS:
            services = []
        body = json.dumps({"online": True, "device": self.device, "version": __version__,
                           "groups": list(self.settings.groups),
                           "services": [{"name": s["name"], "status": s.get("status") or "running"}
                                        for s in services],
                           "since": round(self.started, 3)})
        if body != self._last_state:
            if self._publish(self.topics.state(self.device), body, retain=True) is not None:
                self._last_state = body

    def publish_metrics(self, services: list[dict]) -> None:
        body = {"device": self.device, "ts": round(time.time(), 3),
                "services": {s["name"]: s.get("metrics") for s in services},
                "bridge": {"events": dict(self.sender.counts), "calls": dict(self.calls.counts),
                           "broadcasts": dict(self.counts), "complaints": dict(self.complaints.counts)}}
        self._publish(self.topics.metrics(self.device), json.dumps(body, default=str))

    # -- running -------------------------------------------------------------------
    def start(self) -> Bridge:
        try:
            self.outbox.declare()  # first: from now on publishers keep the sent channels
        except REDIS_ERRORS as exc:
            # Nothing can be broadcast (nor kept) while Redis is away; the
            # housekeeping loop declares as soon as it is back.
            log.warning("cannot reach Redis yet (%s); the outbox is declared once it answers", exc)
        threading.Thread(target=self._deliver, name="fleet-inbox", daemon=True).start()
        self.sender.start()
        mqtt.connect(self.mqttc, self._endpoint, self.settings.connection.keepalive)
        self.mqttc.loop_start()
        return self

    def run(self, notifier: Notifier | None = None) -> None:
        """Serve until SIGTERM/SIGINT (or :meth:`stop`)."""
        notifier = notifier or Notifier.from_env()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        self.start()
        notifier.ready(f"bridging {self.settings.connection.fleet}/{self.device}")
        try:
            self._housekeep(notifier)
        finally:
            notifier.stopping()
            self.stop()

    def _housekeep(self, notifier: Notifier) -> None:
        renew = max(1.0, min(self.settings.outbox_seconds / 4, 60.0))
        beat = notifier.watchdog_interval or 1.0
        next_renew = next_state = time.monotonic()
        next_metrics = time.monotonic() + (self.settings.metrics_interval or math.inf)
        redis_state = StateLog(log, "up")
        while not self.stopping.wait(min(beat, 1.0)):
            now = time.monotonic()
            if now - self.sender.beat < 30:  # a stuck sender stops the watchdog's pings
                notifier.watchdog()
            try:
                if now >= next_renew:
                    self.outbox.declare()
                    next_renew = now + renew
                if now >= next_state or now >= next_metrics:
                    services = self.services()
                    if self.sender.connected.is_set():
                        self.publish_state(services)
                    next_state = now + STATE_EVERY
                    if now >= next_metrics:
                        if self.sender.connected.is_set():
                            self.publish_metrics(services)
                        next_metrics = now + self.settings.metrics_interval
                redis_state.set("up", logging.INFO, "Redis is reachable again")
            except REDIS_ERRORS as exc:
                redis_state.set("down", logging.WARNING, "cannot reach Redis: %s", exc)

    def stop(self) -> None:
        """Say offline (retained), keep the position, close."""
        self.stopping.set()
        self.calls.close()
        self.sender.stop()
        if self.sender.connected.is_set():
            info = self.mqttc.publish(self.topics.state(self.device), self._offline(), qos=1, retain=True)
            try:
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError):
                pass
        self.mqttc.disconnect()
        self.mqttc.loop_stop()
