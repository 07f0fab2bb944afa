"""``GET /metrics``: the gateway's figures and every live service's counters,
in the Prometheus text format.

The gateway counts its own HTTP requests, latencies, event streams and bus
calls. Services' counters are read from their registry entries, where each
service writes them with the heartbeat it makes anyway: a scrape reads
Redis and never wakes a service. A service whose entry holds a corrupt
snapshot is reported as such (``daebus_service_metrics_valid 0``) and the
others are still rendered. Example::

    curl -s http://127.0.0.1:8080/metrics | grep daebus_action_calls_total
    # daebus_action_calls_total{action="read",service="sensors"} 42.0
"""

from __future__ import annotations

import bisect
import logging
import threading

from daebus.ops.metrics import BUCKETS

log = logging.getLogger("gateway.metrics")

PATH = "/metrics"
# prometheus-client's CONTENT_TYPE_LATEST names a newer format version on
# newer releases; this is the text format every release writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_SERVICE_LABELS = 128  # distinct service names counted before "(other)"
OTHER = "(other)"
# Clients may send any method token: others are counted together.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class GatewayMetrics:
    """The figures of one gateway process.

    Counted in plain dicts under one lock; prometheus-client is imported at
    the first scrape, so a gateway nobody scrapes doesn't carry it.
    """

    def __init__(self, gateway):
        self.gateway = gateway
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[str, list] = {}  # route -> bucket counts, then the sum
        self._bus_calls: dict[tuple[str, str], int] = {}
        self._services: set[str] = set()
        self._reported: set[str] = set()
        self._registry = None

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method if method in METHODS else OTHER, str(status))
        index = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            latency = self._latency.get(route)
            if latency is None:
                latency = self._latency[route] = [0] * (len(BUCKETS) + 1) + [0.0]
            latency[index] += 1
            latency[-1] += seconds

    def bus_call(self, service: str, outcome: str) -> None:
        with self._lock:
            # Exposure patterns may let any name through ("*"): bound the labels.
            if service not in self._services:
                if len(self._services) >= MAX_SERVICE_LABELS:
                    service = OTHER
                else:
                    self._services.add(service)
            self._bus_calls[(service, outcome)] = self._bus_calls.get((service, outcome), 0) + 1

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if self._registry is None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(self)
            self._registry = registry
        return generate_latest(self._registry)

    # -- the collector prometheus-client calls at each scrape ---------------
    def describe(self):
        return []  # nothing to read at registration time

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        with self._lock:
            requests_, bus_calls = dict(self._requests), dict(self._bus_calls)
            latency = {route: list(counts) for route, counts in self._latency.items()}
        family = CounterMetricFamily("daebus_gateway_http_requests", "HTTP requests by route, method and status",
                                     labels=["route", "method", "status"])
        for key, count in sorted(requests_.items()):
            family.add_metric(list(key), count)
        yield family
        family = HistogramMetricFamily("daebus_gateway_http_request_duration_seconds",
                                       "Time to answer an HTTP request (to the first byte of an event stream)",
                                       labels=["route"])
        for route, counts in sorted(latency.items()):
            family.add_metric([route], _cumulative(BUCKETS, counts[:-1]), counts[-1])
        yield family
        family = CounterMetricFamily("daebus_gateway_bus_calls", "Action calls sent on the bus, by outcome "
                                     "(ok or the error code)", labels=["service", "outcome"])
        for key, count in sorted(bus_calls.items()):
            family.add_metric(list(key), count)
        yield family
        hub = self.gateway.hub
        yield GaugeMetricFamily("daebus_gateway_event_streams", "Open event streams", value=hub.stream_count)
        yield CounterMetricFamily("daebus_gateway_event_streams_dropped",
                                  "Event streams dropped because the browser fell too far behind",
                                  value=hub.dropped)
        try:
            services = self.gateway.services()
        except Exception as exc:  # noqa: BLE001 - the gateway's own figures still count
            log.debug("registry unreadable at scrape: %s", exc)
            yield GaugeMetricFamily("daebus_registry_up", "1 when the service registry in Redis was readable",
                                    value=0)
            return
        yield GaugeMetricFamily("daebus_registry_up", "1 when the service registry in Redis was readable",
                                value=1)
        yield from _service_families(services, self._report_corrupt)

    def _report_corrupt(self, name: str, error: str) -> None:
        # Once per service and process: a scrape every few seconds must not flood the journal.
        if name not in self._reported:
            self._reported.add(name)
            log.warning("service %r published corrupt metrics: %s", name, error)


