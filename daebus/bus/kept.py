"""Broadcasts kept in Redis for a while, so that pages can catch up.

A gateway declares which channels it wants kept (patterns, a count and an
age) in the hash ``daebus:keep``. A broadcast on a declared channel is then
written by its publisher, in one Lua script, to the stream
``daebus:kept:<channel>`` with an id taken from one clock for every channel
(``<ms>-<n>``, never going back, even when the gateway or the clock does),
announced with that id on ``daebus:kept``, and published as usual on the
channel itself. Listeners see the same bare JSON as ever.

The publisher is the only writer: each event is written once, whatever the
number of gateway processes, and nothing is lost while a gateway restarts.
Example (what ``broadcast.send`` does)::

    send = KeepingPublisher(client, Publisher(client))
    send("sensors.temp", '{"celsius": 21.5}')   # PUBLISH, or the script when kept

Each declaration lives until its ``until`` (the gateway renews it): once a
gateway has been away longer than its kept window, publishers stop writing.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Callable

import redis

from daebus.bus import keys
from daebus.bus.globs import glob_match
from daebus.bus.publisher import REDIS_ERRORS

log = logging.getLogger("daebus.kept")

# The names this module reads and writes (defined in daebus.bus.keys).
CLOCK, DECLARATIONS, TRIMMED, SEQ = keys.KEEP_CLOCK, keys.KEEP_DECLARATIONS, keys.KEEP_TRIMMED, keys.KEEP_SEQ
STREAM_PREFIX, NOTICE = keys.KEPT_PREFIX, keys.KEPT_NOTICE
REFRESH = 1.0                         # seconds a publisher trusts the declarations it read

_ID = re.compile(r"(\d{1,19})-(\d{1,19})")

# KEYS: stream, clock, trimmed, seq. ARGV: channel, payload, count, age in ms.
# Ids come from Redis's clock and the last id given, so they grow even if
# the clock steps back. Entries dropped for count or age are remembered
# (their newest id) so that a reader can tell a gap from a quiet channel;
# each entry's "n" counts the channel's kept events, so that a reader can
# also tell how many it missed.
_SCRIPT = """
local notice = '{notice}'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms, seq = now, 0
local last = redis.call('GET', KEYS[2])
if last then
  local lms, lseq = string.match(last, '^(%d+)-(%d+)$')
  if lms and tonumber(lms) >= now then ms, seq = tonumber(lms), tonumber(lseq) + 1 end
