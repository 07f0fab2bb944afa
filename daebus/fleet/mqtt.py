"""paho-mqtt behind one small seam: MQTT 5 clients on paho 1.6 (Debian
bookworm) and 2.x alike.

paho 2 wants a callback API version and passes reason codes objects to
every callback; paho 1.6 has neither. :func:`client` makes an MQTT 5 client
either way and :func:`bind` gives it callbacks of one shape::

    mqttc = client("kiosk-7", Endpoint.parse("mqtts://broker:8883"), Credentials(...))
    bind(mqttc, on_connect=lambda ok, reason: ..., on_disconnect=lambda reason: ...,
         on_message=lambda message: ..., on_publish=lambda mid: ...)
"""

from __future__ import annotations

import dataclasses
import socket
from typing import Callable
from urllib.parse import urlsplit

from daebus.errors import ConfigError, ConnectionLost

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class FleetError(ConnectionLost):
    """The broker could not be reached or refused us (``connection_lost``,
    as Redis that cannot be reached: ``daebus`` exits 6)."""


def paho():
    """The paho.mqtt.client module; a clear error when it is missing."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise ConfigError("the fleet needs paho-mqtt (apt-get install python3-paho-mqtt, "
                          "or pip install 'daebus[fleet]')") from None
    return mqtt


def properties(packet: str, **values):
    """MQTT 5 properties of a ``PUBLISH`` or ``CONNECT`` packet (paho's names:
    ResponseTopic, CorrelationData, MessageExpiryInterval...)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(getattr(PacketTypes, packet))
    for name, value in values.items():
        if value is not None:
            setattr(props, name, value)
    return props


def prop(message, name: str, default=None):
    """A property of a received message, or ``default``."""
    props = getattr(message, "properties", None)
    return getattr(props, name, default) if props is not None else default


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One broker address: ``mqtt://host:port`` or ``mqtts://host:port``."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str, label: str = "broker") -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ConfigError(f"{label}: expected mqtt://host:port or mqtts://host:port, got {url!r}")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ConfigError(f"{label}: bad port in {url!r}") from None
        if parts.username or parts.password or parts.path not in ("", "/"):
            raise ConfigError(f"{label}: {url!r} may hold only scheme, host and port "
                              "(credentials go in username and password_file)")
        return cls(parts.scheme, parts.hostname, port)

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Who we are to the broker, and whom we trust."""

    username: str = ""
    password: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


def tls_context(creds: Credentials):
    """Server certificates checked (against ``ca_file`` or the system's CAs),
    host names too; a client certificate when one is given."""
    import ssl

    context = ssl.create_default_context(cafile=creds.ca_file or None)
    if creds.cert_file:
        context.load_cert_chain(creds.cert_file, creds.key_file or None)
    return context


def client(client_id: str, endpoint: Endpoint, creds: Credentials):
    """An MQTT 5 paho client for ``endpoint``, not yet connected."""
    mqtt = paho()
    kwargs = {"client_id": client_id, "protocol": mqtt.MQTTv5}
    if hasattr(mqtt, "CallbackAPIVersion"):  # paho 2
        mqttc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
    else:
        mqttc = mqtt.Client(**kwargs)
    mqttc.on_socket_open = _no_delay
    if creds.username:
        mqttc.username_pw_set(creds.username, creds.password or None)
    if endpoint.tls:
        mqttc.tls_set_context(tls_context(creds))
    return mqttc


def _no_delay(_client, _userdata, sock) -> None:
    # A call is a few small packets each way: Nagle's algorithm would hold
    # each behind the peer's delayed ACK (40 ms on Linux).
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass  # not TCP (a unix socket, websockets): nothing to turn off


def _code(reason) -> int:
    """A reason code as a number: paho 2's ReasonCode, paho 1.6's int or ReasonCodes."""
    value = getattr(reason, "value", reason)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def bind(mqttc, *, on_connect: Callable[[bool, str], None] | None = None,
         on_disconnect: Callable[[str], None] | None = None,
         on_message: Callable[[object], None] | None = None,
         on_publish: Callable[[int], None] | None = None) -> None:
    """Callbacks of one shape on paho 1.6 and 2: ``on_connect(ok, reason)``,
    ``on_disconnect(reason)``, ``on_message(message)``, ``on_publish(mid)``."""
    v2 = hasattr(paho(), "CallbackAPIVersion")
    if on_connect is not None:
        def connected(_c, _u, _flags, reason, _props=None):
            on_connect(_code(reason) < 128, str(reason))
        mqttc.on_connect = connected
    if on_disconnect is not None:
        if v2:
            def disconnected(_c, _u, _flags, reason, _props=None):
                on_disconnect(str(reason))
        else:
            def disconnected(_c, _u, reason, _props=None):
                on_disconnect(str(reason))
        mqttc.on_disconnect = disconnected
    if on_message is not None:
        mqttc.on_message = lambda _c, _u, message: on_message(message)
    if on_publish is not None:
        if v2:
            mqttc.on_publish = lambda _c, _u, mid, _reason=None, _props=None: on_publish(mid)
        else:
            mqttc.on_publish = lambda _c, _u, mid: on_publish(mid)


def connect(mqttc, endpoint: Endpoint, keepalive: int, **kwargs) -> None:
    """Start connecting (the network loop finishes it); FleetError when the
    address cannot even be tried."""
    try:
        mqttc.connect_async(endpoint.host, endpoint.port, keepalive=keepalive, clean_start=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise FleetError(f"cannot connect to {endpoint}: {exc}") from exc


def read_secret(spec: str, label: str) -> str:
    """A password file, or a systemd credential by bare name (as the bus's)."""
    if not spec:
        return ""
    from daebus.bus.auth import read_secret as read

    return read(spec, label)
