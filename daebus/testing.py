"""Test helpers: call an app's handlers in-process, without a Redis server.

Example::

    from daebus.testing import TestClient

    def test_status():
        client = TestClient(app)
        assert client.call("get_status", {"detail_level": "full"})["status"] == "healthy"
        client.publish("notifications", {"type": "alert"})
        assert client.broadcasts == [("system_status", {"status": "healthy"})]

``cache`` is a fakeredis client when fakeredis is installed, or the client
you pass.

Nothing reaches a real Redis: a handler that calls another service through
``DaebusCaller`` (or ``AsyncCaller``) is answered by the stand-in given for
that service, and a service without one answers ``service_unavailable``::

    client.stand_in("display", {"set_brightness": lambda p: {"level": p["level"]}})
    client.stand_in("sensors", TestClient(sensors_app))   # the real handlers
    client.call("dim", {})
    assert client.calls == [("display", "set_brightness", {"level": 10})]

A handler that raises :class:`~daebus.Retry` is run again at once, within
its policy's attempts, and the waits it asked for are kept in
``client.retries``, ``(action or channel, seconds)``, for the test to check.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from daebus.bus import protocol
from daebus.call import standins
from daebus.app.blueprint import is_async
from daebus.app.context import app_context
from daebus.app.retry import next_wait
from daebus.ops.metrics import NullMetrics
from daebus.service.executor import Executor
from daebus.errors import remote_error
from daebus.app.pubsub import Broadcaster
from daebus.app.schemas import describe

__test__ = False  # keep pytest from collecting TestClient as a test class


@dataclasses.dataclass
class Reply:
    """Everything a handler sent for one request."""

    status: str
    payload: Any
    progress: list

    @property
    def ok(self) -> bool:
        return self.status == protocol.SUCCESS


class TestClient:
    """Runs actions, listeners, tasks and threads of ``app`` in this thread."""

    __test__ = False

    def __init__(self, app, cache=None, service: str | None = None):
        self.app = app
        if service or not app.service:
            app.service = service or app.name
        if cache is None:
            try:
                import fakeredis
            except ImportError:  # pragma: no cover - depends on the environment
                cache = None
            else:
                cache = fakeredis.FakeRedis(decode_responses=True)
        self.cache = cache
        self.broadcasts: list[tuple[str, Any]] = []
        self.retries: list[tuple[str, float]] = []
        self._again = None   # the next attempt a Retry asked for
        self._replies: dict[str, list[dict]] = {}
        self._loop = None
        # The executor services run requests with: the same rules under test.
        self._executor = Executor(app, NullMetrics(app.actions, app.listeners, app.tasks))
        self._stand_ins = standins.StandIns()
        self._binding = app.bound_to(cache, Broadcaster(self._publish))
        self._binding.__enter__()

    def stand_in(self, service: str, answer) -> None:
        """Answer the calls a handler makes to ``service`` with ``answer``:
        a TestClient of that service's app, a dict of action -> value or
        function of the payload, or a function ``(action, payload)``. A
        :class:`~daebus.DaebusError` it raises reaches the handler as the
        matching RemoteError, as over the bus."""
        self._stand_ins.add(service, answer)

    @property
    def calls(self) -> list[tuple[str, str, Any]]:
        """``(service, action, payload)`` of each call the handlers made."""
        return self._stand_ins.calls

    def _publish(self, channel: str, text: str) -> int:
        data = protocol.loads(text)
        if channel in self._replies:
            self._replies[channel].append(data)
        else:
            self.broadcasts.append((channel, data))
        return 1

    def request(self, action: str, payload: Any = None) -> Reply:
        """Run ``action`` as a request would; returns what it replied."""
        reply_to = f"{protocol.REPLY_PREFIX}{uuid.uuid4()}"
        self._replies[reply_to] = []
        envelope = protocol.request_envelope(action, {} if payload is None else payload, reply_to,
                                             uuid.uuid4().hex, self.app.service, None)
        # Round-trip through JSON so handlers see what the wire would give them.
        message = protocol.parse_request(protocol.loads(protocol.dumps(envelope)))
        try:
            with standins.serving(self):
                self._run_action(action, message)
        finally:
            sent = self._replies.pop(reply_to)
        return self._reply_of(action, sent)

    def _run_action(self, action: str, message: protocol.Request) -> None:
        while message is not None:
            if action in self._executor.async_actions:
                self._await(self._executor.run_async(message, self._publish, time.monotonic(), self._retry))
            else:
                self._executor.run(message, self._publish, None, self._retry)
            message, self._again = self._again, None

    def _retry(self, message: protocol.Request, sent, exc) -> bool:
        # At once, without the wait: a test should not sleep.
        wait = next_wait(exc, self.app.retries.get(message.action), message.delivery)
        if wait is None:
            return False
        self.retries.append((message.action, wait))
        self._again = message._replace(delivery=message.delivery + 1)
        return True

    def _retry_listener(self, handler, channel: str, payload, attempt: int, exc) -> bool:
        wait = next_wait(exc, self.app.listen_retries.get((channel, handler)), attempt)
        if wait is None:
            return False
        self.retries.append((channel, wait))
        self._again = attempt + 1
        return True

    def _reply_of(self, action: str, sent: list[dict]) -> Reply:
        finals = [r for r in sent if r.get("final", True)]
        if len(finals) != 1:
            raise AssertionError(f"action {action!r} sent {len(finals)} final replies, expected 1")
        progress = [r["payload"] for r in sent if not r.get("final", True)]
        reply = Reply(finals[0]["status"], finals[0]["payload"], progress)
        contract = self.app.contracts.get(action)
        if reply.ok and contract is not None:
            problems = contract.reply_problems(reply.payload)
            if problems:
                raise AssertionError(f"action {action!r} replied against its reply_schema: {describe(problems)}")
        return reply

    def call(self, action: str, payload: Any = None) -> Any:
        """Like ``DaebusCaller.send_request``: the payload, or a raised
        :class:`RemoteError`."""
        reply = self.request(action, payload)
        if not reply.ok:
            raise remote_error(reply.payload, self.app.service)
        return reply.payload

    def publish(self, channel: str, payload: dict) -> int:
        """Deliver a broadcast to the app's listeners on ``channel``."""
        payload = protocol.loads(protocol.dumps(payload))
        handlers = self.app.listeners.get(channel, [])
        with standins.serving(self):
            for handler in handlers:
                attempt = 1
                while attempt is not None:
                    if is_async(handler):
                        self._await(self._executor.listen_async(handler, channel, payload,
                                                                self._retry_listener, attempt))
                    else:
                        self._executor.listen(handler, channel, payload, self._retry_listener, attempt)
                    attempt, self._again = self._again, None
        return len(handlers)

    def run_task(self, name: str) -> None:
        """Run a background task once (exceptions propagate)."""
        self._call(self.app.tasks[name].fn)

    def run_start_hooks(self) -> None:
        for hook in self.app.start_hooks:
            self._call(hook)

    def _call(self, fn) -> None:
        with standins.serving(self):
            if is_async(fn):
                from daebus.service.aio import call_in_app
                self._await(call_in_app(self.app, fn))
            else:
                with app_context(self.app):
                    fn()

    def _await(self, coro):
        # One loop per client, so objects an async on_start hook creates
        # (locks, queues, tasks) stay usable by the handlers called next.
        if self._loop is None:
            import asyncio
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    def close(self) -> None:
        if self._binding is not None:
            self._binding.__exit__(None, None, None)
            self._binding = None
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def __enter__(self) -> TestClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
