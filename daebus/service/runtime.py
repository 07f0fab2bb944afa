"""The container that runs an app: its components (handlers, heartbeat, bus
reader, attached components, start hooks, scheduler, threads; see
:mod:`daebus.service.lifecycle`), signals, systemd notify, registry and shutdown."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import threading
import time

from daebus import __version__
from daebus.bus import auth, protocol, registry
from daebus.bus.keys import cancel_channel
from daebus.ops import config, logs
from daebus.app import schemas
from daebus.app.blueprint import is_async, uses_async
from daebus.app.context import app_context, set_running_app
from daebus.service.cancels import Cancels
from daebus.service.executor import Executor
from daebus.service.gates import Gates
from daebus.service.handlers import Handlers
from daebus.service.intake import Broadcasts, OwnerIntake
from daebus.service.stopping import StopClock, bounded
from daebus.errors import AccessDenied, NameTaken
from daebus.service.group import GroupServer
from daebus.bus.kept import KeepingPublisher
from daebus.service.later import Later
from daebus.service.lifecycle import Lifecycle, name_of
from daebus.service.membership import Membership
from daebus.ops.metrics import NullMetrics, ServiceMetrics
from daebus.service.pool import WorkerPool
from daebus.service.retries import Retries
from daebus.app.pubsub import Broadcaster
from daebus.service.scheduler import TaskScheduler
from daebus.ops.signals import STOP_SIGNALS, unblock
from daebus.service.supervision import BusReader, Heartbeat
from daebus.ops.systemd import Notifier
from daebus.service.threads import AppThreads, ManagedThread
from daebus.bus.transport import REDIS_ERRORS, Publisher, connect, redact

log = logging.getLogger("daebus.runtime")
_SETTING_NAMES = {f for f in config.Settings.__dataclass_fields__ if f != "origins"}


class Runtime:
    """The container of one running app: it builds the components, starts
    and stops them in order (:mod:`daebus.service.lifecycle`), routes what
    the bus reader reads to the intakes, and is the
    :class:`~daebus.service.host.Host` its components see."""

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
        self.ready = app.serving
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
            from daebus.service import aio  # asyncio is imported only by services that use it
            self.aio = aio.EventLoop(self.service, app.max_workers)
        self.metrics = (ServiceMetrics if self.settings.metrics else NullMetrics)(
            app.actions, app.listeners, app.tasks)
        # A group member may hear a cancel before it reads the request: it keeps those.
        self.executor = Executor(app, self.metrics, self.aio, Cancels(self.service, keep_early=self.grouped))
        self.handlers = Handlers(self.pool, self.aio, lambda: self.executor.abandon(self.reply_error))
        self.gates = Gates(app, self.handlers)   # concurrency limits of actions and listeners
        self.later = Later()                     # retries that wait in the process
        self.retries = Retries(self, self.later)
        self.requests = None  # the intake of requests: OwnerIntake, or the GroupServer
        self.broadcasts = Broadcasts(self)
        self.scheduler = TaskScheduler(app, list(app.tasks.values()), aio=self.aio, metrics=self.metrics)
        self.threads = AppThreads(app)
        self.lifecycle = Lifecycle([])
        self.cancel_channel = cancel_channel(self.service)
        self.started_at = time.time()
        self._binding = contextlib.ExitStack()
        self._signals = _SignalWatcher(self.stop)
        self.stop_clock: StopClock | None = None  # set when a stop begins

    @property
    def subscriber(self):
        return self.reader.subscriber if self.reader is not None else None

    @property
    def grouped(self) -> bool:
        return self.mode == registry.GROUP

    @property
    def serving(self) -> bool:
        return self.ready.is_set()

    def health(self) -> list[str]:
        return self.lifecycle.health()

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
        self.group = GroupServer(self, consumer=self.membership.token) if self.grouped else None
        self.requests = self.group or OwnerIntake(self)
        # Started in this order, stopped in the reverse; see daebus.service.lifecycle.
        self.lifecycle = Lifecycle([self.handlers, self.later, self.heartbeat, self.reader, *self.app.components,
                                    self.reader.intake, *([self.group] if self.group else []),
                                    _StartHooks(self.aio), self.scheduler, self.threads])
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
        if self.group is not None:
            self.beat_soon()   # the group's first beat while serving: how soon a retry is due
        self.notifier.ready(status)
        log.info("service %r ready: %s", self.service, status)
        return True

    def _shutdown(self) -> None:
        self.ready.clear()
        self.notifier.stopping("stopping")
        log.info("stopping service %r", self.service)
        self.stopping.set()
        clock = self.stop_clock = StopClock(self.settings.shutdown_timeout)
        busy = self.lifecycle.stop(self.settings.shutdown_timeout, clock.deadline)
        if busy:
            log.warning("still running after %.0f s, exiting without them: %s",
                        self.settings.shutdown_timeout, ", ".join(name_of(component) for component in busy))
        self._binding.close()
        bounded("leaving the registry", self._leave, clock.cleanup_deadline)
        self.notifier.close()
        log.info("service %r stopped", self.service)

    def _leave(self) -> None:
        if self.group is not None:
            self.group.leave()
        if self.client is not None:
            try:
                self.membership.release()
            except (*REDIS_ERRORS, AccessDenied):
                pass
            self.client.close()

    def thread(self, name: str) -> ManagedThread:
        return self.threads.get(name)

    # -- messages ------------------------------------------------------------
    def on_message(self, channel: str, data: bytes) -> None:
        """What the bus reader read: a request, a cancel, a group's notice, or a broadcast."""
        if channel == self.service:
            self.requests.on_published(data, time.monotonic())
        elif channel == self.cancel_channel:
            self.executor.cancels.on_published(data)
        elif channel in self.membership.channels:
            if self.group is not None and self.group.heard(data):
                self.beat_soon()
        else:
            self.broadcasts.on_published(channel, data)

    def reply_error(self, reply_to: str, request_id, message: str, code: str) -> None:
        envelope = protocol.reply_envelope(request_id, protocol.ERROR, protocol.error_payload(message, code))
        # While stopping, no reply may hold the exit past its deadline (the
        # replies to abandoned requests go out in the cleanup's share).
        clock = self.stop_clock
        try:
            self.publish(reply_to, protocol.dumps(envelope), clock.cleanup_deadline if clock is not None else None)
        except REDIS_ERRORS as exc:
            log.error("could not send %s reply to %s: %s", code, reply_to, exc)

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
            info.update(self.group.counters(), **{registry.STREAM_MAX_LENGTH: self.settings.stream_max_length})
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
    def bridge(self, on: bool) -> None:
        """Subscribe to the service channel (or stop) to feed the group's
        stream with 0.0.x callers' published requests."""
        if on:
            self.subscriber.add(self.service, timeout=self.settings.socket_timeout)
        else:
            self.subscriber.remove(self.service)
        log.info("%s the service channel into the group's stream", "bridging" if on else "no longer bridging")

    def beat_soon(self) -> None:
        """Beat now (the group has news: a retry was kept, a member took requests)."""
        self.heartbeat.wake()

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


