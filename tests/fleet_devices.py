"""Simulated fleet devices: N MQTT 5 clients in one thread, each with its
retained state and last will, answering calls as a bridge would.

Usage: fleet_devices.py BROKER_URL FLEET COUNT [PREFIX]; prints READY once
every device is connected, subscribed and has published its state.
"""

from __future__ import annotations

import json
import selectors
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from daebus.fleet import mqtt  # noqa: E402
from daebus.fleet.topics import Topics  # noqa: E402


class Device:
    def __init__(self, endpoint, topics: Topics, device: str):
        self.device, self.topics, self.ready = device, topics, False
        self.client = mqtt.client(device, endpoint, mqtt.Credentials())
        self.client.will_set(topics.state(device), json.dumps({"online": False, "device": device}), 1, True)
        mqtt.bind(self.client, on_connect=self._on_connect, on_message=self._on_message)
        self.client.on_subscribe = lambda *args: self._subscribed()
        self.client.connect(endpoint.host, endpoint.port, keepalive=60, clean_start=True)

    def _on_connect(self, ok, reason):
        if ok:
            self.client.subscribe(self.topics.call_filter(self.device), 1)

    def _subscribed(self):
        state = {"online": True, "device": self.device, "version": "simulated", "groups": ["simulated"],
                 "services": [{"name": "basic", "status": "running"}], "since": time.time()}
        self.client.publish(self.topics.state(self.device), json.dumps(state), 1, True)
        self.ready = True

    def _on_message(self, message):
        reply_to = mqtt.prop(message, "ResponseTopic")
        if not reply_to:
            return
        try:
            payload = json.loads(message.payload or b"{}")
        except ValueError:
            payload = None
        # As a bridge's reply: the request's Correlation Data, and what is
        # left of its deadline as the reply's expiry.
        expiry = mqtt.prop(message, "MessageExpiryInterval")
        props = mqtt.properties("PUBLISH", CorrelationData=mqtt.prop(message, "CorrelationData"),
                                MessageExpiryInterval=expiry)
        body = {"result": {"echo": payload, "device": self.device}}
        self.client.publish(reply_to, json.dumps(body, separators=(",", ":")), 1, properties=props)


def main(url: str, fleet: str, count: int, prefix: str = "sim") -> None:
    endpoint, topics = mqtt.Endpoint.parse(url), Topics(fleet)
    selector = selectors.DefaultSelector()
    devices = []
    for i in range(count):
        device = Device(endpoint, topics, f"{prefix}-{i:03d}")
        selector.register(device.client.socket(), selectors.EVENT_READ, device)
        devices.append(device)
    said, last_misc = False, 0.0
    while True:
        for key, _ in selector.select(timeout=0.05):
            key.data.client.loop_read()
        for device in devices:
            if device.client.want_write():
                device.client.loop_write()
        now = time.monotonic()
        if now - last_misc >= 1.0:
            last_misc = now
            for device in devices:
                device.client.loop_misc()
        if not said and all(d.ready for d in devices):
            said = True
            print("READY", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
