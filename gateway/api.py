"""The HTTP API: actions, event streams, the service list and health.

Example (from a kiosk page)::

    fetch("/api/services/clock/now", {method: "POST",
          headers: {"Content-Type": "application/json"}, body: "{}"})
      .then(r => r.json())          // {"result": ...} or {"error": {...}}

    new EventSource("/api/events?channel=sensors.temp").onmessage =
      e => console.log(JSON.parse(e.data))   // {"channel": ..., "data": ...}
"""

from __future__ import annotations

import functools
import math
import socket

from flask import Blueprint, Response, current_app, request

from daebus import __version__ as daebus_version
from daebus.bus import protocol, registry, wirejson
from daebus.errors import ConnectionLost, DaebusError

from . import busdoc, openapi
from . import metrics, observe
from .errors import api_error, from_daebus, json_response
from .events import TooManyStreams, sse_body
from .progress import start_call
from .streamguard import ClientWatch, guard

bp = Blueprint("api", __name__)

MAX_CHANNELS = 64
# Kernel buffer per stream: the queue, not the socket, is where a slow
# browser is noticed, and autotuning could otherwise hold megabytes per stalled
# stream.
STREAM_SEND_BUFFER = 256 * 1024


def _gateway():
    return current_app.extensions["daebus_gateway"]


def _read_payload(limit: int) -> dict:
    if request.mimetype != "application/json":
        # An HTML form can only send urlencoded, multipart or text/plain, so
        # insisting on JSON also keeps cross-site forms from calling actions.
        raise api_error("bad_content_type", f"the body must be application/json, "
                       f"got {request.mimetype or 'no content type'}")
    if request.content_length is not None and request.content_length > limit:
        raise api_error("payload_too_large", f"the body exceeds {limit} bytes")
    # Read at most one byte past the limit: a chunked body has no length to check first.
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise api_error("payload_too_large", f"the body exceeds {limit} bytes")
    if not body.strip():
        return {}
    try:
        payload = protocol.loads(body)
    except wirejson.NotCarried as exc:
        # JSON, but nothing the bus carries: the request is bad, as a service would say.
        raise api_error("bad_request", f"the body cannot be sent on: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise api_error("bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise api_error("bad_json", f"the body must be a JSON object, got {type(payload).__name__}")
    return payload


def _timeout(settings) -> float:
    raw = request.args.get("timeout")
    if raw is None:
        return settings.default_timeout
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise api_error("bad_timeout", f"timeout must be a positive number of seconds, got {raw!r}")
    return min(value, settings.max_timeout)


def _wants_events() -> bool:
    # fetch() sends "*/*" by default: only a client that asks for events
    # (and prefers them to JSON) gets a stream.
    return request.accept_mimetypes.best_match(["application/json", "text/event-stream"]) \
        == "text/event-stream"


def _event_stream(body, settings, on_gone=None) -> Response:
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        # A browser that stops reading would block its thread in send()
        # forever: guard() aborts the stream when there is no room for
        # send_timeout, and this timeout is the backstop for a chunk larger
        # than the room it found.
        sock.settimeout(settings.send_timeout)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SEND_BUFFER)
        except OSError:
            pass  # a socket type without the option: the queue bound still holds
    response = Response(guard(body, sock, settings.send_timeout, on_gone), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer the stream
    return response


@bp.post("/api/services/<service>/<action>")
def call_action(service: str, action: str):
    """Call ``action`` on ``service`` with the JSON body as its payload."""
    gateway = _gateway()
    if not gateway.exposure.action_allowed(service, action):
        raise api_error("not_exposed", gateway.exposure.action_denied(service, action))
    payload = _read_payload(gateway.settings.max_body_bytes)
    timeout = _timeout(gateway.settings)
    # A client that hangs up while the call runs cancels it, on the service too.
    client = ClientWatch(request.environ.get("gunicorn.socket"))
    call = functools.partial(gateway.call, service, action, payload, timeout, trace_id=observe.request_id(),
                             cancel=client.cancellation)
    if _wants_events():
        try:
            body = start_call(call, timeout, gateway.settings.heartbeat, client.cancellation)
        except BaseException:
            client.unwatch()
            raise
        # From here the stream's guard watches the client, and stops watching at its end.
        return _event_stream(body, gateway.settings, on_gone=client.gone)
    try:
        with client:
            result = call()
    except DaebusError as exc:
        raise from_daebus(exc) from exc
    return json_response({"result": result})


@bp.get("/api/events")
def events():
    """Stream the broadcasts of the ``channel`` parameters as SSE."""
    gateway = _gateway()
    channels = list(dict.fromkeys(request.args.getlist("channel")))
    if not channels:
        raise api_error("no_channel", "name at least one channel: /api/events?channel=NAME")
    if len(channels) > MAX_CHANNELS:
        raise api_error("too_many_channels", f"at most {MAX_CHANNELS} channels per stream")
    for channel in channels:
        if not gateway.exposure.channel_allowed(channel):
            raise api_error("not_exposed", gateway.exposure.channel_denied(channel))
    hub = gateway.hub
    try:
        stream = hub.open(channels)
    except TooManyStreams as exc:
        raise api_error("too_many_streams", str(exc), {"Retry-After": "5"}) from None
    # EventSource sends Last-Event-ID when it reconnects by itself; a page
    # that opens a new EventSource passes it as a parameter instead.
    last_event_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    plan = hub.resume(stream, last_event_id)
    return _event_stream(sse_body(hub, stream, gateway.settings.heartbeat, plan), gateway.settings,
                         on_gone=lambda: stream.close("gone"))


@bp.get("/api/services")
def services():
    """Live services from the registry, with their exposed actions and channels."""
    gateway = _gateway()
    exposure = gateway.exposure
    listed = []
    for info in _live_services(gateway):
        name = info["name"]
        actions = [a for a in info.get("actions", []) if exposure.action_allowed(name, a)]
        channels = [c for c in info.get("channels", []) if exposure.channel_allowed(c)]
        schemas = info.get("schemas") or {}
        listed.append({
            "name": name, "status": info.get("status"), "version": info.get("version"),
            "started_at": info.get("started_at"), "uptime": info.get("uptime"),
            "mode": info.get(registry.MODE), "instances": [
                {k: i.get(k) for k in ("host", "started_at", "uptime", "status")}
                for i in info.get("instances", [])],
            "actions": actions, "channels": channels,
            "schemas": {"actions": _only(schemas.get("actions"), actions),
                        "channels": _only(schemas.get("channels"), channels)},
        })
    return json_response({"services": listed})


@bp.get(metrics.PATH)
def prometheus_metrics():
    """The gateway's figures and every live service's counters (Prometheus text)."""
    return Response(_gateway().metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE})