class _StartHooks:
    """Runs the ``@app.on_start`` hooks; an exception stops the service."""

    name = "on_start hooks"

    def __init__(self, aio):
        self.aio = aio

    def start(self, app) -> None:
        with app_context(app):
            for hook in app.start_hooks:
                try:
                    if is_async(hook):
                        from daebus.service.aio import call_in_app
                        self.aio.run(call_in_app, app, hook)
                    else:
                        hook()
                except Exception:
                    log.exception("on_start hook %s failed; stopping", getattr(hook, "__qualname__", hook))
                    raise


class _SignalWatcher:
    """SIGTERM/SIGINT stop the app; a second signal exits at once.

    The signal's number reaches a pipe through :func:`signal.set_wakeup_fd`,
    written by the C-level handler on whichever thread the kernel chose; a
    thread reads it and calls ``stop()``. A Python-level handler would run
    only on the main thread, and one blocked in a wait that the signal did
    not interrupt (it went to another thread) would never run it.
    """

    def __init__(self, stop):
        self.stop = stop
        self.count = 0
        self._previous: dict = {}
        self._previous_fd: int | None = None
        self._pipe: tuple[int, int] | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._pipe = os.pipe()
        os.set_blocking(self._pipe[1], False)   # set_wakeup_fd wants it so; the watcher's end blocks
        self._previous_fd = signal.set_wakeup_fd(self._pipe[1], warn_on_full_buffer=False)
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, _noted)
        unblock(STOP_SIGNALS)  # after the handlers: one already pending reaches them
        threading.Thread(target=self._watch, args=(self._pipe[0],), name="daebus-signals", daemon=True).start()

    def _watch(self, fd: int) -> None:
        try:
            while data := os.read(fd, 64):
                for number in data:
                    if number == 0:   # uninstall(): the run is over
                        return
                    if number in STOP_SIGNALS:
                        self._signalled(number)
        except OSError:
            return
        finally:
            os.close(fd)

    def _signalled(self, number: int) -> None:
        self.count += 1
        if self.count > 1:
            os.write(2, b"daebus: second signal, exiting now\n")
            os._exit(1)
        log.info("received %s, shutting down", signal.Signals(number).name)
        self.stop()

    def uninstall(self) -> None:
        if self._pipe is None:
            return
        signal.set_wakeup_fd(self._previous_fd if self._previous_fd is not None else -1)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        try:
            os.write(self._pipe[1], b"\0")  # ends the watcher
        except OSError:
            pass
        os.close(self._pipe[1])
        self._pipe = None


def _noted(signum, frame) -> None:
    """The Python-level handler: nothing to do, the wakeup pipe told the watcher."""