end
local id = string.format('%.0f-%.0f', ms, seq)
redis.call('SET', KEYS[2], id)
local count, dropped = tonumber(ARGV[3]), nil
local over = redis.call('XLEN', KEYS[1]) - count + 1
if over > 0 then
  local old = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', over)
  dropped = old[#old][1]
  redis.call('XTRIM', KEYS[1], 'MAXLEN', count - 1)
end
local cutoff = string.format('%.0f-0', now - tonumber(ARGV[4]))
local aged = redis.call('XREVRANGE', KEYS[1], '(' .. cutoff, '-', 'COUNT', 1)
if #aged > 0 then
  dropped = aged[1][1]
  redis.call('XTRIM', KEYS[1], 'MINID', cutoff)
end
if dropped then redis.call('HSET', KEYS[3], ARGV[1], dropped) end
redis.call('XADD', KEYS[1], id, 'd', ARGV[2], 'n', redis.call('HINCRBY', KEYS[4], ARGV[1], 1))
redis.call('PUBLISH', notice, id .. ' ' .. #ARGV[1] .. ' ' .. ARGV[1] .. ARGV[2])
return redis.call('PUBLISH', ARGV[1], ARGV[2])
""".replace("{notice}", NOTICE)


# KEYS: clock. Moves the clock one step past the newest kept id and returns
# it (nothing, and no move, before the first kept event). A declaration that
# starts again after a lapse begins there: a page told of the lapse resumes
# from that id, and every event kept from then on has a later one.
_MARK = """
local last = redis.call('GET', KEYS[1])
if not last then return false end
local ms, seq = string.match(last, '^(%d+)-(%d+)$')
if not ms then return false end
local id = string.format('%.0f-%.0f', tonumber(ms), tonumber(seq) + 1)
redis.call('SET', KEYS[1], id)
return id
"""


def mark_restart(client) -> str:
    """The id a declaration that (re)starts now begins at: the clock moved
    one past the newest kept id, "0-0" when nothing was ever kept."""
    marked = client.eval(_MARK, 1, CLOCK)
    if isinstance(marked, bytes):
        marked = marked.decode("ascii")
    return marked or "0-0"


def parse_id(text) -> tuple[int, int] | None:
    """``"1700000000000-3"`` as ``(1700000000000, 3)``; None for anything else."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    match = _ID.fullmatch(text) if isinstance(text, str) else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def format_id(key: tuple[int, int]) -> str:
    return f"{key[0]}-{key[1]}"


def parse_notice(data: bytes) -> tuple[str, str, bytes] | None:
    """``(id, channel, payload)`` of a ``daebus:kept`` message, or None."""
    try:
        event_id, length, rest = data.split(b" ", 2)
        size = int(length)
        channel = rest[:size].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if parse_id(event_id) is None or len(channel.encode("utf-8")) != size:
        return None
    return event_id.decode("ascii"), channel, rest[size:]


def live_rules(raw: dict, now_ms: int) -> list[tuple[str, dict]]:
    """The declarations of ``HGETALL daebus:keep`` still in force."""
    rules = []
    for pattern, value in raw.items():
        try:
            rule = json.loads(value)
            if int(rule["until"]) > now_ms and int(rule["count"]) > 0 and float(rule["age"]) > 0:
                rules.append((pattern.decode() if isinstance(pattern, bytes) else pattern, rule))
        except (ValueError, TypeError, KeyError):
            continue  # not ours to judge; ignored
    return rules


def redis_ms(client) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


class KeepingPublisher:
    """Publishes broadcasts, keeping those on declared channels."""

    def __init__(self, client, publish: Callable[[str, str], int], refresh: float = REFRESH):
        self.client = client
        self._publish = publish
        self._script = client.register_script(_SCRIPT)
        self._refresh = refresh
        self._rules: list[tuple[str, dict]] = []
        self._fresh_until = 0.0
        self._lock = threading.Lock()
        self._refused = False

    def __call__(self, channel: str, message: str) -> int:
        rule = self._rule(channel)
        if rule is None:
            return self._publish(channel, message)
        try:
            return self._run([STREAM_PREFIX + channel, CLOCK, TRIMMED, SEQ], [channel, message, rule[0], rule[1]])
        except redis.ResponseError as exc:
            # Scripts refused (an ACL without EVALSHA, say): the event still
            # goes out, only without being kept.
            self._refuse(exc)
            return self._publish(channel, message)

    def _run(self, keys: list, args: list):
        # On the publisher's thread-owned connection when it has one: half
        # the cost of the client's pool and retry path.
        command = getattr(self._publish, "command", None)
        if command is not None:
            timeout = self.client.connection_pool.connection_kwargs.get("socket_timeout") or 5.0
            try:
                return command(time.monotonic() + timeout, "EVALSHA", self._script.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                pass  # a restarted Redis: the client's path loads the script again
            except redis.ConnectionError:
                pass  # nothing was run: the client's path reconnects and retries
        return self._script(keys=keys, args=args)

    def _refuse(self, exc: Exception) -> None:
        if not self._refused:  # said once, not per event
            self._refused = True
            log.warning("cannot keep broadcasts for replay (%s); publishing them unkept", exc)

    def _rule(self, channel: str) -> tuple[int, int] | None:
        """``(count, age_ms)`` for ``channel``, None when it is not kept."""
        now = time.monotonic()
        if now >= self._fresh_until:
            with self._lock:
                if now >= self._fresh_until:
                    self._reload(now)
        count = age = 0
        for pattern, rule in self._rules:
            if glob_match(pattern, channel):
                count, age = max(count, int(rule["count"])), max(age, int(float(rule["age"]) * 1000))
        return (count, age) if count else None

    def _reload(self, now: float) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(DECLARATIONS)
            pipe.time()
            raw, (seconds, micros) = pipe.execute()
        except REDIS_ERRORS:
            # The publish that follows reports the outage; try again next time.
            return
        except redis.ResponseError as exc:
            # Not allowed to read the declarations (an ACL): publish unkept.
            self._refuse(exc)
            self._rules, self._fresh_until = [], now + self._refresh
            return
        self._rules = live_rules(raw, int(seconds) * 1000 + int(micros) // 1000)
        self._fresh_until = now + self._refresh
