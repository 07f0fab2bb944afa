"""The container that runs an app: its components (handlers, heartbeat, bus
reader, attached components, start hooks, scheduler, threads; see
:mod:`daebus.lifecycle`), signals, systemd notify, registry and shutdown."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import threading
import time

from . import __version__, auth, config, logs, protocol, registry, schemas
from .blueprint import is_async, uses_async
from .context import app_context, set_running_app
from .dispatch import run_action, run_listener
from .errors import AccessDenied, NameTaken
from .expiry import TransitClock
from .group import GroupServer
from .kept import KeepingPublisher
from .lifecycle import Lifecycle, name_of
from .membership import Membership
from .metrics import NullMetrics, ServiceMetrics
from .pool import WorkerPool
from .pubsub import Broadcaster
from .scheduler import TaskScheduler
from .signals import STOP_SIGNALS, unblock
from .supervision import BusReader, Heartbeat
from .systemd import Notifier
from .threads import AppThreads, ManagedThread
from .transport import REDIS_ERRORS, Publisher, connect, redact

log = logging.getLogger("daebus.runtime")

# Seconds async handlers still running past the shutdown bound get, once
# cancelled, to send their error reply.
ASYNC_CANCEL_GRACE = 1.0
_SETTING_NAMES = {f for f in config.Settings.__dataclass_fields__ if f != "origins"}


class Runtime:
    def __init__(self, app, *, debug: bool = False, redis_host=None, redis_port=None, redis_url=None,
                 **overrides):
        unknown = set(overrides) - _SETTING_NAMES
        if unknown:
            raise TypeError(f"run() got unknown setting(s): {', '.join(sorted(unknown))}")
        self.app = app
        self.service: str = app.service
        self.debug = debug
        self.settings = config.load(redis_url=config.redis_url_from(redis_url, redis_host, redis_port),
                                    **overrides)
        # An unreadable password file is a configuration error, found before anything starts.
        auth.credentials(self.settings.redis_url)
        self.mode = app.mode or self.settings.mode.lower()
        self.exit_status = 0
        self.membership: Membership | None = None
        self.group: GroupServer | None = None
        self.ready = app._ready
        self.running = False
        self.stopping = threading.Event()
        self.notifier = Notifier.from_env()
        self.client = None
        self.broadcaster: Broadcaster | None = None
        self.reader: BusReader | None = None
        self.pool = WorkerPool(app.max_workers, self.settings.queue_size, name=f"daebus-{self.service}")
        # The event loop exists only for apps with async def handlers.
        self.aio = None
        if uses_async(app):
            from . import aio  # asyncio is imported only by services that use it
            self.aio = aio.EventLoop(self.service, app.max_workers)
        self._async_actions = {name for name, fn in app.actions.items() if is_async(fn)}
        self.metrics = (ServiceMetrics if self.settings.metrics else NullMetrics)(
            app.actions, app.listeners, app.tasks)
        self.scheduler = TaskScheduler(app, list(app.tasks.values()), aio=self.aio, metrics=self.metrics)
        self.threads = AppThreads(app)
        self.lifecycle = Lifecycle([])
        self.started_at = time.time()
        self._transit = TransitClock()
        # Requests accepted into the pool and not yet answered, by identity:
        # the ones still here when shutdown_timeout runs out get an error reply.
        self._inflight: dict[int, protocol.Request] = {}
        self._busy_log = logs.StateLog(log, "ok")
        self._binding = contextlib.ExitStack()
        self._signals = _SignalWatcher(self)

    @property
    def subscriber(self):
        return self.reader.subscriber if self.reader is not None else None

    # -- lifecycle ---------------------------------------------------------
    def run(self) -> None:
        logs.setup(self.settings.log_level, self.debug)
        self.running = True
        set_running_app(self.app)
        self._signals.install()
        try:
            if self._start():
                self.stopping.wait()
        except AccessDenied as exc:
            self.refused(exc)
        finally:
            self._shutdown()
            self._signals.uninstall()
            set_running_app(None)
            self.running = False

    def stop(self) -> None:
        self.stopping.set()

    def _start(self) -> bool:
        url = self.settings.redis_url
        log.info("starting service %r (daebus %s, Redis %s)", self.service, __version__, redact(url))
        self.notifier.status("connecting to redis")
        self.client = connect(url, socket_timeout=self.settings.socket_timeout)
        self.publish = Publisher(self.client)
        self.broadcaster = Broadcaster(KeepingPublisher(self.client, self.publish))
        self._binding.enter_context(self.app.bound_to(self.client, self.broadcaster, url))
        self.membership = Membership(self.client, self.service, self.mode, self.settings.registry_ttl)
        self.reader = BusReader(self)
        self.heartbeat = Heartbeat(self)
        # A group reads its stream (after the intake, which then only takes events).
        self.group = self._group() if self.mode == registry.GROUP else None
        # Started in this order, stopped in the reverse; see daebus.lifecycle.
        self.lifecycle = Lifecycle([_Handlers(self), self.heartbeat, self.reader, *self.app.components,
                                    self.reader.intake, *([self.group] if self.group else []),
                                    _StartHooks(self), self.scheduler, self.threads])
        if not self.lifecycle.start(self.app, self.stopping):
            return False
        # What exists now (modules, the app, its handlers) lives as long as
        # the service: out of the collector's way, so that a full collection
        # while a request waits scans only what requests allocate.
        gc.collect()
        gc.freeze()
        self.register("running")
        status = (f"serving {len(self.app.actions)} action(s), "
                  f"{len(self.app.listeners)} channel(s)" + (" as a group member" if self.group else ""))
        self.ready.set()
        self.notifier.ready(status)
        log.info("service %r ready: %s", self.service, status)
        return True

    def _shutdown(self) -> None:
        self.ready.clear()
        self.notifier.stopping("stopping")
        log.info("stopping service %r", self.service)
        self.stopping.set()
        busy = self.lifecycle.stop(self.settings.shutdown_timeout)
        if busy:
            log.warning("still running after %.0f s, exiting without them: %s",
                        self.settings.shutdown_timeout, ", ".join(name_of(component) for component in busy))
        self._binding.close()
        if self.group is not None:
            self.group.leave()
        if self.client is not None:
            try:
                self.membership.release()
            except (*REDIS_ERRORS, AccessDenied):
                pass
            self.client.close()
        self.notifier.close()
        log.info("service %r stopped", self.service)

    def thread(self, name: str) -> ManagedThread:
        return self.threads.get(name)

    # -- messages ------------------------------------------------------------
    def on_message(self, channel: str, data: bytes) -> None:
        received = time.monotonic()
        if channel == self.service:
            if self.group is not None:
                self.group.bridge(data)
            else:
                self._on_request(data, received)
        elif channel in self.membership.channels:
            if self.group is not None and self.group.heard(data):
                self.heartbeat.wake()
        else:
            self._on_event(channel, data)

    def abandon_inflight(self) -> None:
        # Their callers would otherwise wait out their whole timeout.
        for message in list(self._inflight.values()):
            if message.reply_to:
                self._reply_error(message.reply_to, message.request_id,
                                  f"service {self.service!r} stopped before answering",
                                  protocol.SHUTTING_DOWN)
        self._inflight.clear()

    def _on_request(self, data: bytes, received: float) -> None:
        try:
            message = protocol.parse_request(protocol.decode_object(data, self.settings.max_message_bytes))
        except protocol.ProtocolError as exc:
            log.warning("dropped malformed request on %r: %s", self.service, exc)
            if exc.reply_to:
                self._reply_error(exc.reply_to, exc.request_id, str(exc), protocol.BAD_REQUEST)
            return
        # Measured from when the caller sent it: a request that sat in Redis
        # or a socket buffer during a flood is as stale as one that sat here.
        waited = self._transit.transit(message.sent_at)
        self._inflight[id(message)] = message
        if self._submit_request(message, received - waited):
            self._busy_log.set("ok", logging.INFO, "work queue accepting requests again")
            return
        self._inflight.pop(id(message), None)
        self.metrics.busy(message.action)
        self._busy_log.set("busy", logging.WARNING, "work queue full (%d workers, %d queued): "
                           "answering 'busy'", self.app.max_workers, self.settings.queue_size)
        if message.reply_to:
            self._reply_error(message.reply_to, message.request_id,
                              f"service {self.service!r} is busy", protocol.BUSY)

    def _reply_error(self, reply_to: str, request_id, message: str, code: str) -> None:
        envelope = protocol.reply_envelope(request_id, protocol.ERROR, protocol.error_payload(message, code))
        try:
            self.publish(reply_to, protocol.dumps(envelope))
        except REDIS_ERRORS as exc:
            log.error("could not send %s reply to %s: %s", code, reply_to, exc)

    def _submit_request(self, message: protocol.Request, sent: float) -> bool:
        if message.action in self._async_actions:
            return self._on_loop(message.action, self._handle_request_async, message, sent)
        subscriber = self.subscriber
        # A lone request (nothing else in flight) runs on the reader that read
        # it, in a worker's place, when the other reader can read on. Under
        # load the pool's threads overlap their replies' round trips instead.
        if subscriber is not None and not self.pool.unfinished and self.pool.borrow():
            if subscriber.hand_over():
                try:
                    self._handle_request(message, sent)
                finally:
                    self.pool.give_back()
                return True
            self.pool.give_back()
        return self.pool.submit(self._handle_request, message, sent)

    def _on_loop(self, name: str, fn, *args) -> bool:
        """Run ``fn(*args)`` on the event loop, counted by the pool like a
        thread's job (the busy bound and the shutdown drain)."""
        if not self.pool.admit():
            return False
        try:
            future = self.aio.submit(fn, *args, name=name)
        except RuntimeError:  # the loop is gone: shutting down
            self.pool.release()
            return False
        future.add_done_callback(lambda _: self.pool.release())
        return True

    def _expired(self, message: protocol.Request, sent: float) -> bool:
        if message.timeout_ms and (time.monotonic() - sent) * 1000 > message.timeout_ms:
            self.metrics.expired(message.action)
            log.debug("skipped %r request %s: its caller gave up after %d ms",
                      message.action, message.request_id, message.timeout_ms,
                      extra={"daebus_action": message.action,
                             "daebus_request_id": message.trace_id or message.request_id})
            return True
        return False

    def _handle_request(self, message: protocol.Request, sent: float) -> None:
        try:
            if not self._expired(message, sent):
                code = run_action(self.app, message, self.publish)
                self.metrics.call(message.action, time.monotonic() - sent, code)
        finally:
            self._inflight.pop(id(message), None)

    async def _handle_request_async(self, message: protocol.Request, sent: float) -> None:
        from .aio import run_action_async
        try:
            if not self._expired(message, sent):
                code = await run_action_async(self.app, message, self.publish)
                self.metrics.call(message.action, time.monotonic() - sent, code)
        finally:
            self._inflight.pop(id(message), None)

    def _listen(self, handler, channel: str, payload: dict) -> None:
        started = time.monotonic()
        ok = run_listener(self.app, handler, channel, payload)
        self.metrics.listener(channel, time.monotonic() - started, not ok)

    async def _listen_async(self, handler, channel: str, payload: dict) -> None:
        from .aio import run_listener_async
        started = time.monotonic()
        ok = await run_listener_async(self.app, handler, channel, payload)
        self.metrics.listener(channel, time.monotonic() - started, not ok)

    def _on_event(self, channel: str, data: bytes) -> None:
        try:
            payload = protocol.decode_object(data, self.settings.max_message_bytes)
        except protocol.ProtocolError as exc:
            log.warning("dropped malformed message on %r: %s", channel, exc)
            return
        for handler in self.app.listeners.get(channel, ()):
            if is_async(handler):
                accepted = self._on_loop(channel, self._listen_async, handler, channel, payload)
            else:
                accepted = self.pool.submit(self._listen, handler, channel, payload)
            if not accepted:
                log.warning("work queue full: dropped a message on %r", channel)

    # -- supervision -----------------------------------------------------------
    def on_restored(self, outage: float) -> None:
        self.metrics.reconnected()
        self.register("running")
        if self.ready.is_set():
            self.notifier.status(f"serving (Redis restored after {outage:.1f} s)")

    def claim(self, status: str) -> None:
        info = registry.record(
            self.service, actions=self.app.actions, channels=self.app.listeners,
            version=__version__, started_at=self.started_at, status=status,
            schemas=schemas.published(self.app),
            metrics=self.metrics.snapshot(uptime=time.time() - self.started_at, queued=self.pool.queued,
                                          in_flight=self.pool.unfinished - self.pool.queued))
        if self.group is not None:
            info.update(self.group.counters(), stream_max_length=self.settings.stream_max_length)
        self.membership.claim(info)

    def register(self, status: str) -> None:
        """Refresh this instance's registry entry; if another live instance
        took the name meanwhile, stop with NameTaken's exit status."""
        try:
            self.claim(status)
        except NameTaken as exc:
            self.taken(exc)
        except AccessDenied as exc:
            self.refused(exc)
        except REDIS_ERRORS as exc:
            log.debug("registry update failed: %s", exc)

    # -- group mode ------------------------------------------------------------
    def _group(self) -> GroupServer:
        def run(message: protocol.Request, publish) -> None:
            started = time.monotonic()
            if message.action in self._async_actions:
                from .aio import run_action_async
                # The pool thread waits: the group's slots bound both kinds.
                code = self.aio.submit(run_action_async, self.app, message, publish,
                                       name=message.action).result()
            else:
                code = run_action(self.app, message, publish)
            self.metrics.call(message.action, time.monotonic() - started, code)

        def bridge(on: bool) -> None:
            if on:
                self.subscriber.add(self.service, timeout=self.settings.socket_timeout)
            else:
                self.subscriber.remove(self.service)
            log.info("%s the service channel into the group's stream", "bridging" if on else "no longer bridging")

        return GroupServer(url=self.settings.redis_url, client=self.client, service=self.service,
                           consumer=self.membership.token, settings=self.settings,
                           slots=self.app.max_workers, submit=self.pool.submit, borrow=self.pool.borrow,
                           give_back=self.pool.give_back, run=run,
                           publish=self.publish, reply_error=self._reply_error, on_bridge=bridge,
                           on_refused=self.refused)

    def group_beat(self) -> float | None:
        """The group's part of a heartbeat; how soon the next is needed."""
        if self.group is None or not self.ready.is_set():
            return None
        try:
            return self.group.beat()
        except Exception as exc:  # noqa: BLE001 - Redis away or the stream gone: next beat retries
            log.debug("group beat failed: %s", exc)
            return None

    def refused(self, exc: AccessDenied) -> None:
        """Redis refused this service's identity or one of its commands:
        one error line, then stop with a configuration error's status."""
        if not self.exit_status:
            log.error("%s", exc)
        self.exit_status = exc.exit_status
        self.stop()

    def taken(self, exc: NameTaken) -> None:
        if not self.exit_status:
            log.error("%s", exc)
        self.exit_status = exc.exit_status
        self.stop()


