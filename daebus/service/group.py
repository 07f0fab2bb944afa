"""Group mode: instances of one service share its requests through a Redis
stream and a consumer group.

Callers ``XADD`` requests (the wire format's JSON envelope, in the field
``request``) to ``daebus:stream:<service>``. Every instance is a consumer of
the group ``daebus`` named by its token, reads with ``XREADGROUP ... BLOCK``
only as many entries as it has idle workers, replies on ``reply_to`` and then
``XACK``\\ s and ``XDEL``\\ s the entry, so the stream holds only requests
not yet answered (and ``MAXLEN ~`` bounds it anyway).

An instance that dies holding requests leaves them pending; what happens
to them is :mod:`daebus.service.claims`. A request whose handler asks for a
retry waits in Redis until due (:mod:`daebus.service.groupretry`); one for a
limited action waits for its turn in this instance's gate
(:mod:`daebus.service.gates`), still pending with it and kept at each beat
like any it holds, without holding a worker meanwhile.

One instance at a time (the bridge) also subscribes to the service channel
and adds what 0.0.x callers PUBLISH there to the stream.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from daebus.bus import protocol
from daebus.bus.keys import bridge_key, dead_key, stream_key, text
from daebus.service.claims import GROUP_NAME, Claims, delivered_before, first_id
from daebus.service.gates import FULL, REFUSED, Job
from daebus.service.groupretry import GroupRetries
from daebus.errors import AccessDenied
from daebus.ops.logs import StateLog
from daebus.service.membership import LIVENESS_PREFIX, group_channel
from daebus.ops.ratelog import RateLimitedLog, kind_of
from daebus.bus.transport import REDIS_ERRORS, Backoff, connect, on_master_move, redact
from daebus.bus.turns import Turns, wait_for_reader

log = logging.getLogger("daebus.group")
# A sender flooding the stream with garbage gets a line per interval, as
# does a flood of requests for a limited action whose queue is full.
_malformed = RateLimitedLog(log)
_full = RateLimitedLog(log)



# The bridge role: ours if free, ours already, or held by a dead instance.
_BRIDGE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder
   or tonumber(redis.call('PUBSUB', 'NUMSUB', ARGV[3] .. holder)[2]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


# How a final reply's JSON ends (protocol.reply_envelope puts "final" last).
_FINAL = '"final":true}'

_DROP_BRIDGE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class _Slots:
    """Idle workers. The reader asks how many are free without holding them
    while it blocks, so claims at the beat can still take one."""

    def __init__(self, count: int):
        self.count = self.free = count
        self._closed = False
        self._cond = threading.Condition()

    def wait_free(self, timeout: float) -> int:
        """Idle workers, once there are any (0 after ``timeout`` or :meth:`close`)."""
        with self._cond:
            self._cond.wait_for(lambda: self.free > 0 or self._closed, timeout)
            return 0 if self._closed else max(0, self.free)

    def close(self) -> None:
        """End every wait: no more reading."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, count: int) -> None:
        with self._cond:
            self.free -= count

    def try_take(self) -> bool:
        with self._cond:
            if self.free <= 0:
                return False
            self.free -= 1
            return True

    def give(self) -> None:
        with self._cond:
            self.free += 1
            self._cond.notify()


