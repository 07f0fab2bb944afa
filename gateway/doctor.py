"""The gateway's checks for ``daebus doctor``: its health endpoint answers,
and each ``expose_actions`` pattern matches an action a live service has.

Registered as the ``gateway`` entry point of group ``daebus.doctor``
(pyproject.toml); ``daebus doctor`` loads it when the gateway is installed.
"""

from __future__ import annotations

import functools
import json
import urllib.error
import urllib.request

from daebus.ops import config

from gateway import settings
from gateway.expose import Exposure


def checks(doctor) -> list:
    """The steps to run, with the gateway's settings read now (a bad
    ``[gateway]`` section is reported as the configuration's problem)."""
    gateway = settings.load()
    return [functools.partial(health, gateway=gateway), functools.partial(exposure, gateway=gateway)]


def health(doctor, *, gateway) -> None:
    base = doctor.args.gateway or (_base_url(gateway.bind) if gateway else None)
    if base is None:
        doctor.add("gateway", None, "not installed here")
        return
    url = base.rstrip("/") + "/api/health"
    request = urllib.request.Request(url)
    if gateway is not None and gateway.token:
        request.add_header("Authorization", f"Bearer {gateway.token}")
    fix = "journalctl -u daebus-gateway -b -n 50, then: sudo systemctl restart daebus-gateway"
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            body = json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        problem = (body.get("error") or {}).get("message") or exc.reason
        doctor.add("gateway", False, f"{url} answers {exc.code}: {problem}", fix)
        return
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        doctor.add("gateway", False, f"{url} does not answer: {reason}", fix)
        return
    doctor.add("gateway", True, f"{url}: {body.get('status', '?')}, Redis {body.get('redis', '?')}, "
                              f"{body.get('streams', 0)} event streams")

def exposure(doctor, *, gateway) -> None:
    if gateway is None:
        doctor.add("exposed actions", None, "no gateway configuration here")
        return
    patterns = list(gateway.expose_actions)
    if not patterns:
        doctor.add("exposed actions", True, "none exposed")
        return
    if doctor.services is None:
        doctor.add("exposed actions", None, "not checked: Redis unreachable")
        return
    live = [(s["name"], action) for s in doctor.services for action in s.get("actions") or []]
    dead = 0
    for pattern in patterns:
        exposure = Exposure(actions=[pattern], channels=[])
        if not any(exposure.action_allowed(service, action) for service, action in live):
            dead += 1
            doctor.add("exposed actions", False,
                     f"{pattern!r} ({_pattern_origin(pattern)}) matches no action of a running service",
                     "start the service that provides it, or correct the pattern; "
                     "then: sudo systemctl restart daebus-gateway")
    if not dead:
        doctor.add("exposed actions", True, f"every pattern matches a live action ({', '.join(patterns)})")




def _base_url(binds) -> str | None:
    for bind in binds:
        if bind.startswith("unix:"):
            continue
        host, _, port = bind.rpartition(":")
        host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}.get(host, host)
        return f"http://{host}:{port}"
    return None


def _pattern_origin(pattern: str) -> str:
    for doc in config.documents():
        listed = (doc.data.get("gateway") or {}).get("expose_actions")
        if pattern == listed or (isinstance(listed, list) and pattern in listed):
            return doc.where("gateway", "expose_actions")
    return "command line"