def _cumulative(bounds, counts) -> list[tuple[str, float]]:
    """Prometheus histogram buckets (``le``, cumulative count) from per-bucket counts."""
    buckets, total = [], 0
    for bound, count in zip([*(repr(float(b)) for b in bounds), "+Inf"], counts):
        total += count
        buckets.append((bound, total))
    return buckets


def _service_families(services: list[dict], report):
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    up = GaugeMetricFamily("daebus_service_up", "1 for each live service in the registry", labels=["service"])
    valid = GaugeMetricFamily("daebus_service_metrics_valid", "1 when the service's counters could be read, "
                              "0 when it published none or a corrupt snapshot", labels=["service"])
    uptime = GaugeMetricFamily("daebus_service_uptime_seconds", "Seconds since the service started",
                               labels=["service"])
    queued = GaugeMetricFamily("daebus_service_queue_depth", "Requests waiting for a free handler thread",
                               labels=["service"])
    in_flight = GaugeMetricFamily("daebus_service_in_flight", "Handler calls running", labels=["service"])
    reconnects = CounterMetricFamily("daebus_service_reconnects", "Redis connections restored after a loss",
                                     labels=["service"])
    calls = CounterMetricFamily("daebus_action_calls", "Requests handled", labels=["service", "action"])
    errors = CounterMetricFamily("daebus_action_errors", "Error replies, by code",
                                 labels=["service", "action", "code"])
    busy = CounterMetricFamily("daebus_action_busy", "Requests refused with 'busy' (work queue full)",
                               labels=["service", "action"])
    expired = CounterMetricFamily("daebus_action_expired", "Requests skipped: the caller had given up "
                                  "while they waited", labels=["service", "action"])
    cancelled = CounterMetricFamily("daebus_action_cancelled", "Requests their caller cancelled before they "
                                    "ended: skipped before they started, or cancelled while they ran", labels=["service", "action"])
    latency = HistogramMetricFamily("daebus_action_duration_seconds", "From receipt to the final reply",
                                    labels=["service", "action"])
    runs = {kind: (CounterMetricFamily(f"daebus_{kind}_runs", f"{kind.capitalize()} runs", labels=["service", kind]),
                   CounterMetricFamily(f"daebus_{kind}_failures", f"{kind.capitalize()} runs that raised",
                                       labels=["service", kind]),
                   GaugeMetricFamily(f"daebus_{kind}_last_duration_seconds", f"Duration of the last {kind} run",
                                     labels=["service", kind]))
            for kind in ("listener", "task")}
    for info in services:
        name = info["name"]
        up.add_metric([name], 1)
        snapshot = info.get("metrics")
        if info.get("metrics_error"):
            report(name, info["metrics_error"])
        valid.add_metric([name], 1 if snapshot else 0)
        if not snapshot:
            continue
        uptime.add_metric([name], snapshot["uptime"])
        queued.add_metric([name], snapshot["queued"])
        in_flight.add_metric([name], snapshot["in_flight"])
        reconnects.add_metric([name], snapshot["reconnects"])
        bounds = snapshot["buckets"]
        for action, stats in sorted(snapshot["actions"].items()):
            calls.add_metric([name, action], stats["calls"])
            busy.add_metric([name, action], stats["busy"])
            expired.add_metric([name, action], stats["expired"])
            cancelled.add_metric([name, action], stats["cancelled"])
            for code, count in sorted(stats["errors"].items()):
                errors.add_metric([name, action, code], count)
            latency.add_metric([name, action], _cumulative(bounds, stats["buckets"]), stats["sum"])
        for kind, table in (("listener", "listeners"), ("task", "tasks")):
            total, failures, last = runs[kind]
            for label, stats in sorted(snapshot[table].items()):
                total.add_metric([name, label], stats["runs"])
                failures.add_metric([name, label], stats["failures"])
                last.add_metric([name, label], stats["last_duration"])
    yield from (up, valid, uptime, queued, in_flight, reconnects, calls, errors, busy, expired, cancelled, latency)
    for families in runs.values():
        yield from families