class GroupServer:
    """This instance's share of a group: reads, claims, acknowledges; the
    group's intake of requests, beside :class:`~daebus.service.intake.OwnerIntake`.

    ``host`` is the runtime as its components see it
    (:class:`~daebus.service.host.Host`): its pool runs the requests (or a
    reader runs one itself, in a worker's place), its executor handles each,
    and ``consumer`` names this instance in the stream's consumer group.
    """

    def __init__(self, host, *, consumer: str):
        settings, pool = host.settings, host.handlers.pool
        url, client, service = settings.redis_url, host.client, host.service
        self.on_refused = host.refused
        self.url, self.client, self.service, self.consumer = url, client, service, consumer
        self.stream, self.dead = stream_key(service), dead_key(service)
        self.claim_idle_ms = int(settings.claim_idle * 1000)
        self.max_deliveries = settings.max_deliveries
        self.max_length = settings.stream_max_length
        self.max_bytes = settings.max_message_bytes
        self.block_ms = int(settings.health_check_interval * 1000)
        self._bridge_ttl_ms = max(1000, int(settings.registry_ttl * 1000))
        self._reader_client = connect(url, socket_timeout=settings.socket_timeout + settings.health_check_interval,
                                      decode=False, retry=False)
        self._dropped_once = False   # the read's own retry of a dropped connection: used
        # A read blocked on a master that froze would wait out its socket timeout.
        on_master_move(url, self._end_blocked_read)
        self.slots = _Slots(host.app.max_workers)
        self._submit, self._run = pool.submit, host.executor.run
        self._accept, self._drop = host.executor.accept, host.executor.drop
        self._publish, self._on_bridge = host.publish, host.bridge
        self._borrow, self._give_back = pool.borrow, pool.give_back
        self._gates, self._metrics, self._beat_soon = host.gates, host.metrics, host.beat_soon
        self._turns = Turns()
        self.reply_error = host.reply_error
        self._noticed = 0.0                      # when we last told the group we took work
        self._busy_until = 0.0                   # another member took work: watch it until then
        self._bridge = client.register_script(_BRIDGE)
        self.claims = Claims(self)
        self.retries = GroupRetries(self, host.app.retries, self._kept_retry)
        self._held: dict[str, float] = {}       # entry id -> when taken
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._state = StateLog(log)
        self._clock_offset_ms = 0.0
        self.bridging = False
        self._lost = False
        self.expired = 0
        self.last_beat = time.monotonic()

    # -- lifecycle (see daebus.service.lifecycle) --------------------------------------
    name = "group reader"

    def start(self, app=None) -> None:
        self._prepare()
        self._threads = [threading.Thread(target=self._read_loop, name=f"daebus-{self.service}-group-{n}",
                                          daemon=True) for n in (1, 2)]
        for thread in self._threads:
            thread.start()
        self.beat()   # claims what a dead instance left, takes the bridge if free

    def health(self) -> str | None:
        if not self._threads:
            return None
        if not all(thread.is_alive() for thread in self._threads):
            return "not running"
        silent = time.monotonic() - self.last_beat
        if silent > 2 * self.block_ms / 1000 + 10:
            return f"silent for {silent:.0f} s"
        return None

    def stop(self) -> None:
        """Take no more entries (in-flight ones still finish and are acknowledged)."""
        self._stop.set()
        self._turns.close()
        self.slots.close()   # a reader waiting for a busy worker reads no more
        self._end_blocked_read()
        deadline = time.monotonic() + 5
        for thread in self._threads:
            wait_for_reader(thread, self._turns.lending, deadline)

    def _end_blocked_read(self) -> None:
        # Closing the socket ends a blocked XREADGROUP at once.
        try:
            self._reader_client.connection_pool.disconnect()
        except Exception:  # noqa: BLE001 - the reader may be closing the same socket (redis-py 4.3)
            pass

    def leave(self) -> None:
        """After the last handler: drop this consumer if it holds nothing,
        and the bridge role if it is ours."""
        if self._threads:   # they never started when the name was taken
            try:
                if not self._held and not self._pending():
                    self.client.xgroup_delconsumer(self.stream, GROUP_NAME, self.consumer)
                if self.bridging:   # compare-and-delete: only ever our own role
                    self.client.eval(_DROP_BRIDGE, 1, bridge_key(self.service), self.consumer)
            except (*REDIS_ERRORS, redis.ResponseError, AccessDenied) as exc:
                log.debug("%s: leaving the group: %s", self.service, exc)
        self._reader_client.close()

    def _pending(self) -> int:
        # Entries read but left for a later claim (no worker took them) are
        # pending with this consumer too: deleting it would lose them.
        for consumer in self.client.xinfo_consumers(self.stream, GROUP_NAME):
            if text(consumer["name"]) == self.consumer:
                return consumer["pending"]
        return 0

    def _prepare(self) -> None:
        try:
            # From id 0: requests sent while no instance ran are served too.
            self.client.xgroup_create(self.stream, GROUP_NAME, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # BUSYGROUP: another instance made it
                raise
        seconds, micros = self.client.time()
        self._clock_offset_ms = seconds * 1000 + micros / 1000 - time.time() * 1000

    # -- reading ---------------------------------------------------------
    def _read_loop(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set() and self._turns.take():
            try:
                self._serve_turn(backoff)
            finally:
                self._turns.leave()

    def _serve_turn(self, backoff: Backoff) -> None:
        """Read while this thread holds the turn: until stopped or taken over."""
        while True:
            entries = self._read(backoff)
            if entries is None:
                return
            if not entries:
                continue
            try:
                if not self._start(entries):
                    return
            except AccessDenied as exc:
                # Acknowledging, replying or noticing: refused all the same.
                self._refused(exc)
                return

    def _start(self, entries: list) -> bool:
        """Start the entries read; False once another reader took the turn."""
        (first_entry, first_fields), *rest = entries
        for entry_id, fields in rest:
            self.take(text(entry_id), fields, 1 + delivered_before(fields))
        self._notice()
        # Only a lone request runs here: with others in flight, the
        # pool's threads overlap their replies' round trips.
        alone = not rest and self.slots.free == self.slots.count - 1
        delivery = 1 + delivered_before(first_fields)
        if not alone or not self._turns.lend():
            self.take(text(first_entry), first_fields, delivery)
            return True
        # Run here; should it take long, the other reader reads on meanwhile.
        self.take(text(first_entry), first_fields, delivery, inline=True)
        return self._turns.reclaim()

    def _read(self, backoff: Backoff) -> list | None:
        """One turn: the entries read (each holding a slot), or None to stop."""
        if self._stop.is_set():
            return None
        try:
            if self._lost:
                self._prepare()
                self._lost = False
                self._state.set("up", logging.WARNING, "%s: reading its stream again", self.service)
            self.last_beat = time.monotonic()
            # Only as many entries as idle workers: the rest stay for other instances.
            count = self.slots.wait_free(self.block_ms / 1000)
            if self._stop.is_set():
                return None
            if not count:
                return []
            reply = self._reader_client.xreadgroup(GROUP_NAME, self.consumer, {self.stream: ">"},
                                                   count=count, block=self.block_ms)
            backoff.reset()
            self._dropped_once = False
            entries = reply[0][1] if reply else []
            self.slots.take(len(entries))
            return entries
        except AccessDenied as exc:
            self._refused(exc)
            return None
        except Exception as exc:  # noqa: BLE001 - Redis gone, stream lost (NOGROUP), or stop()
            if self._stop.is_set():
                return None
            if isinstance(exc, REDIS_ERRORS) and not self._lost and not self._dropped_once:
                # A dropped connection (a restart, a master that moved) is read
                # again at once, once; only a second failure counts as lost.
                self._dropped_once = True
                log.debug("%s: reading its stream again after %s", self.service, exc)
                return []
            self._lost = True
            self._state.set("lost", logging.ERROR, "%s: cannot read its stream at %s: %s",
                            self.service, redact(self.url), exc)
            delay = backoff.next()
            self.last_beat = time.monotonic() + delay
            self._stop.wait(delay)
            return []

    def _refused(self, exc: AccessDenied) -> None:
        # The ACL will not change by retrying: the service stops.
        self._stop.set()
        self._turns.close()
        self.slots.close()
        if self.on_refused is not None:
            self.on_refused(exc)

    def _notice(self) -> None:
        # Tells the other members that we hold requests, so that they watch
        # for them to become claimable should we die. At most a few times
        # per claim_idle: while the group stays busy, their beats see us.
        now = time.monotonic()
        if now - self._noticed > self.claim_idle_ms / 4000:
            self._noticed = now
            try:
                self._publish(group_channel(self.service), self.consumer)
            except REDIS_ERRORS:
                pass

    def heard(self, data: bytes) -> bool:
        """A notice on the group channel; True if another member sent it
        (then the caller should beat at once)."""
        if text(data) == self.consumer:
            return False
        self._busy_until = time.monotonic() + self.claim_idle_ms / 1000
        return True

    def take(self, entry_id: str, fields: dict, delivery: int, inline: bool = False) -> None:
        """Start handling an entry that holds one of our slots: on the pool,
        or ``inline`` on this thread (``delivery``: its number, counting the
        deliveries before a retry put it back)."""
        data = fields.get(b"request", fields.get("request")) if fields else None
        try:
            if data is None:
                raise protocol.ProtocolError("stream entry without a 'request' field")
            message = protocol.parse_request(protocol.decode_object(data, self.max_bytes))
        except protocol.ProtocolError as exc:
            _malformed.warning((self.stream, kind_of(str(exc))), "dropped malformed request %s on %s: %s",
                               entry_id, self.stream, exc)
            if exc.reply_to:
                self.reply_error(exc.reply_to, exc.request_id, str(exc), protocol.BAD_REQUEST)
            self._done(entry_id)
            return
        first = first_id(fields, entry_id)
        if self._stale(entry_id, first, message):
            return
        # Cancellable from now on; left to another member, not answered, at a stop.
        self._accept(message, answer_on_stop=False)
        with self._lock:
            self._held[entry_id] = time.monotonic()
        gate = self._gates.action(message.action)
        if gate is not None:
            self._gated(gate, entry_id, message, delivery, first)
        elif inline and self._borrow():
            try:
                self._handle(entry_id, message, delivery, first)
            except Exception:  # noqa: BLE001 - as the pool does: log it, keep reading
                log.exception("unhandled error in %s's request %s", self.service, message.request_id)
            finally:
                self._give_back()
        elif not self._submit(self._handle, entry_id, message, delivery, first):
            self._let_go(entry_id, message)

    def _leave_pending(self, entry_id: str) -> None:
        with self._lock:
            self._held.pop(entry_id, None)
        self.slots.give()  # left pending: claimed again after claim_idle

    def _stale(self, entry_id: str, first: str, message: protocol.Request) -> bool:
        """True (dropped, acknowledged) when the caller gave up already."""
        if message.timeout_ms and self.age_ms(first) > message.timeout_ms:
            self.expired += 1
            log.info("dropped %r request %s unanswered: its caller gave up after %d ms (%d so far)",
                     message.action, message.request_id, message.timeout_ms, self.expired)
            self._done(entry_id)
            return True
        return False

    def _gated(self, gate, entry_id: str, message: protocol.Request, delivery: int, first: str) -> None:
        # Waiting for its turn, the entry gives its slot back: reading goes on.
        job = Job(message.action, self._handle_waited, (entry_id, message, delivery, first),
                  parked=self.slots.give, resumed=lambda: self.slots.take(1),
                  lost=lambda: self._let_go(entry_id, message))
        outcome = self._gates.run(gate, job)
        if outcome == FULL:
            self._metrics.busy(message.action)
            _full.warning(message.action, "%s has %d running and %d waiting (its limit): answering 'busy'",
                          gate.what, gate.running, gate.waiting)
            if message.reply_to:
                self.reply_error(message.reply_to, message.request_id, f"service {self.service!r} is busy",
                                 protocol.BUSY)
            self._drop(message)
            self._done(entry_id)
        elif outcome == REFUSED:
            self._let_go(entry_id, message)

    def _handle_waited(self, entry_id: str, message: protocol.Request, delivery: int, first: str) -> None:
        if self._stale(entry_id, first, message):
            self._drop(message)
        else:
            self._handle(entry_id, message, delivery, first)

    def _let_go(self, entry_id: str, message: protocol.Request) -> None:
        """Not run here after all: no longer cancellable here, left pending."""
        self._drop(message)
        self._leave_pending(entry_id)

    def age_ms(self, entry_id: str) -> float:
        """Milliseconds since the entry was added, on Redis's clock."""
        return self.now_ms() - int(entry_id.split("-", 1)[0])

    def now_ms(self) -> float:
        """Redis's clock, in milliseconds."""
        return time.time() * 1000 + self._clock_offset_ms

    def _kept_retry(self) -> None:
        # Beat when it is due; and the other members too, should we stop before.
        self._beat_soon()
        try:
            self._publish(group_channel(self.service), self.consumer)
        except REDIS_ERRORS:
            pass

    def _handle(self, entry_id: str, message: protocol.Request, delivery: int, first: str | None = None) -> None:
        acknowledged = []

        def publish(channel: str, text: str, deadline: float | None = None) -> int:
            if channel != message.reply_to or not text.endswith(_FINAL):
                return self._publish(channel, text)
            # The final reply, its acknowledgement and the entry's deletion in
            # one write: Redis runs them in order, so XACK follows the reply.
            sent, *_ = self._publish.commands(("PUBLISH", channel, text), ("XACK", self.stream, GROUP_NAME, entry_id),
                                              ("XDEL", self.stream, entry_id))
            acknowledged.append(entry_id)
            if isinstance(sent, Exception):
                raise sent
            return sent

        def retry(request: protocol.Request, sent, exc) -> bool:
            # Kept in Redis for later, or dead-lettered: settled either way.
            if self.retries.keep(entry_id, first or entry_id, request, exc):
                acknowledged.append(entry_id)
                return True
            return False

        try:
            self._run(message._replace(delivery=delivery), publish, None, retry)
        finally:
            if acknowledged:
                self._release(entry_id)
            else:   # no reply_to, cancelled, or the reply went another way (an error reply)
                self._done(entry_id)

    def _done(self, entry_id: str) -> None:
        # After the reply went out: acknowledge and delete in one round trip.
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.xack(self.stream, GROUP_NAME, entry_id)
            pipe.xdel(self.stream, entry_id)
            pipe.execute()
        except (*REDIS_ERRORS, redis.ResponseError) as exc:
            # Left pending (READONLY from a demoted master, say): claimed again later.
            log.warning("could not acknowledge %s on %s: %s", entry_id, self.stream, exc)
        finally:
            self._release(entry_id)

    def _release(self, entry_id: str) -> None:
        with self._lock:
            self._held.pop(entry_id, None)
        self.slots.give()

    # -- the beat ----------------------------------------------------------
    def beat(self) -> float | None:
        """Keep our entries, claim a dead instance's, hold the bridge.

        Returns how soon the next beat is needed, or None for "at the usual
        interval" (nothing held or pending elsewhere)."""
        with self._lock:
            held = list(self._held)
        self.claims.keep(held)
        self.claims.claim()
        self.claims.forget_departed()
        due = self.retries.move_due()
        bridging = bool(self._bridge(keys=[bridge_key(self.service)],
                                     args=[self.consumer, self._bridge_ttl_ms, LIVENESS_PREFIX]))
        if bridging != self.bridging:
            self.bridging = bridging
            self._on_bridge(bridging)
        soon = self.claims.next_claim(bool(held))
        if due is not None:
            soon = due if soon is None else min(soon, due)
        if time.monotonic() < self._busy_until:
            # Someone took work lately: look at least every second for what it holds.
            soon = min(soon or 1.0, 1.0)
        return soon

    def on_published(self, data: bytes, received: float) -> None:
        """A request published on the service channel (a 0.0.x caller's):
        into the stream, for whichever member takes it."""
        self.bridge(data)

    def bridge(self, data: bytes) -> None:
        """Add a request PUBLISHed on the service channel to the stream."""
        try:
            self.client.xadd(self.stream, {"request": data}, maxlen=self.max_length, approximate=True)
        except REDIS_ERRORS as exc:
            log.error("could not add a published request to %s: %s", self.stream, exc)

    def counters(self) -> dict:
        return {"expired": self.expired, "dead_lettered": self.claims.dead_lettered}