class _Handlers:
    """The worker pool and, for async handlers, the event loop: the work
    every other component hands over, drained last."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.name = f"{runtime.pool.unfinished} handler(s)"

    def start(self, app) -> None:
        if self.runtime.aio is not None:
            self.runtime.aio.start()

    def stop(self) -> None:
        self.runtime.pool.stop()

    def join(self, timeout: float) -> bool:
        runtime = self.runtime
        drained = runtime.pool.join(timeout)
        self.name = f"{runtime.pool.unfinished} handler(s)"
        if runtime.aio is not None:
            # Async handlers past the bound are cancelled, so they answer themselves.
            runtime.aio.stop(grace=ASYNC_CANCEL_GRACE)
        if not drained:
            runtime.abandon_inflight()
        return drained


class _StartHooks:
    """Runs the ``@app.on_start`` hooks; an exception stops the service."""

    name = "on_start hooks"

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def start(self, app) -> None:
        with app_context(app):
            for hook in app.start_hooks:
                try:
                    if is_async(hook):
                        from .aio import call_in_app
                        self.runtime.aio.run(call_in_app, app, hook)
                    else:
                        hook()
                except Exception:
                    log.exception("on_start hook %s failed; stopping", getattr(hook, "__qualname__", hook))
                    raise


class _SignalWatcher:
    """SIGTERM/SIGINT stop the app; a second signal exits at once.

    The handler only writes a byte to a pipe; a thread reads it and calls
    ``stop()``, so no lock is ever taken inside a signal handler.
    """

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.count = 0
        self._previous: dict = {}
        self._pipe: tuple[int, int] | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._pipe = os.pipe()
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        unblock(STOP_SIGNALS)  # after the handlers: one already pending reaches them
        threading.Thread(target=self._watch, name="daebus-signals", daemon=True).start()

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if self.count > 1:
            os.write(2, b"daebus: second signal, exiting now\n")
            os._exit(1)
        os.write(self._pipe[1], bytes([signum]))

    def _watch(self) -> None:
        fd = self._pipe[0]
        try:
            data = os.read(fd, 1)
        except OSError:
            return
        finally:
            os.close(fd)
        if data and data != b"\0":
            log.info("received %s, shutting down", signal.Signals(data[0]).name)
            self.runtime.stop()

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        if self._pipe is not None:
            try:
                os.write(self._pipe[1], b"\0")  # ends the watcher if no signal came
            except OSError:
                pass
            os.close(self._pipe[1])
            self._pipe = None
