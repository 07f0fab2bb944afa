"""The kiosk's own loopback page: the configured page in a full-screen
frame, an offline notice while it doesn't answer, and the heartbeat."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from pathlib import Path

log = logging.getLogger("daebus.kiosk")
PAGE = Path(__file__).with_name("static") / "frame.html"
STATES = ("starting", "online", "offline")


class Heartbeat:
    """When the page last showed it was alive, and what it showed."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.last = None
            self.state = None

    def beat(self, state: str) -> None:
        with self.lock:
            self.last = time.monotonic()
            if state != self.state:
                log.info("page is %s", state)
            self.state = state

    def age(self, since: float) -> float:
        """Seconds since the last beat (or since ``since`` if none came)."""
        with self.lock:
            return time.monotonic() - (self.last if self.last is not None else since)


def render(settings) -> bytes:
    shown = {"url": settings.url, "hide_cursor": settings.hide_cursor, "retry_seconds": settings.retry_seconds,
             "blank_from": settings.blank_from, "blank_until": settings.blank_until,
             # Several beats per timeout, so one slow beat never counts as a hang.
             "heartbeat_seconds": max(1.0, settings.heartbeat_timeout / 6)}
    # JSON inside <script>: "</" must not end the element.
    text = json.dumps(shown).replace("</", "<\\/")
    return PAGE.read_text().replace("{{config}}", text).encode()


def serve(settings, heartbeat: Heartbeat) -> http.server.ThreadingHTTPServer:
    """Start serving on 127.0.0.1:``settings.port`` in a thread."""
    body = render(settings)

    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 10

        def do_GET(self):
            if self.path.split("?")[0] != "/":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            state = self.rfile.read(min(length, 64)).decode(errors="replace")
            if self.path != "/heartbeat" or state not in STATES:
                self.send_error(400, f"expected POST /heartbeat with one of {', '.join(STATES)}")
                return
            heartbeat.beat(state)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format, *args):
            pass  # a line per heartbeat would flood the journal

    server = http.server.ThreadingHTTPServer(("127.0.0.1", settings.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="kiosk-frame", daemon=True).start()
    return server