def _only(schemas, names: list[str]) -> dict:
    return {n: schemas[n] for n in names if n in schemas} if isinstance(schemas, dict) else {}


@bp.get("/api/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document of the exposed actions of live services
    (their messages on the bus: ``/api/asyncapi.json``)."""
    gateway = _gateway()
    return json_response(openapi.document(_live_services(gateway), gateway.exposure,
                                          token=bool(gateway.settings.token)))


@bp.get("/api/asyncapi.json")
def asyncapi_document():
    """The AsyncAPI 3.0 document of the bus, as far as this gateway exposes it."""
    gateway = _gateway()
    return json_response(busdoc.exposed(_live_services(gateway), gateway.exposure))


def _live_services(gateway) -> list[dict]:
    try:
        return gateway.services()
    except DaebusError as exc:
        raise from_daebus(exc) from exc


@bp.get("/api/health")
def health():
    """200 while Redis answers, 503 otherwise; with stream counters."""
    gateway = _gateway()
    error = gateway.ping()
    hub = gateway.hub
    body = {"status": "ok" if error is None else "unavailable",
            "redis": "up" if error is None else "down",
            "events": ("up" if hub.up else "down") if hub.patterns else "off",
            "streams": hub.stream_count, "dropped_streams": hub.dropped,
            "version": daebus_version}
    if error is not None:
        body["error"] = {"code": ConnectionLost.code, "message": error}
    return json_response(body, 200 if error is None else 503)
